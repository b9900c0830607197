"""Links: a run configuration or a page's view as URL query values, and back, with clear messages.

A configuration link names a preset and only the fields that differ from it
(`/Train?preset=ring8&loss=hinge&g_lr=0.002`), so it stays short and survives a server restart (it names
values, never session state). A view link names the run id and what the page shows (`/Samples?run=<id>&step=
2000`, `/Latent?run=<id>&seed=3&z=0.5,-1`). Pure functions, no streamlit: ui/classroom.py draws the "Copy link"
box and applies a link to a page's widgets; the parsing and its messages are tested here.

Hostile or mistyped values never raise: `config_from_params` returns the fields it could read, and a
{field: message} dict for the rest, in the form's own words (config.parse_value and TrainConfig.validate).
Its PRESET_KEY entry is a note on the whole link, shown above the form rather than on a field: an unknown
preset, or data the link cannot carry. A run on uploaded or drawn data (or a typed server path) links without
its data_path, so the form gets the preset's data set and every other field, and the note says to upload the
file again or redraw the points.
"""
from __future__ import annotations

import math
from dataclasses import fields
from typing import Any, Mapping
from urllib.parse import urlencode

from .config import PRESETS, ConfigError, TrainConfig, get_preset, parse_value
from .data_specs import SPECS

PRESET_KEY = "preset"
MAX_VALUE_CHARS = 200          # a query value longer than this is refused, not parsed
MAX_Z_DIMS = 1024              # TrainConfig allows noise_dim up to 1024
FIELDS = tuple(f.name for f in fields(TrainConfig))
# Never taken from a link: a server-side path named by a stranger's URL (uploads are per server, and the form
# checks paths separately), and the hardware choice, which belongs to the machine that trains.
NOT_LINKED = ("data_path", "device")


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value)
    if isinstance(value, float):
        return repr(value)
    return str(value)


def config_params(cfg: TrainConfig, preset: str | None = None) -> dict[str, str]:
    """The query values of a configuration link: the preset, then each field that differs from it."""
    if preset not in PRESETS:
        preset = _closest_preset(cfg)
    base = get_preset(preset).config()
    params = {PRESET_KEY: preset}
    for name in FIELDS:
        value = getattr(cfg, name)
        if name not in NOT_LINKED and value != getattr(base, name):
            params[name] = _text(value)
    return params


def _closest_preset(cfg: TrainConfig) -> str:
    """The preset that needs the fewest changes to give cfg (a run made by hand still gets a short link)."""
    def distance(name: str) -> int:
        base = get_preset(name).config()
        return sum(getattr(cfg, f) != getattr(base, f) for f in FIELDS)
    return min(PRESETS, key=distance)


def is_config_link(params: Mapping[str, Any]) -> bool:
    return PRESET_KEY in params or any(name in params for name in FIELDS)


def config_from_params(params: Mapping[str, Any]) -> tuple[str, TrainConfig | None, dict[str, str]]:
    """(preset name, the configuration or None, {field: message}) from a link's query values.

    Every readable field is applied on top of the preset; a bad value is reported on its field and left at
    the preset's value, so the form shows what the link meant and what was wrong with it.
    """
    errors: dict[str, str] = {}
    preset = _one(params.get(PRESET_KEY)) or "ring8"
    if preset not in PRESETS:
        errors[PRESET_KEY] = f"{preset[:40]!r} is not a preset; using ring8"
        preset = "ring8"
    changes: dict[str, Any] = {}
    for name in FIELDS:
        raw = _one(params.get(name))
        if raw is None:
            continue
        if name in NOT_LINKED:
            errors[name] = "is not taken from a link (upload data or type the path on this server)"
            continue
        if len(raw) > MAX_VALUE_CHARS:
            errors[name] = f"value too long ({len(raw):,} characters)"
            continue
        try:
            changes[name] = parse_value(name, raw.strip())
        except ConfigError as e:
            errors[name] = e.message
    base = get_preset(preset).config()
    linked = changes.get("dataset")
    if linked in SPECS and SPECS[linked].needs_path:
        # Its path is never in a link (NOT_LINKED), and without one the data set does not validate: the form
        # would refuse the whole link on data_path. Keep the preset's data set and say how to bring the data.
        del changes["dataset"]
        errors[PRESET_KEY] = " ".join(filter(None, (errors.get(PRESET_KEY), _bring_data(linked, base.dataset))))
    cfg = None
    for _ in range(len(changes) + 1):   # drop the fields the whole-config check blames, one by one
        try:
            cfg = base.replace(**changes)
            break
        except ConfigError as e:
            errors[e.field] = e.message
            if e.field not in changes:
                break
            del changes[e.field]
    return preset, cfg, errors


def _bring_data(dataset: str, instead: str) -> str:
    """The note for a link whose run trained on data that only its server had."""
    spec = SPECS[dataset]
    how = {"csv": "upload the CSV of points again (or draw them again and press **Train on my drawing**)",
           "folder": "upload the zip of images again"}.get(dataset, f"type the path of its {spec.path_kind} on "
                                                                 "this server")
    return (f"That run trained on data of its own (dataset {dataset}), which a link does not carry: "
            f"{how}. Until then the form has the preset's data set, {instead}.")


def _one(value: Any) -> str | None:
    """A query value as one string (st.query_params gives the last of repeated keys; lists are accepted)."""
    if isinstance(value, (list, tuple)):
        value = value[-1] if value else None
    return None if value is None else str(value)


def url(base: str, page: str, params: Mapping[str, Any]) -> str:
    """An absolute link: `base` (scheme://host[:port][/prefix]) + /page + ?query."""
    query = urlencode({k: _text(v) for k, v in params.items() if v is not None and v != ""})
    path = f"{base.rstrip('/')}/{page.strip('/')}" if page else base.rstrip("/") + "/"
    return f"{path}?{query}" if query else path


def read_int(raw: Any, lo: int, hi: int) -> int | None:
    """An int query value within [lo, hi], else None (a bad view value is ignored, the page stays usable)."""
    text = _one(raw)
    if text is None or len(text) > 20:
        return None
    try:
        value = int(text)
    except ValueError:
        return None
    return value if lo <= value <= hi else None


def read_floats(raw: Any, limit: float, max_len: int = MAX_Z_DIMS) -> list[float] | None:
    """A comma list of finite floats clipped to [-limit, limit] (latent values), else None."""
    text = _one(raw)
    if text is None or len(text) > max_len * 24:
        return None
    try:
        values = [float(p) for p in text.split(",") if p.strip()]
    except ValueError:
        return None
    if not values or len(values) > max_len or not all(math.isfinite(v) for v in values):
        return None
    return [min(limit, max(-limit, v)) for v in values]


def read_names(raw: Any, allowed: list[str]) -> list[str] | None:
    """A comma list of names, kept only when every one is allowed (e.g. D's layer names)."""
    text = _one(raw)
    if text is None or len(text) > 4_000:
        return None
    names = [p for p in text.split(",") if p]
    return names if all(n in allowed for n in names) else None

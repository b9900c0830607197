"""The training-config form: a Streamlit form built from TrainConfig's fields, and its pure parsing half.

`config_form(initial) -> TrainConfig | None` draws every field (grouped, the rare ones in expanders) and
returns plain data; a bad value is shown next to its field, never as a traceback. `parse_config` turns the
widgets' values into a TrainConfig or a {field: message} dict and has no Streamlit calls, so it is tested
directly. Widget values live in st.session_state["<key>.<field>"], so a preset (`load_form`) can refill them.
Pages import these names from here.
"""
from __future__ import annotations

import functools
from dataclasses import fields
from typing import Any, Callable

import streamlit as st

from ganlab.config import (
    DATASETS,
    DEVICES,
    LOSSES,
    LR_DECAYS,
    MODELS,
    NOISE_DISTS,
    OPTIMIZERS,
    PRESETS,
    UPSAMPLES,
    ConfigError,
    TrainConfig,
    get_preset,
    parse_value,
)
from ganlab.data import check_data_path, dataset_available
from ganlab.data_specs import SPECS
from ganlab.dataset import DataError
from ganlab.store import default_runs_dir
from ganlab.uploads import check_browser_path, save_upload
from ui.messages import flash

FORM_GROUPS: list[tuple[str, tuple[str, ...]]] = [
    ("Data and model", ("dataset", "data_path", "model", "loss", "conditional", "noise_dim", "g_layers",
                        "d_layers", "steps", "batch_size", "g_lr", "d_lr")),
    ("Switches", ("d_steps", "label_smoothing", "instance_noise", "r1_gamma", "gp_lambda", "spectral_norm",
                  "lr_decay", "d_dropout")),
    ("More model and optimiser settings", ("image_size", "channels", "upsample", "dropout", "noise_dist", "g_opt",
                                           "d_opt", "beta1", "beta2", "seed")),
    ("Hardware and recording", ("device", "bf16", "cuda_graph", "stats_every", "snapshot_every",
                                "checkpoint_every", "keep_checkpoints", "grid_size")),
]
CHOICES = {"dataset": DATASETS, "model": MODELS, "loss": LOSSES, "g_opt": OPTIMIZERS, "d_opt": OPTIMIZERS,
           "noise_dist": NOISE_DISTS, "device": DEVICES, "lr_decay": LR_DECAYS, "upsample": UPSAMPLES}
FLOAT_STEPS = {"g_lr": 1e-4, "d_lr": 1e-4, "beta1": 0.05, "beta2": 0.001, "label_smoothing": 0.05,
               "instance_noise": 0.05, "gp_lambda": 0.5, "r1_gamma": 0.5, "dropout": 0.05, "d_dropout": 0.05}
LABELS = {"g_lr": "G learning rate", "d_lr": "D learning rate", "d_steps": "D steps per G step",
          "g_layers": "G hidden widths", "d_layers": "D hidden widths", "noise_dim": "noise dim (z)",
          "r1_gamma": "R1 gamma", "gp_lambda": "GP lambda", "lr_decay": "LR decay", "bf16": "bf16 autocast",
          "cuda_graph": "CUDA graphs",
          "data_path": "data path (csv / IDX / folder / zip)"}
HELP = {"loss": "minimax: the original saturating G loss; nonsaturating: -log D(G(z)); wgan-gp: critic + penalty",
        "steps": "generator updates until the run finishes", "d_steps": "D updates per G update (WGAN-GP uses 5)",
        "label_smoothing": "one-sided: real target 1 - s (BCE losses)",
        "instance_noise": "std of noise added to D's inputs, annealed to 0",
        "upsample": "DCGAN G's x2 steps: transposed conv k4 s2 (DCGAN), k3 s2 (uneven overlap), or nearest "
                    "resize + 3x3 conv (no checkerboard at init)",
        "g_layers": "comma-separated, e.g. 64,64,64",
        "d_layers": "comma-separated, e.g. 64,64,64", "conditional": "feed the class label to G and D",
        "snapshot_every": "0 = once per epoch (images) / 250 steps (2D)",
        "cuda_graph": "on a CUDA GPU: replay each training step as one captured graph (much faster for small nets)"}


def _types() -> dict[str, str]:
    return {f.name: str(f.type) for f in fields(TrainConfig)}


def widget_value(cfg: TrainConfig, name: str) -> Any:
    """The value a form widget shows for cfg.<name> (widths as '64,64,64')."""
    value = getattr(cfg, name)
    return ",".join(str(v) for v in value) if isinstance(value, tuple) else value


def parse_config(values: dict[str, Any]) -> tuple[TrainConfig | None, dict[str, str]]:
    """Form values -> (TrainConfig, {}) or (None, {field: message}). Pure: no streamlit calls.

    Text values are parsed to their field's type (widths '64,64'); then TrainConfig validates the whole;
    finally a dataset that cannot load here (missing package or files) is reported on the dataset field.
    """
    types, clean, errors = _types(), {}, {}
    for name, value in values.items():
        try:
            if name not in types:
                raise ConfigError(name, "unknown field")
            if isinstance(value, str) and types[name] != "str":
                value = parse_value(name, value.strip())
            elif types[name] == "float" and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            elif types[name] == "int" and isinstance(value, float) and value.is_integer():
                value = int(value)
            clean[name] = value
        except ConfigError as e:
            errors[e.field] = e.message
    if errors:
        return None, errors
    try:
        cfg = TrainConfig.from_dict(clean) if set(clean) == set(types) else TrainConfig().replace(**clean)
    except ConfigError as e:
        return None, {e.field: e.message}
    ok, why = dataset_available(cfg.dataset)
    if not ok:
        return None, {"dataset": why}
    try:
        if cfg.data_path:   # the browser may name uploaded files (and GANLAB_DATA_ROOT) only
            check_browser_path(cfg.data_path, default_runs_dir())
        check_data_path(cfg)   # a missing csv / folder: say so here, not in a run that fails at once
    except DataError as e:
        return None, {"data_path": str(e)}
    return cfg, {}


def load_form(cfg: TrainConfig, key: str = "cfg") -> None:
    """Put cfg's values into the form's widgets (call before they render, e.g. from a callback)."""
    for f in fields(TrainConfig):
        st.session_state[f"{key}.{f.name}"] = widget_value(cfg, f.name)
    st.session_state.pop(f"{key}._errors", None)


def preset_picker(key: str = "cfg", default: str = "ring8") -> str:
    """Preset selector that fills the config form below it; returns the preset name."""
    pk = f"{key}.preset"
    if pk not in st.session_state:
        st.session_state[pk] = default
    name = st.selectbox("Preset", list(PRESETS), key=pk, on_change=lambda: load_form(get_preset(
        st.session_state[pk]).config(), key), help="Fills the form with a tested configuration.")
    st.caption(PRESETS[name].summary)
    return name


# Switches that only mean something on a CUDA GPU: disabled, with this help, on a server without one (the trainer
# would ignore them there, and a student should not think they were on).
CUDA_ONLY = ("cuda_graph",)
NO_CUDA_HELP = "no CUDA GPU is present on this server, so training never uses CUDA graphs (the setting is kept " \
               "for a link or a branch on a GPU machine)"


@functools.cache
def cuda_present() -> bool:
    """Whether this server sees a CUDA GPU (asked once: the answer does not change while it runs)."""
    import torch  # already loaded by the server (ganlab.runs); imported here so pages stay torch-free
    return bool(torch.cuda.is_available())


def field_widget(name: str, value: Any, wkey: str, error: str | None = None) -> None:
    """One config field as the fitting widget; its value lives in st.session_state[wkey].

    The widget is also given that value as its default. Inside a form the browser does not keep a value the
    server set: after a later rerun (another run's state changing) it showed each field's default, an empty
    "G hidden widths" and noise dim 0, and Start sent those, so a configuration link a student opened was lost
    before they pressed Start."""
    if wkey not in st.session_state:
        st.session_state[wkey] = value
    now = st.session_state[wkey]
    label, help_ = LABELS.get(name, name.replace("_", " ")), HELP.get(name)
    kind = _types()[name]
    if name in CHOICES:
        fmt = (lambda d: d if dataset_available(d)[0] else f"{d} (unavailable)") if name == "dataset" else str
        options = list(CHOICES[name])
        st.selectbox(label, options, key=wkey, format_func=fmt, index=options.index(now) if now in options else 0,
                     help=getattr(SPECS.get(now), "info", None) if name == "dataset" else help_)
    elif kind == "bool":
        no_cuda = name in CUDA_ONLY and not cuda_present()
        st.checkbox(label, key=wkey, value=bool(now), help=NO_CUDA_HELP if no_cuda else help_, disabled=no_cuda)
    elif kind == "int":
        st.number_input(label, key=wkey, value=now if isinstance(now, int) else None, step=1, format="%d",
                        help=help_)
    elif kind == "float":
        st.number_input(label, key=wkey, value=float(now) if isinstance(now, (int, float)) else None,
                        step=FLOAT_STEPS.get(name, 0.1), format="%g", help=help_)
    else:
        st.text_input(label, key=wkey, value=now if isinstance(now, str) else "", help=help_)
    if error:
        st.error(error, icon=":material/error:")


def form_values(key: str = "cfg") -> dict[str, Any]:
    """The form's widget values (what parse_config takes); fields not drawn yet are left out."""
    names = (f"{key}.{f.name}" for f in fields(TrainConfig))
    return {k.split(".", 1)[1]: st.session_state[k] for k in names if k in st.session_state}


def _submit(key: str) -> None:
    cfg, errors = parse_config(form_values(key))
    st.session_state[f"{key}._errors"] = errors
    submit(key, cfg)


def submit(key: str, cfg: TrainConfig | None) -> None:
    """From a callback of the form: config_form returns `cfg` on the run that follows (None: nothing to start)."""
    st.session_state[f"{key}._result"] = cfg


def form_note(key: str, kind: str, message: str) -> None:
    """From a callback of the form: show `message` (st.<kind>: "warning", "info", ...) under its buttons once."""
    st.session_state[f"{key}._note"] = (kind, message)


def _uploaded(key: str) -> None:
    """File-uploader callback: check the data file in full, keep it, and point the form at it."""
    upload = st.session_state.get(f"{key}._upload")
    if upload is None:
        return
    try:
        kind, path, what = save_upload(default_runs_dir(), upload.name, upload.getvalue(),
                                       int(st.session_state.get(f"{key}.image_size") or 28))
    except DataError as e:
        st.session_state[f"{key}._upload_msg"] = ("error", f"{upload.name[:80]}: {e}")
        return
    st.session_state[f"{key}.dataset"] = kind
    st.session_state[f"{key}.data_path"] = str(path)
    if kind == "folder":
        st.session_state[f"{key}.model"] = "dcgan" if st.session_state.get(f"{key}.model") == "dcgan" else "mlp"
    st.session_state[f"{key}._upload_msg"] = ("success", f"{upload.name[:80]}: {what}, ready: press Start")


def data_upload(key: str = "cfg") -> None:
    """Upload your own data set (CSV of x,y points or a zip of images); the form then trains on it."""
    st.file_uploader("Your own data: a CSV of x,y points, or a zip of images", type=["csv", "txt", "zip"],
                     key=f"{key}._upload", on_change=_uploaded, args=(key,),
                     help="Checked in full when it arrives; kept on the server inside the runs folder.")
    kind, msg = flash(f"{key}._upload_msg", (None, None))
    if kind:
        getattr(st, kind)(msg)


ExtraButton = tuple[str, str, Callable[[str], None]]   # (label, icon, callback(key)) of a second submit button


def config_form(initial: TrainConfig, key: str = "cfg", submit_label: str = "Start new run",
                extra: ExtraButton | None = None) -> TrainConfig | None:
    """The full training-config form. Returns the validated TrainConfig from the run its button was pressed
    until the caller calls `taken(key)`, else None. Invalid values are shown next to their field (never as a
    traceback). The run name typed in the form is in st.session_state[f"{key}.name"]. `extra` adds a second
    submit button beside it: its callback sees the form's values, as Start's does, and calls `submit` with a
    config to start, or `form_note`."""
    for f in fields(TrainConfig):
        st.session_state.setdefault(f"{key}.{f.name}", widget_value(initial, f.name))
    errors: dict[str, str] = st.session_state.get(f"{key}._errors") or {}
    with st.form(f"{key}-form", border=True):
        st.text_input("Run name", key=f"{key}.name", placeholder="optional: defaults to the dataset name")
        if errors:
            st.error("Fix the marked field: " + "; ".join(f"**{k}**: {v}" for k, v in errors.items()))
        for i, (title, names) in enumerate(FORM_GROUPS):
            box = st.container() if i == 0 else st.expander(title, expanded=any(n in errors for n in names))
            with box:
                cols = st.columns(4)
                for j, name in enumerate(names):
                    with cols[j % 4]:
                        field_widget(name, widget_value(initial, name), f"{key}.{name}", errors.get(name))
        with st.container(horizontal=True):
            st.form_submit_button(submit_label, type="primary", on_click=_submit, args=(key,),
                                  icon=":material/rocket_launch:")
            if extra is not None:
                st.form_submit_button(extra[0], key=f"{key}._extra", on_click=extra[2], args=(key,), icon=extra[1])
        kind, msg = flash(f"{key}._note", (None, None))
        if kind:
            getattr(st, kind)(msg)
    # kept until the caller takes it (`taken`): a rerun that interrupts this script run between here and the start
    # (a rerun the browser sends preempts at any st call) would otherwise lose the press (seen under load)
    return st.session_state.get(f"{key}._result")


def taken(key: str) -> None:
    """The caller starts the form's config now: forget the press. Call it right before the start, with no st
    call between (a script run can only be interrupted at one), so the press starts one run, never none or two."""
    st.session_state.pop(f"{key}._result", None)

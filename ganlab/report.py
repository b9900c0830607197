"""A class report of one run: a single self-contained HTML page to download, hand in or put on a slide.

`report_html(run_dir)` reads the run directory and returns the file's bytes. The page holds the run's title
and settings, its history curves as interactive plotly charts (plotly.js embedded once, inline, so the file
opens offline and asks for nothing outside itself), the sample grid's evolution as embedded PNGs (a strip of
snapshots and the newest grid larger; for 2D runs the same points pictures the PNG/GIF exports make, plus the
interactive layered 2D view), the latest quality measures with their labels, the diagnoses with what to try,
and the lineage (the parent run or checkpoint a branch started from, the resumes the history shows).

The charts are ganlab.figures' plotly figures and the pictures ganlab.export's, on ganlab.viz's colours and 2D
geometry, so the report looks like the pages and the other exports. Curves are thinned to
figures.MAX_CHART_POINTS points, so a run of 200,000 history rows gives a report the size of a short one (mostly
plotly.js itself). A damaged run directory raises export.ExportError with a message that says what is wrong.
Nothing here imports streamlit.
"""
from __future__ import annotations

import base64
import html
import json
import time
from array import array
from bisect import bisect_left
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from .diagnose import Diagnosis, diagnose
from .export import ExportError, open_store, snapshot_picture
from .figures import (
    MAX_CHART_POINTS,
    curves_figure,
    grads_figure,
    layered_2d_figure,
    loss_figure,
    scores_figure,
    wdist_figure,
)
from .lineage import lineage, lineage_text, parent_text
from .metrics import QUALITY_LABELS, quality_rows
from .montage import png_bytes
from .snapshots import HISTORY_KEYS, Snapshot
from .states import RunState
from .store import RunStore, StoreError, safe_run_dir
from .viz import D_COLOR, FAKE_COLOR, G_COLOR, extent_of, has_values

STRIP_FRAMES = 8           # snapshots in the evolution strip (evenly spread, always the first and the newest)
STRIP_PX = 150             # shown width of a strip picture; the newest grid is shown at its own size
PLOT_CONFIG = {"displaylogo": False, "responsive": True}   # no plotly.com logo link in the mode bar
SUMMARY_FIELDS = ("dataset", "model", "conditional", "loss", "noise_dim", "g_layers", "d_layers", "channels",
                  "g_lr", "d_lr", "lr_decay", "batch_size", "d_steps", "steps", "seed")
STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;max-width:1100px;margin:24px auto;padding:0 16px;
color:#222}
h1{margin-bottom:4px}h2{margin-top:32px;border-bottom:1px solid #ddd;padding-bottom:4px}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ddd;padding:4px 10px;text-align:left}
th{background:#f5f5f5}.muted{color:#666}.charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(480px,1fr));
gap:8px}.strip{display:flex;flex-wrap:wrap;gap:8px}figure{margin:0;text-align:center}
figcaption{font-size:13px;color:#555}img{image-rendering:pixelated}
.error{background:#fdecea;border-left:4px solid #d9534f;padding:8px 12px;margin:8px 0}
.warning{background:#fff7e6;border-left:4px solid #f0ad4e;padding:8px 12px;margin:8px 0}
"""


class History(NamedTuple):
    columns: dict[str, np.ndarray]   # one float array per HISTORY_KEYS column (NaN where a row lacks it)
    skipped: int                     # corrupt lines skipped (a crash mid-append that a resume wrote past)
    rewinds: list[int]               # steps a resume went back to (it trains the steps after them again)


def report_html(run_dir: Path | str | RunStore, runs_dir: Path | str | None = None) -> bytes:
    """The class report of the run in `run_dir` as UTF-8 HTML bytes. `runs_dir` (default: the folder holding
    the run) is where the parent runs of a branch are looked up for the lineage."""
    store = open_store(run_dir)
    try:
        cfg = store.read_config()
    except StoreError as e:
        raise ExportError(str(e)) from None
    status = store.read_status()
    state = RunState.parse(status.get("state"), RunState.INTERRUPTED) if status else None
    hist = read_history(store, training=bool(state and state.training))
    try:
        quality = sorted((r for r in store.read_rows("quality") if _is_num(r.get("step"))), key=lambda r: r["step"])
    except OSError as e:
        raise ExportError(f"{store.run_id}: unreadable quality.jsonl ({e})") from None
    snaps, unreadable = _strip_snapshots(store)
    name = str(status.get("name") or store.run_id)
    parts = [_title(store, cfg, status, name),
             _section("Training curves", _charts(hist, cfg, snaps)),
             _section("Samples", _samples(snaps, unreadable)),
             _section("Quality", _quality(quality)),
             _section("Diagnoses", _diagnoses(diagnose(hist.columns, quality, cfg.loss, cfg.is_2d, cfg=cfg)
                                             if len(hist.columns["step"]) or quality else None)),
             _section("Lineage", _lineage(store, status, hist, Path(runs_dir) if runs_dir else store.path.parent))]
    page = (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{_e(name)} · ganlab report</title><style>{STYLE}</style>"
            f"<script type=\"text/javascript\">{get_plotlyjs()}</script></head><body>\n"
            + "\n".join(parts)
            + f"\n<p class=\"muted\">Made by ganlab on {time.strftime('%Y-%m-%d %H:%M')}; this file opens offline."
              "</p>\n</body></html>\n")
    return page.encode("utf-8")


# --- reading --------------------------------------------------------------------------------------------------
def read_history(store: RunStore, training: bool = False) -> History:
    """history.jsonl as float columns, read line by line (a 200k-row history costs 8 bytes a value, not a dict
    per row). Rows a resume trained again replace the old ones, as in store.drop_rewound. A torn last line is
    a writer mid-append while the run trains; in a run that is not training it means the file was cut off,
    and raises ExportError."""
    path = store.path / "history.jsonl"
    cols = {k: array("d") for k in HISTORY_KEYS}
    steps, skipped, rewinds = cols["step"], 0, []
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        return History({k: np.zeros(0) for k in HISTORY_KEYS}, 0, [])
    except OSError as e:
        raise ExportError(f"{store.run_id}: unreadable history.jsonl ({e})") from None
    with f:
        offset = 0
        for line in f:
            row = _json(line)
            if row is None or not _is_num(row.get("step")):
                if not line.endswith(b"\n") and not training:
                    raise ExportError(f"{store.run_id}: history.jsonl is truncated: its last line (byte {offset} "
                                      f"on, {len(line)} bytes) is cut off. The process writing it died mid-write: "
                                      "resume the run (it writes on from its last checkpoint) or delete that line.")
                skipped += bool(line.strip()) and line.endswith(b"\n")
                offset += len(line)
                continue
            offset += len(line)
            step = float(row["step"])
            if len(steps) and step < steps[-1]:   # a resume from an earlier checkpoint
                cut = bisect_left(steps, step)
                for column in cols.values():
                    del column[cut:]
                rewinds.append(int(step))
            for k, column in cols.items():
                column.append(_num(row.get(k)))
    return History({k: np.frombuffer(v, dtype=float) if len(v) else np.zeros(0) for k, v in cols.items()},
                   skipped, rewinds)


def _json(line: bytes) -> dict | None:
    try:
        row = json.loads(line)
    except (ValueError, RecursionError):
        return None
    return row if isinstance(row, dict) else None


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _num(v: Any) -> float:
    return float(v) if _is_num(v) else float("nan")


def _strip_snapshots(store: RunStore) -> tuple[list[Snapshot], int]:
    """Up to STRIP_FRAMES snapshots spread over the run (thinned before loading), and how many failed to load."""
    steps = store.snapshot_steps()
    if len(steps) > STRIP_FRAMES:
        steps = [steps[i] for i in np.unique(np.linspace(0, len(steps) - 1, STRIP_FRAMES).round().astype(int))]
    snaps, bad = [], 0
    for s in steps:
        try:
            snaps.append(store.load_snapshot(s))
        except (OSError, ValueError, KeyError):
            bad += 1   # pruned or replaced right now, or a damaged file
    return snaps, bad


# --- sections -------------------------------------------------------------------------------------------------
def _e(value: Any) -> str:
    return html.escape(str(value))


def _section(title: str, body: str) -> str:
    return f"<section><h2>{_e(title)}</h2>\n{body}\n</section>"


def _table(header: tuple[str, ...] | None, rows: list[tuple[Any, ...]]) -> str:
    head = "<tr>" + "".join(f"<th>{_e(h)}</th>" for h in header) + "</tr>" if header else ""
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table>{head}{body}</table>"


def _when(t: Any) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(t)) if _is_num(t) else "-"


def _title(store: RunStore, cfg, status: dict, name: str) -> str:
    state = status.get("state") or "unknown (status.json is missing or unreadable)"
    step = status.get("step") if _is_num(status.get("step")) else 0
    facts = [("run id", store.run_id), ("state", state), ("step", f"{step:,} of {cfg.steps:,}"),
             ("epoch", status.get("epoch", "-")), ("created", _when(status.get("created"))),
             ("last update", _when(status.get("updated")))]
    if status.get("message"):
        facts.append(("message", status["message"]))
    settings = cfg.to_dict()
    if settings.get("data_path"):   # a path on the server means nothing to a reader: its file name does
        settings["data_path"] = Path(str(settings["data_path"])).name
    summary = [(k, _setting(settings[k])) for k in SUMMARY_FIELDS if k in settings]
    rest = [(k, _setting(v)) for k, v in settings.items() if k not in SUMMARY_FIELDS]
    return (f"<h1>{_e(name)}</h1><p class=\"muted\">ganlab run report · {'2D' if cfg.is_2d else 'images'}</p>"
            + _table(None, facts) + "<h2>Settings</h2>" + _table(("setting", "value"), summary)
            + f"<details><summary>all settings</summary>{_table(('setting', 'value'), rest)}</details>")


def _setting(v: Any) -> str:
    return ", ".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v)


def _figure_html(fig: go.Figure) -> str:
    return fig.to_html(full_html=False, include_plotlyjs=False, config=PLOT_CONFIG)


def _charts(hist: History, cfg, snaps: list[Snapshot]) -> str:
    h = hist.columns
    if not len(h["step"]):
        return "<p>No training history yet: the curves appear once the run has trained for a few steps.</p>"
    label = snaps[-1].score_label if snaps else "mean D"
    figs = [loss_figure(h), scores_figure(h, label=label), grads_figure(h)]
    if has_values(h, "wdist"):
        figs.append(wdist_figure(h))
    lrs = np.r_[h["lr_g"], h["lr_d"]]
    if np.isfinite(lrs).any() and np.nanmax(lrs) > np.nanmin(lrs):   # decayed or edited live
        figs.append(curves_figure(h, [("lr_g", "G lr", G_COLOR), ("lr_d", "D lr", D_COLOR)], "Learning rates", "lr"))
    note = (f"<p class=\"muted\">{len(h['step']):,} history rows (one every {cfg.stats_every} steps)"
            + (f", drawn with at most {MAX_CHART_POINTS:,} points per curve" if len(h["step"]) >
               MAX_CHART_POINTS else "")
            + (f"; {hist.skipped} damaged line(s) skipped" if hist.skipped else "") + ".</p>")
    return note + "<div class=\"charts\">" + "".join(_figure_html(f) for f in figs) + "</div>"


def _img(picture: np.ndarray, alt: str, width: int | None = None) -> str:
    data = base64.b64encode(png_bytes(picture)).decode("ascii")
    size = f" width=\"{width}\"" if width else f" width=\"{picture.shape[1]}\" height=\"{picture.shape[0]}\""
    return f"<img src=\"data:image/png;base64,{data}\" alt=\"{_e(alt)}\"{size}>"


def _samples(snaps: list[Snapshot], unreadable: int) -> str:
    if not snaps:
        why = f"{unreadable} snapshot file(s) could not be read" if unreadable else "this run has no snapshots yet"
        return f"<p>No samples to show: {why}. Snapshots are taken while the run trains.</p>"
    final = snaps[-1]
    extent = extent_of(final) if final.is_2d else None   # one view for all, as in the evolution GIF
    what = "real (blue) and generated (orange) points" if final.is_2d else "the same fixed noise each time"
    strip = "".join(f"<figure>{_img(snapshot_picture(s, extent, scale=1), f'step {s.step}', STRIP_PX)}"
                    f"<figcaption>step {s.step:,}</figcaption></figure>" for s in snaps)
    out = [f"<h3>Evolution</h3><p class=\"muted\">{len(snaps)} snapshots from step {snaps[0].step:,} to "
           f"{final.step:,}: {what}.</p><div class=\"strip\">{strip}</div>",
           f"<h3>Newest samples (step {final.step:,})</h3>"
           f"<figure>{_img(snapshot_picture(final, extent), f'samples at step {final.step}')}</figure>"]
    if final.is_2d:
        out.append("<p class=\"muted\">The same step with D's score as a heatmap, G's noise grid and the "
                   "direction G's loss pushes each fake point (zoom, hover, click the legend):</p>"
                   + _figure_html(layered_2d_figure(final)))
    if unreadable:
        out.append(f"<p class=\"muted\">{unreadable} snapshot file(s) could not be read and are left out.</p>")
    return "".join(out)


def _quality(quality: list[dict[str, Any]]) -> str:
    if not quality:
        return "<p>No quality measures yet (they are computed at each snapshot for 2D mixtures and digits).</p>"
    latest = quality[-1]
    rows = quality_rows(latest, quality)
    if not rows:
        return "<p>The quality rows of this run hold no known measure.</p>"
    out = [f"<p>At step {int(latest['step']):,}:</p>" + _table(("measure", "value", "meaning"), rows)]
    cols = {k: np.array([_num(r.get(k)) for r in quality]) for k in ["step", *QUALITY_LABELS]}
    figs = []
    for key, (label, _, _) in QUALITY_LABELS.items():
        if key != "n_modes" and len(quality) > 1 and has_values(cols, key):
            fig = curves_figure(cols, [(key, label, FAKE_COLOR)], label.capitalize(), label, height=220)
            figs.append(_figure_html(fig.update_layout(showlegend=False)))
    if figs:
        out.append("<div class=\"charts\">" + "".join(figs) + "</div>")
    return "".join(out)


def _diagnoses(found: list[Diagnosis] | None) -> str:
    if found is None:
        return "<p>Nothing to diagnose yet: no history and no quality measures.</p>"
    if not found:
        return "<p>No known failure (divergence, vanishing gradients, D overpowering G, oscillation, mode " \
               "collapse) shows in this run.</p>"
    return "".join(f"<div class=\"{_e(d.severity)}\"><b>{_e(d.title)}</b> (since step {d.step:,}): "
                   f"{_e(d.message)}<br><b>Try:</b> {_e(d.fix)}</div>" for d in found)


class _Node(NamedTuple):
    id: str
    parent: dict | None


def _lineage(store: RunStore, status: dict, hist: History, runs_dir: Path) -> str:
    parent = status.get("parent") if isinstance(status.get("parent"), dict) else None

    def get(run_id: str) -> _Node:
        path = safe_run_dir(runs_dir, run_id)
        if not (path / "status.json").is_file():
            raise KeyError(run_id)
        up = RunStore(path).read_status().get("parent")
        return _Node(run_id, up if isinstance(up, dict) else None)

    out = []
    if parent:
        chain = lineage(_Node(store.run_id, parent), get)
        kind = "a run" if parent.get("run") else "an uploaded checkpoint"
        out.append(f"<p>Branched from {kind}: <b>{_e(parent_text(parent))}</b> (it started from the weights "
                   f"and optimiser state at step {_e(parent.get('step', '?'))}).</p>")
        if len(chain) > 1 or chain[0].get("deleted"):
            out.append(f"<p>Full lineage: this run ← {_e(lineage_text(chain))}</p>")
    else:
        out.append("<p>A new run: it started from freshly initialised networks (no parent).</p>")
    for step in hist.rewinds:
        out.append(f"<p>Resumed from its checkpoint at step {step:,}: the steps after it were trained again.</p>")
    return "".join(out)

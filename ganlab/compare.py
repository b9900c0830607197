"""Comparing runs: curves of several runs overlaid on one step axis, snapshots matched by epoch, 2D views
on shared axes, a quality table, and a child run drawn growing out of its parent at the branch point.

Pure functions of RunView data (numpy histories, Snapshots) -> chart specs or plain rows, so the Compare
page stays thin and all of it is testable without a browser. Each run keeps one colour on every chart;
line type tells the series apart (D solid, G dashed; real solid, fake dotted). Everything is drawn with
ganlab.charts' ECharts options, as on the live pages (a keyed chart updates in place while runs train): the
curves here, and the side-by-side 2D views as charts.layered_2d_chart on the one square `shared_extent` gives
every run, so views of runs whose D fields cover different squares line up point for point.
"""
from __future__ import annotations

from typing import Iterable, Mapping, Sequence

import numpy as np

from . import charts
from .snapshots import Snapshot
from .viz import has_values

RUN_COLORS = ("#4c78a8", "#e45756", "#54a24b", "#b279a2", "#f58518", "#72b7b2")
PARENT_COLOR = "#7f7f7f"     # a parent that is not one of the compared runs
MAX_RUNS = 4
LOSS_SERIES = (("loss_d", "D loss", "solid"), ("loss_g", "G loss", "dashed"))
SCORE_SERIES = (("d_real", "D(x) real", "solid"), ("d_fake", "D(G(z)) fake", "dotted"))
OVERLAY_HEIGHT = 320        # chart height without the legend rows
LEGEND_ROW = 24
VIEW_SIDE = 300             # plot side of every 2D view, pixels: one unit of the shared axes is as long in each
VIEWS_PER_ROW = 2           # 2D views in a row: with their colour scales, four in a row would be unreadably small

History = Mapping[str, np.ndarray]


def run_color(i: int) -> str:
    return RUN_COLORS[i % len(RUN_COLORS)]


def graft(parent: History, child: History, branch_step: int) -> dict[str, np.ndarray]:
    """The child's history prefixed with the parent's last row at or before `branch_step`.

    A branch continues the parent's counters, so its first own row is a few steps after the branch point;
    with the parent's row in front its curve visibly starts where the parent's was (it forks, no gap)."""
    steps = np.asarray(parent.get("step", np.zeros(0)), dtype=float)
    before = np.flatnonzero(steps <= branch_step)
    if not len(before):
        return {k: np.asarray(v) for k, v in child.items()}
    i = before[-1]
    out = {}
    for k in set(child) | set(parent):
        p = np.asarray(parent.get(k, np.full(len(steps), np.nan)), dtype=float)
        c = np.asarray(child.get(k, np.full(len(child.get("step", ())), np.nan)), dtype=float)
        out[k] = np.r_[p[i:i + 1], c]
    return out


def overlay_chart(runs: Sequence[tuple[str, History]], series: Iterable[tuple[str, str, str]], title: str,
                  ytitle: str, marks: Iterable[tuple[int, str]] = (), colors: Sequence[str] | None = None) -> dict:
    """ECharts option: curves of several runs on one step axis, run i in colour i (or colors[i]), each series
    in its own line type (solid / dashed / dotted). `marks` are (step, text) vertical lines (branch points).

    Built on charts.line_chart, so it looks like the Train page's charts and, keyed, updates in place."""
    series = list(series)
    option = charts.line_chart({}, [], title, ytitle)
    option["dataset"] = []   # one Arrow table per curve: the runs' step axes differ
    lines = []
    for i, (label, hist) in enumerate(runs):
        for key, name, dash in series:
            if not has_values(hist, key):
                continue   # e.g. D(G(z)) of a run that has not recorded it: no empty legend entry
            colour = colors[i] if colors is not None else run_color(i)
            single = charts.line_chart(hist, [(key, f"{label}: {name}", colour)], title, ytitle)
            line = single["series"][0]
            option["dataset"].append(single["dataset"][0])
            line["datasetIndex"] = len(option["dataset"]) - 1
            line["lineStyle"]["type"] = dash
            lines.append(line)
    marks = list(marks)
    if marks and lines:
        lines[0]["markLine"] = {"silent": True, "symbol": "none", "animation": False,
                                "lineStyle": {"color": "#888888", "type": "dotted", "width": 1},
                                "label": {"formatter": "{b}", "position": "end", "fontSize": 11},
                                "data": [{"name": text, "xAxis": int(step)} for step, text in marks]}
    option["series"] = lines
    # The legend wraps under the plot (one row per run, roughly): a scrolling legend hides runs on a projector.
    option["legend"] = {"bottom": 0, "left": 0, "itemGap": 12, "textStyle": {"fontSize": 11}}
    option["grid"] = {**option["grid"], "top": 45, "bottom": 50 + LEGEND_ROW * len(runs)}
    option["xAxis"] = {**option["xAxis"], "nameGap": 22}
    return option


def overlay_height(n_runs: int) -> int:
    """Pixel height for an overlay chart of `n_runs` runs: the plot keeps its size, the legend grows."""
    return OVERLAY_HEIGHT + LEGEND_ROW * n_runs


def score_axis_label(labels: Iterable[str]) -> str:
    """The D-score axis title for runs whose scores may differ in kind (probabilities vs critic scores)."""
    kinds = sorted(set(labels))
    if not kinds:
        return "mean D"
    return kinds[0] if len(kinds) == 1 else "D(x) = P(real), or critic score"


def losses_overlay(runs: Sequence[tuple[str, History]], marks: Iterable[tuple[int, str]] = ()) -> dict:
    return overlay_chart(runs, LOSS_SERIES, "Losses", "loss", marks)


def scores_overlay(runs: Sequence[tuple[str, History]], marks: Iterable[tuple[int, str]] = (),
                   label: str = "mean D") -> dict:
    return overlay_chart(runs, SCORE_SERIES, "Discriminator scores", label, marks)


def branch_chart(parent_label: str, parent: History, child_label: str, child: History, branch_step: int,
                 series: Iterable[tuple[str, str, str]] = LOSS_SERIES,
                 colors: tuple[str, str] = (PARENT_COLOR, RUN_COLORS[0])) -> dict:
    """A parent's curves and its child's, the child's drawn from the branch point on. Pass the runs' colours
    from the other charts in `colors` (parent, child) so each run looks the same everywhere."""
    return overlay_chart([(parent_label, parent), (child_label, graft(parent, child, branch_step))], series,
                         f"{child_label} branched from {parent_label} at step {branch_step:,}", "loss",
                         marks=[(branch_step, f"branch @{branch_step:,}")], colors=colors)


# --- snapshots ------------------------------------------------------------------------------------------
def epoch_options(snapshot_lists: Iterable[Sequence[Snapshot]], by: str = "epoch") -> list[int]:
    """Every epoch (or step, with by='step') at which at least one of the runs has a snapshot (sorted)."""
    if by not in ("epoch", "step"):
        raise ValueError(f"by must be epoch or step, got {by!r}")
    return sorted({int(getattr(s, by)) for snaps in snapshot_lists for s in snaps})


def snapshot_at(snaps: Sequence[Snapshot], epoch: int, by: str = "epoch") -> Snapshot | None:
    """The newest snapshot at or before `epoch` (or step, with by='step'); None if all are later (a run that
    started later, e.g. a branch: showing its first snapshot would put a later epoch under the slider's)."""
    if by not in ("epoch", "step"):
        raise ValueError(f"by must be epoch or step, got {by!r}")
    if not snaps:
        return None
    best = None
    for s in snaps:
        if getattr(s, by) <= epoch and (best is None or (s.epoch, s.step) >= (best.epoch, best.step)):
            best = s
    return best


def shared_extent(snaps: Iterable[Snapshot | None]) -> tuple[float, float] | None:
    """One square view (lo, hi) that holds every 2D snapshot's own chart view (None when there is no 2D
    snapshot): the `extent` of charts.layered_2d_chart for each of them."""
    extents = [charts.view_extent(s) for s in snaps if s is not None and s.is_2d]
    if not extents:
        return None
    return min(e[0] for e in extents), max(e[1] for e in extents)


# --- tables -----------------------------------------------------------------------------------------------
def quality_table(named_quality: Sequence[tuple[str, Sequence[dict]]]) -> list[dict]:
    """One row per run: its latest quality measures (view.quality[-1]), the same columns for every run."""
    latest = [(name, dict(rows[-1]) if rows else {}) for name, rows in named_quality]
    keys: list[str] = []
    for _, row in latest:
        keys += [k for k in row if k != "step" and k not in keys]
    table = []
    for name, row in latest:
        entry: dict = {"run": name, "step": row.get("step")}
        for k in keys:
            v = row.get(k)
            entry[k] = round(float(v), 4) if isinstance(v, (int, float)) and not isinstance(v, bool) else v
        table.append(entry)
    return table


def default_selection(run_ids: Sequence[str], current: str | None, parents: Mapping[str, str | None],
                      n: int = 2) -> list[str]:
    """Runs the Compare page starts with: the selected run and its parent, else the newest runs."""
    chosen: list[str] = []
    for rid in (current, parents.get(current) if current else None, *run_ids):
        if rid and rid in run_ids and rid not in chosen:
            chosen.append(rid)
        if len(chosen) >= n:
            break
    return chosen


def unique_labels(names: Sequence[str], ids: Sequence[str]) -> list[str]:
    """Legend labels: the run names, with the id's time part added where two runs share a name."""
    out = []
    for name, rid in zip(names, ids):
        if list(names).count(name) > 1:
            parts = rid.split("-")
            name = f"{name} ({parts[1] if len(parts) > 1 else rid[-6:]})"
        out.append(name)
    return out


def snapshot_option(options: Sequence[int], wanted: int) -> int:
    """The slider option a link's `wanted` epoch (or step) lands on: the newest at or before it, else the first."""
    before = [o for o in options if o <= wanted]
    return before[-1] if before else options[0]

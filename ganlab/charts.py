"""ECharts option builders for the charts that update live (pure: numpy in, JSON-ready dicts out).

Why ECharts and not plotly: in Streamlit 1.67 a keyed `st.plotly_chart` still gets a new element id whenever
its figure changes (the id hashes the spec), and the browser remounts it: a blank chart for 50-300 ms on every
refresh, measured in Chromium on this app. A keyed `st.echarts_chart` keeps its identity when the spec changes
and updates the same canvas in place (no DOM change at all at 2 Hz). So every chart a page draws is built
here (history curves, D histograms, the 2D views of the live pages, the Latent page and Compare); plotly is
left to the exported HTML report (ganlab.figures). Colours, sizes and the 2D geometry come from ganlab.viz.

The big arrays (history curves, the D field, real and fake points) travel as `dataset.source` Arrow tables,
which st.echarts_chart sends as binary Arrow, and series pick columns by name (`encode`). Streamlit
serialises an option once per session per refresh; as JSON lists the 2D view cost 9.6 ms per session and the
curves 1.2 ms each, as Arrow tables 1-2 ms and 0.3 ms (measured with Streamlit's own serialiser), which is
what lets 20 students watch a run without slowing it. `series_rows` reads a series' points back either way.

Every option has animations off (a 1 Hz refresh would otherwise replay transitions), fixed pixel sizes for
the square 2D views (ECharts has no equal-aspect axes, so the plot area itself is square), and no NaN:
JSON has none, so missing values become null, which ECharts draws as a gap.
"""
from __future__ import annotations

import json
from typing import Any, Iterable, Mapping

import numpy as np
import pyarrow as pa

from .viz import (
    D_COLOR,
    FAKE_COLOR,
    G_COLOR,
    LAYERS_2D,
    REAL_COLOR,
    arrows,
    check_layers,
    extent_of,
    fakes_outside,
    manifold_lines,
    thin,
)

LIVE_POINTS = 500           # points per curve sent each refresh (history is thinned to this)
SQUARE_SIDE = 448           # plot area of the 2D views, pixels: 7 px per cell of the 64x64 D field (no seams)
MARGIN = {"left": 45, "top": 48, "right": 15, "bottom": 30}
COLORBAR_WIDTH = 75         # extra room on the right for the D colour scale
# ColorBrewer RdBu, low (fake) -> high (real), pre-blended with 25% white: the heatmap stays opaque, because
# semi-transparent cells overlap by a hair and draw a dark seam grid.
RDBU = ["#c55260", "#f3a789", "#fee4d5", "#f9f9f9", "#dcecf4", "#8dbedb", "#588cc1"]


def _num(v: float, digits: int = 5) -> float | None:
    """A JSON number with `digits` significant digits, or None for NaN/inf."""
    v = float(v)
    return float(f"{v:.{digits}g}") if np.isfinite(v) else None


def _finite_rows(p: np.ndarray) -> np.ndarray:
    """The rows of a (N, 2) point array without NaN or inf (JSON and ECharts have neither)."""
    p = np.asarray(p, dtype=float)
    return p[np.isfinite(p).all(axis=1)]


def _points(p: np.ndarray, decimals: int = 3) -> list[list[float]]:
    return np.round(_finite_rows(p), decimals).tolist()


def _table(**columns: np.ndarray) -> dict:
    """A `dataset` entry whose source is an Arrow table of the given columns (float columns as float32)."""
    cols = {}
    for name, values in columns.items():
        v = np.asarray(values)
        cols[name] = v.astype(np.float32) if v.dtype.kind == "f" else v
    return {"source": pa.table(cols)}


def series_rows(option: dict, index: int) -> list[list[Any]]:
    """The points of series `index` as lists (NaN -> None), whether inline (`data`) or from a dataset."""
    series = option["series"][index]
    if "data" in series:
        return series["data"]
    datasets = option["dataset"] if isinstance(option["dataset"], list) else [option["dataset"]]
    source = datasets[series.get("datasetIndex", 0)]["source"]
    enc = series["encode"]
    keys = [enc[k] for k in ("x", "y", "value") if k in enc]
    columns = {k: source[k] for k in keys} if isinstance(source, dict) else {
        k: source.column(k).to_numpy(zero_copy_only=False) for k in keys}
    return [[None if isinstance(v, float) and not np.isfinite(v) else v for v in row]
            for row in zip(*(np.asarray(columns[k]).tolist() for k in keys))]


def wire(option: dict) -> tuple[str, list[bytes]]:
    """What serving `option` costs, without Streamlit (the benchmark's page model): the JSON spec with each
    Arrow table replaced by a name, and the tables as Arrow IPC streams, as st.echarts_chart sends them."""
    tables: list[bytes] = []

    def strip(v: Any) -> Any:
        if isinstance(v, pa.Table):
            sink = pa.BufferOutputStream()
            with pa.ipc.new_stream(sink, v.schema) as writer:
                writer.write_table(v)
            tables.append(sink.getvalue().to_pybytes())
            return {"name": str(len(tables) - 1)}
        if isinstance(v, dict):
            return {k: strip(x) for k, x in v.items()}
        if isinstance(v, list) and any(isinstance(x, (dict, pa.Table)) for x in v):
            return [strip(x) for x in v]
        return v

    spec = json.dumps(strip(option), allow_nan=False, separators=(",", ":"))
    return spec, tables


def _title(text: str) -> dict:
    return {"text": text, "left": 0, "top": 0, "textStyle": {"fontSize": 14}}


# --- history curves ------------------------------------------------------------------------------------
def line_chart(history: Mapping[str, np.ndarray], series: Iterable[tuple[str, str, str]], title: str,
               ytitle: str, log: bool = False) -> dict:
    """Curves of history columns against the step: `series` is (key, legend name, colour)."""
    h = thin(history, LIVE_POINTS)
    columns = {"step": np.asarray(h.get("step", np.zeros(0)), dtype=np.int32)}   # int64 would reach JS as BigInt
    out = []
    for key, name, colour in series:
        if key in h:
            y = np.asarray(h[key], dtype=float)
            if log:
                y = np.where(y > 0, y, np.nan)   # a log axis cannot show 0 (a vanished gradient): gap instead
            columns[key] = np.where(np.isfinite(y), y, np.nan)   # NaN: a gap in the curve
            out.append({"type": "line", "name": name, "datasetIndex": 0, "encode": {"x": "step", "y": key},
                        "showSymbol": False,
                        "connectNulls": False, "lineStyle": {"width": 1.5, "color": colour},
                        "itemStyle": {"color": colour}})
    return {
        "animation": False, "title": _title(title), "dataset": [_table(**columns)],
        "legend": {"top": 0, "right": 10},
        "grid": {"left": 60, "right": 15, "top": 40, "bottom": 45},
        "tooltip": {"trigger": "axis", "valueFormatter": "%.4g"},
        "xAxis": {"type": "value", "name": "step", "nameLocation": "middle", "nameGap": 28,
                  "min": "dataMin", "max": "dataMax"},
        "yAxis": {"type": "log" if log else "value", "name": ytitle, "nameLocation": "middle", "nameGap": 45,
                  "scale": True},
        "series": out,
    }


def loss_chart(history: Mapping[str, np.ndarray]) -> dict:
    return line_chart(history, [("loss_d", "D loss", D_COLOR), ("loss_g", "G loss", G_COLOR)], "Losses", "loss")


def scores_chart(history: Mapping[str, np.ndarray], label: str = "mean D") -> dict:
    return line_chart(history, [("d_real", "D(x) real", REAL_COLOR), ("d_fake", "D(G(z)) fake", FAKE_COLOR)],
                      "Discriminator scores", label)


def grads_chart(history: Mapping[str, np.ndarray]) -> dict:
    return line_chart(history, [("grad_d", "|grad D|", D_COLOR), ("grad_g", "|grad G|", G_COLOR)],
                      "Gradient norms (log scale)", "norm", log=True)


def wdist_chart(history: Mapping[str, np.ndarray]) -> dict:
    return line_chart(history, [("wdist", "W estimate", "#54a24b")], "Wasserstein estimate",
                      "E[D(x)] - E[D(G(z))]")


# --- discriminator histogram ---------------------------------------------------------------------------
def hist_chart(snapshot) -> dict:
    """D's scores on real and fake as overlaid bars from the snapshot's binned counts."""
    edges = np.asarray(snapshot.score_edges, dtype=float)
    centres = (edges[:-1] + edges[1:]) / 2 if len(edges) >= 2 else np.zeros(0)
    bars = [{"type": "bar", "name": name, "data": [int(c) for c in counts], "barGap": "-100%",
             "barCategoryGap": "0%", "itemStyle": {"color": colour, "opacity": 0.6}}
            for counts, name, colour in ((snapshot.hist_real, "real", REAL_COLOR),
                                         (snapshot.hist_fake, "fake", FAKE_COLOR))]
    return {
        "animation": False, "title": _title(f"Scores at step {snapshot.step:,}"),
        "legend": {"top": 0, "right": 10}, "tooltip": {"trigger": "axis"},
        "grid": {"left": 50, "right": 15, "top": 40, "bottom": 50},
        "xAxis": {"type": "category", "data": [f"{c:.2f}" for c in centres], "name": snapshot.score_label,
                  "nameLocation": "middle", "nameGap": 30},
        "yAxis": {"type": "value", "name": "count"},
        "series": bars,
    }


def mode_bar_chart(quality_row: Mapping[str, Any]) -> dict:
    """High-quality fakes on each mode of a 2D mixture as bars, with the line a mode must reach to count as
    covered (metrics.mode_stats: `mode_counts`, `min_count`); a collapsed G shows a few tall bars."""
    counts = [int(c) for c in quality_row.get("mode_counts") or []]
    need = int(quality_row.get("min_count") or 1)
    colours = [FAKE_COLOR if c >= need else "#c8c8c8" for c in counts]
    return {
        "animation": False, "title": _title(f"Fakes per mode at step {int(quality_row.get('step', 0)):,}"),
        "tooltip": {"trigger": "axis"}, "grid": {"left": 50, "right": 15, "top": 40, "bottom": 40},
        "xAxis": {"type": "category", "data": [str(i + 1) for i in range(len(counts))], "name": "mode",
                  "nameLocation": "middle", "nameGap": 25},
        "yAxis": {"type": "value", "name": "samples"},
        "series": [{"type": "bar", "name": "high-quality fakes",
                    "data": [{"value": c, "itemStyle": {"color": col}} for c, col in zip(counts, colours)],
                    "markLine": {"symbol": "none", "silent": True, "data": [{"yAxis": need}],
                                 "label": {"formatter": f"covered from {need}"},
                                 "lineStyle": {"type": "dashed", "color": "#444"}}}],
    }


# --- 2D views ------------------------------------------------------------------------------------------
def square_size(side: int = SQUARE_SIDE, colorbar: bool = False) -> tuple[int, int]:
    """(width, height) in pixels of the element holding a 2D view with a `side`-pixel square plot area."""
    width = MARGIN["left"] + side + MARGIN["right"] + (COLORBAR_WIDTH if colorbar else 0)
    return width, MARGIN["top"] + side + MARGIN["bottom"]


def _square_axis(lo: float, hi: float) -> dict:
    # The view's edges are odd numbers (e.g. 2.9138): label only the round ticks inside them.
    return {"type": "value", "min": _num(lo), "max": _num(hi), "splitLine": {"show": False},
            "axisLabel": {"showMinLabel": False, "showMaxLabel": False}}


def view_extent(snapshot) -> tuple[float, float]:
    """The square (lo, hi) a 2D chart shows of `snapshot` on its own: D's field with its edge cells whole (half a
    cell beyond the first and last centre), else the points' spread."""
    lo, hi = extent_of(snapshot)
    xs = snapshot.field_xs
    if xs is not None and len(xs) > 1:
        half = (xs[1] - xs[0]) / 2
        lo, hi = lo - half, hi + half
    return float(lo), float(hi)


def _field_grid(field: tuple[float, float], view: tuple[float, float], side: int) -> dict:
    """The pixel rectangle where D's field lies inside a `side`-pixel view of the square `view`."""
    (a, b), (lo, hi) = field, view
    px = side / (hi - lo)
    return {"left": round(MARGIN["left"] + (a - lo) * px, 2), "top": round(MARGIN["top"] + (hi - b) * px, 2),
            "width": round((b - a) * px, 2), "height": round((b - a) * px, 2)}


def layered_2d_chart(snapshot, layers: Iterable[str] = LAYERS_2D, side: int = SQUARE_SIDE,
                     extent: tuple[float, float] | None = None, title: str | None = None, legend: bool = True) -> dict:
    """D's score field (heatmap), real and fake points, G's manifold and the gradient arrows, as chosen.

    The heatmap sits on a hidden category grid laid exactly under the value grid of the other layers: cell i
    is centred on field_xs[i] when the value axis spans half a cell beyond the first and last centre
    (`view_extent`). `extent` shows the square (lo, hi) instead, which must hold view_extent(snapshot): Compare
    puts every run on the same axes, and the category grid then covers only the field's part of the view.
    `title` replaces "Step N"; `legend=False` leaves the legend out (Compare's narrow views, whose layers the
    page names).
    """
    layers = check_layers(layers)
    own = view_extent(snapshot)
    lo, hi = extent if extent is not None else own
    has_field = "field" in layers and snapshot.field is not None
    grid = {"left": MARGIN["left"], "top": MARGIN["top"], "width": side, "height": side}
    value_axis = {**_square_axis(lo, hi), "gridIndex": 1}
    n = len(snapshot.field_xs) if snapshot.field_xs is not None else 1
    cats = {"type": "category", "data": [str(i) for i in range(n)], "show": False, "gridIndex": 0}
    on_values = {"xAxisIndex": 1, "yAxisIndex": 1}
    series: list[dict] = []
    heading = {**_title(title or f"Step {snapshot.step:,}"), "subtext": fakes_outside(snapshot, (lo, hi)),
               "subtextStyle": {"color": "#b2182b"}, "itemGap": 4}
    datasets: list[dict] = []
    option: dict = {"animation": False, "title": heading,
                    "legend": {"show": legend, "top": 0, "right": 10 + (COLORBAR_WIDTH if has_field else 0)},
                    "grid": [grid if extent is None else _field_grid(own, (lo, hi), side), grid],
                    "xAxis": [cats, dict(value_axis)], "yAxis": [dict(cats), dict(value_axis)],
                    "dataset": datasets, "series": series}

    def points_dataset(p: np.ndarray) -> dict:
        p = _finite_rows(p)
        datasets.append(_table(x=p[:, 0], y=p[:, 1]))
        return {"datasetIndex": len(datasets) - 1, "encode": {"x": "x", "y": "y"}}
    if has_field:
        f = np.asarray(snapshot.field, dtype=float)
        sigmoid = "P(real)" in snapshot.score_label
        vmin, vmax = (0.0, 1.0) if sigmoid else (_num(np.nanmin(f)), _num(np.nanmax(f)))
        jj, ii = np.meshgrid(np.arange(f.shape[0]), np.arange(f.shape[1]), indexing="ij")   # row j, column i
        datasets.append(_table(i=ii.ravel().astype(np.int32), j=jj.ravel().astype(np.int32), v=f.ravel()))
        series.append({"type": "heatmap", "name": "D", "xAxisIndex": 0, "yAxisIndex": 0, "progressive": 0,
                       "emphasis": {"disabled": True}, "itemStyle": {"borderWidth": 0},
                       "datasetIndex": len(datasets) - 1, "encode": {"x": "i", "y": "j", "value": "v"}})
        option["visualMap"] = {"min": vmin, "max": vmax, "seriesIndex": 0, "right": 5, "top": "middle",
                               "itemHeight": side // 2, "text": ["real", "fake"] if sigmoid else ["high", "low"],
                               "inRange": {"color": RDBU}, "calculable": False}
    if "real" in layers and snapshot.real is not None:
        series.append({"type": "scatter", "name": "real", **on_values, **points_dataset(snapshot.real),
                       "symbolSize": 4, "itemStyle": {"color": REAL_COLOR, "opacity": 0.5}})
    if "manifold" in layers and snapshot.manifold is not None:
        xs, ys = manifold_lines(snapshot.manifold)
        breaks = np.flatnonzero(np.isnan(xs))
        pieces = np.split(np.c_[xs, ys], breaks)
        lines = [{"coords": _points(p)} for p in pieces if len(_points(p)) > 1]
        series.append({"type": "lines", "name": "G manifold", "coordinateSystem": "cartesian2d", **on_values,
                       "polyline": True, "clip": True, "data": lines,
                       "lineStyle": {"color": "#3c3c3c", "opacity": 0.5, "width": 1}})
    if "fake" in layers:
        series.append({"type": "scatter", "name": "fake", **on_values, **points_dataset(snapshot.fake),
                       "symbolSize": 4, "itemStyle": {"color": FAKE_COLOR, "opacity": 0.75}})
    if "grads" in layers and snapshot.grads is not None:
        starts, ends = arrows(snapshot.fake, snapshot.grads, (lo, hi))
        segs = [{"coords": [a, b]} for a, b in zip(_points(starts), _points(ends))]
        series.append({"type": "lines", "name": "G's gradient", "coordinateSystem": "cartesian2d", **on_values,
                       "symbol": ["none", "arrow"], "symbolSize": 6, "clip": True, "data": segs,
                       "lineStyle": {"color": "#222222", "width": 1}})
    return option


def scatter_2d_chart(snapshot, side: int = SQUARE_SIDE) -> dict:
    """Real vs generated points of one 2D snapshot."""
    return layered_2d_chart(snapshot, {"real", "fake"}, side=side)


def latent_2d_chart(real: np.ndarray | None, chosen: np.ndarray, extent: tuple[float, float],
                    others: np.ndarray | None = None, path: np.ndarray | None = None, path_name: str = "sweep",
                    title: str = "Where G puts your z", side: int = SQUARE_SIDE) -> dict:
    """Generated points among the real data: `chosen` (2,) as a star, `others` (K, 2) as dots, `path`
    (P, 2) as a line (a sweep or an interpolation)."""
    axis = _square_axis(*extent)
    series: list[dict] = []
    if real is not None:
        series.append({"type": "scatter", "name": "real", "data": _points(real), "symbolSize": 4,
                       "itemStyle": {"color": REAL_COLOR, "opacity": 0.35}})
    if others is not None and len(others):
        series.append({"type": "scatter", "name": "other z", "data": _points(others), "symbolSize": 7,
                       "itemStyle": {"color": FAKE_COLOR, "opacity": 0.85}})
    if path is not None and len(path):
        series.append({"type": "line", "name": path_name, "data": _points(path), "symbolSize": 5,
                       "lineStyle": {"color": "#54a24b"}, "itemStyle": {"color": "#54a24b"}})
    series.append({"type": "scatter", "name": "your z", "data": _points(np.reshape(chosen, (-1, 2))),
                   "symbol": "diamond", "symbolSize": 16,
                   "itemStyle": {"color": G_COLOR, "borderColor": "#000000", "borderWidth": 1}})
    return {"animation": False, "title": _title(title), "legend": {"top": 0, "right": 10},
            "grid": {"left": MARGIN["left"], "top": MARGIN["top"], "width": side, "height": side},
            "xAxis": axis, "yAxis": dict(axis), "series": series}

"""What every picture of a run shares, whatever draws it: the colours, the chart height, history thinning, and
the 2D view's geometry (its layers, its square extent, G's noise-grid lines, the gradient arrows).

No renderer here, and no streamlit: ganlab.charts turns these into ECharts options for everything that
updates (the live pages and Compare), ganlab.figures into the plotly figures of the exported HTML report,
ganlab.montage into pictures (montages, PNG and GIF). Keeping the geometry in one place is what makes the
three show the same thing.
"""
from __future__ import annotations

from typing import Iterable, Mapping

import numpy as np

REAL_COLOR = "#4c78a8"     # blue: real data everywhere (points, bars, curves)
FAKE_COLOR = "#f58518"     # orange: generated data
D_COLOR = "#4c78a8"
G_COLOR = "#e45756"
CHART_HEIGHT = 280         # pixels: every history chart, live or exported
MAX_ARROWS = 256
LAYERS_2D = ("field", "real", "fake", "manifold", "grads")


def check_layers(layers: Iterable[str]) -> set[str]:
    """The chosen 2D layers as a set; a ValueError names any that is not one of LAYERS_2D."""
    chosen = set(layers)
    unknown = chosen - set(LAYERS_2D)
    if unknown:
        raise ValueError(f"unknown 2D layer(s) {sorted(unknown)}; choose from {', '.join(LAYERS_2D)}")
    return chosen


# --- history ----------------------------------------------------------------------------------------------
def thin(history: Mapping[str, np.ndarray], max_points: int) -> dict[str, np.ndarray]:
    """Every k-th row (always keeping the last) so a curve has at most `max_points` points."""
    n = len(history.get("step", ()))
    if n <= max_points:
        return {k: np.asarray(v) for k, v in history.items()}
    idx = np.unique(np.r_[np.linspace(0, n - 1, max_points).astype(int), n - 1])
    return {k: np.asarray(v)[idx] for k, v in history.items()}


def has_values(history: Mapping[str, np.ndarray], key: str) -> bool:
    v = history.get(key)
    return v is not None and bool(np.isfinite(np.asarray(v, dtype=float)).any())


# --- the 2D view ------------------------------------------------------------------------------------------
def extent_of(snapshot) -> tuple[float, float]:
    """The square view (lo, hi) of a 2D snapshot: D's field extent, else the points' spread."""
    if snapshot.field_xs is not None and len(snapshot.field_xs):
        return float(snapshot.field_xs[0]), float(snapshot.field_xs[-1])
    pts = [p for p in (snapshot.real, snapshot.fake) if p is not None and len(p)]
    finite = np.concatenate(pts)[np.isfinite(np.concatenate(pts)).all(axis=1)] if pts else np.zeros((0, 2))
    half = float(np.abs(finite).max()) * 1.1 + 0.1 if len(finite) else 1.0
    return -half, half


def fakes_outside(snapshot, extent: tuple[float, float]) -> str:
    """'' or 'K of N fake points outside the view': a diverging G can fly off the data, out of sight."""
    pts = np.asarray(snapshot.fake, dtype=float)
    inside = np.isfinite(pts).all(axis=1) & (pts >= extent[0]).all(axis=1) & (pts <= extent[1]).all(axis=1)
    out = int(len(pts) - inside.sum())
    return f"{out} of {len(pts)} fake points outside the view" if out else ""


def manifold_lines(manifold: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """x, y arrays (NaN-separated) for G's image of the noise grid: each grid row and column as a line."""
    m = np.asarray(manifold, dtype=float)
    lines = [m[i] for i in range(m.shape[0])]
    if m.shape[0] > 1:
        lines += [m[:, j] for j in range(m.shape[1])]
    xs = np.concatenate([np.r_[line[:, 0], np.nan] for line in lines])
    ys = np.concatenate([np.r_[line[:, 1], np.nan] for line in lines])
    return xs, ys


def arrows(points: np.ndarray, grads: np.ndarray, extent: tuple[float, float],
           max_arrows: int = MAX_ARROWS) -> tuple[np.ndarray, np.ndarray]:
    """Start/end points of gradient arrows, scaled so the 90th-percentile arrow is 8% of the view wide.

    Raw gradient lengths span orders of magnitude (and shrink as D saturates), so a fixed scale would show
    either nothing or a hedgehog; the direction and the relative length are what students read.
    """
    p = np.asarray(points, dtype=float)[:max_arrows]
    g = np.asarray(grads, dtype=float)[:max_arrows]
    ok = np.isfinite(p).all(axis=1) & np.isfinite(g).all(axis=1)
    p, g = p[ok], g[ok]
    if len(g) == 0:
        return p, p
    norms = np.linalg.norm(g, axis=1)
    ref = float(np.percentile(norms, 90)) if norms.max() > 0 else 1.0
    scale = 0.08 * (extent[1] - extent[0]) / max(ref, 1e-12)
    return p, p + np.clip(g * scale, -(extent[1] - extent[0]), extent[1] - extent[0])

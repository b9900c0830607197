"""The smallest GAN: the bilinear game min_x max_y x*y, played by gradient steps, for the lesson on why GAN
training oscillates (and what a penalty on D does about it).

Mescheder et al. (2018) call it the Dirac-GAN: the data is a point at 0, G is one number x (its only sample),
D is a line D(t) = y*t, and the game's value x*y is what D gains. Its one equilibrium is (0, 0). Each player
follows its gradient with step size lr:
- simultaneous steps (both from the same old point) multiply the distance from (0, 0) by sqrt(1 + lr^2) each
  step: the iterates spiral out;
- alternating steps (D moves, then G answers the new D) keep it bounded: they circle forever, never settling;
- a penalty on D's slope, gamma/2 * y^2 (R1 for this D), damps the circling into a spiral in.
Pure numpy, deterministic: `trajectory` feeds the Learn page's figure and `lessons --check`.
"""
from __future__ import annotations

import math

import numpy as np

from .viz import D_COLOR, FAKE_COLOR, G_COLOR

MODES = ("simultaneous", "alternating", "penalised")
LABELS = {"simultaneous": "simultaneous steps", "alternating": "alternating steps",
          "penalised": "alternating + penalty on D"}
COLOURS = {"simultaneous": G_COLOR, "alternating": D_COLOR, "penalised": FAKE_COLOR}


def trajectory(mode: str, lr: float = 0.1, steps: int = 200, start: tuple[float, float] = (1.0, 1.0),
               gamma: float = 1.0) -> np.ndarray:
    """(steps + 1, 2) iterates (x, y) of min_x max_y x*y from `start`; `gamma` is the penalty's weight."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if not (0 < lr < 2 and steps >= 1 and gamma >= 0):
        raise ValueError("need 0 < lr < 2, steps >= 1 and gamma >= 0")
    x, y = start
    out = [(x, y)]
    for _ in range(steps):
        if mode == "simultaneous":
            x, y = x - lr * y, y + lr * x              # G descends d(xy)/dx = y, D ascends d(xy)/dy = x
        else:
            y = y + lr * (x - (gamma * y if mode == "penalised" else 0.0))   # D first, on G's current x
            x = x - lr * y                             # then G, against the new D
        out.append((x, y))
    return np.asarray(out)


def radius_ratio(path: np.ndarray) -> float:
    """Distance from the equilibrium at the end over at the start (> 1: spirals out, < 1: settles)."""
    return float(np.hypot(*path[-1]) / np.hypot(*path[0]))


def game_chart(lr: float = 0.1, steps: int = 200) -> dict:
    """ECharts option: the three trajectories in the (x, y) plane, the equilibrium marked."""
    series = []
    for mode in MODES:
        path = trajectory(mode, lr, steps)
        series.append({"type": "line", "name": f"{LABELS[mode]} (x{radius_ratio(path):.2g})", "showSymbol": False,
                       "data": np.round(path, 4).tolist(), "lineStyle": {"color": COLOURS[mode], "width": 2},
                       "itemStyle": {"color": COLOURS[mode]}})
    series.append({"type": "scatter", "name": "equilibrium (0, 0)", "data": [[0, 0]], "symbolSize": 10,
                   "itemStyle": {"color": "#333"}})
    span = math.ceil(max(float(np.abs(trajectory(mode, lr, steps)).max()) for mode in MODES))
    axis = {"type": "value", "min": -span, "max": span}
    return {"title": {"text": f"min_x max_y x*y: {steps} steps of size {lr}", "textStyle": {"fontSize": 13}},
            "legend": {"top": 24, "textStyle": {"fontSize": 12}}, "grid": {"top": 70, "left": 45, "right": 15},
            "tooltip": {"trigger": "item"}, "animation": False,
            "xAxis": {**axis, "name": "x (G)"}, "yAxis": {**axis, "name": "y (D)"}, "series": series}


FIGURES = {"xy_game": game_chart}     # figures a lesson can show on the Learn page, by name

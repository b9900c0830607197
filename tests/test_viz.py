"""ganlab.viz: what the renderers share (history thinning, the 2D layers and geometry), on hand-made data."""
from __future__ import annotations

import numpy as np
import pytest

from ganlab import viz
from ganlab.snapshots import HISTORY_KEYS, Snapshot


def _history(n: int = 50) -> dict[str, np.ndarray]:
    h = {k: np.linspace(0, 1, n) for k in HISTORY_KEYS}
    h["step"] = np.arange(n, dtype=float) * 10
    return h


def test_thin_keeps_last_and_caps_points():
    h = _history(5000)
    t = viz.thin(h, 100)
    assert len(t["step"]) <= 101 and t["step"][-1] == h["step"][-1] and t["step"][0] == 0
    assert viz.thin(_history(50), 100)["step"].tolist() == _history(50)["step"].tolist()


def test_has_values():
    h = {"wdist": np.array([np.nan, np.nan])}
    assert not viz.has_values(h, "wdist") and not viz.has_values(h, "missing")
    assert viz.has_values({"wdist": np.array([np.nan, 1.0])}, "wdist")


def test_check_layers_names_the_unknown_ones():
    assert viz.check_layers(["fake", "real"]) == {"fake", "real"}
    with pytest.raises(ValueError, match=r"unknown 2D layer\(s\) \['heat'\]"):
        viz.check_layers({"heat", "fake"})


def test_extent_and_fakes_outside():
    axis = np.linspace(-3, 3, 8)
    snap = Snapshot(step=1, epoch=0, time=0.0, fake=np.array([[0.0, 0.0], [5.0, 0.0], [np.nan, 0.0]]),
                    field_xs=axis, field_ys=axis, field=np.zeros((8, 8)))
    assert viz.extent_of(snap) == (-3.0, 3.0)
    assert viz.fakes_outside(snap, (-3.0, 3.0)) == "2 of 3 fake points outside the view"
    assert viz.fakes_outside(snap, (-6.0, 6.0)) == "1 of 3 fake points outside the view"   # NaN is never inside
    points_only = Snapshot(step=1, epoch=0, time=0.0, fake=np.array([[1.0, -2.0]]), real=np.array([[0.5, 0.5]]))
    assert viz.extent_of(points_only) == pytest.approx((-2.3, 2.3))


def test_manifold_lines_rows_and_columns():
    m = np.arange(2 * 3 * 2, dtype=float).reshape(2, 3, 2)
    xs, ys = viz.manifold_lines(m)
    assert np.isnan(xs).sum() == 2 + 3          # one separator per line: 2 rows + 3 columns
    assert len(xs) == 2 * 4 + 3 * 3
    xs1, _ = viz.manifold_lines(m[:1])          # noise_dim 1: a single curve
    assert np.isnan(xs1).sum() == 1


def test_arrows_scale_and_direction():
    pts = np.zeros((10, 2))
    g = np.tile([[1.0, 0.0]], (10, 1)) * np.arange(1, 11)[:, None]
    starts, ends = viz.arrows(pts, g, (-5.0, 5.0))
    lengths = np.linalg.norm(ends - starts, axis=1)
    assert np.isclose(np.percentile(lengths, 90), 0.8)       # 8% of a 10-wide view
    assert (ends[:, 1] == 0).all() and (ends[:, 0] > 0).all()  # direction kept
    s2, e2 = viz.arrows(np.array([[np.nan, 0.0]]), np.array([[1.0, 1.0]]), (-1.0, 1.0))
    assert len(s2) == 0 and len(e2) == 0

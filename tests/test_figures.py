"""ganlab.figures: the plotly figures of the exported report (fixed height, the right traces, thinned curves)."""
from __future__ import annotations

import numpy as np
import pytest

from ganlab import figures
from ganlab.snapshots import HISTORY_KEYS, Snapshot
from ganlab.viz import CHART_HEIGHT


def _history(n: int = 50) -> dict[str, np.ndarray]:
    h = {k: np.linspace(0, 1, n) for k in HISTORY_KEYS}
    h["step"] = np.arange(n, dtype=float) * 10
    return h


def _snap_2d(step: int = 100) -> Snapshot:
    rng = np.random.default_rng(0)
    axis = np.linspace(-3, 3, 8)
    return Snapshot(step=step, epoch=0, time=0.0, fake=rng.normal(size=(40, 2)).astype(np.float32),
                    hist_real=np.array([0, 5, 10, 5]), hist_fake=np.array([8, 2, 0, 0]),
                    score_edges=np.linspace(0, 1, 5), score_label="D(x) = P(real)",
                    real=rng.normal(size=(30, 2)), field_xs=axis, field_ys=axis, field=rng.uniform(size=(8, 8)),
                    manifold=rng.normal(size=(3, 4, 2)), grads=rng.normal(size=(40, 2)))


def test_history_figures_have_the_charts_height():
    h = _history()
    for fn in (figures.loss_figure, figures.scores_figure, figures.grads_figure, figures.wdist_figure):
        fig = fn(h)
        assert fig.layout.height == CHART_HEIGHT
        assert len(fig.data) >= 1 and list(fig.data[0].x) == list(h["step"])
    assert [t.name for t in figures.loss_figure(h).data] == ["D loss", "G loss"]
    assert figures.grads_figure(h).layout.yaxis.type == "log"
    lr = figures.curves_figure(h, [("lr_g", "G lr", "#000"), ("missing", "none", "#000")], "lr", "lr", height=200)
    assert [t.name for t in lr.data] == ["G lr"] and lr.layout.height == 200


def test_curves_are_thinned():
    assert len(figures.loss_figure(_history(5000)).data[0].x) <= figures.MAX_CHART_POINTS + 1


def test_layered_2d_figure_layers():
    snap = _snap_2d()
    all_names = [t.name for t in figures.layered_2d_figure(snap).data]
    assert all_names == ["D", "real", "G(noise grid)", "fake", "G's gradient"]
    assert [t.name for t in figures.layered_2d_figure(snap, {"fake"}).data] == ["fake"]
    fig = figures.layered_2d_figure(snap, {"field"})
    assert fig.data[0].zmin == 0.0 and tuple(fig.layout.xaxis.range) == tuple(fig.layout.yaxis.range) == (-3.0, 3.0)
    assert fig.layout.height == figures.VIEW_2D_HEIGHT and fig.layout.title.text == "Step 100"
    with pytest.raises(ValueError, match="unknown 2D layer"):
        figures.layered_2d_figure(snap, {"nope"})

"""Plotly figures for the exported HTML report (ganlab.report): history curves and the layered 2D view.

Plotly serves where a figure is drawn once and must work on its own: the report embeds plotly.js once and
each figure stays interactive offline (zoom, hover, click the legend). Everything that updates on a page is
an ECharts option from ganlab.charts instead (a keyed st.plotly_chart remounts and blinks on every change,
docs/architecture.md, Streamlit facts). Both take their colours, sizes and 2D geometry from ganlab.viz, so
the report shows what the pages show. Nothing here imports streamlit.
"""
from __future__ import annotations

from typing import Iterable, Mapping

import numpy as np
import plotly.graph_objects as go

from . import viz

MAX_CHART_POINTS = 800     # history rows drawn per curve: a long run's report stays the size of a short one's
VIEW_2D_HEIGHT = 520


def curves_figure(history: Mapping[str, np.ndarray], series: Iterable[tuple[str, str, str]], title: str,
                  ytitle: str, height: int = viz.CHART_HEIGHT) -> go.Figure:
    """History columns against the step: `series` is (key, legend name, colour); missing keys are skipped."""
    h = viz.thin(history, MAX_CHART_POINTS)
    x = h.get("step", np.zeros(0))
    fig = go.Figure()
    for key, name, colour in series:
        y = h.get(key)
        if y is not None:
            fig.add_trace(go.Scatter(x=x, y=y, name=name, mode="lines", line=dict(color=colour, width=1.5)))
    fig.update_layout(title=dict(text=title, x=0.0, font=dict(size=14)), height=height,
                      margin=dict(l=50, r=10, t=40, b=40),
                      legend=dict(orientation="h", y=1.02, yanchor="bottom", x=1.0, xanchor="right"),
                      xaxis=dict(title="step"), yaxis=dict(title=ytitle), hovermode="x unified")
    return fig


def loss_figure(history: Mapping[str, np.ndarray]) -> go.Figure:
    """D and G losses against the step."""
    return curves_figure(history, [("loss_d", "D loss", viz.D_COLOR), ("loss_g", "G loss", viz.G_COLOR)], "Losses",
                         "loss")


def scores_figure(history: Mapping[str, np.ndarray], label: str = "mean D") -> go.Figure:
    """Mean D score on real data and on fakes: D(x) near 1 and D(G(z)) near 0 means D is winning."""
    series = [("d_real", "D(x) real", viz.REAL_COLOR), ("d_fake", "D(G(z)) fake", viz.FAKE_COLOR)]
    return curves_figure(history, series, "Discriminator scores", label)


def grads_figure(history: Mapping[str, np.ndarray]) -> go.Figure:
    """Gradient norms of D's and G's parameters (log scale: vanishing gradients show as a cliff)."""
    fig = curves_figure(history, [("grad_d", "|grad D|", viz.D_COLOR), ("grad_g", "|grad G|", viz.G_COLOR)],
                        "Gradient norms", "norm (log)")
    return fig.update_yaxes(type="log")


def wdist_figure(history: Mapping[str, np.ndarray]) -> go.Figure:
    """WGAN critic's estimate of the Wasserstein distance, E[D(x)] - E[D(G(z))]."""
    return curves_figure(history, [("wdist", "W estimate", "#54a24b")], "Wasserstein estimate",
                         "E[D(x)] - E[D(G(z))]")


def _points(pts: np.ndarray, name: str, colour: str, opacity: float) -> go.Scatter:
    p = np.asarray(pts, dtype=float)
    return go.Scatter(x=p[:, 0], y=p[:, 1], mode="markers", name=name, hoverinfo="skip",
                      marker=dict(color=colour, size=4, opacity=opacity))


def _segments(starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """x, y arrays drawing each start->end segment, separated by NaN (one trace for all segments)."""
    n = len(starts)
    xs = np.full(n * 3, np.nan)
    ys = np.full(n * 3, np.nan)
    xs[0::3], xs[1::3] = starts[:, 0], ends[:, 0]
    ys[0::3], ys[1::3] = starts[:, 1], ends[:, 1]
    return xs, ys


def layered_2d_figure(snapshot, layers: Iterable[str] = viz.LAYERS_2D) -> go.Figure:
    """The 2D picture of a GAN: D's score as a heatmap, real and fake points, G's noise-grid manifold and
    the arrows along which G's loss pushes each fake point. `layers` picks which of viz.LAYERS_2D to draw."""
    layers = viz.check_layers(layers)
    extent = viz.extent_of(snapshot)
    fig = go.Figure()
    if "field" in layers and snapshot.field is not None:
        sigmoid = "P(real)" in snapshot.score_label
        fig.add_trace(go.Heatmap(x=snapshot.field_xs, y=snapshot.field_ys, z=snapshot.field, name="D",
                                 colorscale="RdBu", zmin=0.0 if sigmoid else None, zmax=1.0 if sigmoid else None,
                                 opacity=0.75, showscale=True, hovertemplate="D=%{z:.2f}<extra></extra>",
                                 colorbar=dict(title=dict(text="D", side="right"), thickness=10, len=0.8)))
    if "real" in layers and snapshot.real is not None:
        fig.add_trace(_points(snapshot.real, "real", viz.REAL_COLOR, opacity=0.5))
    if "manifold" in layers and snapshot.manifold is not None:
        xs, ys = viz.manifold_lines(snapshot.manifold)
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name="G(noise grid)", hoverinfo="skip",
                                 line=dict(color="rgba(60,60,60,0.55)", width=1)))
    if "fake" in layers:
        fig.add_trace(_points(snapshot.fake, "fake", viz.FAKE_COLOR, opacity=0.7))
    if "grads" in layers and snapshot.grads is not None:
        xs, ys = _segments(*viz.arrows(snapshot.fake, snapshot.grads, extent))
        tips = np.zeros(len(xs))
        tips[1::3] = 7   # arrow heads on segment ends only; angleref='previous' points them along the segment
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines+markers", name="G's gradient", hoverinfo="skip",
                                 line=dict(color="#222", width=1),
                                 marker=dict(symbol="arrow", angleref="previous", size=tips, color="#222")))
    note = viz.fakes_outside(snapshot, extent)
    fig.update_layout(title=dict(text=f"Step {snapshot.step:,}" + (f" · {note}" if note else ""), x=0.0,
                                 font=dict(size=14)), height=VIEW_2D_HEIGHT, margin=dict(l=40, r=10, t=40, b=30),
                      legend=dict(orientation="h", y=1.02, yanchor="bottom", x=1.0, xanchor="right"))
    fig.update_xaxes(range=list(extent), zeroline=False, constrain="domain")
    fig.update_yaxes(range=list(extent), zeroline=False, scaleanchor="x", scaleratio=1, constrain="domain")
    return fig

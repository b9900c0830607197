"""GAN Lab's model overview and noise view, as ECharts options (pure: numbers in, JSON-ready dicts out).

`overview_chart(row, cfg)` draws the data flow of one training step as a graph: noise z -> G -> fake G(z) -> D
<- real x, D's two outputs D(x) and D(G(z)) -> the losses, and the gradients flowing back from the losses to D
and G (dashed). Every node carries its live number from the latest history row (ganlab.trainer `collect`): D's
mean output on real and fake (a probability for sigmoid losses, a critic score otherwise: ganlab.loss_specs),
both losses, and the gradient norms on the gradient edges. The layout is fixed (x, y per node), so a live
refresh changes only the numbers. `overview_text` is the same numbers as one line of text, for a caption under
the graph (projectors, screen readers, browser tests).

`noise_chart` is the noise space of a 2D run with 1-d or 2-d noise (GAN Lab's view beside the manifold): samples
of the prior and the grid of z that G maps to its manifold lines (ganlab.trainer draws the manifold over
`latent.z_span`), in the 2D view's manifold style. Snapshots do not store z, so the samples are fresh draws of
the prior (`latent.sample_z` with the run's seed), the same distribution the fixed noise came from.
"""
from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np

from .charts import _table, _title
from .latent import sample_z, z_span
from .loss_specs import loss_has
from .viz import D_COLOR, FAKE_COLOR, G_COLOR, REAL_COLOR

HEIGHT = 320                # pixels of the overview graph
FLOW_COLOR = "#555555"      # forward edges (gradients take their network's colour, as in the gradient chart)
MANIFOLD_STYLE = {"color": "#3c3c3c", "opacity": 0.5, "width": 1}   # charts.layered_2d_chart's manifold lines
NOISE_POINTS = 400          # prior samples in the noise view
NOISE_SIDE = 150            # plot side of the 2-d noise view, pixels (1-d: a strip this wide, a third as high)
NOISE_MARGIN = {"left": 35, "top": 48, "right": 12, "bottom": 26}
GRID_LINES = 17             # the noise grid when a snapshot has no manifold (trainer.MANIFOLD_RES)
PRIOR_NAMES = {"normal": "N(0, I)", "uniform": "U(-1, 1)"}

# node: (x, y, label, colour, filled). Coordinates are layout units (the graph keeps their aspect ratio). Nodes
# are circles: ECharts ends an edge's arrow on a circle of the node's mean size, so a box would hide it.
NODES: dict[str, tuple[float, float, str, str, bool]] = {
    "noise z": (0, 40, "noise z", "#7f7f7f", False),
    "G": (160, 40, "G", G_COLOR, True),
    "fake G(z)": (320, 40, "G(z)", FAKE_COLOR, False),
    "real x": (320, 220, "x", REAL_COLOR, False),
    "D": (480, 130, "D", D_COLOR, True),
    "D(G(z))": (640, 40, "D(G(z))", FAKE_COLOR, False),
    "D(x)": (640, 220, "D(x)", REAL_COLOR, False),
    "loss_G": (820, 40, "loss G", G_COLOR, False),
    "loss_D": (820, 130, "loss D", D_COLOR, False),
}
NODE_SIZE = 78              # pixels across a node
FLOW = [("noise z", "G"), ("G", "fake G(z)"), ("fake G(z)", "D"), ("real x", "D"), ("D", "D(G(z))"),
        ("D", "D(x)"), ("D(G(z))", "loss_G"), ("D(G(z))", "loss_D"), ("D(x)", "loss_D")]
# gradient edges: (from, to, history key, label, colour, curveness: the G edge arcs over the top row)
GRADIENTS = [("loss_G", "G", "grad_g", "|∇G|", G_COLOR, -0.14), ("loss_D", "D", "grad_d", "|∇D|", D_COLOR, 0.0)]
TIPS = {
    "noise z": "Random input: G turns each draw of z into one fake sample.",
    "G": "The generator: a network from noise to data.",
    "fake G(z)": "A batch of generated samples.",
    "real x": "A batch of training data.",
    "D": "The discriminator: scores each sample, real or fake.",
    "D(x)": "D's mean output on real data.",
    "D(G(z))": "D's mean output on fakes.",
    "loss_D": "D's loss: low when D tells real from fake.",
    "loss_G": "G's loss: low when D takes the fakes for real.",
}


def fmt(v: Any, digits: int = 3) -> str:
    """A number for a label: `digits` significant digits, or '-' for NaN, inf or nothing."""
    try:
        v = float(v)
    except (TypeError, ValueError):
        return "-"
    return f"{v:.{digits}g}" if math.isfinite(v) else "-"


def latest_row(history: Mapping[str, Any]) -> dict[str, float] | None:
    """The last row of a run's history columns as {key: value}, or None before the first row."""
    steps = history.get("step")
    if steps is None or not len(steps):
        return None
    return {k: float(np.asarray(v)[-1]) for k, v in history.items() if len(v)}


def _scores(row: Mapping[str, Any], loss: str) -> tuple[str, str, str]:
    """D(x) and D(G(z)) as text, and what they are: probabilities (two decimals) or critic scores."""
    if loss_has(loss, "uses_sigmoid"):
        def prob(v: Any) -> str:
            v = float(v) if v is not None else math.nan
            return f"{v:.2f}" if math.isfinite(v) else "-"
        return prob(row.get("d_real")), prob(row.get("d_fake")), "D outputs P(real)"
    return fmt(row.get("d_real")), fmt(row.get("d_fake")), "D outputs a critic score"


def node_values(row: Mapping[str, Any], cfg) -> dict[str, str]:
    """The live number (or fact) shown under each node's name."""
    real, fake, _ = _scores(row, cfg.loss)
    return {"noise z": f"{PRIOR_NAMES.get(cfg.noise_dist, cfg.noise_dist)}\n{cfg.noise_dim}-d", "G": cfg.model,
            "fake G(z)": "fake", "real x": "real", "D": cfg.model, "D(x)": real, "D(G(z))": fake,
            "loss_D": fmt(row.get("loss_d")), "loss_G": fmt(row.get("loss_g"))}


def overview_text(row: Mapping[str, Any], cfg) -> str:
    """The overview's numbers as one line: 'Step 1,234: D(x) 0.52 · D(G(z)) 0.47 · loss D 1.38 · ...'."""
    real, fake, what = _scores(row, cfg.loss)
    step = row.get("step")
    head = f"Step {int(step):,}: " if step is not None and math.isfinite(float(step)) else ""
    parts = [f"D(x) {real}", f"D(G(z)) {fake}", f"loss D {fmt(row.get('loss_d'))}",
             f"loss G {fmt(row.get('loss_g'))}", f"|∇D| {fmt(row.get('grad_d'))}", f"|∇G| {fmt(row.get('grad_g'))}"]
    return head + " · ".join(parts) + f" ({what})"


def overview_chart(row: Mapping[str, Any], cfg) -> dict:
    """The model overview graph for history row `row` of a run with config `cfg` (see the module docstring)."""
    values = node_values(row, cfg)
    nodes = []
    for name, (x, y, label, colour, filled) in NODES.items():
        value = values[name]
        text = f"{{n|{label}}}" + "".join(f"\n{{v|{line}}}" for line in value.split("\n") if line)
        style = ({"color": colour, "borderColor": colour} if filled else
                 {"color": "#ffffff", "borderColor": colour, "borderWidth": 3})
        nodes.append({"name": name, "x": x, "y": y, "symbol": "circle", "symbolSize": NODE_SIZE, "itemStyle": style,
                      "label": {"formatter": text, "color": "#ffffff" if filled else "#222222"},
                      "tooltip": {"formatter": TIPS[name]}})
    links: list[dict] = [{"source": a, "target": b} for a, b in FLOW]
    for source, target, key, label, colour, curve in GRADIENTS:
        links.append({"source": source, "target": target,
                      "lineStyle": {"type": "dashed", "color": colour, "width": 2, "curveness": curve},
                      "label": {"show": True, "formatter": f"{label} {fmt(row.get(key))}", "color": colour,
                                "fontSize": 14, "fontWeight": "bold", "backgroundColor": "#ffffff",
                                "padding": 2}})
    step = row.get("step")
    title = "Model overview" + (f" at step {int(step):,}" if step is not None and math.isfinite(float(step)) else "")
    _, _, what = _scores(row, cfg.loss)
    return {
        "animation": False,
        "title": {**_title(title), "subtext": f"solid: data flow · dashed: gradients · {what}", "itemGap": 4},
        "tooltip": {"trigger": "item"},
        "series": [{
            "type": "graph", "layout": "none", "roam": False, "silent": False,
            "top": 90, "bottom": 50, "left": 60, "right": 60,
            "edgeSymbol": ["none", "arrow"], "edgeSymbolSize": 9,
            "label": {"show": True, "position": "inside", "lineHeight": 17,
                      "rich": {"n": {"fontSize": 14, "fontWeight": "bold"}, "v": {"fontSize": 15}}},
            "lineStyle": {"color": FLOW_COLOR, "width": 2, "opacity": 0.9, "curveness": 0},
            "emphasis": {"disabled": True},
            "data": nodes, "links": links,
        }],
    }


# --- the noise view ---------------------------------------------------------------------------------------
def noise_note(noise_dim: int) -> str | None:
    """None when the noise view can show all of z (1 or 2 dimensions), else a line saying what it cannot."""
    if noise_dim <= 2:
        return None
    return f"Noise has {noise_dim} dimensions: the manifold view shows a 2-d slice (z1, z2; the others 0)."


def noise_size(noise_dim: int, side: int = NOISE_SIDE) -> tuple[int, int]:
    """(width, height) in pixels of the noise view: a square for 2-d noise, a strip for 1-d."""
    m = NOISE_MARGIN
    height = side if noise_dim >= 2 else side // 3
    return m["left"] + side + m["right"], m["top"] + height + m["bottom"]


def noise_chart(snapshot, noise_dim: int, noise_dist: str, seed: int, side: int = NOISE_SIDE) -> dict:
    """The noise z of a 2D run with 1-d or 2-d noise: prior samples (the fakes' colour: each becomes one fake
    point) and the grid of z whose image under G is the manifold of `snapshot` (the same lines, same style)."""
    if noise_dim > 2:
        raise ValueError(f"the noise view shows 1-d or 2-d noise; this run has {noise_dim} dimensions")
    span = z_span(noise_dist)
    lim = round(span * 1.15, 3)
    manifold = getattr(snapshot, "manifold", None)
    n_lines = int(manifold.shape[1]) if manifold is not None and np.ndim(manifold) == 3 else GRID_LINES
    ticks = np.linspace(-span, span, n_lines)
    z = sample_z(NOISE_POINTS, noise_dim, seed, noise_dist).astype(float)
    z = z[(np.abs(z) <= lim).all(axis=1)]
    if noise_dim == 1:   # a strip: z along x, spread over y only so the density shows
        y = np.random.default_rng(seed + 1).uniform(-0.6, 0.6, len(z))
        points = np.c_[z[:, 0], y]
        lines = [{"coords": [[-span, 0.0], [span, 0.0]]}]
        y_axis = {"type": "value", "min": -1, "max": 1, "show": False}
    else:
        points = z
        lines = [{"coords": [[-span, float(t)], [span, float(t)]]} for t in ticks]
        lines += [{"coords": [[float(t), -span], [float(t), span]]} for t in ticks]
        y_axis = {"type": "value", "min": -lim, "max": lim, "splitLine": {"show": False},
                  "axisLabel": {"showMinLabel": False, "showMaxLabel": False}}
    width, height = noise_size(noise_dim, side)
    m = NOISE_MARGIN
    series: list[dict] = [
        {"type": "lines", "name": "z grid", "coordinateSystem": "cartesian2d", "polyline": False, "silent": True,
         "data": lines, "lineStyle": dict(MANIFOLD_STYLE)},
        {"type": "scatter", "name": "z samples", "datasetIndex": 0, "encode": {"x": "x", "y": "y"},
         "symbolSize": 3, "itemStyle": {"color": FAKE_COLOR, "opacity": 0.6}, "silent": True}]
    if noise_dim == 1:   # where the manifold's points sit along the line
        series.append({"type": "scatter", "name": "z grid", "data": [[float(t), 0.0] for t in ticks],
                       "symbol": "rect", "symbolSize": [2, 12], "silent": True,
                       "itemStyle": {"color": MANIFOLD_STYLE["color"]}})
    prior = PRIOR_NAMES.get(noise_dist, noise_dist)
    return {
        "animation": False,
        "title": {**_title(f"Noise z ~ {prior}"), "subtext": f"{noise_dim}-d; grey: the grid G maps to its "
                  "manifold", "itemGap": 4, "subtextStyle": {"fontSize": 11}},
        "dataset": [_table(x=points[:, 0], y=points[:, 1])],
        "grid": {"left": m["left"], "top": m["top"], "width": width - m["left"] - m["right"],
                 "height": height - m["top"] - m["bottom"]},
        "xAxis": {"type": "value", "min": -lim, "max": lim, "splitLine": {"show": False},
                  "axisLabel": {"showMinLabel": False, "showMaxLabel": False}},
        "yAxis": y_axis, "series": series,
    }

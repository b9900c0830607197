"""Pure drawing helpers: run data (numpy) -> plotly figures, uint8 image montages, PNG and GIF bytes.

Nothing here imports streamlit, so every function is testable without a browser and reusable by the CLI.
Choices that keep the live pages smooth (see docs/architecture.md, Streamlit facts):
- one uint8 montage per sample grid (a single `st.image` call updates in place; a faceted plotly image
  costs ~200 ms and remounts);
- histograms arrive already binned (bars from counts, never raw samples);
- every figure has a fixed height and a constant `uirevision`, so a live update keeps the user's zoom and
  the page does not jump; long histories are thinned before they are sent to the browser.
The latent helpers (`interpolate`, `pca_directions`, `sample_z`) are plain numpy so the explorer page stays thin.
"""
from __future__ import annotations

import io
from typing import Iterable, Mapping

import numpy as np
import plotly.graph_objects as go

REAL_COLOR = "#4c78a8"     # blue: real data everywhere (points, bars, curves)
FAKE_COLOR = "#f58518"     # orange: generated data
D_COLOR = "#4c78a8"
G_COLOR = "#e45756"
CHART_HEIGHT = 280
VIEW_2D_HEIGHT = 520
MAX_CHART_POINTS = 800     # history rows sent per curve; 4,000 rows x 8 curves each second is too much
MAX_ARROWS = 256
LAYERS_2D = ("field", "real", "fake", "manifold", "grads")
UIREVISION = "ganlab"      # constant: plotly keeps zoom/pan and legend clicks across live updates


# --- image montages ------------------------------------------------------------------------------------
def montage(images: np.ndarray, nrow: int | None = None, pad: int = 1, pad_value: int = 96,
            scale: int = 1) -> np.ndarray:
    """Tile images (N, C, H, W) in [-1, 1] into one uint8 picture: (H', W') for C=1, (H', W', 3) for C=3.

    `nrow` is the number of images per row (torchvision's meaning; default: a square-ish grid); `pad`
    grey pixels separate them so black-background digits do not merge; `scale` enlarges by pixel
    repetition (browsers blur small images when they stretch them).
    """
    x = np.asarray(images, dtype=np.float32)
    if x.ndim != 4 or x.shape[1] not in (1, 3) or len(x) == 0:
        raise ValueError(f"montage: images must be (N, 1 or 3, H, W) with N >= 1, got {x.shape}")
    n, c, h, w = x.shape
    cols = nrow if nrow else int(np.ceil(np.sqrt(n)))
    cols = max(1, min(cols, n))
    rows = int(np.ceil(n / cols))
    u8 = to_uint8(x)                                                  # (N, C, H, W)
    out = np.full((c, rows * (h + pad) + pad, cols * (w + pad) + pad), pad_value, np.uint8)
    for i in range(n):
        r, q = divmod(i, cols)
        top, left = pad + r * (h + pad), pad + q * (w + pad)
        out[:, top:top + h, left:left + w] = u8[i]
    out = out[0] if c == 1 else out.transpose(1, 2, 0)
    return upscale(out, scale)


def to_uint8(x: np.ndarray) -> np.ndarray:
    """[-1, 1] floats -> 0..255 uint8 (NaN from a diverged G becomes 0 instead of garbage)."""
    x = np.nan_to_num(np.asarray(x, dtype=np.float32), nan=-1.0, posinf=1.0, neginf=-1.0)
    return np.round((np.clip(x, -1.0, 1.0) + 1.0) * 127.5).astype(np.uint8)


def upscale(img: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour enlargement of an (H, W) or (H, W, C) uint8 picture."""
    if factor <= 1:
        return img
    return np.repeat(np.repeat(img, factor, axis=0), factor, axis=1)


def png_bytes(img: np.ndarray) -> bytes:
    """A uint8 picture (H, W) or (H, W, 3) as PNG file bytes."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(_check_u8(img)).save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def gif_bytes(frames: list[np.ndarray], fps: float = 4.0, loop: bool = True) -> bytes:
    """Animated GIF of same-sized uint8 pictures (the evolution of a sample grid over snapshots)."""
    from PIL import Image

    if not frames:
        raise ValueError("gif_bytes: need at least one frame")
    shape = frames[0].shape
    if any(f.shape != shape for f in frames):
        raise ValueError(f"gif_bytes: all frames must have the same shape, first is {shape}")
    if not fps > 0:
        raise ValueError(f"gif_bytes: fps must be positive, got {fps}")
    images = [Image.fromarray(_check_u8(f)) for f in frames]
    if images[0].mode == "RGB":   # GIF is palette-based: one adaptive palette per frame keeps colours right
        images = [im.quantize(colors=256) for im in images]
    buf = io.BytesIO()
    extra = {"loop": 0} if loop else {}
    images[0].save(buf, format="GIF", save_all=True, append_images=images[1:],
                   duration=max(20, int(round(1000 / fps))), **extra)
    return buf.getvalue()


def points_image(real: np.ndarray | None, fake: np.ndarray, extent: tuple[float, float],
                 size: int = 320) -> np.ndarray:
    """Rasterise 2D points into an RGB uint8 picture (real blue, fake orange), for PNG/GIF export."""
    img = np.full((size, size, 3), 255, np.uint8)
    lo, hi = extent
    for pts, colour in ((real, REAL_COLOR), (fake, FAKE_COLOR)):
        if pts is None or len(pts) == 0:
            continue
        p = np.asarray(pts, dtype=np.float64)
        p = p[np.isfinite(p).all(axis=1)]
        px = np.round((p[:, 0] - lo) / (hi - lo) * (size - 1)).astype(int)
        py = np.round((hi - p[:, 1]) / (hi - lo) * (size - 1)).astype(int)   # y grows upwards
        rgb = np.array([int(colour[i:i + 2], 16) for i in (1, 3, 5)], np.uint8)
        for dx in (-1, 0, 1):   # 3x3 dots: single pixels vanish in a small GIF
            for dy in (-1, 0, 1):
                x, y = px + dx, py + dy
                ok = (x >= 0) & (x < size) & (y >= 0) & (y < size)
                img[y[ok], x[ok]] = rgb
    return img


def _check_u8(img: np.ndarray) -> np.ndarray:
    img = np.asarray(img)
    if img.dtype != np.uint8 or img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] not in (3, 4)):
        raise ValueError(f"expected a uint8 picture (H, W) or (H, W, 3), got {img.dtype} {img.shape}")
    return img


# --- history charts -------------------------------------------------------------------------------------
def thin(history: Mapping[str, np.ndarray], max_points: int = MAX_CHART_POINTS) -> dict[str, np.ndarray]:
    """Every k-th row (always keeping the last) so a curve has at most `max_points` points."""
    n = len(history.get("step", ()))
    if n <= max_points:
        return {k: np.asarray(v) for k, v in history.items()}
    idx = np.unique(np.r_[np.linspace(0, n - 1, max_points).astype(int), n - 1])
    return {k: np.asarray(v)[idx] for k, v in history.items()}


def _layout(fig: go.Figure, title: str, ytitle: str, height: int = CHART_HEIGHT) -> go.Figure:
    fig.update_layout(title=dict(text=title, x=0.0, font=dict(size=14)), height=height,
                      margin=dict(l=50, r=10, t=40, b=40), uirevision=UIREVISION,
                      legend=dict(orientation="h", y=1.02, yanchor="bottom", x=1.0, xanchor="right"),
                      xaxis=dict(title="step"), yaxis=dict(title=ytitle), hovermode="x unified")
    return fig


def _curves(history: Mapping[str, np.ndarray], series: Iterable[tuple[str, str, str]]) -> go.Figure:
    h = thin(history)
    x = h.get("step", np.zeros(0))
    fig = go.Figure()
    for key, name, colour in series:
        y = h.get(key)
        if y is None:
            continue
        fig.add_trace(go.Scatter(x=x, y=y, name=name, mode="lines", line=dict(color=colour, width=1.5)))
    return fig


def loss_figure(history: Mapping[str, np.ndarray]) -> go.Figure:
    """D and G losses against the step."""
    fig = _curves(history, [("loss_d", "D loss", D_COLOR), ("loss_g", "G loss", G_COLOR)])
    return _layout(fig, "Losses", "loss")


def scores_figure(history: Mapping[str, np.ndarray], label: str = "mean D") -> go.Figure:
    """Mean D score on real data and on fakes: D(x) near 1 and D(G(z)) near 0 means D is winning."""
    fig = _curves(history, [("d_real", "D(x) real", REAL_COLOR), ("d_fake", "D(G(z)) fake", FAKE_COLOR)])
    return _layout(fig, "Discriminator scores", label)


def grads_figure(history: Mapping[str, np.ndarray]) -> go.Figure:
    """Gradient norms of D's and G's parameters (log scale: vanishing gradients show as a cliff)."""
    fig = _curves(history, [("grad_d", "|grad D|", D_COLOR), ("grad_g", "|grad G|", G_COLOR)])
    fig = _layout(fig, "Gradient norms", "norm (log)")
    fig.update_yaxes(type="log")
    return fig


def wdist_figure(history: Mapping[str, np.ndarray]) -> go.Figure:
    """WGAN critic's estimate of the Wasserstein distance, E[D(x)] - E[D(G(z))]."""
    fig = _curves(history, [("wdist", "W estimate", "#54a24b")])
    return _layout(fig, "Wasserstein estimate", "E[D(x)] - E[D(G(z))]")


def has_values(history: Mapping[str, np.ndarray], key: str) -> bool:
    v = history.get(key)
    return v is not None and bool(np.isfinite(np.asarray(v, dtype=float)).any())


# --- discriminator views --------------------------------------------------------------------------------
def hist_figure(snapshot) -> go.Figure:
    """D's scores on real and fake samples as overlaid bars from the snapshot's binned counts."""
    edges = np.asarray(snapshot.score_edges, dtype=float)
    fig = go.Figure()
    if len(edges) >= 2:
        centres, widths = (edges[:-1] + edges[1:]) / 2, np.diff(edges)
        for counts, name, colour in ((snapshot.hist_real, "real", REAL_COLOR),
                                     (snapshot.hist_fake, "fake", FAKE_COLOR)):
            fig.add_trace(go.Bar(x=centres, y=np.asarray(counts), width=widths, name=name,
                                 marker=dict(color=colour), opacity=0.6))
        fig.update_xaxes(range=[edges[0], edges[-1]])
    fig.update_layout(barmode="overlay", bargap=0)
    fig = _layout(fig, f"Scores at step {snapshot.step}", "count", height=320)
    fig.update_layout(hovermode="closest")
    fig.update_xaxes(title=snapshot.score_label)
    return fig


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


def view_title(snapshot, extent: tuple[float, float]) -> str:
    note = fakes_outside(snapshot, extent)
    return f"Step {snapshot.step:,}" + (f" · {note}" if note else "")


def _square(fig: go.Figure, extent: tuple[float, float], title: str, height: int = VIEW_2D_HEIGHT) -> go.Figure:
    fig.update_layout(title=dict(text=title, x=0.0, font=dict(size=14)), height=height,
                      margin=dict(l=40, r=10, t=40, b=30), uirevision=UIREVISION,
                      legend=dict(orientation="h", y=1.02, yanchor="bottom", x=1.0, xanchor="right"))
    fig.update_xaxes(range=list(extent), zeroline=False, constrain="domain")
    fig.update_yaxes(range=list(extent), zeroline=False, scaleanchor="x", scaleratio=1, constrain="domain")
    return fig


def _points(pts: np.ndarray, name: str, colour: str, size: int = 4, opacity: float = 0.6) -> go.Scatter:
    p = np.asarray(pts, dtype=float)
    return go.Scatter(x=p[:, 0], y=p[:, 1], mode="markers", name=name, hoverinfo="skip",
                      marker=dict(color=colour, size=size, opacity=opacity))


def _segments(starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """x, y arrays drawing each start->end segment, separated by NaN (one trace for all segments)."""
    n = len(starts)
    xs = np.full(n * 3, np.nan)
    ys = np.full(n * 3, np.nan)
    xs[0::3], xs[1::3] = starts[:, 0], ends[:, 0]
    ys[0::3], ys[1::3] = starts[:, 1], ends[:, 1]
    return xs, ys


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


def layered_2d_figure(snapshot, layers: Iterable[str] = LAYERS_2D) -> go.Figure:
    """The 2D picture of a GAN: D's score as a heatmap, real and fake points, G's noise-grid manifold and
    the arrows along which G's loss pushes each fake point. `layers` picks which of LAYERS_2D to draw."""
    layers = set(layers)
    unknown = layers - set(LAYERS_2D)
    if unknown:
        raise ValueError(f"unknown 2D layer(s) {sorted(unknown)}; choose from {', '.join(LAYERS_2D)}")
    extent = extent_of(snapshot)
    fig = go.Figure()
    if "field" in layers and snapshot.field is not None:
        sigmoid = "P(real)" in snapshot.score_label
        fig.add_trace(go.Heatmap(x=snapshot.field_xs, y=snapshot.field_ys, z=snapshot.field, name="D",
                                 colorscale="RdBu", zmin=0.0 if sigmoid else None, zmax=1.0 if sigmoid else None,
                                 opacity=0.75, showscale=True, hovertemplate="D=%{z:.2f}<extra></extra>",
                                 colorbar=dict(title=dict(text="D", side="right"), thickness=10, len=0.8)))
    if "real" in layers and snapshot.real is not None:
        fig.add_trace(_points(snapshot.real, "real", REAL_COLOR, size=4, opacity=0.5))
    if "manifold" in layers and snapshot.manifold is not None:
        xs, ys = manifold_lines(snapshot.manifold)
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name="G(noise grid)", hoverinfo="skip",
                                 line=dict(color="rgba(60,60,60,0.55)", width=1)))
    if "fake" in layers:
        fig.add_trace(_points(snapshot.fake, "fake", FAKE_COLOR, size=4, opacity=0.7))
    if "grads" in layers and snapshot.grads is not None:
        starts, ends = arrows(snapshot.fake, snapshot.grads, extent)
        xs, ys = _segments(starts, ends)
        tips = np.zeros(len(xs))
        tips[1::3] = 7   # arrow heads on segment ends only; angleref='previous' points them along the segment
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines+markers", name="G's gradient", hoverinfo="skip",
                                 line=dict(color="#222", width=1),
                                 marker=dict(symbol="arrow", angleref="previous", size=tips, color="#222")))
    return _square(fig, extent, view_title(snapshot, extent))


def scatter_2d_figure(snapshot, height: int = VIEW_2D_HEIGHT) -> go.Figure:
    """Real vs generated points of one 2D snapshot."""
    return layered_2d_figure(snapshot, {"real", "fake"}).update_layout(height=height)


def latent_2d_figure(real: np.ndarray | None, chosen: np.ndarray, extent: tuple[float, float],
                     others: np.ndarray | None = None, path: np.ndarray | None = None,
                     path_name: str = "sweep") -> go.Figure:
    """Where generated points land among the real data: `chosen` (1, 2) big star, `others` (K, 2) small
    dots, `path` (P, 2) a line (a sweep or an interpolation)."""
    fig = go.Figure()
    if real is not None:
        fig.add_trace(_points(real, "real", REAL_COLOR, size=4, opacity=0.35))
    if others is not None and len(others):
        fig.add_trace(_points(others, "other z", FAKE_COLOR, size=6, opacity=0.8))
    if path is not None and len(path):
        p = np.asarray(path, dtype=float)
        fig.add_trace(go.Scatter(x=p[:, 0], y=p[:, 1], mode="lines+markers", name=path_name,
                                 line=dict(color="#54a24b"), marker=dict(size=5)))
    c = np.asarray(chosen, dtype=float).reshape(-1, 2)
    fig.add_trace(go.Scatter(x=c[:, 0], y=c[:, 1], mode="markers", name="your z",
                             marker=dict(symbol="star", size=16, color="#e45756", line=dict(width=1, color="#000"))))
    return _square(fig, extent, "Where G puts your z", height=440)


# --- latent space -----------------------------------------------------------------------------------------
def sample_z(n: int, dim: int, seed: int, dist: str = "normal") -> np.ndarray:
    """n noise vectors from `seed` (reproducible: the same seed gives the same z on every page)."""
    rng = np.random.default_rng(seed)
    if dist == "uniform":
        return rng.uniform(-1.0, 1.0, (n, dim)).astype(np.float32)
    return rng.standard_normal((n, dim)).astype(np.float32)


def interpolate(z0: np.ndarray, z1: np.ndarray, n: int, mode: str = "linear") -> np.ndarray:
    """n points from z0 to z1 (both included): 'linear' (lerp) or 'slerp' (along the great circle, which
    keeps the norm typical of Gaussian z; the straight line passes through unlikely short vectors)."""
    a, b = np.asarray(z0, dtype=np.float64).ravel(), np.asarray(z1, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"interpolate: z0 and z1 differ in shape, {a.shape} vs {b.shape}")
    if n < 2:
        raise ValueError(f"interpolate: n must be at least 2, got {n}")
    t = np.linspace(0.0, 1.0, n)[:, None]
    if mode in ("linear", "lerp"):
        return ((1 - t) * a + t * b).astype(np.float32)
    if mode != "slerp":
        raise ValueError(f"interpolate: mode must be 'linear' or 'slerp', got {mode!r}")
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 or nb == 0:
        return ((1 - t) * a + t * b).astype(np.float32)
    omega = np.arccos(np.clip(np.dot(a / na, b / nb), -1.0, 1.0))
    if np.sin(omega) < 1e-6:   # (anti)parallel: the great circle is undefined, the line is as good
        return ((1 - t) * a + t * b).astype(np.float32)
    out = (np.sin((1 - t) * omega) * a + np.sin(t * omega) * b) / np.sin(omega)
    return out.astype(np.float32)


def sweep(z: np.ndarray, dim: int, values: np.ndarray) -> np.ndarray:
    """Copies of z (D,) with z[dim] set to each of `values`: (len(values), D)."""
    z = np.asarray(z, dtype=np.float32).ravel()
    if not 0 <= dim < len(z):
        raise ValueError(f"sweep: dim must be in 0..{len(z) - 1}, got {dim}")
    out = np.repeat(z[None], len(values), axis=0)
    out[:, dim] = values
    return out


def pca_directions(z: np.ndarray, outputs: np.ndarray, k: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """GANSpace-style directions in z space: PCA of G's outputs, regressed back onto z.

    GANSpace (Härkönen et al. 2020) runs PCA on an early layer's activations for many random z, then finds
    latent directions U by least squares, z ~ U x, where x are the PCA coordinates. We use G's *outputs*
    (pixels, or 2D points) instead of hidden activations: the model code stays untouched and, for these
    small generators, output PCA already separates stroke width, slant and class-like changes.
    Returns (directions (k, D) of unit length, explained variance ratio (k,) of the output PCs).
    """
    zs = np.asarray(z, dtype=np.float64)
    x = np.asarray(outputs, dtype=np.float64).reshape(len(zs), -1)
    if zs.ndim != 2 or len(zs) < 2:
        raise ValueError(f"pca_directions: need z of shape (N >= 2, D), got {zs.shape}")
    k = max(1, min(k, x.shape[1], len(zs) - 1))
    xc = x - x.mean(axis=0)
    _, s, vt = np.linalg.svd(xc, full_matrices=False)
    coords = xc @ vt[:k].T                                              # (N, k) PCA coordinates
    u, *_ = np.linalg.lstsq(coords, zs - zs.mean(axis=0), rcond=None)  # (k, D): z ~ coords @ u
    norms = np.linalg.norm(u, axis=1, keepdims=True)
    directions = u / np.where(norms > 0, norms, 1.0)
    total = float((s ** 2).sum())
    explained = (s[:k] ** 2) / total if total > 0 else np.zeros(k)
    return directions.astype(np.float32), explained

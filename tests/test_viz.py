"""ganlab.viz: montages, image bytes, figures and latent helpers, checked on small hand-made data."""
from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from ganlab import viz
from ganlab.snapshots import HISTORY_KEYS, Snapshot


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


# --- montage and bytes ---------------------------------------------------------------------------------
def test_montage_grey_layout_and_values():
    imgs = np.stack([np.full((1, 2, 3), v, np.float32) for v in (-1.0, 0.0, 1.0)])   # 3 images 2x3
    m = viz.montage(imgs, nrow=2, pad=1, pad_value=7)
    assert m.dtype == np.uint8 and m.shape == (2 * 3 + 1, 2 * 4 + 1)
    assert (m[1:3, 1:4] == 0).all()           # -1 -> black
    assert (m[1:3, 5:8] == 128).all()         # 0 -> mid grey (127.5 rounds to 128)
    assert (m[4:6, 1:4] == 255).all()         # +1 -> white, second row
    assert m[0, 0] == 7 and (m[4:6, 5:8] == 7).all()   # padding and the empty 4th cell


def test_montage_rgb_scale_and_nan():
    imgs = np.zeros((4, 3, 2, 2), np.float32)
    imgs[0, 0] = 1.0
    imgs[1] = np.nan
    m = viz.montage(imgs, pad=0, scale=2)
    assert m.shape == (8, 8, 3)
    assert tuple(m[0, 0]) == (255, 128, 128)
    assert tuple(m[0, 4]) == (0, 0, 0)        # NaN (diverged G) shows black, not garbage


@pytest.mark.parametrize("bad", [np.zeros((0, 1, 2, 2)), np.zeros((2, 2, 2, 2)), np.zeros((2, 4, 4))])
def test_montage_rejects_bad_shapes(bad):
    with pytest.raises(ValueError, match="montage"):
        viz.montage(bad)


def test_png_round_trip():
    img = (np.arange(12, dtype=np.uint8).reshape(3, 4) * 20)
    data = viz.png_bytes(img)
    back = np.array(Image.open(io.BytesIO(data)))
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and (back == img).all()
    with pytest.raises(ValueError, match="uint8"):
        viz.png_bytes(img.astype(np.float32))


def test_gif_frames_and_duration():
    frames = [np.full((5, 6), v, np.uint8) for v in (0, 100, 200)]
    data = viz.gif_bytes(frames, fps=5)
    gif = Image.open(io.BytesIO(data))
    assert gif.n_frames == 3 and gif.info["duration"] == 200
    rgb = [np.full((4, 4, 3), v, np.uint8) for v in (10, 250)]
    assert Image.open(io.BytesIO(viz.gif_bytes(rgb))).n_frames == 2
    with pytest.raises(ValueError, match="same shape"):
        viz.gif_bytes([frames[0], np.zeros((2, 2), np.uint8)])
    with pytest.raises(ValueError, match="at least one"):
        viz.gif_bytes([])


def test_points_image_places_points():
    img = viz.points_image(np.array([[-1.0, -1.0]]), np.array([[1.0, 1.0]]), (-1.0, 1.0), size=11)
    assert tuple(img[10, 0]) == (0x4C, 0x78, 0xA8)      # real: bottom left (y grows upwards)
    assert tuple(img[0, 10]) == (0xF5, 0x85, 0x18)      # fake: top right
    assert tuple(img[5, 5]) == (255, 255, 255)


# --- charts --------------------------------------------------------------------------------------------
def test_history_figures_have_fixed_height_and_uirevision():
    h = _history()
    for fn in (viz.loss_figure, viz.scores_figure, viz.grads_figure, viz.wdist_figure):
        fig = fn(h)
        assert fig.layout.height == viz.CHART_HEIGHT and fig.layout.uirevision == viz.UIREVISION
        assert len(fig.data) >= 1 and list(fig.data[0].x) == list(h["step"])
    assert [t.name for t in viz.loss_figure(h).data] == ["D loss", "G loss"]
    assert viz.grads_figure(h).layout.yaxis.type == "log"


def test_thin_keeps_last_and_caps_points():
    h = _history(5000)
    t = viz.thin(h, 100)
    assert len(t["step"]) <= 101 and t["step"][-1] == h["step"][-1] and t["step"][0] == 0
    assert len(viz.loss_figure(h).data[0].x) <= viz.MAX_CHART_POINTS + 1


def test_has_values():
    h = {"wdist": np.array([np.nan, np.nan])}
    assert not viz.has_values(h, "wdist") and not viz.has_values(h, "missing")
    assert viz.has_values({"wdist": np.array([np.nan, 1.0])}, "wdist")


def test_hist_figure_bars_from_counts():
    fig = viz.hist_figure(_snap_2d())
    real, fake = fig.data
    assert list(real.y) == [0, 5, 10, 5] and list(fake.y) == [8, 2, 0, 0]
    assert np.allclose(real.x, [0.125, 0.375, 0.625, 0.875]) and fig.layout.barmode == "overlay"
    json.loads(fig.to_json())   # serialisable as streamlit sends it


def test_layered_2d_figure_layers():
    snap = _snap_2d()
    all_names = [t.name for t in viz.layered_2d_figure(snap).data]
    assert all_names == ["D", "real", "G(noise grid)", "fake", "G's gradient"]
    assert [t.name for t in viz.layered_2d_figure(snap, {"fake"}).data] == ["fake"]
    assert [t.name for t in viz.scatter_2d_figure(snap).data] == ["real", "fake"]
    fig = viz.layered_2d_figure(snap, {"field"})
    assert fig.data[0].zmin == 0.0 and tuple(fig.layout.xaxis.range) == (-3.0, 3.0)
    with pytest.raises(ValueError, match="unknown 2D layer"):
        viz.layered_2d_figure(snap, {"nope"})


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


def test_latent_2d_figure_traces():
    fig = viz.latent_2d_figure(np.zeros((5, 2)), np.array([1.0, 2.0]), (-3, 3), others=np.ones((3, 2)),
                               path=np.zeros((4, 2)))
    assert [t.name for t in fig.data] == ["real", "other z", "sweep", "your z"]
    assert list(fig.data[-1].x) == [1.0]


# --- latent helpers ----------------------------------------------------------------------------------------
def test_sample_z_reproducible_and_uniform_range():
    assert np.array_equal(viz.sample_z(4, 3, 7), viz.sample_z(4, 3, 7))
    assert not np.array_equal(viz.sample_z(4, 3, 7), viz.sample_z(4, 3, 8))
    u = viz.sample_z(1000, 2, 0, "uniform")
    assert u.dtype == np.float32 and u.min() >= -1 and u.max() <= 1


def test_interpolate_linear_and_slerp():
    a, b = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    lin = viz.interpolate(a, b, 3, "linear")
    assert np.allclose(lin, [[1, 0], [0.5, 0.5], [0, 1]])
    sl = viz.interpolate(a, b, 3, "slerp")
    assert np.allclose(sl[0], a) and np.allclose(sl[-1], b)
    assert np.allclose(np.linalg.norm(sl, axis=1), 1.0)       # stays on the unit circle
    assert np.allclose(sl[1], [np.sqrt(0.5), np.sqrt(0.5)], atol=1e-6)
    assert np.allclose(viz.interpolate(a, 2 * a, 3, "slerp"), [[1, 0], [1.5, 0], [2, 0]])   # parallel: lerp
    with pytest.raises(ValueError, match="mode"):
        viz.interpolate(a, b, 3, "cubic")
    with pytest.raises(ValueError, match="shape"):
        viz.interpolate(a, np.zeros(3), 3)


def test_sweep():
    out = viz.sweep(np.array([1.0, 2.0, 3.0]), 1, np.array([-1.0, 0.0, 1.0]))
    assert out.shape == (3, 3) and list(out[:, 1]) == [-1, 0, 1] and (out[:, 0] == 1).all()
    with pytest.raises(ValueError, match="dim"):
        viz.sweep(np.zeros(3), 3, np.zeros(2))


def test_pca_directions_recovers_the_dominant_latent_direction():
    # A linear "generator" whose outputs vary mostly with z[2]: the first direction must be +-e2.
    rng = np.random.default_rng(0)
    z = rng.standard_normal((512, 4))
    w = np.zeros((4, 10))
    w[2, :] = 5.0
    w[0, 0] = 0.5
    out = z @ w + 0.01 * rng.standard_normal((512, 10))
    dirs, explained = viz.pca_directions(z, out, k=2)
    assert dirs.shape == (2, 4) and np.allclose(np.linalg.norm(dirs, axis=1), 1.0, atol=1e-5)
    assert abs(dirs[0, 2]) > 0.99
    assert explained[0] > 0.9 and explained[0] >= explained[1]
    assert viz.pca_directions(z[:, :2], z[:, :2] @ np.eye(2), k=5)[0].shape == (2, 2)   # k capped

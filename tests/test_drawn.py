"""ganlab.drawn and be_d.ask: a drawing made in numpy becomes points where its strokes are (y up), an empty one is
refused, the saved CSV is an ordinary csv data set, a digit keeps its stroke's place at 28x28, the nearest sample is
the true nearest, and D's answer on a drawing is D's own score (each class's for a conditional D)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from test_be_d import TINY_DIGITS, d_of, finished_digits

from ganlab import be_d, drawn
from ganlab.config import TrainConfig, get_preset
from ganlab.data import load_dataset
from ganlab.latent import sample_z
from ganlab.models import build_models
from ganlab.registry import RunRegistry
from ganlab.store import load_checkpoint
from ganlab.uploads import save_upload


def canvas(size: int = 320) -> np.ndarray:
    return np.zeros((size, size, 4), np.uint8)


def test_a_stroke_becomes_points_where_it_was_drawn_with_y_up() -> None:
    img = canvas()
    img[20:60, 240:300] = (79, 70, 229, 255)            # a blob near the top right: x 2..3.5, y 2.5..3.5
    p = drawn.drawing_points(img)
    assert p.shape == (drawn.N_POINTS, 2) and np.isfinite(p).all()
    slack = 4 * drawn.JITTER
    assert (p[:, 0] > 2.0 - slack).all() and (p[:, 0] < 3.5 + slack).all()
    assert (p[:, 1] > 2.5 - slack).all() and (p[:, 1] < 3.5 + slack).all()      # the top of the canvas is y > 0
    assert p[:, 0].mean() == pytest.approx(2.75, abs=0.05) and p[:, 1].mean() == pytest.approx(3.0, abs=0.05)

    corner = canvas(8)                                   # one pixel per unit: each pixel's points stay in it
    corner[0, 0, 3] = corner[7, 7, 3] = 255
    corner[3, 5:7, 3] = 255
    corner[6, 1:7, 3] = 255
    p = drawn.drawing_points(corner, n=4000, jitter=0.0)
    cells = {(int(np.floor(x + 4)), int(np.floor(4 - y))) for x, y in np.clip(p, -3.999, 3.999)}
    drawn_cells = {(c, r) for r, c in zip(*np.nonzero(corner[..., 3]))}
    assert cells == drawn_cells                           # column = x + 4, row = 4 - y: y up, every pixel used

    faint = canvas()                                      # antialiased edges count less than solid ink
    faint[100:110, 100:110, 3] = 255
    faint[200:210, 200:210, 3] = 25
    p = drawn.drawing_points(faint)
    assert (p[:, 1] > 0).mean() > 0.85


def test_the_same_drawing_gives_the_same_points_and_file(tmp_path) -> None:
    img = canvas()
    img[150:170, 40:280, 3] = 255                         # a horizontal bar across the middle
    a, b = drawn.drawing_points(img), drawn.drawing_points(img.copy())
    np.testing.assert_array_equal(a, b)
    other = img.copy()
    other[10:20, 10:20, 3] = 255
    assert not np.array_equal(drawn.drawing_points(other), a)
    first = save_upload(tmp_path, "drawing.csv", drawn.points_csv(a))
    again = save_upload(tmp_path, "drawing.csv", drawn.points_csv(b))
    assert first == again and first[0] == "csv" and f"{drawn.N_POINTS:,} points" in first[2]
    data = load_dataset(TrainConfig(dataset="csv", data_path=str(first[1])))
    np.testing.assert_allclose(data.x.numpy(), a, atol=1e-5)   # the run reads the points as drawn: no rescaling


@pytest.mark.parametrize("pixels", [0, 1, drawn.MIN_PIXELS - 1])
def test_an_empty_or_nearly_empty_canvas_is_refused(pixels: int) -> None:
    img = canvas()
    img[0, :pixels] = (0, 0, 0, 200)
    with pytest.raises(drawn.DrawingError, match=f"{pixels} drawn pixels"):
        drawn.drawing_points(img)
    with pytest.raises(drawn.DrawingError, match="empty"):
        drawn.digit_image(img)
    with pytest.raises(drawn.DrawingError, match="empty"):
        drawn.drawing_points(None)
    with pytest.raises(drawn.DrawingError, match="RGBA"):
        drawn.drawing_points(np.zeros((10, 10, 3), np.uint8))
    img[1, :drawn.MIN_PIXELS, 3] = 255
    assert len(drawn.drawing_points(img)) == drawn.N_POINTS


def test_a_digit_keeps_its_strokes_place_at_28x28() -> None:
    img = canvas(280)
    img[100:120, 40:200] = 255                            # a white bar: rows 10-11, columns 4-19 at 28x28
    d = drawn.digit_image(img)
    assert d.shape == (1, 28, 28) and d.dtype == np.float32
    assert d.min() == -1.0 and d.max() == 1.0
    ink = np.argwhere(d[0] > -1)
    assert ink[:, 0].min() == 10 and ink[:, 0].max() == 11 and ink[:, 1].min() == 4 and ink[:, 1].max() == 19
    half = canvas(280)
    half[100:105, 40:50] = 255                            # half of one image pixel's block is inked
    assert drawn.digit_image(half)[0, 10, 4] == pytest.approx(0.0, abs=1e-6)   # ink 0.5 -> 0 in [-1, 1]
    grey = canvas(280)
    grey[..., 3] = 255                                    # a black background baked into the pixels is no ink
    grey[100:120, 40:200, :3] = 255
    np.testing.assert_array_equal(drawn.digit_image(grey), d)
    grey[..., :3] = 0                                     # a cleared canvas: opaque black, no ink
    with pytest.raises(drawn.DrawingError, match="empty"):
        drawn.digit_image(grey)
    assert drawn.digit_image(img, (14, 14)).shape == (1, 14, 14)


def test_nearest_is_the_true_nearest() -> None:
    rng = np.random.default_rng(1)
    samples = rng.uniform(-1, 1, (256, 1, 28, 28)).astype(np.float32)
    for k in (0, 17, 255):
        image = samples[k] + rng.normal(0, 0.01, samples[k].shape).astype(np.float32)
        i, dist = drawn.nearest(samples, image)
        assert i == k and dist == pytest.approx(float(np.linalg.norm(samples[k] - image)), rel=1e-5)
    image = rng.uniform(-1, 1, (1, 28, 28))
    brute = [np.sqrt(((s.astype(np.float64) - image) ** 2).sum()) for s in samples]
    assert drawn.nearest(samples, image) == (int(np.argmin(brute)), pytest.approx(min(brute)))


def _png_url(img: np.ndarray, fmt: str = "PNG") -> str:
    import base64
    import io

    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format=fmt)
    return f"data:image/{fmt.lower()};base64," + base64.b64encode(buf.getvalue()).decode()


def test_the_canvas_picture_is_decoded_and_checked() -> None:
    img = canvas(40)
    img[5:9, 10:30] = (255, 255, 255, 200)
    np.testing.assert_array_equal(drawn.decode_canvas(_png_url(img)), img)
    assert drawn.decode_canvas(None) is None and drawn.decode_canvas("") is None
    with pytest.raises(drawn.DrawingError, match="PNG"):
        drawn.decode_canvas(_png_url(img[..., :3], "JPEG"))
    with pytest.raises(drawn.DrawingError, match="cannot be read"):
        drawn.decode_canvas("data:image/png;base64,bm90IGEgcG5n")
    with pytest.raises(drawn.DrawingError, match="cannot be read"):
        drawn.decode_canvas("data:image/png;base64,%%%")
    with pytest.raises(drawn.DrawingError, match="more than"):
        drawn.decode_canvas(_png_url(np.zeros((4, drawn.MAX_SIDE + 1, 4), np.uint8)))


def test_box_grid_marks_the_axes() -> None:
    g = drawn.box_grid(320)
    assert g.shape == (320, 320, 3) and g[5, 5, 0] == 255
    assert g[5, 160, 0] == 170 and g[159, 5, 0] == 170 and g[5, 200, 0] == 228   # x = 0, y = 0, x = 1


def _stroke_digit() -> np.ndarray:
    img = canvas(280)
    img[60:220, 130:150] = 255                            # a "1"
    return drawn.digit_image(img)


def test_d_answers_a_drawing_with_its_own_score_and_gs_closest_sample(lab: RunRegistry) -> None:
    run = finished_digits(lab)
    image = _stroke_digit()
    answer = be_d.ask(run.store, run.cfg, image)
    with torch.no_grad():
        mine = torch.sigmoid(d_of(run)(torch.as_tensor(image[None]))).item()   # an MLP D: no batch statistics
    assert answer.scores.shape == (1,) and answer.scores[0] == pytest.approx(mine, rel=1e-4, abs=1e-5)
    assert answer.boundary == 0.5 and answer.g_step == answer.d_step == 20 and answer.closest_class is None

    state = load_checkpoint(run.store.checkpoint_path())                       # G's samples, rebuilt here
    g, _ = build_models(run.cfg, (1, 28, 28))
    g.load_state_dict(state["G"])
    with torch.no_grad():
        fakes = g.eval()(torch.as_tensor(sample_z(be_d.SAMPLES, run.cfg.noise_dim, be_d.SAMPLE_SEED,
                                                  run.cfg.noise_dist))).numpy()
    dists = np.linalg.norm((fakes - image).reshape(len(fakes), -1), axis=1)
    np.testing.assert_allclose(answer.closest, fakes[int(dists.argmin())], atol=1e-5)
    assert answer.distance == pytest.approx(float(dists.min()), rel=1e-4)
    assert be_d.ask(run.store, run.cfg, image).distance == answer.distance     # fixed noise: the same answer

    with pytest.raises(be_d.RoundError, match="28, 28"):
        be_d.ask(run.store, run.cfg, image[:, :14, :14])
    with pytest.raises(be_d.RoundError, match="image runs"):
        be_d.ask(run.store, get_preset("ring8").config(), image)
    fresh = lab.create(get_preset("mnist-mlp").config(**TINY_DIGITS), "not started", start=False)
    with pytest.raises(be_d.RoundError, match="no checkpoint yet"):
        be_d.ask(fresh.store, fresh.cfg, image)


def test_a_conditional_d_scores_the_drawing_as_each_class(lab: RunRegistry) -> None:
    run = lab.create(get_preset("mnist-mlp").config(**TINY_DIGITS, conditional=True), "digits by class")
    run.join(120)
    assert run.state == "finished", run.message
    image = _stroke_digit()
    answer = be_d.ask(run.store, run.cfg, image)
    state = load_checkpoint(run.store.checkpoint_path())
    _, d = build_models(run.cfg, (1, 28, 28), 10)
    d.load_state_dict(state["D"])
    with torch.no_grad():
        mine = torch.sigmoid(d.eval()(torch.as_tensor(np.repeat(image[None], 10, 0)), torch.arange(10))).numpy()
    assert answer.scores.shape == (10,)
    np.testing.assert_allclose(answer.scores, mine, rtol=1e-4, atol=1e-5)
    assert answer.closest_class is not None and 0 <= answer.closest_class < 10
    option = be_d.class_chart(answer.scores, [str(i) for i in range(10)], answer.boundary)
    bars = option["series"][0]["data"]
    assert [b["value"] for b in bars] == [round(float(s), 4) for s in answer.scores]
    assert option["series"][0]["markLine"]["data"] == [{"yAxis": 0.5}]
    assert sum(b["itemStyle"]["color"] == be_d.YOU_COLOR for b in bars) == 1   # the highest class stands out

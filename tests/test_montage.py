"""ganlab.montage: grids tiled into one picture, PNG and GIF bytes, 2D points rasterised, on hand-made data."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from ganlab.montage import gif_bytes, montage, png_bytes, points_image


def test_montage_grey_layout_and_values():
    imgs = np.stack([np.full((1, 2, 3), v, np.float32) for v in (-1.0, 0.0, 1.0)])   # 3 images 2x3
    m = montage(imgs, nrow=2, pad=1, pad_value=7)
    assert m.dtype == np.uint8 and m.shape == (2 * 3 + 1, 2 * 4 + 1)
    assert (m[1:3, 1:4] == 0).all()           # -1 -> black
    assert (m[1:3, 5:8] == 128).all()         # 0 -> mid grey (127.5 rounds to 128)
    assert (m[4:6, 1:4] == 255).all()         # +1 -> white, second row
    assert m[0, 0] == 7 and (m[4:6, 5:8] == 7).all()   # padding and the empty 4th cell


def test_montage_rgb_scale_and_nan():
    imgs = np.zeros((4, 3, 2, 2), np.float32)
    imgs[0, 0] = 1.0
    imgs[1] = np.nan
    m = montage(imgs, pad=0, scale=2)
    assert m.shape == (8, 8, 3)
    assert tuple(m[0, 0]) == (255, 128, 128)
    assert tuple(m[0, 4]) == (0, 0, 0)        # NaN (diverged G) shows black, not garbage


@pytest.mark.parametrize("bad", [np.zeros((0, 1, 2, 2)), np.zeros((2, 2, 2, 2)), np.zeros((2, 4, 4))])
def test_montage_rejects_bad_shapes(bad):
    with pytest.raises(ValueError, match="montage"):
        montage(bad)


def test_png_round_trip():
    img = (np.arange(12, dtype=np.uint8).reshape(3, 4) * 20)
    data = png_bytes(img)
    back = np.array(Image.open(io.BytesIO(data)))
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and (back == img).all()
    with pytest.raises(ValueError, match="uint8"):
        png_bytes(img.astype(np.float32))


def test_gif_frames_and_duration():
    frames = [np.full((5, 6), v, np.uint8) for v in (0, 100, 200)]
    data = gif_bytes(frames, fps=5)
    gif = Image.open(io.BytesIO(data))
    assert gif.n_frames == 3 and gif.info["duration"] == 200
    rgb = [np.full((4, 4, 3), v, np.uint8) for v in (10, 250)]
    assert Image.open(io.BytesIO(gif_bytes(rgb))).n_frames == 2
    with pytest.raises(ValueError, match="same shape"):
        gif_bytes([frames[0], np.zeros((2, 2), np.uint8)])
    with pytest.raises(ValueError, match="at least one"):
        gif_bytes([])


def test_points_image_places_points():
    img = points_image(np.array([[-1.0, -1.0]]), np.array([[1.0, 1.0]]), (-1.0, 1.0), size=11)
    assert tuple(img[10, 0]) == (0x4C, 0x78, 0xA8)      # real: bottom left (y grows upwards)
    assert tuple(img[0, 10]) == (0xF5, 0x85, 0x18)      # fake: top right
    assert tuple(img[5, 5]) == (255, 255, 255)

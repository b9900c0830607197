"""Drawings made in the browser, as data: a 2D data set drawn on a square canvas, and a digit drawn for D to judge.

The canvas (streamlit-drawable-canvas, laid out by ui/draw.py) hands back what was drawn as RGBA pixels (H, W, 4
uint8), transparent where nothing is drawn: a background picture (the grid of `box_grid`) lies on a canvas of its
own and is not part of the pixels. A background colour is (the digit canvas's opaque black): there ink is what is
bright, not what is opaque.

- `drawing_points(rgba)`: the pixels with alpha > 0, sampled in proportion to their alpha, as x,y points in the
  lab's 2D box [-BOX, BOX]^2 with y up (the canvas's top row is y = +BOX, its left column x = -BOX). Each point
  lies uniformly inside its pixel plus a little Gaussian jitter, so a thin stroke becomes a thin band of data, not
  a lattice. A fixed seed: the same drawing gives the same points, and so the same upload file. Too little drawn
  (fewer than MIN_PIXELS pixels) is a DrawingError.
- `points_csv(points)`: the points as the "x,y" CSV text that the csv data set reads (what ganlab.uploads keeps).
- `digit_image(rgba, shape)`: a drawn digit, white on black like MNIST, averaged over blocks down to (1, H, W) in
  [-1, 1], as `dataset.image_dataset` scales the data set's images. Positions are kept, not re-centred.
- `nearest(samples, image)`: the sample closest to the image in pixel space (L2) and its distance.
- `decode_canvas(url)`: the canvas's "data:image/png;base64,..." picture as RGBA pixels. It comes from a
  browser, so it is untrusted: a size cap (MAX_SIDE) is checked from the PNG's header before it is decoded.

Plain numpy (and PIL for the block average): nothing here imports streamlit or torch.
"""
from __future__ import annotations

import base64
import binascii
import io

import numpy as np

BOX = 4.0            # the lab's 2D data lie in [-BOX, BOX]^2 (ganlab.data._fit_box keeps such points as they are)
N_POINTS = 2000      # points a drawing becomes
MIN_PIXELS = 10      # fewer drawn pixels than this is an empty canvas
JITTER = 0.03        # std of the Gaussian jitter, in the box's units (a pixel of a 320 canvas is 0.025 wide)
SEED = 0
MAX_SIDE = 2048      # a canvas picture wider or taller than this is refused before it is decoded


class DrawingError(ValueError):
    """The drawing cannot be used; the message says what to draw."""


def _rgba(rgba: np.ndarray | None) -> np.ndarray:
    if rgba is None:
        raise DrawingError("the canvas is empty: draw something first")
    x = np.asarray(rgba)
    if x.ndim != 3 or x.shape[2] != 4 or min(x.shape[:2]) < 1:
        raise DrawingError(f"expected the canvas's RGBA pixels (H, W, 4), got shape {x.shape}")
    return x


def decode_canvas(url: str | None) -> np.ndarray | None:
    """A canvas's PNG data URL as (H, W, 4) uint8 RGBA pixels; None for no picture. DrawingError when it is not a
    PNG data URL of at most MAX_SIDE pixels a side."""
    from PIL import Image, UnidentifiedImageError

    if not url:
        return None
    head, _, payload = str(url).partition(";base64,")
    if head != "data:image/png" or not payload:
        raise DrawingError("the canvas sent something other than a PNG picture")
    try:
        img = Image.open(io.BytesIO(base64.b64decode(payload, validate=True)), formats=["PNG"])
    except (binascii.Error, UnidentifiedImageError, OSError, ValueError) as e:
        raise DrawingError(f"the canvas picture cannot be read ({str(e)[:80]})") from None
    if max(img.size) > MAX_SIDE:
        raise DrawingError(f"the canvas picture is {img.size[0]}x{img.size[1]}, more than {MAX_SIDE} a side")
    try:
        return np.asarray(img.convert("RGBA"))
    except (OSError, ValueError) as e:
        raise DrawingError(f"the canvas picture cannot be read ({str(e)[:80]})") from None


def drawing_points(rgba: np.ndarray | None, n: int = N_POINTS, box: float = BOX, jitter: float = JITTER,
                   seed: int = SEED) -> np.ndarray:
    """The drawn pixels of `rgba` as `n` x,y points (float64, (n, 2)) in [-box, box]^2, y up. DrawingError when
    fewer than MIN_PIXELS pixels are drawn."""
    x = _rgba(rgba)
    alpha = x[..., 3].astype(np.float64)
    rows, cols = np.nonzero(alpha > 0)
    if len(rows) < MIN_PIXELS:
        raise DrawingError(f"the canvas has {len(rows)} drawn pixels, too few to learn from: draw a few strokes "
                           "or click some points first")
    h, w = alpha.shape
    rng = np.random.default_rng(seed)
    weight = alpha[rows, cols]
    pick = rng.choice(len(rows), size=n, p=weight / weight.sum())
    u = cols[pick] + rng.random(n)                  # inside the pixel: [col, col + 1)
    v = rows[pick] + rng.random(n)
    points = np.stack([-box + 2 * box * u / w, box - 2 * box * v / h], axis=1)
    points += rng.normal(0.0, jitter, points.shape)
    return np.clip(points, -box, box)


def points_csv(points: np.ndarray) -> bytes:
    """x,y points as CSV bytes with an "x,y" header (what the csv data set reads)."""
    p = np.asarray(points, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != 2:
        raise ValueError(f"points must be (n, 2), got {p.shape}")
    return ("x,y\n" + "".join(f"{a:.5f},{b:.5f}\n" for a, b in p)).encode()


def box_grid(size: int, box: float = BOX) -> np.ndarray:
    """A (size, size, 3) uint8 picture of the 2D box for behind the canvas: white, a light line at every whole
    number, the axes darker."""
    img = np.full((size, size, 3), 255, np.uint8)
    for k in range(-int(box), int(box) + 1):
        px = min(size - 1, round((k + box) / (2 * box) * size))
        shade = 170 if k == 0 else 228
        img[:, px] = shade                          # x = k
        img[size - 1 - px, :] = shade                # y = k (y up)
    return img


def digit_image(rgba: np.ndarray | None, shape: tuple[int, int] = (28, 28)) -> np.ndarray:
    """A drawn digit as a (1, H, W) float32 image in [-1, 1]: ink is alpha x brightness (white strokes count in
    full, a black background not at all), averaged over the block of canvas pixels each image pixel covers.
    DrawingError when fewer than MIN_PIXELS pixels carry ink (an empty or cleared canvas)."""
    from PIL import Image

    x = _rgba(rgba).astype(np.float32)
    light = (0.299 * x[..., 0] + 0.587 * x[..., 1] + 0.114 * x[..., 2]) / 255.0
    ink = (x[..., 3] / 255.0) * light
    if int((ink > 0.1).sum()) < MIN_PIXELS:
        raise DrawingError("the canvas is empty: draw a digit first (white on black, big, like MNIST's)")
    h, w = shape
    small = np.asarray(Image.fromarray(ink).resize((w, h), Image.Resampling.BOX), dtype=np.float32)
    return np.clip(small * 2.0 - 1.0, -1.0, 1.0)[None]


def nearest(samples: np.ndarray, image: np.ndarray) -> tuple[int, float]:
    """The index of the sample (N, ...) closest to `image` in pixel space (L2), and that distance."""
    s = np.asarray(samples, dtype=np.float64).reshape(len(samples), -1)
    d = np.sqrt(((s - np.asarray(image, dtype=np.float64).reshape(1, -1)) ** 2).sum(axis=1))
    i = int(np.argmin(d))
    return i, float(d[i])

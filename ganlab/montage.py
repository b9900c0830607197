"""Pictures as pixels: sample grids tiled into one uint8 montage, 2D points rasterised, PNG and GIF bytes.

A page shows a whole sample grid as one `st.image` of one montage (it updates in place; a faceted plotly image
cost ~200 ms and remounted, docs/architecture.md, Streamlit facts); the exports (ganlab.export) and the HTML
report write the same pictures to files. Plain numpy and PIL: nothing here imports streamlit or torch.
"""
from __future__ import annotations

import io

import numpy as np

from .viz import FAKE_COLOR, REAL_COLOR


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

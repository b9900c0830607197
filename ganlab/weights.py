"""A run's network weights outside its worker: G for the latent explorer, and whether a checkpoint fits a config.

`LatentGenerator` keeps one eval-mode G per run, built from the weights the worker publishes to generator.pt
(or, for an older or damaged run directory, from its newest checkpoint) and rebuilt only when generator.pt's
mtime changes. (Whether a branch's changed settings still fit a checkpoint is asked by `ganlab.ckpt_load`.)
"""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .config import TrainConfig
from .snapshots import Snapshot
from .store import RunStore, StoreError, load_checkpoint


def label_count(state: dict) -> int:
    """How many classes a checkpoint's G is conditioned on (0: unconditional)."""
    emb = state["G"].get("embed.weight")
    return int(emb.shape[0]) if emb is not None else 0


def published_generator(path: Path) -> tuple[dict, int, int]:
    """generator.pt's G weights, class count and step (-1 when unrecorded). Raises what torch.load raises for a
    missing or damaged file (the callers fall back to the newest checkpoint)."""
    from .ckpt_check import check_tensors
    state = torch.load(path, map_location="cpu", weights_only=True)
    check_tensors(state, "generator.pt")   # dense tensors only: a bad layout would corrupt memory on load
    return state["G"], int(state.get("classes", 0)), int(state.get("step", -1))


class LatentGenerator:
    """G of one run directory for the latent explorer, cached by generator.pt's mtime (thread-safe)."""

    def __init__(self, store: RunStore):
        self.store = store
        self._g: tuple[int, torch.nn.Module] | None = None   # (generator.pt mtime_ns, G)
        self._lock = threading.Lock()

    def generate(self, z: np.ndarray, y: np.ndarray | None,
                 newest: Callable[[], tuple[TrainConfig, Snapshot | None]]) -> np.ndarray:
        """G(z) from the newest published weights; `newest()` gives the run's config and newest snapshot (the
        sample shape G is built for) when G has to be rebuilt."""
        with self._lock:
            g = self._generator(newest)
            zt = torch.as_tensor(np.asarray(z, dtype=np.float32))
            yt = torch.as_tensor(np.asarray(y, dtype=np.int64)) if y is not None else None
            with torch.no_grad():
                return g(zt, yt).float().numpy()

    def _generator(self, newest: Callable[[], tuple[TrainConfig, Snapshot | None]]) -> torch.nn.Module:
        from .models import build_models
        path = self.store.generator_path()
        try:
            mtime = path.stat().st_mtime_ns
        except OSError:
            mtime = None
        if self._g is not None and (mtime is None or self._g[0] == mtime):
            return self._g[1]
        weights = None
        if mtime is not None:
            try:
                weights, classes, _ = published_generator(path)
            except Exception:  # noqa: BLE001 - a damaged generator.pt: fall back to the newest checkpoint
                weights = None
        if weights is None:   # a run directory from before generator.pt, or a damaged one
            ckpt = self.store.checkpoint_path()
            if ckpt is None:
                raise RuntimeError("this run has no generator weights yet: start it first")
            try:
                state = load_checkpoint(ckpt)
            except StoreError as e:
                raise RuntimeError(f"this run's generator weights are unreadable: {e}") from None
            weights, classes = state["G"], label_count(state)
        cfg, snap = newest()
        if snap is None:
            raise RuntimeError("this run has no snapshot yet")
        g, _ = build_models(cfg, tuple(snap.fake.shape[1:]), classes)
        try:
            g.load_state_dict(weights)
        except (RuntimeError, TypeError, AttributeError) as e:
            raise RuntimeError(f"this run's generator weights do not fit its config: {str(e)[:160]}") from None
        g.eval()
        self._g = (mtime or 0, g)
        return g

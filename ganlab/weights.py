"""A run's G outside its worker, for the latent explorer (`Run.generate`), computed in a sandbox process.

`LatentGenerator` is a run's G for the latent explorer. The G itself lives in a sandbox process (ganlab.sandbox,
task "generate"): one eval-mode G per run, built from the weights the worker publishes to generator.pt (or, for an
older or damaged run directory, from its newest checkpoint, through ckpt_load.load_checked) and rebuilt only when
generator.pt's mtime changes. The server sends z and gets pixels back.
"""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .config import TrainConfig
from .snapshots import Snapshot
from .store import RunStore, StoreError


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
    """G of one run directory for the latent explorer. G lives in a sandbox process (`generate_task`), which
    builds it from the run's files and keeps it, cached by generator.pt's mtime: this process sends z and gets
    pixels, so damaged weights cannot crash it."""

    def __init__(self, store: RunStore):
        self.store = store

    def generate(self, z: np.ndarray, y: np.ndarray | None, newest: Callable[[], tuple[TrainConfig, Snapshot | None]]
                 | None = None) -> np.ndarray:
        """G(z) from the newest published weights. RuntimeError (one line) when there are none or they are
        unusable. (`newest` is not needed any more: the sandbox reads the run's config and newest snapshot, the
        sample shape G is built for, from disk when it rebuilds G.)"""
        from .sandbox import call
        out = call("generate", str(self.store.path), np.asarray(z, dtype=np.float32),
                   None if y is None else np.asarray(y, dtype=np.int64), what="The generator",
                   error=RuntimeError, wall_s=GENERATE_WALL_S)
        if not isinstance(out, np.ndarray) or out.dtype.kind != "f" or len(out) != len(z):
            raise RuntimeError("the generator gave an unusable answer")
        return out


GENERATE_WALL_S = 30.0
_LOCAL: dict[str, "_LocalGenerator"] = {}   # in a sandbox process: run directory -> its G


def generate_task(run_dir: str, z: np.ndarray, y: np.ndarray | None) -> np.ndarray:
    """The sandbox task behind LatentGenerator.generate."""
    local = _LOCAL.get(run_dir)
    if local is None:
        while len(_LOCAL) >= 16:   # a child serves many runs over its life: keep the newest few
            _LOCAL.pop(next(iter(_LOCAL)))
        local = _LOCAL[run_dir] = _LocalGenerator(RunStore(Path(run_dir)))
    return local.generate(z, y)


class _LocalGenerator:
    """One run's eval-mode G, built from generator.pt (or, for an older or damaged run directory, from its newest
    checkpoint) and rebuilt only when generator.pt's mtime changes (thread-safe)."""

    def __init__(self, store: RunStore):
        self.store = store
        self._g: tuple[int, torch.nn.Module] | None = None   # (generator.pt mtime_ns, G)
        self._lock = threading.Lock()

    def generate(self, z: np.ndarray, y: np.ndarray | None) -> np.ndarray:
        with self._lock:
            g = self._generator()
            zt = torch.as_tensor(np.asarray(z, dtype=np.float32))
            yt = torch.as_tensor(np.asarray(y, dtype=np.int64)) if y is not None else None
            with torch.no_grad():
                return g(zt, yt).float().numpy()

    def _newest(self) -> tuple[TrainConfig, Snapshot | None]:
        cfg = self.store.read_config()
        for step in reversed(self.store.snapshot_steps()[-3:]):   # a half-written newest one: the one before
            try:
                return cfg, self.store.load_snapshot(step)
            except (OSError, ValueError, KeyError):
                continue
        return cfg, None

    def _generator(self) -> torch.nn.Module:
        from .ckpt_check import check_weights
        from .ckpt_load import load_checked
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
        cfg, snap = self._newest()
        if snap is None:
            raise RuntimeError("this run has no snapshot yet")
        if weights is None:   # a run directory from before generator.pt, or a damaged one
            ckpt = self.store.checkpoint_path()
            if ckpt is None:
                raise RuntimeError("this run has no generator weights yet: start it first")
            try:
                state, _ = load_checked(ckpt, cfg, run_dir=self.store.path)
            except StoreError as e:
                raise RuntimeError(f"this run's generator weights are unreadable: {e}") from None
            weights, classes = state["G"], label_count(state)
        g, _ = build_models(cfg, tuple(snap.fake.shape[1:]), classes)
        try:
            check_weights("generator", weights, g)
            g.load_state_dict(weights)
        except (StoreError, RuntimeError, TypeError, AttributeError) as e:
            raise RuntimeError(f"this run's generator weights do not fit its config: {str(e)[:160]}") from None
        g.eval()
        self._g = (mtime or 0, g)
        return g

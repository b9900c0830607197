"""Helpers shared by the engine tests (run threads are real, so tests wait on conditions, never fixed sleeps)."""
from __future__ import annotations

import time

from ganlab.config import TrainConfig

TIMEOUT = 60.0
# A run small enough that thread, pause, stop and checkpoint tests spend their time on the machinery.
TINY = dict(dataset="ring8", g_layers=(8,), d_layers=(8,), noise_dim=2, batch_size=16, lr_decay="none",
            stats_every=1, snapshot_every=20, checkpoint_every=50, grid_size=2, steps=1_000_000, device="cpu")


def tiny(**changes) -> TrainConfig:
    return TrainConfig(**{**TINY, **changes})


def wait_for(pred, what: str, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")

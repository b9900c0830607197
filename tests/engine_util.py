"""Helpers shared by the engine tests (run threads are real, so tests wait on conditions, never fixed sleeps)."""
from __future__ import annotations

import time

TIMEOUT = 60.0


def wait_for(pred, what: str, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")

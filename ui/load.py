"""How busy this web server process is, shared by every session: CPU seconds per wall second over the last few
seconds (all threads: every session's script runs, the websockets, the sandbox pipes). A page polls for state
changes faster while the server is idle and at the plain rate once it is busy, so a class of 40 tabs does not
pay for the quick polls a class of 4 gets."""
from __future__ import annotations

import collections
import threading
import time

WINDOW_S = 5.0     # the load is measured over about this long
BUSY = 0.5         # cores of this process's CPU at and above which the server counts as busy
_samples: collections.deque[tuple[float, float]] = collections.deque()
_lock = threading.Lock()


def server_load() -> float:
    """Cores this process used over the last ~WINDOW_S (0.0 until it has 0.5 s of samples)."""
    now, cpu = time.monotonic(), time.process_time()
    with _lock:
        _samples.append((now, cpu))
        while len(_samples) > 2 and now - _samples[1][0] >= WINDOW_S:
            _samples.popleft()
        t0, c0 = _samples[0]
    return (cpu - c0) / (now - t0) if now - t0 >= 0.5 else 0.0


def poll_s(quick: float, plain: float) -> float:
    """`quick` while the server is idle, `plain` once it is busy."""
    return quick if server_load() < BUSY else plain

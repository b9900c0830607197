"""Helpers shared by the tests: a tiny config, and the one way tests wait (run threads, worker processes and
servers are real, so tests poll a condition with a deadline, never sleep a fixed time and hope)."""
from __future__ import annotations

import random
import threading
import time
from typing import Any, Callable, TypeVar

from ganlab.config import TrainConfig

T = TypeVar("T")
TIMEOUT = 60.0
# A run small enough that thread, pause, stop and checkpoint tests spend their time on the machinery.
TINY = dict(dataset="ring8", g_layers=(8,), d_layers=(8,), noise_dim=2, batch_size=16, lr_decay="none",
            stats_every=1, snapshot_every=20, checkpoint_every=50, grid_size=2, steps=1_000_000, device="cpu")


def tiny(**changes) -> TrainConfig:
    return TrainConfig(**{**TINY, **changes})


def wait_for(predicate: Callable[[], T], what: str | Callable[[], str], timeout: float = TIMEOUT,
             every: float = 0.05) -> T:
    """Call `predicate()` every `every` s until it returns something truthy, and return that.

    After `timeout` s an AssertionError names `what` was awaited (a callable is asked then, so it can describe
    the state it finds) and the predicate's last value, unless that was only False or None."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            break
        time.sleep(every)
    seen = "" if value is None or isinstance(value, bool) else f"; last seen: {value!r:.300}"
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what() if callable(what) else what}{seen}")


def settled(read: Callable[[], Any], what: str, quiet: float = 0.3, timeout: float = TIMEOUT) -> Any:
    """`read()`'s value once it has stayed the same for `quiet` s (a paused run may finish the update it was
    in): waits for the quiet, not a fixed time."""
    last = [read(), time.monotonic()]

    def quiet_long_enough() -> bool:
        value = read()
        if value != last[0]:
            last[:] = [value, time.monotonic()]
        return time.monotonic() - last[1] >= quiet

    wait_for(quiet_long_enough, lambda: f"{what} (still changing, last {last[0]!r})", timeout, every=0.05)
    return last[0]


def hammer(press: Callable[[random.Random], None], seconds: float, threads: int = 4) -> None:
    """`threads` threads call press(rnd) with their own seeded Random (a short random pause between calls) for
    `seconds`; fails when any call raised or a thread is still blocked TIMEOUT after the end."""
    deadline, errors = time.monotonic() + seconds, []

    def loop(seed: int) -> None:
        rnd = random.Random(seed)
        try:
            while time.monotonic() < deadline:
                press(rnd)
                time.sleep(rnd.random() * 0.01)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    workers = [threading.Thread(target=loop, args=(i,), daemon=True) for i in range(threads)]
    for th in workers:
        th.start()
    for th in workers:
        th.join(seconds + TIMEOUT)
    assert not any(th.is_alive() for th in workers), "a command blocked"
    assert errors == [], errors

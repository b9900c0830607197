"""ui.load: the web server's own CPU load, which sets how often pages poll for state changes."""
from __future__ import annotations

import time

from ui import load


def _spin(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


def test_the_load_follows_this_process_s_cpu_and_picks_the_poll() -> None:
    load._samples.clear()
    assert load.server_load() == 0.0   # no window yet
    time.sleep(1.0)
    idle = load.server_load()
    _spin(load.WINDOW_S + 0.5)   # the idle second leaves the window: it is all spinning now
    busy = load.server_load()
    assert idle < 0.2 < busy, (idle, busy)   # a shared machine may give the spin less than a core, never nothing
    if busy >= load.BUSY:
        assert load.poll_s(0.5, 1.0) == 1.0
    load._samples.clear()
    load.server_load()
    time.sleep(1.0)
    assert load.poll_s(0.5, 1.0) == 0.5

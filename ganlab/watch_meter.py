"""What the watched-run benchmark measures in one window (ganlab.bench_watch): training rate and CPU shares.

The rate comes from the run's history.jsonl rows (step, time) inside the window only (`HistoryTail`); CPU time
from /proc (utime + stime of the server, the worker, every Chromium process below this one, and the whole
machine's busy ticks); page refreshes from each page's counters (ganlab.watch_pages). `measure_window` gives one
`Window` of all of it. Shared with tests/test_browser_watch.py.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .watch_pages import WatchPage

CLK_TCK = os.sysconf("SC_CLK_TCK")
SLICE_S = 2.0             # server_ms_per_refresh is a p50 over slices of this length
FLUSH_WAIT_S = 0.8        # the worker flushes history rows every 0.5 s


# --- CPU accounting from /proc ---------------------------------------------------------------------------------
def _stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, utime + stime ticks) of `pid`, None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    rest = data[data.rfind(b")") + 2:].split()   # the command name may hold spaces and parentheses
    return int(rest[1]), int(rest[11]) + int(rest[12])


def cpu_ticks(pid: int) -> int:
    st = _stat(pid)
    return st[1] if st else 0


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def descendants(root: int) -> dict[int, int]:
    """{pid: cpu ticks} of every process below `root` (one scan of /proc)."""
    parent: dict[int, int] = {}
    ticks: dict[int, int] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = _stat(int(name))
            if st:
                parent[int(name)], ticks[int(name)] = st
    children: dict[int, list[int]] = {}
    for pid, ppid in parent.items():
        children.setdefault(ppid, []).append(pid)
    out, todo = {}, list(children.get(root, ()))
    while todo:
        pid = todo.pop()
        out[pid] = ticks[pid]
        todo.extend(children.get(pid, ()))
    return out


def chromium_ticks(root: int | None = None) -> dict[int, int]:
    """{pid: cpu ticks} of the Chromium processes below `root` (default this process: the playwright driver
    that launched the browser is our child), never another user's or another test session's browser."""
    return {pid: t for pid, t in descendants(os.getpid() if root is None else root).items()
            if "chromium" in _cmdline(pid)}


def rss_mb(pid: int | str = "self") -> float:
    """Resident memory of a process from /proc (Linux), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS in /proc/{pid}/status")


def machine_busy_ticks() -> int:
    """Busy ticks of the whole machine, all cores (/proc/stat: everything but idle and iowait)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:9]]
    return sum(v) - v[3] - v[4]


def _delta(before: dict[int, int], after: dict[int, int]) -> int:
    """Ticks spent between two samples by the processes alive at the second (new ones count from zero)."""
    return sum(t - before.get(pid, 0) for pid, t in after.items())


# --- training rate from history.jsonl -----------------------------------------------------------------------
class HistoryTail:
    """The run's history rows (time, step, lr_g), read incrementally from history.jsonl."""

    def __init__(self, run: Any):
        self.store = run.store
        self.offset = 0
        self.rows: list[tuple[float, int, float]] = []

    def poll(self) -> list[tuple[float, int, float]]:
        new, self.offset = self.store.tail_rows("history", self.offset)
        out = []
        for r in new:
            t, s, lr = r.get("time"), r.get("step"), r.get("lr_g")
            if isinstance(t, (int, float)) and isinstance(s, int) and not isinstance(s, bool):
                out.append((float(t), s, float(lr) if isinstance(lr, (int, float)) else math.nan))
        self.rows.extend(out)
        return out

    def rate(self, t0: float, t1: float) -> float:
        """Steps per second from the rows recorded inside [t0, t1] only (nan with fewer than two)."""
        inside = [(t, s) for t, s, _ in self.rows if t0 <= t <= t1]
        if len(inside) < 2 or inside[-1][0] <= inside[0][0] or inside[-1][1] < inside[0][1]:
            return math.nan
        return (inside[-1][1] - inside[0][1]) / (inside[-1][0] - inside[0][0])


def wait_training(run: Any, tail: HistoryTail, timeout: float = 120.0, rows: int = 3) -> None:
    """Until the run's worker has flushed a few history rows (torch imported, first steps done)."""
    deadline = time.monotonic() + timeout
    start = len(tail.rows)
    while len(tail.rows) - start < rows:
        tail.poll()
        if not run.alive:
            raise RuntimeError(f"run {run.name} ended before training: {run.state}: {run.message}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"run {run.name} wrote no history rows in {timeout:.0f} s ({run.state})")
        time.sleep(0.1)


def worker_pid(run: Any) -> int | None:
    pid = run.store.read_status().get("pid")
    return pid if isinstance(pid, int) and not isinstance(pid, bool) else None


# --- one window --------------------------------------------------------------------------------------------------
@dataclass
class Window:
    n: int                         # pages open
    t0: float
    t1: float
    rate: float                    # steps/s
    server_cpu: float              # fraction of one core
    chromium_cpu: float
    worker_cpu: float
    other_cpu: float               # the rest of the machine (other tests, this process, the driver)
    refreshes: list[list[float]]   # per page: refresh times (unix s) inside the window
    bursts: int                    # frame bursts inside the window, all pages (cross-check of refreshes)
    server_slices: list[tuple[float, float, int]]   # (slice start, slice end, server ticks)
    showing: int = 0               # pages that drew the run before the window

    @property
    def refresh_count(self) -> int:
        return sum(len(r) for r in self.refreshes)

    def intervals(self) -> list[float]:
        return [b - a for r in self.refreshes for a, b in zip(r, r[1:])]

    def ms_per_refresh_slices(self) -> list[float]:
        out = []
        for a, b, ticks in self.server_slices:
            n = sum(1 for r in self.refreshes for t in r if a <= t < b)
            if n:
                out.append(1000.0 * ticks / CLK_TCK / n)
        return out


def measure_window(tail: HistoryTail, seconds: float, pages: list[WatchPage] = (), server_pid: int | None = None,
                   worker: int | None = None) -> Window:
    """Train for `seconds` with `pages` open; the rate from the history rows inside the window only."""
    chrome0 = chromium_ticks()
    busy0 = machine_busy_ticks()
    worker0 = cpu_ticks(worker) if worker else 0
    server_at = [(time.time(), cpu_ticks(server_pid) if server_pid else 0)]
    t0 = server_at[0][0]
    while time.time() < t0 + seconds:
        time.sleep(max(0.0, min(SLICE_S, t0 + seconds - time.time())))
        server_at.append((time.time(), cpu_ticks(server_pid) if server_pid else 0))
    t1 = server_at[-1][0]
    chrome1 = chromium_ticks()
    busy1 = machine_busy_ticks()
    worker1 = cpu_ticks(worker) if worker else 0
    span = t1 - t0
    refreshes, bursts = [], 0
    for wp in pages:
        c = wp.counters()
        refreshes.append([ms / 1000 for ms in c.get("finished", ()) if t0 <= ms / 1000 <= t1])
        bursts += sum(1 for ms in c.get("bursts", ()) if t0 <= ms / 1000 <= t1)
    time.sleep(FLUSH_WAIT_S)   # the rows of the window's last half second reach the disk
    tail.poll()
    slices = [(a[0], b[0], b[1] - a[1]) for a, b in zip(server_at, server_at[1:]) if b[0] - a[0] > SLICE_S / 2]
    server = (server_at[-1][1] - server_at[0][1]) / CLK_TCK / span
    chrome = _delta(chrome0, chrome1) / CLK_TCK / span
    work = (worker1 - worker0) / CLK_TCK / span
    other = max(0.0, (busy1 - busy0) / CLK_TCK / span - server - chrome - work)
    return Window(len(pages), t0, t1, tail.rate(t0, t1), server, chrome, work, other, refreshes, bursts, slices)


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolated q-th percentile (0..100); nan for no values."""
    if not values:
        return math.nan
    v = sorted(values)
    k = (len(v) - 1) * q / 100
    lo, hi = math.floor(k), math.ceil(k)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)

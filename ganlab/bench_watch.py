"""Watched-run benchmark with real browsers: `python -m ganlab.bench_watch [--full] [--json]`.

ganlab.bench measures a run watched by threads that draw it; this one measures what a class costs for real:
a `streamlit run app.py` server, headless Chromium pages on the live Train and Discriminator pages, and a run
training in its worker process, all on this machine. Numbers:

  watched_browser_frac_{2,4,8}  steps/s of a ring8 run with N pages open (half Train, half Discriminator, each
                                its own browser context, one Chromium) / steps/s with none. Unwatched windows
                                alternate with the watched ones (0, 2, 0, 4, 0, 8, 0) and each ratio uses the
                                mean of the windows either side, so drift on a shared machine cancels.
  watched_browser_frac_mlp_4    the same for an mnist-mlp run with 4 pages.
  chromium_cpu_N, server_cpu_N  CPU of all Chromium processes / of the server process in the N-page window,
                                as a fraction of one core (/proc/<pid>/stat utime + stime); worker_cpu_N too.
  server_ms_per_refresh         server CPU ms per page refresh with 8 pages: p50 over 2 s slices of the window.
  refresh_p95_s                 95th percentile of the interval between a page's consecutive refreshes (8 pages).
  command_latency_ms            p95 over pause and live-edit commands: run.pause() until status.json says
                                "paused" (pause_latency_p95_ms), run.update_live(g_lr=X) until the first
                                history row with lr_g == X is on disk (edit_latency_p95_ms).

Training rate comes from the run's history.jsonl rows (step, time) inside a window only. A page refresh is one
`script_finished` ForwardMsg on the page's websocket (a fragment rerun or a full run), counted inside Chromium
by a wrapped WebSocket that reads the message's top-level protobuf fields, so counting costs no round trip to
Python and no copy of the frames.

The server runs from the repository root, so .streamlit/config.toml applies; `--server-arg=--runner.X=v`
(repeatable) adds `streamlit run` options to compare a setting, e.g. --server-arg=--runner.postScriptGC=false.
pages_showing_N counts the pages that drew the run within the plan's open timeout; the others are measured too
(a stalled server is a result, not an error). other_cpu_N is the rest of the machine: on a shared machine, read
the fractions next to it. Progress goes to stderr; with --json the last stdout line is one JSON object.
Helpers (`start_server`, `open_pages`, `HistoryTail`, `measure_window`...) are shared with
tests/test_browser_watch.py.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

REPO_ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"   # the Debian package; never `playwright install`
# As tests/conftest.py launches it.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
VIEWPORT = {"width": 1400, "height": 900}
CONNECTED = '[data-testid="stApp"][data-test-connection-state="CONNECTED"]'
EXCEPTION = '[data-testid="stException"]'
# What a page shows once it draws the run: Train's metrics (Step, Epoch, ...), Discriminator's histogram.
PAGES = (("Train", '[data-testid="stMetricValue"]'), ("Discriminator", ".st-key-disc-hist canvas"))
ENDLESS = 10_000_000
CLK_TCK = os.sysconf("SC_CLK_TCK")
SLICE_S = 2.0             # server_ms_per_refresh is a p50 over slices of this length
FLUSH_WAIT_S = 0.8        # the worker flushes history rows every 0.5 s

# Counts, inside the page, the ForwardMsgs with a script_finished field (top-level field 6, a varint):
# 0 = a full run finished, 3 = a fragment run finished (1 compile error, 2 interrupted: not refreshes).
# Also counts bursts of frames after >= 300 ms of silence, as a cross-check that needs no protocol knowledge.
COUNTER_JS = """
(() => {
  if (window.__ganlabWatch) return;
  const stats = {finished: [], bursts: [], frames: 0, bytes: 0, last: 0};
  window.__ganlabWatch = stats;
  const finishedStatus = (buf) => {
    const b = new Uint8Array(buf);
    let i = 0;
    const varint = () => {
      let r = 0, s = 1, x;
      do { x = b[i++]; r += (x & 0x7f) * s; s *= 128; } while ((x & 0x80) && i < b.length);
      return r;
    };
    while (i < b.length) {
      const tag = varint(), fieldNo = Math.floor(tag / 8), wire = tag % 8;
      if (wire === 0) { const v = varint(); if (fieldNo === 6) return v; }
      else if (wire === 2) { const n = varint(); i += n; }   // not `i += varint()`: that reads i first
      else if (wire === 1) { i += 8; }
      else if (wire === 5) { i += 4; }
      else { return -1; }
    }
    return -1;
  };
  const Base = window.WebSocket;
  class CountingWebSocket extends Base {
    constructor(...args) {
      super(...args);
      this.addEventListener("message", (e) => {
        const now = Date.now();
        if (now - stats.last >= 300) stats.bursts.push(now);
        stats.last = now;
        stats.frames += 1;
        if (e.data instanceof ArrayBuffer) {
          stats.bytes += e.data.byteLength;
          const v = finishedStatus(e.data);
          if (v === 0 || v === 3) stats.finished.push(now);
        }
      });
    }
  }
  window.WebSocket = CountingWebSocket;
})();
"""
READ_JS = "() => { const s = window.__ganlabWatch; return s ? {finished: s.finished, bursts: s.bursts, " \
          "frames: s.frames, bytes: s.bytes} : null; }"


def _log(msg: str) -> None:
    print(f"[bench_watch] {msg}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Plan:
    window_s: float          # one timed window
    warmup_s: float          # after the pages show the run, before a window
    counts: tuple[int, ...]  # page counts on the ring8 run
    mlp_pages: int
    commands: int            # pause and edit commands each
    open_timeout_s: float    # pages not drawing the run by then are measured anyway (pages_showing_N says so)


QUICK = Plan(8.0, 2.0, (2, 4, 8), 4, 10, 45.0)
FULL = Plan(20.0, 3.0, (2, 4, 8), 4, 20, 120.0)


# --- the server ----------------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def healthy(base_url: str) -> bool:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))   # never through an http_proxy
    try:
        with opener.open(f"{base_url}/_stcore/health", timeout=2) as response:
            return response.read().strip() == b"ok"
    except OSError:
        return False


@dataclass
class Server:
    proc: subprocess.Popen
    base_url: str
    log_path: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self) -> None:
        """SIGTERM the server's process group (it runs in a session of its own), SIGKILL if it lingers."""
        for sig, wait_s in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
            if self.proc.poll() is not None:
                return
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                return
            try:
                self.proc.wait(timeout=wait_s)
            except subprocess.TimeoutExpired:
                continue


def start_server(runs_dir: Path, log_path: Path, app: Path = REPO_ROOT / "app.py", timeout: float = 60.0,
                 extra_args: Iterable[str] = ()) -> Server:
    """`streamlit run app.py` headless on a free loopback port, showing `runs_dir`; returns once healthy.
    Run from the repository root, so .streamlit/config.toml applies; `extra_args` are more `--section.option=v`."""
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "GANLAB_RUNS_DIR": str(runs_dir), "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "streamlit", "run", str(app), "--server.headless=true", f"--server.port={port}",
           "--server.address=127.0.0.1", "--server.fileWatcherType=none", "--browser.gatherUsageStats=false",
           *extra_args]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    server = Server(proc, base_url, log_path)
    deadline = time.monotonic() + timeout
    while not healthy(base_url):
        if proc.poll() is not None or time.monotonic() > deadline:
            code = proc.poll()
            server.stop()
            why = f"exited with code {code}" if code is not None else f"not healthy in {timeout:.0f} s"
            raise RuntimeError(f"streamlit {why}; log:\n{server.log_tail()}")
        time.sleep(0.2)
    return server


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


# --- browser pages ---------------------------------------------------------------------------------------------
@dataclass
class WatchPage:
    context: Any
    page: Any
    name: str                      # "Train" or "Discriminator"
    errors: list[str] = field(default_factory=list)
    showing: bool = True           # False: it did not draw the run in time (open_pages(require=False))

    def counters(self) -> dict[str, Any]:
        try:
            return self.page.evaluate(READ_JS) or {}
        except Exception as e:  # noqa: BLE001 - a crashed page reads as no refreshes, with the reason kept
            self.errors.append(f"counter read failed: {e}")
            return {}


def open_pages(browser: Any, base_url: str, run_id: str, n: int, timeout_ms: float = 120_000,
               require: bool = True) -> list[WatchPage]:
    """`n` pages on the run, alternating Train and Discriminator, each in its own context (its own Streamlit
    session); returns once every page is connected and draws the run, all within `timeout_ms`. Raises with the
    app's exception text, or (with `require`) the state of a page that was not drawn in time; without `require`
    a late page is only marked (`WatchPage.showing` False), so a benchmark can measure a server that stalls."""
    pages: list[WatchPage] = []
    try:
        for i in range(n):
            name, _ = PAGES[i % len(PAGES)]
            context = browser.new_context(viewport=VIEWPORT)
            context.add_init_script(COUNTER_JS)
            page = context.new_page()
            page.set_default_timeout(timeout_ms)
            wp = WatchPage(context, page, name)
            page.on("pageerror", lambda exc, wp=wp: wp.errors.append(f"pageerror: {exc}"))
            pages.append(wp)
            page.goto(f"{base_url}/{name}?run={run_id}", wait_until="commit")
        deadline = time.monotonic() + timeout_ms / 1000
        for wp in pages:
            left_ms = max(2000.0, (deadline - time.monotonic()) * 1000)   # past the deadline: a last look
            try:
                wait_showing(wp, left_ms)
            except TimeoutError:
                if require:
                    raise
                wp.showing = False
    except BaseException:
        close_pages(pages)
        raise
    return pages


def wait_showing(wp: WatchPage, timeout_ms: float = 120_000) -> None:
    """Until the page is connected and shows the run's live content (or fail with the exception it shows)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
    selector = dict(PAGES)[wp.name]
    page = wp.page
    try:
        page.wait_for_selector(CONNECTED, timeout=timeout_ms)
        page.wait_for_selector(f"{selector}, {EXCEPTION}", state="visible", timeout=timeout_ms)
    except PlaywrightTimeoutError:
        raise TimeoutError(f"{wp.name} page did not show {selector!r} in {timeout_ms / 1000:.0f} s; "
                           f"{page_state(wp)}") from None
    boxes = page.locator(EXCEPTION)
    if boxes.count():
        raise RuntimeError(f"{wp.name} page shows an exception:\n{boxes.first.inner_text()[:3000]}")


def page_state(wp: WatchPage) -> str:
    """What a page is doing, for error messages: connection and script state, refreshes, the start of its text."""
    try:
        info = wp.page.evaluate("""() => { const a = document.querySelector('[data-testid="stApp"]');
            const m = document.querySelector('[data-testid="stMain"]') || document.body;
            return {connection: a && a.getAttribute('data-test-connection-state'),
                    script: a && a.getAttribute('data-test-script-state'),
                    text: (m.innerText || '').slice(0, 600)}; }""")
    except Exception as e:  # noqa: BLE001
        return f"(page state unreadable: {e})"
    c = wp.counters()
    return (f"url {wp.page.url}, connection {info['connection']}, script {info['script']}, "
            f"{len(c.get('finished', ()))} runs finished, {c.get('frames', 0)} frames, errors {wp.errors[:3]}; "
            f"text: {info['text']!r}")


def close_pages(pages: Iterable[WatchPage]) -> None:
    for wp in pages:
        try:
            wp.context.close()
        except Exception:  # noqa: BLE001 - the browser may be gone already
            pass


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


def _describe(w: Window) -> str:
    return (f"{w.n} pages: {w.rate:,.0f} steps/s, server {w.server_cpu:.2f}, chromium {w.chromium_cpu:.2f}, "
            f"worker {w.worker_cpu:.2f}, rest of the machine {w.other_cpu:.2f} cores; {w.refresh_count} refreshes "
            f"({w.bursts} frame bursts)")


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolated q-th percentile (0..100); nan for no values."""
    if not values:
        return math.nan
    v = sorted(values)
    k = (len(v) - 1) * q / 100
    lo, hi = math.floor(k), math.ceil(k)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


def _round(x: float, nd: int = 3) -> float | None:
    return None if x is None or not math.isfinite(x) else round(x, nd)


# --- the measurements ----------------------------------------------------------------------------------------
@dataclass
class Lab:
    """What one measurement holds open; `close()` releases all of it, whatever failed."""
    tmp: Path
    reg: Any = None
    server: Server | None = None
    playwright: Any = None
    browser: Any = None
    runs: list[Any] = field(default_factory=list)
    pages: list[WatchPage] = field(default_factory=list)

    def new_run(self, cfg: Any, name: str) -> Any:
        run = self.reg.create(cfg, name)
        self.runs.append(run)
        return run

    def stop_run(self, run: Any) -> None:
        try:
            run.stop(wait=30)
        except Exception as e:  # noqa: BLE001 - cleanup goes on
            _log(f"stopping {run.name}: {e}")

    def close(self) -> None:
        close_pages(self.pages)
        self.pages = []
        for step in (lambda: self.browser and self.browser.close(), lambda: self.playwright and self.playwright.stop()):
            try:
                step()
            except Exception as e:  # noqa: BLE001
                _log(f"closing the browser: {e}")
        for run in self.runs:
            self.stop_run(run)
        if self.reg is not None:
            try:
                self.reg.shutdown(timeout=10)
            except Exception as e:  # noqa: BLE001
                _log(f"registry shutdown: {e}")
        if self.server is not None:
            self.server.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)


def watched_series(lab: Lab, run: Any, counts: Iterable[int], plan: Plan) -> tuple[list[Window], list[Window]]:
    """Alternating windows 0, N1, 0, N2, ..., 0 on `run`: (unwatched windows, watched windows)."""
    tail = HistoryTail(run)
    wait_training(run, tail)
    wpid = worker_pid(run)
    spid = lab.server.pid
    time.sleep(plan.warmup_s)
    alone = [measure_window(tail, plan.window_s, server_pid=spid, worker=wpid)]
    _log(f"{run.name}: {_describe(alone[-1])}")
    watched = []
    for n in counts:
        t = time.monotonic()
        lab.pages = open_pages(lab.browser, lab.server.base_url, run.id, n, plan.open_timeout_s * 1000, require=False)
        shown = sum(wp.showing for wp in lab.pages)
        _log(f"{run.name}: {shown} of {n} pages showing the run after {time.monotonic() - t:.1f} s")
        for wp in lab.pages:
            if not wp.showing:
                _log(f"  late page: {page_state(wp)[:400]}")
        time.sleep(plan.warmup_s)
        watched.append(measure_window(tail, plan.window_s, lab.pages, spid, wpid))
        watched[-1].showing = shown
        errors = [e for wp in lab.pages for e in wp.errors]
        close_pages(lab.pages)
        lab.pages = []
        _log(f"{run.name}: {_describe(watched[-1])}" + (f"; page errors: {errors[:3]}" if errors else ""))
        time.sleep(1.0)   # the closed sessions' last messages
        alone.append(measure_window(tail, plan.window_s, server_pid=spid, worker=wpid))
        _log(f"{run.name}: {_describe(alone[-1])}")
    return alone, watched


def _frac(alone: list[Window], watched: list[Window], i: int) -> float:
    """Watched window i over the mean of the unwatched windows before and after it."""
    base = statistics.fmean([alone[i].rate, alone[i + 1].rate])
    return watched[i].rate / base if base > 0 else math.nan


def _wait_state(run: Any, want: str, since: float | None = None, timeout: float = 10.0, poll: float = 0.005) -> float:
    """Seconds from `since` (a perf_counter time; default now) until status.json says `want` (read every `poll` s)."""
    t0 = time.perf_counter() if since is None else since
    while run.store.read_status().get("state") != want:
        if time.perf_counter() - t0 > timeout:
            raise TimeoutError(f"run {run.name} not {want} after {timeout:.0f} s "
                               f"(state {run.store.read_status().get('state')})")
        time.sleep(poll)
    return time.perf_counter() - t0


def command_latency(lab: Lab, plan: Plan, out: dict[str, Any]) -> None:
    """Pause and live-edit latency of a ring8 run (constant lr, so a row's lr_g is exactly the edited g_lr)."""
    from .config import get_preset
    cfg = get_preset("ring8").config().replace(steps=ENDLESS, lr_decay="none")
    run = lab.new_run(cfg, "watch-commands")
    tail = HistoryTail(run)
    wait_training(run, tail)
    _wait_state(run, "running")
    pause, resume, edit, applied = [], [], [], []
    for _ in range(plan.commands):
        time.sleep(0.3)
        t = time.perf_counter()
        run.pause()
        pause.append(_wait_state(run, "paused", since=t))   # pause() itself included
        t = time.perf_counter()
        run.resume()
        resume.append(_wait_state(run, "running", since=t))
    for i in range(plan.commands):
        time.sleep(0.3)
        x = cfg.g_lr * (1 + 0.01 * (i + 1))
        tail.poll()
        wall, t = time.time(), time.perf_counter()
        run.update_live(g_lr=x)
        while True:
            hit = next((r for r in tail.poll() if math.isclose(r[2], x, rel_tol=1e-6, abs_tol=1e-12)), None)
            if hit is not None:
                edit.append(time.perf_counter() - t)
                applied.append(hit[0] - wall)   # when the worker recorded the row: without the 0.5 s flush
                break
            if time.perf_counter() - t > 10:
                raise TimeoutError(f"no history row with lr_g={x} 10 s after update_live")
            time.sleep(0.005)
    lab.stop_run(run)
    ms = lambda v: _round(1000 * v, 1)   # noqa: E731
    out.update(command_latency_ms=ms(percentile(pause + edit, 95)),
               pause_latency_p95_ms=ms(percentile(pause, 95)), pause_latency_p50_ms=ms(percentile(pause, 50)),
               resume_latency_p95_ms=ms(percentile(resume, 95)),
               edit_latency_p95_ms=ms(percentile(edit, 95)), edit_latency_p50_ms=ms(percentile(edit, 50)),
               edit_recorded_p95_ms=ms(percentile(applied, 95)))
    _log(f"commands: pause p95 {out['pause_latency_p95_ms']} ms, edit p95 {out['edit_latency_p95_ms']} ms "
         f"(recorded {out['edit_recorded_p95_ms']} ms), resume p95 {out['resume_latency_p95_ms']} ms")


BROWSER_KEYS = ("watched_browser_frac_2", "watched_browser_frac_4", "watched_browser_frac_8",
                "watched_browser_frac_mlp_4", "chromium_cpu_4", "server_cpu_4", "server_ms_per_refresh",
                "refresh_p95_s", "command_latency_ms")


def available() -> tuple[bool, str]:
    """(True, "") when Chromium and Playwright are here to measure with."""
    if not Path(CHROMIUM).exists():
        return False, f"{CHROMIUM} not found (the Debian package 'chromium')"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return False, "playwright is not installed (requirements-test.txt)"
    return True, ""


def start_browser(lab: Lab) -> None:
    from playwright.sync_api import sync_playwright
    if not Path(CHROMIUM).exists():
        raise RuntimeError(f"{CHROMIUM} not found: install the Debian package 'chromium'")
    lab.playwright = sync_playwright().start()
    lab.browser = lab.playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


def measure(quick: bool = True, server_args: Iterable[str] = ()) -> dict[str, Any]:
    """Run every measurement (see the module docstring); about 3-4 minutes quick on 2 cores. `server_args`
    go to `streamlit run` (e.g. ["--runner.postScriptGC=false"] to compare a server setting)."""
    from .config import get_preset
    from .runs import RunRegistry

    plan = QUICK if quick else FULL
    started = time.monotonic()
    out: dict[str, Any] = {"quick": quick, "window_s": plan.window_s, "cpus": os.cpu_count(),
                           "loadavg_start": round(os.getloadavg()[0], 2), "server_args": list(server_args)}
    lab = Lab(Path(tempfile.mkdtemp(prefix="ganlab-watch-")))
    try:
        runs_dir = lab.tmp / "runs"
        runs_dir.mkdir()
        lab.reg = RunRegistry(runs_dir)
        lab.server = start_server(runs_dir, lab.tmp / "streamlit.log", extra_args=server_args)
        _log(f"server at {lab.server.base_url} (pid {lab.server.pid})")
        run = lab.new_run(get_preset("ring8").config().replace(steps=ENDLESS), "watch-ring8")
        start_browser(lab)   # the first pages import torch in the server: open_pages waits for that
        alone, watched = watched_series(lab, run, plan.counts, plan)
        out["unwatched_rate_ring8"] = _round(statistics.fmean(w.rate for w in alone), 1)
        out["server_cpu_0"] = _round(statistics.fmean(w.server_cpu for w in alone))
        out["worker_cpu_0"] = _round(statistics.fmean(w.worker_cpu for w in alone))
        out["other_cpu_0"] = _round(statistics.fmean(w.other_cpu for w in alone))
        out["chromium_cpu_0"] = _round(statistics.fmean(w.chromium_cpu for w in alone))
        for i, w in enumerate(watched):
            out[f"watched_browser_frac_{w.n}"] = _round(_frac(alone, watched, i))
            out[f"watched_rate_{w.n}"] = _round(w.rate, 1)
            out[f"chromium_cpu_{w.n}"] = _round(w.chromium_cpu)
            out[f"server_cpu_{w.n}"] = _round(w.server_cpu)
            out[f"worker_cpu_{w.n}"] = _round(w.worker_cpu)
            out[f"other_cpu_{w.n}"] = _round(w.other_cpu)
            out[f"refreshes_per_page_s_{w.n}"] = _round(w.refresh_count / w.n / (w.t1 - w.t0))
            out[f"pages_showing_{w.n}"] = w.showing
        most = max(watched, key=lambda w: w.n)
        total = most.server_cpu * (most.t1 - most.t0)
        out["server_ms_per_refresh"] = _round(percentile(most.ms_per_refresh_slices(), 50), 1)
        out["server_ms_per_refresh_mean"] = _round(1000 * total / most.refresh_count, 1) if most.refresh_count else None
        out["refresh_p50_s"] = _round(percentile(most.intervals(), 50))
        out["refresh_p95_s"] = _round(percentile(most.intervals(), 95))
        out["refreshes_counted"] = most.refresh_count
        out["frame_bursts_counted"] = most.bursts
        lab.stop_run(run)

        mlp = lab.new_run(get_preset("mnist-mlp").config().replace(steps=ENDLESS), "watch-mnist-mlp")
        alone, watched = watched_series(lab, mlp, (plan.mlp_pages,), plan)
        n = plan.mlp_pages
        out["unwatched_rate_mlp"] = _round(statistics.fmean(w.rate for w in alone), 1)
        out[f"watched_browser_frac_mlp_{n}"] = _round(_frac(alone, watched, 0))
        out[f"chromium_cpu_mlp_{n}"] = _round(watched[0].chromium_cpu)
        out[f"server_cpu_mlp_{n}"] = _round(watched[0].server_cpu)
        out[f"worker_cpu_mlp_{n}"] = _round(watched[0].worker_cpu)
        out[f"refreshes_per_page_s_mlp_{n}"] = _round(watched[0].refresh_count / n / (watched[0].t1 - watched[0].t0))
        out[f"pages_showing_mlp_{n}"] = watched[0].showing
        lab.stop_run(mlp)

        command_latency(lab, plan, out)
    except Exception:
        if lab.server is not None:
            _log(f"server log tail:\n{lab.server.log_tail()}")
        raise
    finally:
        lab.close()
    out["loadavg_end"] = round(os.getloadavg()[0], 2)
    out["elapsed_s"] = round(time.monotonic() - started, 1)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ganlab.bench_watch", description=__doc__.splitlines()[0])
    p.add_argument("--full", action="store_true", help="20 s windows instead of 8 s (about 8 minutes)")
    p.add_argument("--json", action="store_true", help="print the result as one JSON line")
    p.add_argument("--server-arg", action="append", default=[], metavar="--SECTION.OPTION=VALUE",
                   help="extra `streamlit run` option, repeatable (e.g. --server-arg=--runner.postScriptGC=false)")
    args = p.parse_args(argv)
    out = measure(quick=not args.full, server_args=args.server_arg)
    if args.json:
        print(json.dumps(out))
    else:
        width = max(map(len, out))
        for k, v in out.items():
            print(f"{k:<{width}}  {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

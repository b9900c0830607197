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
This module holds the plan, the measurements and the report; the server and the pages are in
ganlab.watch_pages, one timed window (training rate, CPU from /proc, refresh counts) in ganlab.watch_meter;
tests/test_browser_watch.py uses those two.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from .watch_meter import HistoryTail, Window, measure_window, percentile, wait_training, worker_pid
from .watch_pages import CHROMIUM, CHROMIUM_ARGS, Server, WatchPage, close_pages, open_pages, page_state, start_server

ENDLESS = 10_000_000


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


def _describe(w: Window) -> str:
    return (f"{w.n} pages: {w.rate:,.0f} steps/s, server {w.server_cpu:.2f}, chromium {w.chromium_cpu:.2f}, "
            f"worker {w.worker_cpu:.2f}, rest of the machine {w.other_cpu:.2f} cores; {w.refresh_count} refreshes "
            f"({w.bursts} frame bursts)")


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
    from .registry import RunRegistry

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

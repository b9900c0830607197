"""Memory soak: does a lab server that trains for hours keep its memory flat?

Trains a ring8 run and an mnist-mlp run (both with a step budget far beyond the soak) in one registry of the
real app kind (get_registry: quality measures on), while reader threads poll both runs once a second the way
the pages do (view, chart options, sample montage, a latent-explorer generate). Samples this process's RSS
every 10 s, then prints the growth and a straight-line extrapolation.

    .venv/bin/python scripts/soak_memory.py                # 60 minutes
    .venv/bin/python scripts/soak_memory.py --minutes 5    # a quick look
    .venv/bin/python scripts/soak_memory.py --minutes 5 --trace   # + tracemalloc: where Python memory went

Not part of the test suite (it runs for minutes to hours). The first samples include warm-up (imports, the
data set, caches filling to their caps), so the growth is judged on the second half of the run as well.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ganlab import charts  # noqa: E402
from ganlab.config import get_preset  # noqa: E402
from ganlab.latent import sample_z  # noqa: E402
from ganlab.montage import montage, upscale  # noqa: E402
from ganlab.registry import get_registry  # noqa: E402
from ganlab.runs import MAX_HISTORY, MAX_SNAPSHOTS, Run  # noqa: E402
from ganlab.watch_meter import rss_mb  # noqa: E402

SAMPLE_S = 10.0
WARM_S = 60.0


def read_like_a_page(run: Run) -> int:
    """One live refresh: the run's view, its chart options serialised, samples, and a latent generate."""
    v = run.view()
    options = [charts.loss_chart(v.history), charts.scores_chart(v.history), charts.grads_chart(v.history)]
    snap = v.latest
    size = 0
    if snap is not None:
        if snap.is_2d:
            options += [charts.scatter_2d_chart(snap), charts.hist_chart(snap)]
        else:
            size += upscale(montage(snap.fake[:64]), 2).nbytes
        try:
            z = sample_z(16, v.cfg.noise_dim, 0, v.cfg.noise_dist)
            size += run.generate(z).nbytes
        except RuntimeError:
            pass   # no weights yet
    for option in options:   # serialised as st.echarts_chart sends it: JSON spec + Arrow tables
        spec, tables = charts.wire(option)
        size += len(spec) + sum(len(t) for t in tables)
    return size


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=60.0, help="how long to soak (default 60)")
    ap.add_argument("--readers", type=int, default=5, help="reader threads, each polling both runs at 1 Hz")
    ap.add_argument("--runs-dir", default=None, help="run directory (default: a temporary one)")
    ap.add_argument("--trace", action="store_true", help="tracemalloc: print the top Python allocation growth")
    ap.add_argument("--fast", action="store_true",
                    help="record every step and snapshot often, so the in-memory caps (MAX_HISTORY, MAX_SNAPSHOTS) "
                         "are reached within minutes and the rest of the soak shows the steady state")
    args = ap.parse_args(argv)

    runs_dir = Path(args.runs_dir or tempfile.mkdtemp(prefix="ganlab-soak-"))
    reg = get_registry(runs_dir)
    fast = dict(stats_every=1, snapshot_every=20) if args.fast else {}
    ring = reg.create(get_preset("ring8").config(steps=10_000_000, device="cpu", **fast), "soak ring8")
    fast = dict(stats_every=1, snapshot_every=5) if args.fast else {}
    mnist = reg.create(get_preset("mnist-mlp").config(steps=10_000_000, device="cpu", **fast), "soak mnist-mlp")
    runs = [ring, mnist]
    done = threading.Event()
    errors: list[str] = []
    reads = [0]

    def reader(i: int) -> None:
        time.sleep(i / max(1, args.readers))
        while not done.is_set():
            t0 = time.monotonic()
            for run in runs:
                try:
                    read_like_a_page(run)
                    reads[0] += 1
                except Exception as e:  # noqa: BLE001 - a soak reports, it does not stop
                    errors.append(f"{type(e).__name__}: {e}")
            done.wait(max(0.0, 1.0 - (time.monotonic() - t0)))

    threads = [threading.Thread(target=reader, args=(i,), daemon=True) for i in range(args.readers)]
    for th in threads:
        th.start()
    if args.trace:
        tracemalloc.start(10)
    base_snapshot = None
    samples: list[tuple[float, float]] = []
    start = time.monotonic()
    end = start + args.minutes * 60
    print(f"soak: {args.minutes:g} min, {args.readers} readers, runs in {runs_dir}; MAX_HISTORY={MAX_HISTORY}, "
          f"MAX_SNAPSHOTS={MAX_SNAPSHOTS}", flush=True)
    print(f"{'t (s)':>7} {'RSS MB':>8} {'ring step':>10} {'rows':>5} {'snaps':>5} {'mnist step':>10} {'rows':>5} "
          f"{'snaps':>5} {'reads':>6}", flush=True)
    try:
        while True:
            now = time.monotonic()
            mem = rss_mb()
            samples.append((now - start, mem))
            vr, vm = ring.view(), mnist.view()
            print(f"{now - start:7.0f} {mem:8.1f} {vr.step:10d} {len(vr.history['step']):5d} {len(vr.snapshots):5d} "
                  f"{vm.step:10d} {len(vm.history['step']):5d} {len(vm.snapshots):5d} {reads[0]:6d}", flush=True)
            for v in (vr, vm):
                if v.state not in ("running", "queued"):
                    print(f"  run {v.name} is {v.state}: {v.message}", flush=True)
            if args.trace and base_snapshot is None and now - start > 60:
                base_snapshot = tracemalloc.take_snapshot()   # after warm-up
            if now >= end:
                break
            time.sleep(min(SAMPLE_S, max(0.0, end - time.monotonic())))
    finally:
        done.set()
        for th in threads:
            th.join(5)
        reg.shutdown(timeout=10)

    t = np.array([s[0] for s in samples])
    m = np.array([s[1] for s in samples])
    warm = t >= min(WARM_S, t[-1] / 2)            # imports, data sets and the first checkpoints are not growth
    late = t >= t[-1] / 2
    slope_warm = np.polyfit(t[warm], m[warm], 1)[0] * 60 if warm.sum() > 2 else float("nan")   # MB per minute
    slope_late = np.polyfit(t[late], m[late], 1)[0] * 60 if late.sum() > 2 else float("nan")
    w0 = m[warm][0]
    print(f"\nRSS after warm-up {w0:.0f} -> {m[-1]:.0f} MB over {(t[-1] - t[warm][0]) / 60:.1f} min "
          f"({m[-1] - w0:+.1f} MB; peak {m.max():.0f}; {m[0]:.0f} MB before anything loaded)")
    print(f"slope: {slope_warm:+.2f} MB/min after warm-up, {slope_late:+.2f} MB/min over the second half")
    print(f"straight-line extrapolation of the second half: {slope_late * 60:+.0f} MB per hour "
          f"(until the runs reach MAX_HISTORY rows and MAX_SNAPSHOTS snapshots, growth is expected: see above)")
    print(f"reads: {reads[0]}; reader errors: {len(errors)}" + (f" (first: {errors[0]})" if errors else ""))
    if args.trace and base_snapshot is not None:
        print("\ntop Python allocation growth since the first minute (tracemalloc):")
        for stat in tracemalloc.take_snapshot().compare_to(base_snapshot, "lineno")[:12]:
            print(f"  {stat}")
    return 1 if errors else 0


if __name__ == "__main__":
    torch.set_num_threads(1)   # the image run sets its own; readers and the main thread need no more
    sys.exit(main())

"""A full classroom watching one run: 20 readers polling it while it trains, 20 real Streamlit sessions on the
Train page, and the active-run cap that keeps a 2-core laptop usable.

The reader test is short in CI (~15 s of load) and long with GANLAB_LOAD_FULL=1 (60 s). It alternates windows
without and with readers and compares the training speed (steps/s) of the same run, so drift from other
processes on the machine hits both sides alike. The target is a ratio of 0.9 (reported from the full run);
CI asserts a loose bound because a shared 2-core box is noisy. Readers must not grow memory: VmRSS growth
during windows with readers, less that during windows without, stays under 50 MB.
"""
from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from engine_util import wait_for
from streamlit.elements.echarts_chart import _normalize_spec, _serialize_option  # private in 1.67 (pinned)
from streamlit.testing.v1 import AppTest

from ganlab import viz
from ganlab.config import get_preset
from ganlab.registry import RunRegistry, get_registry
from ganlab.runs import MAX_HISTORY, Run
from ganlab.snapshots import HISTORY_KEYS
from ganlab.watch_meter import rss_mb
from ui.live import chart_option, history_version, snapshot_version

torch.set_num_threads(1)

REPO = Path(__file__).resolve().parent.parent
FULL = os.environ.get("GANLAB_LOAD_FULL", "") not in ("", "0")
READERS = 20
LOAD_S = 60.0 if FULL else 15.0      # seconds measured: half of them with readers, half without
WINDOW_S = 3.0 if FULL else 1.5      # one window without readers, then one with, alternating
# CI bound: catches starvation (before the pages shared chart options, 20 readers left 0.01 of the speed), not
# the target: a shared 2-core box swings 0.6-0.9 from run to run. The full run checks the 0.9 target.
MIN_RATIO = 0.5
MAX_RSS_GROWTH_MB = 50.0


def page_work(run: Run, page: str) -> int:
    """What one session's live refresh does for a 2D run, in this process as Streamlit would: read the run,
    take the chart options from the pages' shared cache (ui.live.chart_option: one build per new row or
    snapshot for all sessions), and serialise them for this session's browser with the serialiser
    st.echarts_chart runs per session (JSON spec + Arrow datasets). Returns the bytes sent."""
    v = run.view()
    h, snap = v.history, v.latest
    hv = history_version(v)
    if page == "train":
        options = [chart_option("loss_chart", hv, h), chart_option("scores_chart", hv, h, label=snap.score_label),
                   chart_option("grads_chart", hv, h), chart_option("scatter_2d_chart", snapshot_version(v, snap),
                                                                    snap, side=200)]
    else:   # the Discriminator page: D's field with every layer, and the score histograms
        sv = snapshot_version(v, snap)
        options = [chart_option("layered_2d_chart", sv, snap, layers=tuple(sorted(viz.LAYERS_2D))),
                   chart_option("hist_chart", sv, snap)]
    sent = 0
    for o in options:
        normalized, datasets = _normalize_spec(o)
        sent += len(_serialize_option(normalized)) + sum(len(b) for b in datasets.values())
    return sent


@pytest.fixture
def ring_run(tmp_path, clean_cache):
    # The app's setup() lowers the GIL switch interval to 1 ms, process-wide (see ui.common.setup); do the
    # same, so the result does not depend on whether an AppTest ran earlier in this process.
    interval = sys.getswitchinterval()
    sys.setswitchinterval(0.001)
    registry = RunRegistry(tmp_path / "runs", max_active=2)
    cfg = get_preset("ring8").config(steps=10_000_000, device="cpu")   # the real preset: 64x3 nets, batch 256
    run = registry.create(cfg, "watched")
    wait_for(lambda: run.step > 300 and run.view(with_snapshots=False).latest is not None, "the run to train")
    yield run
    registry.shutdown(timeout=20)
    sys.setswitchinterval(interval)


@pytest.mark.slow
def test_twenty_readers_do_not_slow_training_or_leak(ring_run: Run) -> None:
    run = ring_run
    on = threading.Event()
    done = threading.Event()
    errors: list[BaseException] = []
    reads = [0] * READERS

    def reader(i: int) -> None:
        time.sleep(i / READERS)               # spread the 20 timers over the second, as browsers would be
        while not done.is_set():
            if not on.wait(0.1):
                continue
            t0 = time.monotonic()
            try:
                assert page_work(run, "disc" if i % 4 == 3 else "train") > 0
                reads[i] += 1
            except BaseException as e:  # noqa: BLE001 - reported by the test
                errors.append(e)
                return
            time.sleep(max(0.0, 1.0 - (time.monotonic() - t0)))   # 1 Hz, like run_every=1.0

    page_work(run, "train"), page_work(run, "disc")   # warm imports and caches before memory is measured
    threads = [threading.Thread(target=reader, args=(i,), daemon=True) for i in range(READERS)]
    for th in threads:
        th.start()
    pairs: list[tuple[float, float]] = []     # (steps/s without readers, steps/s with), adjacent windows
    grown = {False: 0.0, True: 0.0}           # RSS growth (MB) during windows without / with readers
    rss0 = rss_mb()
    try:
        while 2 * len(pairs) * WINDOW_S < LOAD_S:
            rate = []
            for with_readers in (False, True):
                (on.set if with_readers else on.clear)()
                time.sleep(0.3)               # let the switch settle (readers finish the poll they were in)
                s0, t0, m0 = run.step, time.monotonic(), rss_mb()
                time.sleep(WINDOW_S)
                rate.append((run.step - s0) / (time.monotonic() - t0))
                grown[with_readers] += rss_mb() - m0
            pairs.append((rate[0], rate[1]))
    finally:
        done.set()
        for th in threads:
            th.join(10)
    assert not errors, errors[:3]
    assert run.view().state == "running", run.view().message
    assert min(reads) >= 0.25 * LOAD_S, f"a reader starved: {min(reads)} reads in {LOAD_S / 2:.0f} s of polling"
    without, with_ = (float(np.median([p[i] for p in pairs])) for i in (0, 1))
    ratio = float(np.median([w / max(wo, 1e-9) for wo, w in pairs]))   # pairwise: drift hits both sides
    # The run itself grows until its history and snapshots reach their caps (MAX_HISTORY, MAX_SNAPSHOTS; then
    # flat, see scripts/soak_memory.py --fast), in windows with and without readers alike: the readers' share
    # is the difference.
    growth = grown[True] - grown[False]
    print(f"\n[load] {READERS} readers at 1 Hz, {len(pairs)} x {WINDOW_S:.1f} s windows each way: "
          f"{without:.0f} steps/s without readers, "
          f"{with_:.0f} with (ratio {ratio:.2f}, target 0.9); {sum(reads)} reads; "
          f"RSS {rss0:.0f} -> {rss_mb():.0f} MB: {grown[True]:+.1f} MB in windows with readers, "
          f"{grown[False]:+.1f} MB without; rows {len(run.view().history['step'])}")
    assert ratio >= (0.9 if FULL else MIN_RATIO), f"readers slowed training to {ratio:.2f} of its speed"
    assert growth < MAX_RSS_GROWTH_MB, f"memory grew {growth:.0f} MB more with readers than without"


# --- real Streamlit sessions -----------------------------------------------------------------------------
def train_page(run_id: str) -> AppTest:
    at = AppTest.from_file(str(REPO / "pages/1_Train.py"), default_timeout=120)
    at.query_params["run"] = run_id
    return at


@pytest.mark.slow
def test_twenty_sessions_watch_one_run(lab: RunRegistry) -> None:
    """20 Streamlit sessions (each its own session state, all sharing the process's registry and caches) open
    the Train page of one live run and refresh it twice. AppTest runs one script at a time per process (it
    installs a process-wide runtime per run), so the sessions take turns, round-robin, while the run trains."""
    cfg = get_preset("ring8").config(steps=10_000_000, batch_size=64, snapshot_every=50, device="cpu")
    run = lab.create(cfg, "class demo")
    wait_for(lambda: run.view(with_snapshots=False).latest is not None, "the first snapshot")
    sessions = [train_page(run.id) for _ in range(READERS)]
    step0, problems, steps_seen = run.step, [], set()
    for _ in range(3):                        # the first run, then two live refreshes (run_every never fires)
        for at in sessions:
            at.run()
            problems += [e.value for e in at.exception]
            if at.session_state["run_id"] != run.id:
                problems.append(f"a session shows run {at.session_state['run_id']}")
            steps_seen.add(at.metric[0].value)
    assert problems == [], problems[:5]
    for at in sessions:
        assert at.title[0].value == "class demo"
        assert at.metric[0].value.endswith("/ 10,000,000")
        assert at.get("echarts_chart"), "no live charts drawn"
    assert len(steps_seen) > 1, "the sessions saw the step counter move"
    assert run.view().state == "running" and run.step > step0, "the run kept training under 20 sessions"


def test_reading_a_long_history_costs_about_what_a_short_one_does(tmp_path) -> None:
    """view() of a run with 4,000 rows (MAX_HISTORY) must not cost much more than one with 40: a class polls
    each run 20 times a second, and converting every row on every call held the GIL 15 ms each time."""
    registry = RunRegistry(tmp_path / "runs")
    cfg = get_preset("ring8").config(steps=10, device="cpu")

    def finished_run(rows: int) -> Run:
        run = registry.create(cfg, f"rows{rows}", start=False)
        run.store.append_rows("history", [{k: float(i) for k in HISTORY_KEYS} for i in range(rows)])
        run.store.update_status(state="finished")
        return RunRegistry(registry.runs_dir).get(run.id)   # reopened from disk, as the app does

    def cost(run: Run, calls: int = 200) -> float:
        run.view()                                          # the first call may convert everything
        t0 = time.perf_counter()
        for _ in range(calls):
            run.view()
        return (time.perf_counter() - t0) / calls

    short, long = finished_run(40), finished_run(MAX_HISTORY)
    assert len(long.view().history["step"]) == MAX_HISTORY
    ratio = min(cost(long) / cost(short) for _ in range(3))   # best of 3: the machine is shared
    # Copying the row list is O(rows) too, but in C (~40 us for 4,000 rows); converting every row was ~15 ms.
    print(f"\n[load] view() with {MAX_HISTORY} rows costs {ratio:.1f}x one with 40 rows")
    assert ratio < 20, f"view() of a long history costs {ratio:.0f}x a short one"
    h = long.view().history
    assert list(h["step"][:3]) == [0.0, 1.0, 2.0] and h["step"][-1] == MAX_HISTORY - 1
    with pytest.raises(ValueError):
        h["step"][0] = 5.0                                  # shared between views: read-only


def test_cap_from_the_environment_queues_the_second_run_with_a_message(tmp_path, monkeypatch, clean_cache):
    runs = tmp_path / "runs"
    monkeypatch.setenv("GANLAB_RUNS_DIR", str(runs))
    monkeypatch.setenv("GANLAB_MAX_ACTIVE", "1")
    reg = get_registry(runs)
    try:
        assert reg.max_active == 1
        cfg = get_preset("ring8").config(steps=10_000_000, batch_size=32, g_layers=(8,), d_layers=(8,),
                                         device="cpu")
        first = reg.create(cfg, "first")
        wait_for(lambda: first.state == "running", "the first run")
        second = reg.create(cfg, "second")
        wait_for(lambda: second.state == "queued" and "limit is 1" in second.message, "the second run to queue")
        assert "starts when" in second.message
        at = train_page(second.id).run()
        assert not at.exception, [e.value for e in at.exception]
        assert any("queued" in i.value and "limit is 1" in i.value for i in at.info), [i.value for i in at.info]
        first.stop(wait=30)
        wait_for(lambda: second.state == "running" and second.step > 0, "the queued run to start")
    finally:
        reg.shutdown(timeout=20)


def test_listing_100_runs_with_200k_row_histories_takes_under_2_s(tmp_path) -> None:
    """The Home page and the Runs table read each run's status and its history's last row, never the history."""
    import json
    import shutil

    from engine_util import tiny

    from ganlab.store import RunStore
    src = RunStore.create(tmp_path / "src", "long", tiny(steps=300_000))
    row = {k: 0.5 for k in ("loss_d", "loss_g", "d_real", "d_fake", "grad_g", "grad_d", "images_per_s")}
    with open(src.path / "history.jsonl", "w") as f:
        f.writelines(json.dumps({**row, "step": i, "epoch": 0, "time": 1.0 + i}) + "\n" for i in range(200_000))
    src.update_status(state="stopped", step=199_999)
    runs = tmp_path / "runs"
    runs.mkdir()
    for i in range(100):
        d = runs / f"run-{i:03d}"
        shutil.copytree(src.path, d, copy_function=os.link)   # hard links: 100 histories, one file's disk
    t0 = time.perf_counter()
    reg = RunRegistry(runs, executor="thread")
    listed = reg.list()
    summaries = [r.summary() for r in listed]
    seconds = time.perf_counter() - t0
    print(f"\n[load] listing 100 runs of 200,000 history rows: {seconds:.2f} s")
    assert len(summaries) == 100 and all(s.step == 199_999 and s.state == "stopped" for s in summaries)
    assert seconds < 2.0

"""A class watching a run must not stall it: a ring8 run training in its worker process keeps at least half its
speed while 4 real Chromium pages (2 Train, 2 Discriminator) refresh on it once a second.

The rate is read from the run's history.jsonl rows (step, time) inside each window, as ganlab/watch_meter.py
measures it (`python -m ganlab.bench_watch` gives the 2/4/8-page fractions and CPU shares).
"""
from __future__ import annotations

from pathlib import Path

import pytest

from browser_util import assert_no_exception
from ganlab.bench_watch import ENDLESS
from ganlab.config import get_preset
from ganlab.registry import RunRegistry
from ganlab.watch_meter import HistoryTail, measure_window, wait_training, worker_pid
from ganlab.watch_pages import close_pages, open_pages

pytestmark = pytest.mark.browser   # uses chromium_browser, not browser_page, so conftest would not mark it
WINDOW_S = 6.0
WARMUP_S = 2.0
MIN_FRAC = 0.5


def test_four_pages_keep_half_the_training_rate(streamlit_server: str, runs_dir: Path, chromium_browser) -> None:
    run = RunRegistry(runs_dir).create(get_preset("ring8").config().replace(steps=ENDLESS), "watch-test")
    pages = []
    try:
        tail = HistoryTail(run)
        wait_training(run, tail)
        wpid = worker_pid(run)
        alone = measure_window(tail, WINDOW_S, worker=wpid)

        pages = open_pages(chromium_browser, streamlit_server, run.id, 4)   # waits until each draws the run
        assert [p.name for p in pages] == ["Train", "Discriminator"] * 2
        for wp in pages:
            assert_no_exception(wp.page)
            if wp.name == "Train":
                assert "watch-test" in wp.page.locator("h1").first.inner_text()
                step = wp.page.locator('[data-testid="stMetricValue"]').first
                assert step.is_visible() and f"/ {ENDLESS:,}" in step.inner_text()
            else:
                assert wp.page.locator(".st-key-disc-hist canvas").first.is_visible()
        pages[0].page.wait_for_timeout(WARMUP_S * 1000)
        seen = measure_window(tail, WINDOW_S, pages, worker=wpid)
        errors = [e for wp in pages for e in wp.errors]
        for wp in pages:
            assert_no_exception(wp.page)
    finally:
        close_pages(pages)
        run.stop(wait=30)

    frac = seen.rate / alone.rate
    print(f"\nring8 watched by 4 pages: {seen.rate:,.0f} vs {alone.rate:,.0f} steps/s unwatched = {frac:.2f}; "
          f"chromium {seen.chromium_cpu:.2f} cores, worker {seen.worker_cpu:.2f} (alone {alone.worker_cpu:.2f}), "
          f"{seen.refresh_count} page refreshes in {WINDOW_S:.0f} s; "
          f"{sum(wp.reloads for wp in pages)} pages reloaded after their websocket gave up")
    assert not errors, f"page errors: {errors[:5]}"
    assert seen.refresh_count >= 4, "the pages did not refresh during the window: they are not live"
    assert frac >= MIN_FRAC, f"4 pages slowed the run to {frac:.2f} of its unwatched rate (< {MIN_FRAC})"

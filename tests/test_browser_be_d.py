"""Be the discriminator in a real browser: a student marks every picture of a round "real", presses Check and sees
50% (half of the round is real) beside D's accuracy; G then takes single steps, New round shows new pictures from
the newer G, and the tally keeps both rounds with their steps."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from engine_util import wait_for

from browser_util import assert_no_exception, wait_connected, wait_script_finished
from ganlab.config import get_preset
from ganlab.registry import get_registry

pytestmark = pytest.mark.browser
TINY = dict(batch_size=16, steps=100_000, g_layers=(32,), d_layers=(32,), checkpoint_every=1)
PICTURES = '[class*="st-key-bed-label-"]'
SCREENSHOT = Path("/tmp/be_d.png")


def image_sources(page) -> list[str]:
    return page.locator('[data-testid="stImage"] img').evaluate_all("els => els.map(e => e.src)")


def mark_all(page, answer: str) -> None:
    """Click `answer` under each picture, one rerun at a time, as a student would."""
    for i in range(page.locator(PICTURES).count()):
        page.locator(PICTURES).nth(i).locator("button", has_text=re.compile(f"^{answer}$")).click()
        wait_script_finished(page)
    page.get_by_text("8 of 8 marked.").wait_for()


def metric(page, label: str) -> str:
    box = page.locator('[data-testid="stMetric"]').filter(has_text=label)
    return box.locator('[data-testid="stMetricValue"]').inner_text().strip()


def check(page) -> None:
    page.locator(".st-key-bed-check button").click()
    wait_script_finished(page)
    page.locator('[data-testid="stMetric"]').filter(has_text="Your accuracy").wait_for()


def test_label_check_step_and_new_round(streamlit_server: str, runs_dir: Path, browser_page) -> None:
    run = get_registry(runs_dir).create(get_preset("mnist-mlp").config(**TINY), "be D", paused=True)
    try:
        wait_for(lambda: run.state == "paused" and run.store.checkpoint_steps() == [0], "the paused run's "
                 "first checkpoint", 120)
        page = browser_page
        page.goto(f"{streamlit_server}/Be_D?run={run.id}")
        wait_connected(page)
        page.locator(PICTURES).nth(7).wait_for()
        page.locator('[data-testid="stImage"] img').nth(7).wait_for()   # pictures can come a moment after the buttons
        assert page.locator(PICTURES).count() == 8 and len(image_sources(page)) == 8
        page.get_by_text(re.compile(r"drawn by G at step 0\.")).wait_for()
        assert page.locator(".st-key-bed-check button").is_disabled()

        mark_all(page, "real")
        check(page)
        assert metric(page, "Your accuracy") == "50%"               # all "real" on a half/half round
        assert re.fullmatch(r"\d{1,3}%", metric(page, "D's accuracy")), metric(page, "D's accuracy")
        assert metric(page, "G's step") == "0"
        assert page.get_by_text("D says real when its score is above 0.5", exact=False).count() == 1
        assert page.locator('[data-testid="stMarkdownContainer"]').filter(has_text=re.compile(r"^(real|fake) · you")
                                                                           ).count() == 8
        page.locator('[data-testid="stTable"]').filter(has_text="50").wait_for()   # the tally's first row
        page.locator('[data-testid="stEChartsChart"] canvas').first.wait_for()
        assert_no_exception(page)
        page.screenshot(path=str(SCREENSHOT))

        for step in (1, 2, 3):                                        # G improves: three single steps
            run.request_step("both")
            wait_for(lambda s=step: run.store.checkpoint_steps()[-1:] == [s], f"step {step}'s checkpoint", 60)
        before = image_sources(page)
        page.locator(".st-key-bed-new button").click()
        wait_script_finished(page)
        page.get_by_text(re.compile(r"drawn by G at step 3\.")).wait_for()
        assert page.locator('[data-testid="stMetric"]').count() == 0, "a new round starts unchecked"
        after = image_sources(page)
        assert len(after) == 8 and after != before, "New round shows new pictures"

        mark_all(page, "fake")
        check(page)
        assert metric(page, "Your accuracy") == "50%" and metric(page, "G's step") == "3"
        tally = page.locator('[data-testid="stTable"]').inner_text()
        assert re.search(r"1\s+0\s+50", tally) and re.search(r"2\s+3\s+50", tally), tally
        assert_no_exception(page)
        page.set_viewport_size({"width": 1400, "height": 1250})     # the tally chart too (the app scrolls inside)
        page.locator('[data-testid="stEChartsChart"]').first.wait_for()
        page.screenshot(path=str(SCREENSHOT.with_name("be_d_round2.png")))
    finally:
        run.stop(wait=30)

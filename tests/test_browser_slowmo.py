"""Slow motion in a real browser: a student opens a 2D run's Discriminator page, presses D step, G step and D+G
step, reads what each did (the counter and D's numbers change), plays the animation in the plotly figure and
resets the copy to the run's checkpoint. Screenshots: test-artifacts/screenshots/slowmo_*.png."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from browser_util import assert_no_exception, screenshot, wait_connected, wait_script_finished
from ganlab.config import get_preset
from ganlab.registry import get_registry
from ganlab.trainer import Trainer

pytestmark = pytest.mark.browser
SMALL = dict(g_layers=(32, 32), d_layers=(32, 32), noise_dim=2, grid_size=8, batch_size=128, device="cpu")
LABELS = {"d": "D step", "g": "G step", "both": "D+G step", "reset": "Reset to the run's latest"}
NUMBERS = re.compile(r"D\(x\) (-?[\d.]+) → (-?[\d.]+), D\(G\(z\)\) (-?[\d.]+) → (-?[\d.]+)")


def button(page, kind: str):
    return page.locator(f".st-key-slowmo-{kind}").get_by_role("button", name=LABELS[kind], exact=True)


def press(page, kind: str, says: str) -> str:
    """Click a slow-motion button, wait for the sentence that starts with `says`, return the sentence."""
    button(page, kind).click()
    wait_script_finished(page)
    sentence = page.locator('[data-testid="stMarkdownContainer"]').filter(has_text=says)
    sentence.first.wait_for()
    return sentence.first.inner_text()


def counter(page) -> str:
    return page.locator('[data-testid="stMarkdownContainer"]').filter(has_text="Slow-motion copy").first.inner_text()


def show_section(page) -> None:
    """Scroll the app so the slow-motion section fills the view (the app scrolls inside its own container)."""
    page.get_by_role("heading", name="Slow motion").scroll_into_view_if_needed()
    page.get_by_role("heading", name="Slow motion").evaluate("e => e.scrollIntoView({block: 'start'})")


def test_step_play_and_reset(streamlit_server: str, runs_dir: Path, browser_page) -> None:
    cfg = get_preset("ring8").config(**SMALL)
    run = get_registry(runs_dir).create(cfg, "slow motion", start=False)
    t = Trainer(cfg, device="cpu")                    # a short run: 60 steps, a snapshot and a checkpoint
    for _ in range(60):
        t.train_step()
    run.store.save_snapshot(t.snapshot())
    run.store.save_checkpoint(t.state_dict(), t.step)
    disk = sorted(p.name for p in run.store.path.rglob("*"))
    page = browser_page
    page.set_viewport_size({"width": 1400, "height": 1100})
    page.goto(f"{streamlit_server}/Discriminator?run={run.id}")
    wait_connected(page)
    page.get_by_role("heading", name="Slow motion").wait_for()
    page.locator(".st-key-slowmo-on").get_by_text("Step it slowly").click()   # off until a student turns it on
    page.locator('[data-testid="stPlotlyChart"] .main-svg').first.wait_for()
    assert "0 D updates and 0 G updates since the run's checkpoint at step 60 (now step 60)" in counter(page)
    show_section(page)
    screenshot(page, "slowmo_start")

    said = press(page, "d", "D update 1")
    a_real, b_real, a_fake, b_fake = map(float, NUMBERS.search(said).groups())
    assert (a_real, a_fake) != (b_real, b_fake), said
    assert "heatmap shifted" in said and "the fakes stay" in said
    assert "1 D update and 0 G updates" in counter(page)
    page.locator(".slider-container").first.wait_for()              # the figure now has frames and a slider
    show_section(page)
    screenshot(page, "slowmo_d_step")

    said = press(page, "g", "G update 1")
    assert "along their arrows" in said and NUMBERS.search(said), said
    assert "1 D update and 1 G update since" in counter(page) and "(now step 61)" in counter(page)
    show_section(page)
    screenshot(page, "slowmo_g_step")
    page.locator(".updatemenu-button").filter(has_text="play the update").click()
    page.wait_for_timeout(350)                                     # mid-transition: the fakes on their way
    screenshot(page, "slowmo_g_playing")
    page.wait_for_timeout(2500)

    said = press(page, "both", "D+G step 1")
    assert "heatmap shifted" in said and "along their arrows" in said
    assert "2 D updates and 2 G updates" in counter(page) and "(now step 62)" in counter(page)
    assert page.locator(".slider-container .slider-label").count() >= 3 or \
        page.get_by_text("after G update").count() >= 1
    show_section(page)
    screenshot(page, "slowmo_both")

    page.locator(".st-key-slowmo-reset").get_by_role("button").first.click()
    wait_script_finished(page)
    page.get_by_text(re.compile(r"0 D updates and 0 G updates since the run's checkpoint at step 60")).wait_for()
    assert page.get_by_text("D+G step 1").count() == 0
    assert_no_exception(page)
    assert sorted(p.name for p in run.store.path.rglob("*")) == disk, "the run's files stay as they were"

"""The live lab in a real browser: quick-start ring8, watch charts update in place, move a latent slider,
visit every page. Uses the session's `streamlit run` server and headless Chromium (tests/conftest.py).

"In place" is checked directly: a keyed ECharts chart must keep the same <canvas> element while its
content changes (a remount would be a blank frame, i.e. flicker).
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from engine_util import wait_for

from browser_util import assert_no_exception, screenshot, wait_connected, wait_script_finished
from ganlab.config import get_preset
from ganlab.registry import get_registry

pytestmark = pytest.mark.browser
LIVE_TIMEOUT_S = 90.0   # a shared 2-core CI box can be slow to take the first training steps


def _canvas(page, key: str):
    return page.locator(f".st-key-{key} canvas").first


def _button(page, key: str):
    # .first: while a rerun is drawing, the previous run's copy of an element can still be on the page
    return page.locator(f".st-key-{key} button").first


def _tag(page, key: str) -> None:
    """Mark the chart's canvas element so a later check can tell whether it was replaced."""
    _canvas(page, key).evaluate("el => { el.dataset.ganlabTag = 'kept'; }")


def _wait_changed(page, key: str, before: bytes, timeout_s: float = LIVE_TIMEOUT_S) -> bytes:
    """The chart's new pixels, once they differ from `before` (a screenshot a second: they are not cheap)."""
    def changed() -> bytes | None:
        now = _canvas(page, key).screenshot()
        return now if now != before else None
    return wait_for(changed, f"chart {key!r} to change", timeout_s, every=1.0)


def _metric_step(page) -> int:
    text = page.locator('[data-testid="stMetricValue"]').first.inner_text()
    return int(re.sub(r"[^0-9]", "", text.split("/")[0]) or 0)


def _go(page, title: str) -> None:
    # The whole last word of the link's name: "Discriminator" must not also match "Be the discriminator".
    name = re.compile(rf"(^|\s){re.escape(title)}$")
    page.locator('[data-testid="stSidebarNav"]').get_by_role("link", name=name).click()
    wait_connected(page)


def test_ring8_quick_start_updates_live_without_remounting(streamlit_server: str, browser_page) -> None:
    page = browser_page
    page.goto(streamlit_server)
    wait_connected(page)
    page.get_by_role("button", name="ring8", exact=True).click()
    page.wait_for_url(re.compile(r".*/Train\?run=.*"), timeout=60_000)
    wait_connected(page)
    _canvas(page, "train-loss").wait_for(timeout=60_000)
    assert_no_exception(page)

    # Training moves the step counter and redraws the loss chart in the same canvas element.
    wait_for(lambda: _metric_step(page) >= 20, lambda: f"step 20 (the page shows {_metric_step(page)})",
             LIVE_TIMEOUT_S, every=1.0)
    step0 = _metric_step(page)
    _tag(page, "train-loss")
    first = _canvas(page, "train-loss").screenshot()
    # The step first (a screenshot taken mid-animation can differ from the next one with no new data: the
    # same step was read twice in CI), then the chart's pixels.
    wait_for(lambda: _metric_step(page) > step0, lambda: f"a step after {step0} (the page shows {_metric_step(page)})",
             LIVE_TIMEOUT_S, every=1.0)
    _wait_changed(page, "train-loss", first)
    assert _canvas(page, "train-loss").get_attribute("data-ganlab-tag") == "kept", "loss chart was remounted"
    screenshot(page, "lab-train")

    # Pause, then one "Step both": a new snapshot, and the Train page's 2D panel redraws in place.
    _button(page, "train-pause").click()
    page.get_by_text("Paused").first.wait_for(timeout=60_000)
    wait_script_finished(page)
    _canvas(page, "train-samples").wait_for(timeout=60_000)
    _tag(page, "train-samples")
    first = _canvas(page, "train-samples").screenshot()
    _button(page, "train-both").click()
    _wait_changed(page, "train-samples", first, timeout_s=60)
    assert _canvas(page, "train-samples").get_attribute("data-ganlab-tag") == "kept", "2D panel was remounted"
    assert_no_exception(page)

    # The Discriminator page's layered 2D view: hiding a layer redraws the same canvas.
    _go(page, "Discriminator")
    _canvas(page, "disc-2d").wait_for(timeout=60_000)
    page.wait_for_timeout(1000)
    _tag(page, "disc-2d")
    first = _canvas(page, "disc-2d").screenshot()
    page.get_by_text("gradient arrows").click()
    _wait_changed(page, "disc-2d", first, timeout_s=30)
    assert _canvas(page, "disc-2d").get_attribute("data-ganlab-tag") == "kept", "2D view was remounted"
    page.get_by_text("gradient arrows").click()
    page.wait_for_timeout(1000)
    assert_no_exception(page)
    screenshot(page, "lab-discriminator")

    # Stop from the UI, so the run does not keep the CPU busy for the other browser tests.
    _go(page, "Train")
    _button(page, "train-stop").click()
    page.get_by_text(re.compile(r"stopped at step \d+")).first.wait_for(timeout=60_000)
    assert_no_exception(page)


def test_latent_slider_changes_the_image_and_every_page_renders(streamlit_server: str, browser_page,
                                                                 runs_dir: Path) -> None:
    # A tiny finished image run written by this process; the server finds it in the shared runs directory.
    cfg = get_preset("mnist-mlp").config(batch_size=16, steps=20, g_layers=(32,), d_layers=(32,))
    run = get_registry(runs_dir).create(cfg, "tiny digits")
    run.join(120)
    assert run.view().state == "finished", run.view().message
    try:   # the image run queued a quality measure on a worker thread of this process: let it finish
        from ganlab.quality import wait_idle
        wait_idle(timeout=60)
    except ImportError:
        pass

    page = browser_page
    page.goto(f"{streamlit_server}/Latent?run={run.id}")
    wait_connected(page)
    image = page.locator('[data-testid="stImage"] img').first
    image.wait_for(timeout=60_000)
    before = image.get_attribute("src")
    assert page.get_by_text(re.compile(r"generated 16 samples in [0-9.]+ ms")).count() == 1
    thumb = page.locator('[data-testid="stSlider"] input[type="range"]').first
    thumb.focus()
    for _ in range(20):          # 20 x 0.05: a whole unit along z[0]
        page.keyboard.press("ArrowRight")
    wait_script_finished(page)
    wait_for(lambda: image.get_attribute("src") != before, "moving z[0] to change the generated image", 30, every=0.5)
    assert_no_exception(page)
    screenshot(page, "lab-latent")

    # The Samples page's downloads are built on click (callables): a real PNG and a real GIF arrive.
    _go(page, "Samples")
    for label, magic in (("Download this grid (PNG)", b"\x89PNG"), ("Download the evolution", b"GIF8")):
        with page.expect_download(timeout=60_000) as download:
            page.get_by_role("button", name=label).click()
        assert Path(download.value.path()).read_bytes()[:4] == magic

    # Every page in the navigation renders this run without an exception.
    # (a link's text starts with its icon's ligature name, e.g. "bar_chart\nDiscriminator")
    titles = [t.strip().splitlines()[-1] for t in page.locator('[data-testid="stSidebarNav"] a').all_inner_texts()]
    assert {"Home", "Train", "Samples", "Latent explorer", "Discriminator"} <= set(titles)
    for title in titles:
        _go(page, title)
        page.wait_for_timeout(1500)   # let images and charts arrive before the screenshot
        assert_no_exception(page)
        screenshot(page, "lab-page-" + re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-"))

"""The model overview (issue 16) in a real browser: a ring8 run trains, the Train page's overview graph is drawn
on a canvas that stays in place, and its numbers (also a caption under it) change as the run trains; the noise
view sits beside the 2D view. Saves /tmp/overview.png for a look at how it reads on a projector.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from engine_util import wait_for

from browser_util import assert_no_exception, screenshot, wait_connected
from ganlab.config import get_preset
from ganlab.registry import get_registry

pytestmark = pytest.mark.browser
LIVE_TIMEOUT_S = 90.0   # a shared 2-core box can be slow to take the first training steps
NUMBERS = re.compile(r"^Step [\d,]+: D\(x\) ")


def _caption(page) -> str:
    """The overview's numbers as the page shows them in text ('' before the first row)."""
    texts = page.locator(".st-key-frag-train [data-testid='stCaptionContainer']").all_inner_texts()
    return next((t.strip() for t in texts if NUMBERS.match(t.strip())), "")


def test_overview_numbers_change_as_the_run_trains(streamlit_server: str, browser_page, runs_dir: Path) -> None:
    cfg = get_preset("ring8").config(noise_dim=2, steps=100_000, stats_every=5, snapshot_every=50)
    run = get_registry(runs_dir).create(cfg, "overview")
    try:
        page = browser_page
        page.goto(f"{streamlit_server}/Train?run={run.id}")
        wait_connected(page)
        canvas = page.locator(".st-key-train-overview canvas").first
        canvas.wait_for(timeout=60_000)
        first = wait_for(lambda: _caption(page), "the overview's numbers under the graph", LIVE_TIMEOUT_S, every=0.5)
        canvas.evaluate("el => { el.dataset.ganlabTag = 'kept'; }")
        pixels = canvas.screenshot()

        later = wait_for(lambda: (c := _caption(page)) != first and c, f"the numbers to move on from {first!r}",
                         LIVE_TIMEOUT_S, every=0.5)
        step = lambda text: int(text.split(":")[0].removeprefix("Step ").replace(",", ""))  # noqa: E731
        assert step(later) > step(first), (first, later)
        for part in ("D(G(z)) ", "loss D ", "loss G ", "|∇D| ", "|∇G| ", "(D outputs P(real))"):
            assert part in later
        wait_for(lambda: canvas.screenshot() != pixels, "the graph's pixels to follow its numbers", 30, every=1.0)
        assert canvas.get_attribute("data-ganlab-tag") == "kept", "the overview graph was remounted"

        # 2-d noise: its view beside the 2D view, both drawn
        page.locator(".st-key-train-noise canvas").first.wait_for(timeout=60_000)
        page.locator(".st-key-train-samples canvas").first.wait_for(timeout=60_000)
        assert page.get_by_text(re.compile(r"Noise at step [\d,]+: G maps each z")).count() == 1
        assert_no_exception(page)
        page.set_viewport_size({"width": 1400, "height": 1500})   # Streamlit scrolls inside: a tall window
        page.get_by_text(re.compile(r"Noise at step")).first.scroll_into_view_if_needed()
        page.screenshot(path="/tmp/overview.png")
        screenshot(page, "train-overview")
    finally:
        run.stop(wait=30)

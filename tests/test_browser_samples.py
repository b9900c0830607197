"""Samples in a real browser: the evolution GIF downloads while the animation plays (its deferred file used to be
dropped by the fragment's fast reruns: MediaFileStorageError), and a run that finishes while its Train page is
open shows its final state without a reload."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from browser_util import assert_no_exception, wait_connected
from ganlab.config import get_preset
from ganlab.registry import get_registry

pytestmark = pytest.mark.browser
SMALL = dict(batch_size=64, g_layers=(16, 16), d_layers=(16, 16), stats_every=10, snapshot_every=100,
             checkpoint_every=500)


def test_gif_downloads_during_play(streamlit_server: str, runs_dir: Path, browser_page) -> None:
    run = get_registry(runs_dir).create(get_preset("ring8").config(steps=1500, **SMALL), "gif during play")
    run.join(180)
    assert run.state == "finished", run.message
    page = browser_page
    page.goto(f"{streamlit_server}/Samples?run={run.id}")
    wait_connected(page)
    page.locator(".st-key-samples-play button").first.click()
    page.get_by_role("button", name="Stop").first.wait_for(timeout=30_000)
    page.wait_for_timeout(1500)                                # several animation frames
    with page.expect_download(timeout=60_000) as info:
        page.locator(".st-key-samples-gif button").first.click()
    path = info.value.path()
    assert path is not None and Path(path).read_bytes()[:6] in (b"GIF89a", b"GIF87a")
    assert_no_exception(page)


def test_a_run_that_finishes_while_watched_shows_finished(streamlit_server: str, runs_dir: Path,
                                                          browser_page) -> None:
    run = get_registry(runs_dir).create(get_preset("ring8").config(steps=2500, **SMALL), "finishes watched")
    page = browser_page
    page.goto(f"{streamlit_server}/Train?run={run.id}")
    wait_connected(page)
    page.get_by_text(re.compile(r"finished 2500 steps")).first.wait_for(timeout=180_000)
    page.wait_for_timeout(1500)
    badges = page.get_by_text(re.compile(r"finished$")).filter(visible=True)   # the badge: icon + state
    assert badges.count() >= 1, "the header's state badge follows the run"
    assert page.locator(".st-key-train-pause button").first.is_disabled(), "Pause is off for a finished run"
    assert_no_exception(page)


def test_downloads_and_links_follow_the_slider(streamlit_server: str, runs_dir: Path, browser_page) -> None:
    """Moving the slider reran only its fragment, so 'Download this grid' and Copy link kept the newest step
    (Samples), and the Discriminator's link dropped the chosen step."""
    run = get_registry(runs_dir).create(get_preset("ring8").config(steps=400, **SMALL), "slider links")
    run.join(180)
    assert run.state == "finished", run.message
    first = run.view().snapshots[0].step
    page = browser_page
    for path, link_key, png in (("Samples", "samples-link", True), ("Discriminator", "disc-link", False)):
        page.goto(f"{streamlit_server}/{path}?run={run.id}")
        wait_connected(page)
        thumb = page.get_by_role("slider").first
        thumb.wait_for()
        thumb.focus()
        page.keyboard.press("Home")                     # the first snapshot, as a student drags it there
        page.get_by_text(f"step {first:,}", exact=True).first.wait_for()
        page.wait_for_timeout(1500)                     # the redraw the move asks for
        wait_connected(page)
        if png:
            with page.expect_download(timeout=60_000) as info:
                page.locator(".st-key-samples-png button").first.click()
            assert info.value.suggested_filename.endswith(f"-step{first}.png"), info.value.suggested_filename
        page.locator(f".st-key-{link_key} button").first.click()
        code = page.locator('[data-testid="stPopoverBody"] [data-testid="stCode"] code').first
        code.wait_for(state="visible")
        assert f"step={first}" in code.inner_text(), (path, code.inner_text())
        page.keyboard.press("Escape")
        assert_no_exception(page)

"""Compare and rewind-and-branch in a real browser: two finished runs written into the server's runs
directory side by side on Compare; a branch made from the Runs page drawn growing out of its parent.
Uses the session's `streamlit run` server and headless Chromium (tests/conftest.py)."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from engine_util import wait_for
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from browser_util import assert_no_exception, screenshot, wait_connected, wait_script_finished
from ganlab.config import get_preset
from ganlab.registry import get_registry

pytestmark = pytest.mark.browser
SMALL = dict(steps=300, batch_size=128, g_layers=(32, 32), d_layers=(32, 32), stats_every=10,
             snapshot_every=100, checkpoint_every=100)


def finished(runs_dir: Path, name: str, **kw):
    """A small ring8 run trained here, in the test process; the server finds it on disk."""
    run = get_registry(runs_dir).create(get_preset("ring8").config(**{**SMALL, **kw}), name)
    run.join(180)
    assert run.view().state == "finished", run.view().message
    return run


def test_compare_two_finished_runs(streamlit_server: str, runs_dir: Path, browser_page) -> None:
    a = finished(runs_dir, "cmp nonsaturating")
    b = finished(runs_dir, "cmp hinge", loss="hinge")
    page = browser_page
    page.goto(f"{streamlit_server}/Compare?run={b.id}")
    wait_connected(page)
    for key in ("compare-loss", "compare-scores"):
        page.locator(f".st-key-{key} canvas").first.wait_for(timeout=60_000)
    for i in (0, 1):                                       # one ECharts 2D view per run, no plotly
        page.locator(f".st-key-compare-2d-{i} canvas").first.wait_for(timeout=60_000)
    assert page.locator('[data-testid="stPlotlyChart"]').count() == 0
    page.wait_for_timeout(1500)                            # let the canvases paint before the screenshot
    assert_no_exception(page)
    chosen = page.locator('[data-testid="stMultiSelect"]').first.inner_text()
    assert a.name in chosen and b.name in chosen
    page.set_viewport_size({"width": 1400, "height": 2000})   # Streamlit scrolls inside: show the whole page
    page.wait_for_timeout(1500)
    assert_no_exception(page)
    shot = screenshot(page, "compare-two-runs")
    assert shot.stat().st_size > 10_000


def test_branch_from_runs_page_then_compare_parent_and_child(streamlit_server: str, runs_dir: Path,
                                                             browser_page) -> None:
    parent = finished(runs_dir, "branch parent")
    page = browser_page
    page.goto(f"{streamlit_server}/Runs?run={parent.id}")
    wait_connected(page)
    page.get_by_role("tab", name="Rewind and branch").click()
    wait_script_finished(page)
    hinge = page.get_by_role("option", name="hinge", exact=True)
    for _ in range(3):   # a rerun that lands while the list is open closes it (seen once on a loaded box)
        page.get_by_role("combobox", name=re.compile(r"^loss")).click()
        try:
            hinge.wait_for(timeout=10_000)
            break
        except PlaywrightTimeout:
            page.keyboard.press("Escape")
            wait_script_finished(page)
    hinge.click()
    page.get_by_role("button", name=re.compile("Branch from this checkpoint")).click()
    wait_script_finished(page)
    page.get_by_text(re.compile(r"continues branch parent from step 300")).wait_for(timeout=60_000)
    assert_no_exception(page)
    page.set_viewport_size({"width": 1400, "height": 1600})
    page.get_by_role("tab", name="Rewind and branch").click()
    page.wait_for_timeout(1000)
    screenshot(page, "runs-branch")
    page.set_viewport_size({"width": 1400, "height": 900})

    def child_dirs():
        out = []
        for status in runs_dir.glob("*/status.json"):
            parent_rec = json.loads(status.read_text()).get("parent") or {}
            if parent_rec.get("run") == parent.id:
                out.append(status.parent.name)
        return out

    (child_id,) = child_dirs()
    child = get_registry(runs_dir).get(child_id)
    wait_for(lambda: child.view(with_snapshots=False).state in ("finished", "failed"),
             lambda: f"the branch to end; it is {child.view(with_snapshots=False).state}", 120, every=0.5)
    view = child.view(with_snapshots=False)
    assert view.state == "finished" and view.cfg.loss == "hinge", view.message

    page.goto(f"{streamlit_server}/Compare?run={child_id}")
    wait_connected(page)
    page.set_viewport_size({"width": 1400, "height": 2200})
    page.locator(f".st-key-compare-branch-{child_id} canvas").first.wait_for(timeout=60_000)
    page.wait_for_timeout(1500)
    assert_no_exception(page)
    screenshot(page, "compare-branch")

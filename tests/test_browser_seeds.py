"""Seeds side by side in a real browser: a student starts 4 seeds of ring8 on the page; four panels appear, each
with its own 2D view, and every panel's step counter advances while the group trains as one batched model; Stop
the group stops all four."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from engine_util import wait_for

from browser_util import SCREENSHOT_DIR, assert_no_exception, screenshot, wait_connected, wait_script_finished
from ganlab.registry import get_registry

pytestmark = pytest.mark.browser
PANEL = ".st-key-seed-panel-{}"
STEP = re.compile(r"seed (\d+) · step ([\d,]+)")
MEASURED = re.compile(r"modes covered · \d+% high quality \(step [1-9]")   # a measure after step 0


def panel_steps(page) -> list[tuple[int, int]]:
    """(seed, step) of each panel, read from its heading."""
    out = []
    for i in range(4):
        m = STEP.search(page.locator(PANEL.format(i)).first.inner_text())
        out.append((int(m.group(1)), int(m.group(2).replace(",", ""))) if m else (-1, -1))
    return out


def steps_if(page, ok) -> list[tuple[int, int]] | None:
    steps = panel_steps(page)
    return steps if ok(steps) else None


def test_four_seeds_of_ring8_train_side_by_side(streamlit_server: str, runs_dir: Path, browser_page) -> None:
    page = browser_page
    page.goto(f"{streamlit_server}/Seeds")
    wait_connected(page)
    page.get_by_text("ring8 over seeds 0 to 3").first.wait_for()
    page.get_by_role("button", name="Start the seeds").click()
    for i in range(4):
        page.locator(PANEL.format(i)).wait_for(timeout=60_000)
    assert page.locator('[class*="st-key-seed-panel-"]').count() == 4
    page.get_by_text(re.compile("one batched model for 4 seeds")).first.wait_for()
    reg = get_registry(runs_dir)
    group = next(g for g in reg.groups() if g.runs[0].name.startswith("ring8"))
    try:
        first = wait_for(lambda: steps_if(page, lambda s: all(step > 0 for _, step in s)),
                         "every panel's first step", 120)
        assert [seed for seed, _ in first] == [0, 1, 2, 3]
        wait_for(lambda: page.locator('[class*="st-key-seed-panel-"] canvas').count() >= 4, "four 2D views", 60)
        screenshot(page, "seeds_training")
        later = wait_for(lambda: steps_if(page, lambda s: all(b[1] > a[1] for a, b in zip(first, s))),
                         lambda: f"every step counter to advance past {first}: {panel_steps(page)}", 60)
        measured = page.locator('[class*="st-key-seed-panel-"]').filter(has_text=MEASURED)
        wait_for(lambda: measured.count() == 4, "every seed's modes measured after training", 120)
        page.get_by_text(re.compile(r"Modes covered \(of 8\) per seed")).first.wait_for(timeout=30_000)
        SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
        page.locator(".st-key-frag-seeds").screenshot(path=str(SCREENSHOT_DIR / "seeds_grid.png"))
        assert_no_exception(page)
        pids = {r.store.read_status().get("pid") for r in group.runs}
        assert len(pids) == 1, f"one worker trains the group, got pids {pids}"   # ... later steps {later}
        page.get_by_role("button", name="Stop the group").click()
        wait_script_finished(page)
        wait_for(lambda: all(r.state == "stopped" for r in group.runs), "all four stopped", 60)
        page.get_by_text("stopped").first.wait_for(timeout=30_000)
        screenshot(page, "seeds_stopped", full_page=True)
        print("steps first", first, "later", later)
    finally:
        for run in group.runs:
            run.stop(wait=30)

"""The two canvases in a real browser, drawn with the mouse as a student would: on Train a stroke in the top-left of
the 2D box and two clicked dots in the bottom right, then "Train on my drawing", start a csv run whose points lie
under the stroke and the dots, and the page shows it; on Be the discriminator a stroke drawn as a digit gets D's
score as a number and G's closest sample as a picture, and clearing the canvas brings back the hint.

The canvas (streamlit-drawable-canvas, a components-v2 element: no iframe, its own shadow DOM, which Playwright's
CSS locators pierce) is Fabric.js: the `upper-canvas` takes the mouse."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from engine_util import wait_for

from browser_util import assert_no_exception, wait_connected, wait_script_finished
from ganlab.config import get_preset
from ganlab.registry import get_registry
from ganlab.store import RunStore

pytestmark = pytest.mark.browser
TINY = dict(batch_size=16, steps=100_000, g_layers=(32,), d_layers=(32,), checkpoint_every=1)
DATA_SHOT, DIGIT_SHOT = Path("/tmp/draw_data.png"), Path("/tmp/draw_digit.png")
NAME = "drawn by hand"


def fresh_session(page, url: str) -> None:
    """Open `url` as a first visit: its first run writes the owner cookie (an iframe at the top of the page), the
    stroke's rerun an empty element in its place; had the elements below shifted, the canvas would have remounted
    and lost the drawing. (A fresh server's first deep link reruns at once, which would hide a shift: so the page
    is loaded twice, without cookies.)"""
    for _ in range(2):
        page.context.clear_cookies()
        page.goto(url)
        wait_connected(page)


def box_of(canvas) -> dict:
    """The canvas's box on screen, once it is laid out (a fresh server's first rerun remounts it)."""
    canvas.wait_for()
    return wait_for(canvas.bounding_box, "the canvas laid out", 30, every=0.2)


def stroke(page, canvas, points: list[tuple[float, float]]) -> None:
    """Drag the mouse through `points` (canvas pixels from the top left), then wait for the rerun it causes."""
    canvas.scroll_into_view_if_needed()
    box = box_of(canvas)
    x0, y0 = box["x"], box["y"]
    page.mouse.move(x0 + points[0][0], y0 + points[0][1])
    page.mouse.down()
    for (a, b), (c, d) in zip(points, points[1:]):
        for t in np.linspace(0, 1, 8)[1:]:
            page.mouse.move(x0 + a + t * (c - a), y0 + b + t * (d - b))
    page.mouse.up()
    wait_script_finished(page)


def inked(canvas_box, rgb: tuple[int, int, int]) -> int:
    """Pixels of the stroke colour `rgb` on the Fabric canvas that holds the drawing, as the student sees it."""
    return canvas_box.locator("canvas.lower-canvas.dc-canvas").evaluate(
        """(c, rgb) => { const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; let n = 0;
           for (let i = 0; i < d.length; i += 4) {
             const off = Math.abs(d[i] - rgb[0]) + Math.abs(d[i + 1] - rgb[1]) + Math.abs(d[i + 2] - rgb[2]);
             if (d[i + 3] > 128 && off < 60) n++; }
           return n; }""", list(rgb))


def _run_named(runs_dir: Path, name: str) -> str | None:
    for d in runs_dir.iterdir():
        if d.is_dir() and not d.name.startswith(".") and RunStore(d).read_status().get("name") == name:
            return d.name
    return None


def test_draw_data_and_train_on_it(streamlit_server: str, runs_dir: Path, browser_page) -> None:
    page = browser_page
    page.set_viewport_size({"width": 1400, "height": 1100})
    fresh_session(page, f"{streamlit_server}/Train")
    details = page.locator('[data-testid="stExpander"] details').filter(has_text="New run").first
    if details.get_attribute("open") is None:     # collapsed while another run is selected
        details.locator("summary").first.click()
    canvas = page.locator(".st-key-cfg-_canvas canvas.upper-canvas")
    assert box_of(canvas)["width"] == 320 == box_of(canvas)["height"]
    # a "7" in the top-left quarter: x -3.5..-1, y 3.5..1 (40 canvas pixels per unit, y up)
    stroke(page, canvas, [(20, 20), (120, 20), (60, 120)])
    ink = inked(page.locator(".st-key-cfg-_canvas"), (79, 70, 229))
    assert ink > 2000
    page.locator(".st-key-cfg-_draw_mode button", has_text="points").click()   # and two dots at (2.5, -2.5), (3, -2)
    wait_script_finished(page)
    for x, y in ((260, 260), (280, 240)):
        page.mouse.click(box_of(canvas)["x"] + x, box_of(canvas)["y"] + y)
        wait_script_finished(page)
    assert inked(page.locator(".st-key-cfg-_canvas"), (79, 70, 229)) > ink + 100, "the stroke and the dots"
    page.get_by_label("Run name").first.fill(NAME)
    canvas.evaluate("e => e.scrollIntoView({block: 'center'})")
    page.screenshot(path=str(DATA_SHOT))
    page.get_by_role("button", name="Train on my drawing").click()

    run_id = wait_for(lambda: _run_named(runs_dir, NAME), f"a run named {NAME!r}", 60, every=0.3)
    try:
        cfg = json.loads((runs_dir / run_id / "config.json").read_text())
        path = Path(cfg["data_path"])
        assert cfg["dataset"] == "csv" and path.parent == runs_dir / ".uploads" and path.is_file(), cfg
        points = np.loadtxt(path, delimiter=",", skiprows=1)
        assert points.shape == (2000, 2)
        margin = 0.35                                     # half the 14-pixel brush, plus jitter
        seven, dots = points[points[:, 0] < 0], points[points[:, 0] >= 0]
        assert (seven[:, 0] > -3.5 - margin).all() and (seven[:, 0] < -1.0 + margin).all(), seven.min(0)
        assert (seven[:, 1] > 1.0 - margin).all() and (seven[:, 1] < 3.5 + margin).all(), seven.max(0)
        assert 100 < len(dots) < 700, len(dots)           # two dots (radius 5 plus the brush) beside a stroke
        near = np.minimum(np.hypot(*(dots - [2.5, -2.5]).T), np.hypot(*(dots - [3.0, -2.0]).T))
        assert (near < 0.45).all(), near.max()
        assert (np.hypot(*(dots - [2.5, -2.5]).T) < 0.3).any() and (np.hypot(*(dots - [3.0, -2.0]).T) < 0.3).any()
        on_top = seven[seven[:, 1] > 3.0]                 # the top bar spans x -3.5..-1 at y 3.5
        assert len(on_top) > 200 and on_top[:, 0].max() > -1.5 and on_top[:, 0].min() < -3.0
        page.get_by_role("heading", name=NAME).wait_for(timeout=60_000)   # the page shows the new run
        wait_for(lambda: RunStore(runs_dir / run_id).snapshot_steps(), "its first snapshot", 90, every=0.3)
        page.get_by_text(re.compile(r"^Blue: real points")).wait_for(timeout=60_000)   # the 2D view of the drawing
        assert_no_exception(page)
        page.get_by_text(re.compile(r"^Blue: real points")).scroll_into_view_if_needed()
        page.screenshot(path=str(DATA_SHOT.with_name("draw_data_run.png")))
    finally:   # stopped, not just told to: the next browser test gets the CPU and the training slots
        get_registry(runs_dir).get(run_id).stop(wait=30)


def test_draw_a_digit_and_ask_d(streamlit_server: str, runs_dir: Path, browser_page) -> None:
    run = get_registry(runs_dir).create(get_preset("mnist-mlp").config(**TINY), "ask D", paused=True)
    try:
        wait_for(lambda: run.state == "paused" and run.store.checkpoint_steps() == [0], "the first checkpoint", 120)
        page = browser_page
        page.set_viewport_size({"width": 1400, "height": 1200})
        fresh_session(page, f"{streamlit_server}/Be_D?run={run.id}")
        page.get_by_text("Draw a digit on the black square").wait_for()
        images = page.locator('[data-testid="stImage"] img')
        images.nth(7).wait_for()                                          # the round's eight pictures
        assert images.count() == 8 and page.get_by_text("D's score").count() == 0
        canvas = page.locator('[class*="st-key-bed-draw-"] canvas.upper-canvas')
        assert box_of(canvas)["width"] == 280
        stroke(page, canvas, [(150, 50), (140, 140), (130, 230)])        # a "1"
        score = page.locator('[data-testid="stMetric"]').filter(has_text="D's score")
        score.wait_for()
        value = score.locator('[data-testid="stMetricValue"]').inner_text().strip()
        assert re.fullmatch(r"\d\.\d{3}", value) and 0 <= float(value) <= 1, value
        assert page.get_by_text("Draw a digit on the black square").count() == 0
        assert images.count() == 10                                       # what D sees, and G's closest sample
        white = inked(page.locator('[class*="st-key-bed-draw-"]'), (255, 255, 255))
        assert white > 2000, f"the stroke stays on the canvas (no remount): {white} white pixels"
        closest = page.locator('[data-testid="stImage"]').filter(has_text="G's closest sample")
        assert closest.locator("img").evaluate("e => e.naturalWidth") == 112     # 28 pixels, 4x
        distance = page.locator('[data-testid="stMetric"]').filter(has_text="closest sample")
        assert float(distance.locator('[data-testid="stMetricValue"]').inner_text()) > 0
        assert_no_exception(page)
        canvas.evaluate("e => e.scrollIntoView({block: 'center'})")
        page.screenshot(path=str(DIGIT_SHOT))

        page.locator('[class*="st-key-bed-draw-"] button[aria-label="Reset canvas & history"]').click()   # clear it
        page.get_by_text("Draw a digit on the black square").wait_for()              # the hint again, no error
        assert score.count() == 0 and images.count() == 8
        assert_no_exception(page)
    finally:
        run.stop(wait=30)

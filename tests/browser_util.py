"""Helpers for browser tests that drive the real Streamlit app in headless Chromium.

Fixtures live in conftest.py (`streamlit_server`, `browser_page`); these are the plain functions a test
calls on a Playwright `Page`: wait until Streamlit has finished a run, check that no exception is shown,
save screenshots. Selectors are the `data-testid` / `data-test-*` attributes Streamlit's frontend sets
(checked against Streamlit 1.67's bundled JavaScript).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # playwright is optional at import time: tests skip without it
    from playwright.sync_api import Page

REPO_ROOT = Path(__file__).resolve().parent.parent
SCREENSHOT_DIR = REPO_ROOT / "test-artifacts" / "screenshots"
DOCS_DIR = REPO_ROOT / "docs"
# README images are scaled down to this width so the repository stays small.
DOCS_MAX_WIDTH = 1000

CONNECTED = '[data-testid="stApp"][data-test-connection-state="CONNECTED"]'
# stApp's data-test-script-state is "initial" until the first run, then running / notRunning /
# rerunRequested / stopRequested / compilationError. A syntax error in the script ends in compilationError,
# which we accept as "finished" so assert_no_exception can report it instead of a timeout.
SCRIPT_FINISHED = (
    '[data-testid="stApp"][data-test-script-state="notRunning"], '
    '[data-testid="stApp"][data-test-script-state="compilationError"]'
)
# The header's "Running..." indicator; present only while a script or fragment runs.
RUNNING_ICON = '[data-testid="stStatusWidgetRunningIcon"]'
EXCEPTION = '[data-testid="stException"]'


def wait_connected(page: Page, timeout_ms: float = 60_000) -> None:
    """Wait until the websocket is connected and the current script run has finished.

    Pages with `st.fragment(run_every=...)` rerun the fragment every tick; the selector wait still succeeds
    because it only needs one moment between ticks. For live content, wait on the content itself
    (`stPlotlyChart`, `stImage img`, `stMetricValue`) after this.
    """
    page.wait_for_selector(CONNECTED, timeout=timeout_ms)
    page.wait_for_selector(SCRIPT_FINISHED, timeout=timeout_ms)


def wait_script_finished(page: Page, timeout_ms: float = 60_000) -> None:
    """After a click that triggers a rerun: wait for the run to start (briefly) and then to finish."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

    try:  # a fast rerun can be over before we look, so seeing "running" is optional
        page.wait_for_selector('[data-testid="stApp"][data-test-script-state="running"]', timeout=1_000)
    except PlaywrightTimeoutError:
        pass
    page.wait_for_selector(SCRIPT_FINISHED, timeout=timeout_ms)


def assert_no_exception(page: Page) -> None:
    """Fail with the exception text if the app shows an `st.exception` box or a traceback anywhere."""
    boxes = page.locator(EXCEPTION)
    if boxes.count():
        raise AssertionError(f"app shows {boxes.count()} exception box(es); first:\n{boxes.first.inner_text()}")
    body = page.locator("body").inner_text()
    if "Traceback" in body:
        start = body.index("Traceback")
        raise AssertionError(f"page text contains a traceback:\n{body[start:start + 2000]}")


def screenshot(page: Page, name: str, *, full_page: bool = False) -> Path:
    """Save `test-artifacts/screenshots/<name>.png`; with GANLAB_DOCS_SCREENSHOTS=1 also `docs/<name>.png`.

    The docs copy is scaled to at most DOCS_MAX_WIDTH pixels wide and palette-quantised, so README
    images cost tens of kB rather than MBs.
    """
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOT_DIR / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    if os.environ.get("GANLAB_DOCS_SCREENSHOTS") == "1":
        _write_docs_copy(path, DOCS_DIR / f"{name}.png")
    return path


def _write_docs_copy(src: Path, dst: Path) -> None:
    from PIL import Image

    dst.parent.mkdir(parents=True, exist_ok=True)
    with Image.open(src) as img:
        img = img.convert("RGB")
        if img.width > DOCS_MAX_WIDTH:
            height = round(img.height * DOCS_MAX_WIDTH / img.width)
            img = img.resize((DOCS_MAX_WIDTH, height), Image.Resampling.LANCZOS)
        # 256 colours is plenty for UI screenshots and shrinks the PNG several times.
        img = img.quantize(colors=256, method=Image.Quantize.MEDIANCUT)
        img.save(dst, optimize=True)

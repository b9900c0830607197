"""Smoke test through a real browser: the home page loads, connects and runs without an exception."""
from __future__ import annotations

import pytest

from browser_util import assert_no_exception, screenshot, wait_connected

pytestmark = pytest.mark.browser


def test_home_page_renders_without_exception(streamlit_server: str, browser_page) -> None:
    browser_page.goto(streamlit_server)
    wait_connected(browser_page)
    assert_no_exception(browser_page)
    # A blank page would also be "exception-free": require that the script drew something.
    elements = browser_page.locator('[data-testid="stMain"] [data-testid="stElementContainer"]')
    assert elements.count() > 0, "home page rendered no elements"
    screenshot(browser_page, "home")

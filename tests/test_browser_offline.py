"""Offline and quiet, as a classroom needs it: every page, opened by a deep link on a live run, makes no request
outside the lab's own server, and the server's log stays quiet while the run trains and the pages watch it.

The one kind of 404 a page sees is Streamlit's own base-path probe: on a deep link such as /Train the frontend
first asks /Train/_stcore/health and /Train/_stcore/host-config, then the real /_stcore/... (streamlit#7074,
open upstream). Answering those probes with 200 would make the frontend take /Train as its base path and open
its websocket there, so they stay 404 and the test names them exactly: any other failed request fails it.
"""
from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from engine_util import wait_for

from browser_util import assert_no_exception, wait_connected
from ganlab.bench_watch import ENDLESS
from ganlab.config import get_preset
from ganlab.registry import RunRegistry

pytestmark = pytest.mark.browser
PAGES = ["", "Train", "Samples", "Latent", "Discriminator", "Learn", "Compare", "Runs", "Be_D", "Seeds"]
WATCH_S = 4.0
UPSTREAM_PROBE = re.compile(rf"^/({'|'.join(p for p in PAGES if p)})/_stcore/(health|host-config)$")
QUIET_BYTES = 4_000   # what the log may grow by while a run trains and every page is opened on it


def test_pages_on_a_live_run_stay_on_the_server_and_the_log_stays_quiet(
        streamlit_server: str, server_log: Path, runs_dir: Path, chromium_browser) -> None:
    run = RunRegistry(runs_dir).create(get_preset("ring8").config().replace(steps=ENDLESS), "offline-test")
    context = chromium_browser.new_context(viewport={"width": 1400, "height": 900})
    requests: list[str] = []
    failures: list[str] = []
    page = context.new_page()
    page.on("request", lambda r: requests.append(r.url))
    page.on("response", lambda r: failures.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    page.on("requestfailed", lambda r: failures.append(f"failed ({r.failure}) {r.url}"))
    server = urlsplit(streamlit_server).netloc
    try:
        wait_for(lambda: run.summary().step >= 50, lambda: f"step 50 (the run is at {run.summary().step})", 120,
                 every=0.2)
        size0 = server_log.stat().st_size
        for name in PAGES:
            page.goto(f"{streamlit_server}/{name}?run={run.id}")
            wait_connected(page)
            page.wait_for_timeout(WATCH_S * 1000)
            assert_no_exception(page)
        grown = server_log.read_bytes()[size0:].decode(errors="replace")
    finally:
        context.close()
        run.stop(wait=30)
    outside = sorted({u for u in requests if urlsplit(u).scheme not in ("data", "blob")
                      and urlsplit(u).netloc != server})
    assert not outside, f"requests outside the lab's server: {outside[:10]}"
    unexpected = [f for f in failures if not UPSTREAM_PROBE.match(urlsplit(f.split()[-1]).path)]
    assert not unexpected, f"failed requests other than Streamlit's base-path probe: {unexpected[:10]}"
    assert len(requests) > 100, "the tour made almost no requests: the pages did not load"
    canvas = [u for u in requests if "/_stcore/bidi-components/streamlit-drawable-canvas" in u]
    assert any(u.endswith(".js") for u in canvas), "Train's drawing canvas did not load its frontend from the server"
    assert len(grown.encode()) <= QUIET_BYTES, f"the server log grew {len(grown.encode())} bytes:\n{grown[-2000:]}"
    assert "Traceback" not in grown and "Warning" not in grown, grown[-2000:]

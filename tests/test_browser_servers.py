"""The stateless web tier in a real browser: two Streamlit server processes on one runs directory.

A run started from the Home page of one server trains in its own worker process; a page of the other server
shows it, pauses it and resumes it, and the first server's page follows. Training state lives in the run
directory and the worker, never in either server.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from engine_util import wait_for

from browser_util import assert_no_exception, wait_connected, wait_script_finished
from ganlab.store import RunStore

pytestmark = pytest.mark.browser


def _button(page, key: str):
    return page.locator(f".st-key-{key} button").first


def _status(runs_dir: Path, run_id: str) -> dict:
    return RunStore(runs_dir / run_id).read_status()


def _wait_state(runs_dir: Path, run_id: str, state: str, timeout: float = 60.0) -> None:
    wait_for(lambda: _status(runs_dir, run_id).get("state") == state,
             lambda: f"run {run_id} to become {state}; its status: {_status(runs_dir, run_id)}", timeout, every=0.1)


def test_a_run_started_on_one_server_is_paused_and_resumed_from_another(
        streamlit_server: str, second_server: str, runs_dir: Path, chromium_browser) -> None:
    one = chromium_browser.new_context(viewport={"width": 1400, "height": 900})
    two = chromium_browser.new_context(viewport={"width": 1400, "height": 900})
    try:
        a, b = one.new_page(), two.new_page()
        a.goto(streamlit_server)
        wait_connected(a)
        a.get_by_role("button", name="ring8", exact=True).click()
        a.wait_for_url(re.compile(r".*/Train\?run=.*"), timeout=60_000)
        run_id = a.url.split("run=")[1].split("&")[0]
        _wait_state(runs_dir, run_id, "running", 90)
        cookies = {c["name"]: c["value"] for c in one.cookies()}
        assert len(cookies.get("ganlab_owner", "")) == 32, "the owner token is kept for a reload"
        assert _status(runs_dir, run_id)["owner"] != cookies["ganlab_owner"], "status.json holds its hash only"
        pid = _status(runs_dir, run_id)["pid"]

        b.goto(f"{second_server}/Train?run={run_id}")
        wait_connected(b)
        b.get_by_text(re.compile("running", re.I)).first.wait_for(timeout=60_000)
        _button(b, "train-pause").click()
        _wait_state(runs_dir, run_id, "paused", 30)
        b.get_by_text("Paused").first.wait_for(timeout=30_000)
        a.get_by_text("Paused").first.wait_for(timeout=30_000)   # the first server's page follows the disk
        wait_script_finished(b)

        _button(b, "train-resume").click()
        _wait_state(runs_dir, run_id, "running", 30)
        assert _status(runs_dir, run_id)["pid"] == pid, "the same worker resumed; no second one started"
        _button(a, "train-stop").click()
        _wait_state(runs_dir, run_id, "stopped", 60)
        a.get_by_text(re.compile(r"stopped at step \d+")).first.wait_for(timeout=60_000)
        assert_no_exception(a)
        assert_no_exception(b)
    finally:
        one.close()
        two.close()

"""The configuration a class uses, through its real entry point: every page opened through app.py (as a browser
opens it) x {no passphrase, passphrase set and locked, unlocked} x {no runs, a run in each state}: no exception.

Before this test no page had ever run through app.py with GANLAB_INSTRUCTOR_PASSPHRASE set, and every page raised
StreamlitDuplicateElementKey (app.py and the page both drew the passphrase box). The runs are real: live ones
have real worker processes (running, paused, queued behind slots this test holds), ended ones are copies of a
finished run's directory with the state their status.json would hold.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from engine_util import tiny, wait_for
from streamlit.testing.v1 import AppTest

from ganlab import control
from ganlab.states import RunState

REPO = Path(__file__).resolve().parent.parent
APP = str(REPO / "app.py")
PASS = "rehearsal passphrase"
PAGES = ["Home", *sorted(f"pages/{p.name}" for p in (REPO / "pages").glob("*.py"))]
ENDED = {"stopped": "Stopped by the owner", "diverged": "Diverged: the loss is not finite",
         "failed": "Worker killed by SIGKILL at step 60", "interrupted": "The server stopped while it trained"}


def _exceptions(at: AppTest) -> list[str]:
    return [e.value for e in at.exception] + [e.value for e in at.error if "Traceback" in str(e.value)]


@pytest.fixture(scope="module")
def class_runs(tmp_path_factory: pytest.TempPathFactory):
    """{state: run id} for a run in every state, in one runs directory (GANLAB_MAX_ACTIVE=2)."""
    import streamlit as st

    from ganlab.quality import wait_idle
    from ganlab.registry import RunRegistry

    runs = tmp_path_factory.mktemp("class") / "runs"
    mp = pytest.MonkeyPatch()
    mp.setenv("GANLAB_RUNS_DIR", str(runs))
    mp.setenv("GANLAB_MAX_ACTIVE", "2")
    st.cache_resource.clear()
    reg = RunRegistry(runs, max_active=2)
    ids: dict[str, str] = {}
    done = reg.create(tiny(steps=60), "finished run")
    done.join(60)
    wait_for(lambda: done.state == "finished", "the finished run")
    ids["finished"] = done.id
    for state, message in ENDED.items():   # the ended states, as their status.json holds them
        path = runs / f"{done.id[:-4]}{state[:4]}"
        shutil.copytree(done.store.path, path)
        status = json.loads((path / "status.json").read_text())
        status.update(state=state, message=message, name=f"{state} run")
        (path / "status.json").write_text(json.dumps(status))
        ids[state] = path.name
    ids["created"] = reg.create(tiny(), "created run", start=False).id
    running = reg.create(tiny(), "running run")
    wait_for(lambda: running.state == "running" and running.step > 0, "the running run")
    ids["running"] = running.id
    paused = reg.create(tiny(), "paused run", paused=True)
    wait_for(lambda: paused.state == "paused", lambda: f"the paused run ({paused.state})")
    ids["paused"] = paused.id
    held = []   # hold every free slot from here, so the next run waits in the queue
    while (slot := control.acquire_slot(runs, 2, "held by the test")) is not None:
        held.append(slot[0])
    queued = reg.create(tiny(), "queued run")
    wait_for(lambda: queued.state == "queued", lambda: f"the queued run ({queued.state})")
    ids["queued"] = queued.id
    assert set(ids) == {s.value for s in RunState}
    st.cache_resource.clear()
    yield ids
    for fd in held:
        control.release(fd)
    reg.shutdown(timeout=10)
    wait_idle(timeout=60)
    st.cache_resource.clear()
    mp.undo()


def _app(monkeypatch: pytest.MonkeyPatch, passphrase: str | None) -> AppTest:
    if passphrase:
        monkeypatch.setenv("GANLAB_INSTRUCTOR_PASSPHRASE", passphrase)
    else:
        monkeypatch.delenv("GANLAB_INSTRUCTOR_PASSPHRASE", raising=False)
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["_owner"] = "5" * 32
    at.session_state["_owner_cookie"] = True
    return at.run()


MODES = ["no passphrase", "locked", "unlocked"]


def _open(mode: str, monkeypatch: pytest.MonkeyPatch) -> AppTest:
    at = _app(monkeypatch, None if mode == "no passphrase" else PASS)
    assert not _exceptions(at), (mode, "Home", _exceptions(at))
    if mode == "unlocked":
        at.text_input(key="_instructor_pass").input(PASS).run()
        assert at.session_state["_instructor"] is True
    return at


@pytest.mark.parametrize("mode", MODES)
def test_every_page_with_no_runs(mode, tmp_path, monkeypatch, clean_cache):
    monkeypatch.setenv("GANLAB_RUNS_DIR", str(tmp_path / "empty"))
    at = _open(mode, monkeypatch)
    for page in PAGES:
        (at.run() if page == "Home" else at.switch_page(page).run())   # Home is where the app opens
        assert not _exceptions(at), (mode, page, _exceptions(at))
        boxes = [w for w in at.text_input if w.key == "_instructor_pass"]
        assert len(boxes) == (1 if mode == "locked" else 0), (mode, page)


@pytest.mark.parametrize("mode", MODES)
def test_every_page_with_a_run_in_each_state(mode, class_runs, monkeypatch):
    import streamlit as st
    st.cache_resource.clear()
    at = _open(mode, monkeypatch)
    for page in PAGES:
        for state, run_id in class_runs.items():
            at.session_state["run_id"] = run_id
            (at.run() if page == "Home" else at.switch_page(page).run())
            assert not _exceptions(at), (mode, page, state, _exceptions(at))
            if mode == "unlocked":
                assert any(b.key == "instructor-lock" for b in at.button), (page, state)

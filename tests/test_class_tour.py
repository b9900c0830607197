"""Defects an instructor's tour found in what pages say about a run, each with the test that failed before."""
from __future__ import annotations

from apptest_util import open_page
from engine_util import tiny, wait_for

from ganlab import control
from ui.common import picker_key


def test_a_queued_branch_reads_its_start_step(lab):
    """The Runs page showed 'queued · step 0' beside 'continues from step 100' while a branch waited for a slot."""
    parent = lab.create(tiny(steps=120, checkpoint_every=50), "parent")
    parent.join(60)
    wait_for(lambda: parent.state == "finished", "the parent run")
    held = []
    while (slot := control.acquire_slot(lab.runs_dir, lab.max_active, "held by the test")) is not None:
        held.append(slot[0])
    try:
        child = lab.branch(parent, 100, steps=300)
        wait_for(lambda: child.state == "queued", lambda: f"the branch to queue ({child.state})")
        assert child.step == 100 and child.summary().step == 100
        at = open_page("pages/7_Runs.py", child.id).run()
        assert not at.exception, [e.value for e in at.exception]
        caption = " ".join(c.value for c in at.caption)
        assert "step 100/300" in caption and "step 0/" not in caption, caption
        assert any("continues from parent" in i.value for i in at.info), [i.value for i in at.info]
    finally:
        for fd in held:
            control.release(fd)


def test_home_points_to_the_first_lesson_and_lists_say_which_runs_are_mine(lab, monkeypatch):
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    from ganlab.lesson_book import LESSONS
    from ganlab.owners import owner_id

    monkeypatch.delenv("GANLAB_INSTRUCTOR_PASSPHRASE", raising=False)
    lab.create(tiny(), "my run", start=False, owner=owner_id("7" * 32))
    lab.create(tiny(), "their run", start=False, owner=owner_id("8" * 32))
    at = AppTest.from_file(str(Path(__file__).resolve().parent.parent / "app.py"), default_timeout=60)
    at.session_state["_owner"] = "7" * 32
    at.session_state["_owner_cookie"] = True
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert any(LESSONS[0].title in i.value and "first lesson" in i.value for i in at.info)
    links = [el.proto for el in at.get("page_link")]
    assert any(p.page.endswith("5_Learn.py") or "Learn" in p.page for p in links), links
    picker = at.selectbox(key=picker_key(at.session_state["run_id"]))
    options = picker.options
    assert any("my run" in o and o.endswith("· yours") for o in options), options
    assert any("their run" in o and "yours" not in o for o in options), options
    home = " ".join(m.value for m in at.markdown)
    assert "**my run** · yours" in home and "**their run** · yours" not in home


def test_another_students_run_is_refused_before_any_confirmation(lab, monkeypatch):
    """Delete on another student's run asked 'Delete ...? This cannot be undone.' and refused only after Yes."""
    from ganlab.owners import owner_id

    monkeypatch.setenv("GANLAB_INSTRUCTOR_PASSPHRASE", "pw")
    run = lab.create(tiny(), "alice's run", start=False, owner=owner_id("a" * 32))
    at = open_page("pages/7_Runs.py", run.id)
    at.session_state["_owner"] = "b" * 32
    at.session_state["_owner_cookie"] = True
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    for key in ("runs-delete", "runs-rename"):
        assert at.button(key=key).disabled, key
    assert any("Someone else started this run" in c.value for c in at.caption)
    assert not any(w.value.startswith("Delete **") for w in at.warning), "no confirmation for a refused delete"
    assert run.store.path.exists()


def test_a_message_survives_the_state_watchs_redraw(lab):
    """watch_states redraws a page whenever any run changes state (in a class, every few seconds): a popped
    one-shot message (here a configuration link's note) vanished a second after it appeared."""
    at = open_page("pages/1_Train.py")
    at.query_params["preset"] = "ring8"
    at.query_params["steps"] = "5000"
    at.run()
    note = lambda: [i.value for i in at.info if "A link filled this form" in i.value]  # noqa: E731
    assert note(), [i.value for i in at.info]
    at.session_state["_watch_redraw"] = True   # what the watch sets before its st.rerun()
    at.run()
    assert note(), "the redraw wiped the message"
    at.run()                                   # a person's rerun keeps it too: the form still holds the link
    assert note(), "a rerun wiped the link's note"
    [b for b in at.button if b.label == "Start new run"][0].click().run()   # starting the run ends it
    assert not note() and len(lab.list()) == 1, [i.value for i in at.info]

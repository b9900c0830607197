"""Owners and the instructor: anyone watches and branches; only the owner or the instructor commands a run."""
from __future__ import annotations

import pytest
from apptest_util import open_page
from engine_util import tiny

from ganlab import owners
from ganlab.owners import NotAllowed, Who

PASS = "correct horse battery staple"
CONTROL_KEYS = ("train-pause", "train-stop", "train-both", "train-d", "train-g")


def _buttons(at) -> dict[str, bool]:
    return {k: at.button(key=k).disabled for k in CONTROL_KEYS}


@pytest.fixture
def owned_run(lab):
    owner = Who("a" * 32, False)
    run = lab.create(tiny(), "alice's run", owner=owner.owner_id, paused=True)
    return run, owner


def _train_page(run, token: str, monkeypatch, passphrase: str | None = PASS):
    if passphrase:
        monkeypatch.setenv("GANLAB_INSTRUCTOR_PASSPHRASE", passphrase)
    else:
        monkeypatch.delenv("GANLAB_INSTRUCTOR_PASSPHRASE", raising=False)
    at = open_page("pages/1_Train.py", run.id)
    at.session_state["_owner"] = token
    at.session_state["_owner_cookie"] = True
    return at.run()


def test_others_watch_but_cannot_command(owned_run, monkeypatch):
    run, _ = owned_run
    at = _train_page(run, "b" * 32, monkeypatch)
    assert not at.exception, [e.value for e in at.exception]
    assert all(_buttons(at).values()), _buttons(at)
    assert any("Someone else started this run" in c.value for c in at.caption)
    assert at.get("form_submit_button") and all(b.disabled for b in at.get("form_submit_button")
                                                if "Apply" in b.label)


def test_the_owner_commands_their_run(owned_run, monkeypatch):
    run, owner = owned_run
    at = _train_page(run, owner.token, monkeypatch)
    assert not _buttons(at)["train-stop"] and not _buttons(at)["train-both"]
    at.button(key="train-stop").click().run()
    assert not at.exception
    run.join(30)
    assert run.state == "stopped"


def test_the_instructor_unlocks_every_run_and_a_wrong_passphrase_does_not(owned_run, monkeypatch):
    run, _ = owned_run
    at = _train_page(run, "c" * 32, monkeypatch)
    at.text_input(key="_instructor_pass").input("wrong").run()
    assert all(_buttons(at).values()) and any("not the instructor" in e.value for e in at.error)
    at.text_input(key="_instructor_pass").input(PASS).run()
    assert not any(_buttons(at).values()), _buttons(at)
    assert any("every run is unlocked" in c.value for c in at.caption)


def test_without_a_passphrase_everyone_is_the_instructor(owned_run, monkeypatch):
    run, _ = owned_run
    at = _train_page(run, "d" * 32, monkeypatch, passphrase=None)
    assert not _buttons(at)["train-stop"]
    assert not at.get("text_input") or all(t.key != "_instructor_pass" for t in at.text_input)


def test_rules_and_the_per_person_cap(monkeypatch):
    alice, bob, teacher = Who("1" * 32, False), Who("2" * 32, False), Who("3" * 32, True)
    assert owners.may_command(alice.owner_id, alice) and not owners.may_command(alice.owner_id, bob)
    assert owners.may_command(None, teacher) and not owners.may_command(None, alice), "CLI runs: instructor only"
    with pytest.raises(NotAllowed, match="watch it and branch it"):
        owners.check(alice.owner_id, bob, "stop")
    monkeypatch.setenv("GANLAB_SESSION_RUNS", "2")
    owners.check_quota([alice.owner_id, bob.owner_id], alice)
    with pytest.raises(NotAllowed, match="limit is 2"):
        owners.check_quota([alice.owner_id, alice.owner_id, bob.owner_id], alice)
    owners.check_quota([teacher.owner_id] * 10, teacher)
    assert owners.passphrase_ok("x", None) and owners.passphrase_ok(PASS, PASS) and not owners.passphrase_ok("", PASS)
    assert alice.token not in alice.owner_id, "status.json stores a hash, never the token"

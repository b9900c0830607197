"""Owners and the instructor: anyone watches and branches; only the owner or the instructor commands a run."""
from __future__ import annotations

import pytest
from apptest_util import open_page
from engine_util import tiny, wait_for

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
    # the right passphrase at once is refused unseen: a wrong guess makes the next one wait (1 s after one)
    at.text_input(key="_instructor_pass").input(PASS).run()
    assert all(_buttons(at).values()) and any("try again in" in e.value for e in at.error), \
        [e.value for e in at.error]
    wait_for(lambda: owners.GUESSES.wait_s([f"session:{'c' * 32}"]) == 0, "the wait after one wrong guess", 5)
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


def test_the_unlock_token_is_bound_signed_and_expires(tmp_path):
    secret = owners.server_secret(tmp_path)
    assert owners.server_secret(tmp_path) == secret and len(secret) == 32   # every server reads the same one
    assert (tmp_path / owners.SECRET_FILE).stat().st_mode & 0o077 == 0
    token = owners.unlock_token(secret, "a" * 32, PASS, now=1000.0, ttl=60)
    assert PASS not in token
    assert owners.unlock_token_ok(secret, "a" * 32, PASS, token, now=1059.0)
    assert not owners.unlock_token_ok(secret, "a" * 32, PASS, token, now=1061.0)          # expired
    assert not owners.unlock_token_ok(secret, "b" * 32, PASS, token, now=1000.0)          # another browser
    assert not owners.unlock_token_ok(secret, "a" * 32, "a new passphrase", token, now=1000.0)
    assert not owners.unlock_token_ok(b"x" * 32, "a" * 32, PASS, token, now=1000.0)       # another secret
    expires, sig = token.split(".")
    for forged in (f"{int(expires) + 10**6}.{sig}", f"{expires}.{'0' * 64}", "", "1.2.3", "\ud800.x", None, 7,
                   f"{'9' * 40}.{sig}"):
        assert not owners.unlock_token_ok(secret, "a" * 32, PASS, forged, now=1000.0), forged


def test_wrong_guesses_wait_longer_and_longer():
    g = owners.Guesses()
    keys = ["session:x", "address:10.0.0.7"]
    assert g.wait_s(keys, now=0.0) == 0
    waits = []
    for i in range(8):
        g.failed(keys, now=float(i * 1000))
        waits.append(g.wait_s(keys, now=float(i * 1000)))
    assert waits == [1, 2, 4, 8, 16, 32, 64, 128]
    # a new tab is a new session on the same address: still waits
    assert g.wait_s(["session:new tab", "address:10.0.0.7"], now=7000.0) == 128
    for _ in range(30):
        g.failed(keys, now=7000.0)
    assert g.wait_s(keys, now=7000.0) == owners.GUESS_DELAY_MAX_S   # 100 guesses: hours, not 26 s
    g.succeeded(keys)
    assert g.wait_s(keys, now=7000.0) == 0


def test_a_lone_surrogate_passphrase_is_a_wrong_guess():
    assert not owners.passphrase_ok("\ud800", PASS)
    assert not owners.passphrase_ok(None, PASS)

"""Who may command a run: the browser session that started it, or the instructor.

A run's status.json records a hash of its owner's token (never the token). Anyone may watch and branch any
run; stopping, pausing, stepping, editing, renaming and deleting need the owner or the instructor. The
instructor is whoever gives the passphrase from GANLAB_INSTRUCTOR_PASSPHRASE (or the app's Streamlit
secrets); with no passphrase set, as on a laptop, everyone is the instructor. Runs without an owner (the
CLI's, older ones) are the instructor's. A session may have at most GANLAB_SESSION_RUNS runs queued or
training at once (default 3), so one student cannot fill the queue for the class.
"""
from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass
from typing import Iterable

SESSION_RUNS = 3


class NotAllowed(PermissionError):
    """The session may watch this run but not command it; the message says who can."""


@dataclass(frozen=True)
class Who:
    token: str
    instructor: bool

    @property
    def owner_id(self) -> str:
        return owner_id(self.token)


def owner_id(token: str) -> str:
    return hashlib.sha256(f"ganlab-owner:{token}".encode()).hexdigest()[:32]


def passphrase_ok(given: str, expected: str | None) -> bool:
    """True when no passphrase is set, or `given` matches it (compared in constant time)."""
    if not expected:
        return True
    return hmac.compare_digest(given.encode(), expected.encode())


def may_command(run_owner: object, who: Who) -> bool:
    return who.instructor or (isinstance(run_owner, str) and run_owner == who.owner_id)


def check(run_owner: object, who: Who, action: str) -> None:
    if not may_command(run_owner, who):
        raise NotAllowed(f"only the student who started this run, or the instructor, can {action} it "
                         "(you can watch it and branch it)")


def session_runs() -> int:
    try:
        return max(1, int(os.environ.get("GANLAB_SESSION_RUNS", SESSION_RUNS)))
    except ValueError:
        return SESSION_RUNS


def check_quota(live_owners: Iterable[object], who: Who) -> None:
    """NotAllowed when `who` already has GANLAB_SESSION_RUNS runs queued or training (the instructor has no cap)."""
    if who.instructor:
        return
    mine = sum(1 for o in live_owners if o == who.owner_id)
    if mine >= session_runs():
        raise NotAllowed(f"you already have {mine} runs queued or training (the limit is {session_runs()} per "
                         "person): stop one of them first")

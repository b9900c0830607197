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
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

SESSION_RUNS = 3
UNLOCK_TTL_S = 12 * 3600       # an instructor's unlock lasts a teaching day, then the passphrase is asked again
GUESS_DELAY_MAX_S = 600.0      # the longest wait between two wrong passphrase guesses
SECRET_FILE = ".secret"        # under the runs directory: every server on it signs and checks the same tokens


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
    try:
        return hmac.compare_digest(given.encode(), expected.encode())
    except (UnicodeEncodeError, AttributeError):   # a lone surrogate from a crafted request, or not text at all
        return False


# --- the unlock that survives a reload ------------------------------------------------------------------------
def server_secret(runs_dir: Path) -> bytes:
    """32 random bytes kept in `<runs>/.secret` (mode 0600), made once by whichever server comes first: the key of
    every unlock token, so a token from one server process is good on the others and none is forged without it."""
    path = Path(runs_dir) / SECRET_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        data = path.read_bytes()
        if len(data) >= 32:
            return data[:32]
        # a torn write (a crash between create and write): write a new one, and earlier tokens stop working
        data = secrets.token_bytes(32)
        path.write_bytes(data)
        return data
    data = secrets.token_bytes(32)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return data


def _signature(secret: bytes, token: str, expected: str, expires: int) -> str:
    # The passphrase's hash is signed too: changing the passphrase ends every unlock given under the old one.
    pass_hash = hashlib.sha256(expected.encode("utf-8", "replace")).hexdigest()
    msg = f"ganlab-instructor:{token}:{pass_hash}:{expires}".encode("utf-8", "replace")
    return hmac.new(secret, msg, hashlib.sha256).hexdigest()


def unlock_token(secret: bytes, token: str, expected: str, now: float | None = None,
                 ttl: float = UNLOCK_TTL_S) -> str:
    """'<expiry>.<HMAC>' for the browser holding owner token `token`: never the passphrase, useless in another
    browser (it is bound to that browser's owner token), and worthless after its expiry."""
    expires = int((time.time() if now is None else now) + ttl)
    return f"{expires}.{_signature(secret, token, expected, expires)}"


def unlock_token_ok(secret: bytes, token: str, expected: str | None, given: object, now: float | None = None) -> bool:
    if not expected or not isinstance(given, str) or given.count(".") != 1:
        return False
    expires, sig = given.split(".")
    if not expires.isdigit() or len(expires) > 12 or int(expires) < (time.time() if now is None else now):
        return False
    return hmac.compare_digest(sig.encode("ascii", "replace"),
                               _signature(secret, token, expected, int(expires)).encode())


class Guesses:
    """Wrong passphrase guesses slow the next ones down: after n wrong guesses from one session or one address,
    the next guess is taken only 2**(n-1) s later (at most GUESS_DELAY_MAX_S), so 100 guesses take hours, not
    seconds, while a teacher who mistypes once waits a second. Process-wide and thread-safe (sessions share it);
    a right guess clears the session's count and its address's."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._fails: dict[str, tuple[int, float]] = {}    # key -> (wrong guesses, when the last one was)

    @staticmethod
    def _delay(n: int) -> float:
        return 0.0 if n <= 0 else min(GUESS_DELAY_MAX_S, 2.0 ** (n - 1))

    def wait_s(self, keys: Iterable[str], now: float | None = None) -> float:
        """Seconds before these keys may guess again (0 when they may now)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            waits = [last + self._delay(n) - now for n, last in (self._fails.get(k, (0, 0.0)) for k in keys)]
        return max([0.0, *waits])

    def failed(self, keys: Iterable[str], now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            for k in keys:
                n, _ = self._fails.get(k, (0, 0.0))
                self._fails[k] = (n + 1, now)
            if len(self._fails) > 10_000:   # a flood of made-up sessions: forget the oldest half
                for k, _ in sorted(self._fails.items(), key=lambda kv: kv[1][1])[:5_000]:
                    del self._fails[k]

    def succeeded(self, keys: Iterable[str]) -> None:
        with self._lock:
            for k in keys:
                self._fails.pop(k, None)


GUESSES = Guesses()


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

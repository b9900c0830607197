"""Who this browser is (ganlab.owners): an owner token that survives a reload, and the instructor's unlock.

The token lives in st.session_state and in a cookie (`ganlab_owner`, set once by a zero-height component),
so reloading the page or opening a second tab keeps the student's runs theirs. The passphrase comes from
GANLAB_INSTRUCTOR_PASSPHRASE or `.streamlit/secrets.toml` (`instructor_passphrase = "..."`), never the repo.

The unlock survives a reload too: a right passphrase sets the cookie `ganlab_instructor` to an expiring HMAC
token (owners.unlock_token, keyed by the runs directory's server secret and bound to this browser's owner
token; never the passphrase itself). Lock clears it. Wrong guesses wait longer and longer (owners.GUESSES, per
session and per address), and a guess made before its wait is over is refused without being compared.
"""
from __future__ import annotations

import math
import os
import re
import uuid

import streamlit as st

from ganlab.owners import GUESSES, UNLOCK_TTL_S, Who, passphrase_ok, server_secret, unlock_token, unlock_token_ok
from ganlab.store import default_runs_dir
from ui.messages import flash

COOKIE = "ganlab_owner"
UNLOCK_COOKIE = "ganlab_instructor"
_TOKEN = re.compile(r"^[0-9a-f]{32}$")


def passphrase() -> str | None:
    env = os.environ.get("GANLAB_INSTRUCTOR_PASSPHRASE")
    if env:
        return env
    try:
        value = st.secrets.get("instructor_passphrase")
    except Exception:  # noqa: BLE001 - no secrets file (the usual case on a laptop)
        return None
    return str(value) if value else None


def _cookie(name: str) -> str:
    try:
        value = st.context.cookies.get(name, "")
    except Exception:  # noqa: BLE001 - no browser context (AppTest)
        value = ""
    return value if isinstance(value, str) else ""


def _secret() -> bytes:
    return server_secret(default_runs_dir().resolve())


def me() -> Who:
    """This session's identity; the instructor when no passphrase is set or after the unlock."""
    token = st.session_state.get("_owner")
    if not token:
        cookie = _cookie(COOKIE)
        token = cookie if _TOKEN.match(cookie) else uuid.uuid4().hex
        st.session_state["_owner"] = token
        st.session_state["_owner_cookie"] = token == cookie
        expected = passphrase()
        if expected and st.session_state["_owner_cookie"] and "_instructor" not in st.session_state:
            # a reload or a new tab of an unlocked browser: its signed cookie unlocks it again
            st.session_state["_instructor"] = unlock_token_ok(_secret(), token, expected, _cookie(UNLOCK_COOKIE))
    return Who(token, passphrase() is None or bool(st.session_state.get("_instructor")))


def remember() -> None:
    """Store the token in the browser once (a reload then keeps this session's runs). Later runs fill the same slot
    with an empty element, so what follows keeps its place: an element that comes or goes above a block remounts
    it, and the drawing canvas would lose its drawing on the first stroke (docs/architecture.md, section 6)."""
    if "_owner" not in st.session_state:
        return
    if st.session_state.get("_owner_cookie"):
        st.empty()
        return
    _write_cookie(COOKIE, st.session_state["_owner"], 31_536_000)
    st.session_state["_owner_cookie"] = True


def _write_cookie(name: str, value: str, max_age: int) -> None:
    """Set a cookie of this site from a zero-height component (Streamlit has no server-side Set-Cookie);
    max_age 0 deletes it. Values are hex tokens (and a digit stamp): nothing in them needs quoting."""
    st.iframe(f"<script>document.cookie = '{name}={value}; path=/; max-age={max_age}; SameSite=Strict';</script>",
              height=1)


def _guess_keys() -> list[str]:
    """Whose guesses these are: this session, and its address (a new tab is a new session, not a new address)."""
    keys = [f"session:{st.session_state.get('_owner', '')}"]
    try:
        address = st.context.ip_address
    except Exception:  # noqa: BLE001 - no browser context (AppTest)
        address = None
    if address:
        keys.append(f"address:{address}")
    return keys


def _unlock() -> None:
    given = st.session_state.get("_instructor_pass", "")
    st.session_state["_instructor_pass"] = ""
    keys = _guess_keys()
    wait = GUESSES.wait_s(keys)
    if wait > 0:   # refused before any comparison: guessing faster than this is pointless
        st.session_state["_instructor_msg"] = (f"Too many wrong passphrases: try again in {math.ceil(wait)} s.")
        return
    expected = passphrase()
    ok = passphrase_ok(given, expected)
    st.session_state["_instructor"] = ok
    if ok:
        GUESSES.succeeded(keys)
        st.session_state["_instructor_msg"] = None
        st.session_state["_unlock_cookie"] = unlock_token(_secret(), st.session_state["_owner"], expected or "")
    else:
        GUESSES.failed(keys)
        wait = GUESSES.wait_s(keys)
        st.session_state["_instructor_msg"] = "That is not the instructor passphrase." + (
            f" The next guess is taken in {math.ceil(wait)} s." if wait > 0 else "")


def _lock() -> None:
    st.session_state["_instructor"] = False
    st.session_state["_unlock_cookie"] = ""   # expire the browser's token: a reload stays locked


def _set_unlock_cookie() -> None:
    """Write (or clear) the unlock cookie once after Unlock or Lock; an empty element in its place otherwise, so
    what follows in the sidebar keeps its place."""
    value = st.session_state.pop("_unlock_cookie", None)
    if value is None:
        st.empty()
        return
    _write_cookie(UNLOCK_COOKIE, value, int(UNLOCK_TTL_S) if value else 0)


def instructor_box() -> None:
    """Sidebar: unlock every run with the instructor passphrase (only when one is set)."""
    if passphrase() is None:
        return
    with st.sidebar:
        _set_unlock_cookie()
        if st.session_state.get("_instructor"):
            st.caption("Instructor: every run is unlocked.")
            st.button("Lock", on_click=_lock, key="instructor-lock")
        else:
            st.text_input("Instructor passphrase", type="password", key="_instructor_pass", on_change=_unlock,
                          help="Unlocks stopping, editing and deleting every run. It stays unlocked in this "
                               "browser (also after a reload) until you press Lock.")
            msg = flash("_instructor_msg")
            if msg:
                st.error(msg)

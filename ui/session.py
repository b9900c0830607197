"""Who this browser is (ganlab.owners): an owner token that survives a reload, and the instructor's unlock.

The token lives in st.session_state and in a cookie (`ganlab_owner`, set once by a zero-height component),
so reloading the page or opening a second tab keeps the student's runs theirs. The passphrase comes from
GANLAB_INSTRUCTOR_PASSPHRASE or `.streamlit/secrets.toml` (`instructor_passphrase = "..."`), never the repo.
"""
from __future__ import annotations

import os
import re
import uuid

import streamlit as st

from ganlab.owners import Who, passphrase_ok

COOKIE = "ganlab_owner"
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


def me() -> Who:
    """This session's identity; the instructor when no passphrase is set or after the unlock."""
    token = st.session_state.get("_owner")
    if not token:
        try:
            cookie = st.context.cookies.get(COOKIE, "")
        except Exception:  # noqa: BLE001 - no browser context (AppTest)
            cookie = ""
        cookie = cookie if isinstance(cookie, str) else ""
        token = cookie if _TOKEN.match(cookie) else uuid.uuid4().hex
        st.session_state["_owner"] = token
        st.session_state["_owner_cookie"] = token == cookie
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
    st.iframe(f"<script>document.cookie = '{COOKIE}={st.session_state['_owner']}; path=/; "
              "max-age=31536000; SameSite=Strict';</script>", height=1)
    st.session_state["_owner_cookie"] = True


def _unlock() -> None:
    given = st.session_state.get("_instructor_pass", "")
    ok = passphrase_ok(given, passphrase())
    st.session_state["_instructor"] = ok
    st.session_state["_instructor_msg"] = None if ok else "That is not the instructor passphrase."
    st.session_state["_instructor_pass"] = ""


def _lock() -> None:
    st.session_state["_instructor"] = False


def instructor_box() -> None:
    """Sidebar: unlock every run with the instructor passphrase (only when one is set)."""
    if passphrase() is None:
        return
    with st.sidebar:
        if st.session_state.get("_instructor"):
            st.caption("Instructor: every run is unlocked.")
            st.button("Lock", on_click=_lock, key="instructor-lock")
        else:
            st.text_input("Instructor passphrase", type="password", key="_instructor_pass", on_change=_unlock,
                          help="Unlocks stopping, editing and deleting every run.")
            msg = st.session_state.pop("_instructor_msg", None)
            if msg:
                st.error(msg)

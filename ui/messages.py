"""One-shot messages that survive the state watch's redraws.

A button callback leaves a message in st.session_state (an error, "Sent", an upload's verdict) and the page pops it
when it draws. ui.common.watch_states redraws a page whenever any run changes state, which in a class is every
few seconds: a popped message vanished a second after it appeared. `flash(key)` takes the message and keeps it
for the redraws the watch asks for (`redraw_next`); the next script run a person causes drops it (`begin_run`,
called once per full run by ui.common.setup).
"""
from __future__ import annotations

import streamlit as st

_REDRAW, _IS_REDRAW, _SHOWN = "_watch_redraw", "_this_run_is_redraw", "_messages_shown"


def begin_run() -> None:
    """A full script run begins: a run a person caused forgets the one-shot messages of the last one; a redraw the
    state watch asked for keeps them (see flash)."""
    redraw = bool(st.session_state.pop(_REDRAW, False))
    st.session_state[_IS_REDRAW] = redraw
    if not redraw:
        st.session_state[_SHOWN] = {}


def flash(key: str, default=None):
    """Take the one-shot message a callback left under `key` (an error, "Sent", an upload's verdict) and remember it, so
    the redraws watch_states asks for while someone else's run changes state show it again instead of wiping it
    a second after it appeared; the next run a person causes drops it."""
    shown = st.session_state.setdefault(_SHOWN, {})
    if key in st.session_state:
        shown[key] = st.session_state.pop(key)
        return shown[key]
    return shown.get(key, default) if st.session_state.get(_IS_REDRAW) else default


def redraw_next() -> None:
    """The next script run is the state watch's redraw, not a person's action."""
    st.session_state[_REDRAW] = True

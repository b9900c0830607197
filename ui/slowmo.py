"""The Discriminator page's "Slow motion" section for 2D runs: D step, G step, D+G step and Reset buttons over a
private copy of the run (ganlab.slowmo.Stepper), a sentence saying what the last update did, and a plotly figure
that animates it (play button; the slider scrubs between the moments).

Off until a student turns it on (the "Step it slowly" toggle): a page load builds no stepper and sends no figure,
so 40 students watching the Discriminator page cost the server nothing extra. One stepper per browser session
that turned it on, for the run shown (switching runs replaces it, turning it off drops it): the session keeps it as
~100 kB of bytes that only a sandbox process unpacks and steps (ganlab.slowmo_box): a bad checkpoint crashes no server.
The run itself is never changed; Reset copies its newest checkpoint again.
"""
from __future__ import annotations

import streamlit as st

from ganlab import slowmo, slowmo_box
from ganlab.runs import Run

KEY = "slowmo"          # session_state: {"run": id, "stepper": Stepper | None, "move": Move | None, "error": str}
BUTTONS = (("d", "D step", "One discriminator update: the heatmap changes, the fakes stay."),
           ("g", "G step", "One generator update: the fakes move along their arrows, the heatmap stays."),
           ("both", "D+G step", "One D update, then one G update."))


def _fresh(run: Run) -> dict:
    """A stepper from the run's newest checkpoint (or its config at step 0), or the reason there is none."""
    try:
        return {"run": run.id, "stepper": slowmo_box.open_copy(run.store, run.cfg), "move": None, "error": ""}
    except slowmo.SlowMoError as e:
        return {"run": run.id, "stepper": None, "move": None, "error": str(e)}


def _step(kind: str) -> None:
    S = st.session_state[KEY]
    S["move"] = S["stepper"].step(kind)


def _reset(run: Run) -> None:
    st.session_state[KEY] = _fresh(run)


def slowmo_section(run: Run) -> None:
    """The section; call it on a 2D run's page."""
    st.subheader("Slow motion", anchor="slow-motion")
    st.caption("Step a private copy of this run one update at a time: a D update moves the heatmap, a G update "
               "moves the fakes along their arrows. The run itself is not changed; Reset copies its newest "
               "checkpoint again.")
    if not st.toggle("Step it slowly", key="slowmo-on", help="Copy this run's newest checkpoint and step the copy "
                     "one update at a time. Off: nothing is copied or computed."):
        st.session_state.pop(KEY, None)
        return
    S = st.session_state.get(KEY)
    if S is None or S.get("run") != run.id:
        with st.spinner("Copying the run's newest checkpoint ..."):
            S = st.session_state[KEY] = _fresh(run)
    stepper = S["stepper"]
    cols = st.columns([1, 1, 1, 2, 3])
    for col, (kind, label, why) in zip(cols, BUTTONS):
        col.button(label, key=f"slowmo-{kind}", on_click=_step, args=(kind,), help=why, disabled=stepper is None,
                   width="stretch")
    cols[3].button("Reset to the run's latest", key="slowmo-reset", on_click=_reset, args=(run,),
                   icon=":material/restart_alt:", width="stretch")
    if stepper is None:
        st.warning(S["error"], icon=":material/block:")
        return
    move = S["move"]
    left, right = st.columns([3, 2])
    with right:
        st.markdown(f"**Slow-motion copy**: {stepper.counter()}.")
        if move is None:
            st.info("Press **D step**, **G step** or **D+G step**: the figure then shows the update, and "
                    "▶ plays it again.")
        else:
            st.markdown(move.describe())
            st.caption("▶ replays the update from the moment before; the slider shows each moment. Thin lines: "
                       "where each fake came from. Dashed line: D's boundary before a D update.")
    with left:
        fig = slowmo.move_figure(move, stepper.state())
        st.plotly_chart(fig, key="slowmo-fig", theme=None, config={"displaylogo": False})

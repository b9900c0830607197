"""Be the discriminator: the student labels real and fake images of the selected run, presses Check and sees their
accuracy beside D's on the same images; a tally over rounds shows it getting harder as G improves. The rounds,
D's weights and the scoring are ganlab.be_d's; a round is drawn once and kept in this session. Below the round,
"Draw a digit, ask D" (ui.draw): D's score of the student's own drawing and G's closest sample to it."""
from __future__ import annotations

import numpy as np
import streamlit as st

from ganlab import be_d
from ganlab.config import get_preset
from ganlab.data import dataset_available
from ui.common import run_picker, setup, start_run, state_message
from ui.draw import ask_d_panel
from ui.live import echart

N, ROW = 8, 4          # images per round (half real), pictures per row
PRESET = "mnist-dcgan"

reg = setup()
run = run_picker(reg)
st.title("Be the discriminator")
if run is None:
    st.info("No run selected: start one on Home or Train.")
    st.stop()
view = run.summary()
if view.cfg.is_2d:
    st.info(f"Be the discriminator works on image runs: one 2D point by itself looks neither real nor fake. "
            f"Start **{PRESET}** (digits) here, or pick an image run in the sidebar.")
    ok, why = dataset_available(get_preset(PRESET).config().dataset)
    if st.button(f"Start {PRESET}", key="bed-start", type="primary", icon=":material/play_arrow:", disabled=not ok,
                 help=None if ok else f"Unavailable here: {why}"):
        try:
            start_run(get_preset(PRESET).config(), PRESET, reg)
        except (OSError, ValueError) as e:
            st.error(f"Could not start {PRESET}: {e}")
        else:
            st.rerun()
    st.stop()
if view.state in ("failed", "diverged"):
    state_message(view)
S = st.session_state.setdefault(f"bed.{run.id}", {"round": None, "result": None, "tally": [], "error": None})


def new_round() -> None:
    """Button callback: a fresh round from the newest G and D; on failure the old round stays as it was."""
    seed = int(np.random.default_rng().integers(1, 1_000_000))
    try:
        S["round"], S["result"], S["error"] = be_d.draw_round(run.store, run.cfg, N, seed), None, None
    except be_d.RoundError as e:
        S["error"] = str(e)


def check() -> None:
    rnd = S["round"]
    if S["result"] is not None:   # a double click: the round is checked and counted once
        return
    S["result"] = be_d.check(rnd, [st.session_state.get(f"bed-label-{rnd.seed}-{i}") for i in range(N)])
    S["tally"].append(be_d.tally_row(len(S["tally"]) + 1, rnd, S["result"]))


if S["round"] is None and S["error"] is None:
    new_round()
if S["error"]:
    st.warning(S["error"], icon=":material/block:")
rnd, result = S["round"], S["result"]
if rnd is None:
    st.button("Try again", key="bed-new", on_click=new_round, icon=":material/refresh:")
    st.stop()
st.caption(f"Half of these {N} pictures are real images from the data set, half were drawn by G at step "
           f"{rnd.g_step:,}. Mark each one real or fake and press **Check**: D answers the same pictures.")
grid, side = st.columns([7, 3], gap="medium")
mark = {True: ":green[✓]", False: ":red[✗]"}
for i, pic in enumerate(rnd.pictures(px=112)):
    if i % ROW == 0:
        cols = grid.columns(ROW)
    with cols[i % ROW].container(border=True, horizontal_alignment="center", gap="small"):
        st.image(pic, output_format="PNG")
        st.segmented_control(f"picture {i + 1}", list(be_d.LABELS), key=f"bed-label-{rnd.seed}-{i}",
                             label_visibility="collapsed", disabled=result is not None)
        if result is not None:
            st.markdown(f"**{'real' if rnd.real[i] else 'fake'}** · you {mark[bool(result.you_right[i])]}  \n"
                        f"D {mark[bool(result.d_right[i])]} {rnd.scores[i]:.2f}")
labelled = sum(st.session_state.get(f"bed-label-{rnd.seed}-{i}") is not None for i in range(N))
with side:
    left, right = st.columns(2)
    left.button("Check", key="bed-check", type="primary", on_click=check, icon=":material/done_all:",
                disabled=result is not None or labelled < N, width="stretch")
    right.button("New round", key="bed-new", on_click=new_round, icon=":material/refresh:", width="stretch")
    st.caption(f"{labelled} of {N} marked." if result is None else "New round draws fresh pictures from the newest G.")
    if result is not None:
        a, b = st.columns(2)
        a.metric("Your accuracy", f"{result.you:.0%}", help=f"{int(result.you_right.sum())} of {N} right")
        b.metric("D's accuracy", f"{result.d:.0%}", help=f"{int(result.d_right.sum())} of {N} right")
        a.metric("G's step", f"{rnd.g_step:,}", help="The training step of the G that drew the fakes")
        b.metric("D's step", f"{rnd.d_step:,}", help="D's weights are from the run's checkpoint at this step")
        st.caption(f"{rnd.rule[0].upper()}{rnd.rule[1:]}. The number under each picture is D's score.")
    if S["tally"]:
        st.table(S["tally"], hide_index=True)
if S["tally"]:
    with grid:
        echart(be_d.tally_chart(S["tally"]), "bed-tally", height=260)
        st.caption("Early on, fakes are easy to spot, for you and for D. As G improves, both drift toward 50%, "
                   "chance: the fakes look real.")
st.divider()
ask_d_panel(run, tuple(rnd.images.shape[1:]))

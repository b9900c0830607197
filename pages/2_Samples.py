"""Samples: the fixed-noise grid at every snapshot (slider, play), real data beside it, PNG/GIF downloads."""
from __future__ import annotations

import streamlit as st

from ganlab import export, links, viz
from ganlab.runs import RunView
from ui.classroom import copy_link, fresh_params, presenting
from ui.common import run_page
from ui.live import (
    chart_option,
    echart_2d,
    live_fragment,
    real_images,
    show_montage,
    snapshot_slider,
    snapshot_version,
)

PLAY_EVERY = 0.4   # seconds per frame of the animation
KEY = "samples.snap"

run = run_page("Samples")
st.caption("Every snapshot draws G on the same fixed noise, so each cell shows how one z's sample evolved.")
want = links.read_int(fresh_params().get("step"), 0, 10**9)
if want is not None:
    st.session_state[f"{KEY}.want"] = want


def _toggle_play() -> None:
    st.session_state["samples.playing"] = not st.session_state.get("samples.playing", False)


playing = st.session_state.get("samples.playing", False)
st.button("Stop" if playing else "Play", icon=":material/stop:" if playing else ":material/play_arrow:",
          on_click=_toggle_play, key="samples-play", help="Animate the grid over all snapshots")


def draw(v: RunView) -> bool:
    if not v.snapshots:
        st.info("No samples yet: the first snapshot appears a moment after the run starts.")
        return False
    is_playing = st.session_state.get("samples.playing", False)
    idx = snapshot_slider(v, KEY, playing=is_playing)
    snap = v.snapshots[idx]
    if snap.is_2d:
        echart_2d(chart_option("scatter_2d_chart", snapshot_version(v, snap), snap), "samples-2d")
    else:
        left, right = st.columns(2)
        with left:
            show_montage(snap.fake, caption=f"Generated, step {snap.step:,} (epoch {snap.epoch})")
        with right:
            real = real_images(v.cfg, n=len(snap.fake))
            if real is not None:
                show_montage(real, caption="Real training images")
            else:
                st.caption("Real images unavailable (the dataset cannot be loaded here).")
    if is_playing and idx == len(v.snapshots) - 1:
        st.session_state["samples.playing"] = False
        st.rerun()   # the animation reached the newest snapshot: redraw without the fast timer
    return is_playing


live_fragment(run, draw, key="samples", every=PLAY_EVERY if playing else None)


def downloads(v: RunView) -> None:
    """Outside the fragment: its fast reruns during Play would drop a deferred file before the click landed.
    Files are built only when clicked (callables), by the same code as `python -m ganlab export`."""
    if not v.snapshots:
        return
    idx = min(int(st.session_state.get(KEY, len(v.snapshots) - 1) or 0), len(v.snapshots) - 1)
    snap, snaps = v.snapshots[idx], list(v.snapshots)
    extent = viz.extent_of(v.snapshots[-1]) if snap.is_2d else None
    if presenting():
        return
    c1, c2, c3 = st.columns([2, 2, 1])
    with c3:
        copy_link("Samples", {"run": v.id, "step": snap.step}, key="samples-link", what="this snapshot")
    c1.download_button("Download this grid (PNG)", data=lambda: export.snapshot_png(snap, extent),
                       file_name=f"{v.name}-step{snap.step}.png", mime="image/png", on_click="ignore",
                       icon=":material/download:", key="samples-png")
    c2.download_button(f"Download the evolution (GIF, {min(len(snaps), export.MAX_GIF_FRAMES)} frames)",
                       data=lambda: export.snapshots_gif(snaps), key="samples-gif",
                       file_name=f"{v.name}-evolution.gif", mime="image/gif", on_click="ignore",
                       icon=":material/movie:")


downloads(run.view())

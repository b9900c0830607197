"""Discriminator: what D believes. Score histograms on real vs fake; for 2D runs, D's whole field with
real and fake points, G's manifold and the gradient arrows that push the fakes, and slow motion (ui.slowmo):
one D or G update at a time on a private copy of the run, animated."""
from __future__ import annotations

import streamlit as st

from ganlab import links
from ganlab.runs import RunView
from ui.classroom import copy_link, fresh_params
from ui.common import run_page
from ui.live import chart_option, echart, echart_2d, live_fragment, mode_bars, snapshot_slider, snapshot_version
from ui.slowmo import slowmo_section

LAYER_NAMES = {"field": "D heatmap", "real": "real points", "fake": "fake points", "manifold": "G manifold",
               "grads": "gradient arrows"}

run = run_page("Discriminator")

is_2d = run.view(with_snapshots=False).cfg.is_2d
link = fresh_params()
want = links.read_int(link.get("step"), 0, 10**9)
if want is not None:
    st.session_state["disc.snap.want"] = want
shown = links.read_names(link.get("layers"), list(LAYER_NAMES))
if shown is not None:
    for name in LAYER_NAMES:
        st.session_state[f"disc.layer.{name}"] = name in shown
st.caption("D scores real samples high and fakes low. When the two histograms overlap, D cannot tell them "
           "apart; when they separate completely, D wins and (with the minimax loss) G's gradient vanishes.")
layers: set[str] = set()
if is_2d:
    cols = st.columns(len(LAYER_NAMES))
    for col, (name, label) in zip(cols, LAYER_NAMES.items()):
        st.session_state.setdefault(f"disc.layer.{name}", True)
        if col.checkbox(label, key=f"disc.layer.{name}"):
            layers.add(name)


def draw(v: RunView) -> None:
    if not v.snapshots:
        st.info("No snapshot yet: the first appears a moment after the run starts.")
        return
    snap = v.snapshots[snapshot_slider(v, "disc.snap")]
    version = snapshot_version(v, snap)
    if snap.is_2d:
        left, right = st.columns([3, 2])
        with left:
            echart_2d(chart_option("layered_2d_chart", version, snap, layers=tuple(sorted(layers))), "disc-2d")
            st.caption("Blue regions: D says real; red: D says fake. Arrows: where G's loss moves each fake "
                       "point (scaled for reading). Grey lines: G applied to a grid over two noise dimensions.")
        with right:
            echart(chart_option("hist_chart", version, snap), "disc-hist", height=400)
            mode_bars(v, "disc-modes", step=snap.step)
    else:
        echart(chart_option("hist_chart", version, snap), "disc-hist", height=360)


live_fragment(run, draw, key="disc")
if is_2d:
    slowmo_section(run)
snaps = [s.step for s in run.view().snapshots]
params = {"run": run.id, "layers": ",".join(sorted(layers)) if is_2d else None}
if not st.session_state.get("disc.snap.follow", True) and snaps:
    params["step"] = snaps[min(int(st.session_state.get("disc.snap") or 0), len(snaps) - 1)]
copy_link("Discriminator", params, key="disc-link", what="this view")

"""Compare: two to four runs side by side: losses and D scores on one step axis, samples at the same epoch,
2D views on the same axes, quality measures, and a branch drawn growing out of its parent."""
from __future__ import annotations

import streamlit as st

from ganlab import compare, links
from ganlab.viz import LAYERS_2D
from ui.classroom import fresh_params, keep_params
from ui.common import run_label, run_picker, setup
from ui.live import LIVE_EVERY, chart_option, echart, echart_2d, is_live, show_montage, snapshot_version

SELECTED = "compare.ids"

reg = setup()
current = run_picker(reg)
st.title("Compare")
runs = {r.id: r for r in reg.list()}
if len(runs) < 2:
    st.info("Compare needs at least two runs: start another on Train, or branch one on Runs.")
    st.stop()
parents = {rid: (r.parent or {}).get("run") for rid, r in runs.items()}
link = fresh_params()   # ?runs=<id>,<id>&by=step&at=40: a shared link or a reload restores the selection
linked = links.read_names(link.get("runs"), list(runs))
if linked:
    st.session_state[SELECTED] = linked[:compare.MAX_RUNS]
if link.get("by") in ("epoch", "step"):
    st.session_state["compare.by"] = link["by"]
if links.read_int(link.get("at"), 0, 10**9) is not None:
    st.session_state["compare.at.linked"] = int(link["at"])   # applied once the slider's options are known
chosen = [i for i in st.session_state.get(SELECTED) or [] if i in runs]   # deleted runs drop out
st.session_state[SELECTED] = chosen or compare.default_selection(list(runs), current.id if current else None, parents)
ids = st.multiselect("Runs to compare", list(runs), key=SELECTED, max_selections=compare.MAX_RUNS,
                     format_func=lambda i: run_label(runs[i]), help="Two to four runs; the sidebar's run and its "
                     "parent are picked first.")
keep_params(runs=",".join(ids))
if len(ids) < 2:
    st.info("Pick two to four runs.")
    st.stop()
any_2d = any(runs[i].cfg.is_2d for i in ids)
layers = st.multiselect("2D layers", LAYERS_2D, default=["field", "real", "fake"], key="compare.layers",
                        help="D's score as colour, real and fake points, G's noise grid, G's gradients") \
    if any_2d else []
period = LIVE_EVERY if any(is_live(runs[i].view(with_snapshots=False), runs[i]) for i in ids) else None


def body() -> None:
    views = [runs[i].view() for i in ids]
    labels = compare.unique_labels([v.name for v in views], [v.id for v in views])
    by_id = {v.id: (label, v) for label, v in zip(labels, views)}
    series, marks = [], []
    for label, v in zip(labels, views):
        p, h = v.parent or {}, v.history
        if p.get("run") in by_id:   # a child with its parent on the chart: its curves fork from the parent's
            h = compare.graft(by_id[p["run"]][1].history, h, int(p["step"]))
            marks.append((int(p["step"]), f"branch @{int(p['step']):,}"))
        series.append((label, h))
    score_label = compare.score_axis_label(v.latest.score_label for v in views if v.latest is not None)
    height = compare.overlay_height(len(views))
    left, right = st.columns(2)
    with left:
        echart(compare.losses_overlay(series, marks), "compare-loss", height=height)
    with right:
        echart(compare.scores_overlay(series, marks, score_label), "compare-scores", height=height)

    st.subheader("Samples side by side")
    by = st.radio("Align by", ["epoch", "step"], horizontal=True, key="compare.by",
                  help="Epoch: the same number of passes over the data (fair across batch sizes). Step: the same "
                       "number of G updates (finer for short 2D runs, where many snapshots share an epoch).")
    options = compare.epoch_options((v.snapshots for v in views), by)
    if not options:
        st.caption("No snapshots yet.")
    else:
        key = f"compare.at.{by}"   # one slider per alignment: switching starts at the newest snapshots
        wanted = st.session_state.pop("compare.at.linked", None)
        if wanted is not None:
            st.session_state[key] = compare.snapshot_option(options, wanted)
        if st.session_state.get(key) not in options:
            st.session_state[key] = options[-1]
        at = st.select_slider(by.capitalize(), options, key=key) if len(options) > 1 else options[0]
        keep_params(by=by, at=str(at))
        snaps = [compare.snapshot_at(v.snapshots, at, by) for v in views]
        extent, side = compare.shared_extent(snaps), compare.VIEW_SIDE   # one square view for every 2D run
        per_row = compare.VIEWS_PER_ROW if any_2d else len(views)
        cells = [col for _ in range(0, len(views), per_row) for col in st.columns(per_row)]
        for i, (col, label, v, snap) in enumerate(zip(cells, labels, views, snaps)):
            with col:
                if snap is None:   # never a later snapshot under the slider's value
                    st.caption(f"{label}: no snapshot at or before {by} {at:,}" if v.snapshots else
                               f"{label}: no snapshot yet")
                    continue
                caption = f"{label} · step {snap.step:,} (epoch {snap.epoch})"
                if snap.is_2d:   # keyed by position: a new snapshot redraws the same canvas, no blink
                    option = chart_option("layered_2d_chart", snapshot_version(v, snap), snap, side=side,
                                          layers=tuple(sorted(layers)), extent=extent, title=caption, legend=False)
                    echart_2d(option, f"compare-2d-{i}", side=side)
                else:
                    show_montage(snap.fake[:64], caption=caption, target_px=320)

    table = compare.quality_table([(label, v.quality) for label, v in zip(labels, views)])
    if any(len(row) > 2 for row in table):
        st.subheader("Quality (latest)")
        st.dataframe(table, hide_index=True, width="stretch")

    colour = {v.id: compare.run_color(i) for i, v in enumerate(views)}   # each run keeps its colour
    for label, v in zip(labels, views):
        pid = (v.parent or {}).get("run")
        if pid in runs:
            parent = by_id[pid][1] if pid in by_id else runs[pid].view(with_snapshots=False)
            option = compare.branch_chart(parent.name, parent.history, label, v.history, int(v.parent["step"]),
                                          colors=(colour.get(pid, compare.PARENT_COLOR), colour[v.id]))
            echart(option, f"compare-branch-{v.id}", height=compare.overlay_height(2))
    if period is not None and not any(is_live(v, runs[v.id]) for v in views):
        st.rerun()   # every run ended: redraw once without the timer


st.fragment(body, run_every=period)()

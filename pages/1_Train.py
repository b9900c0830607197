"""Train: configure and start a run; control the selected run and watch it learn, live."""
from __future__ import annotations

import streamlit as st

from ganlab.config import get_preset
from ganlab.lineage import parent_text
from ganlab.runs import RunView
from ui.common import (
    config_form,
    data_upload,
    history_charts,
    live_fragment,
    live_settings,
    preset_picker,
    progress,
    quality_panel,
    run_controls,
    run_picker,
    setup,
    start_run,
    state_badge,
    state_message,
)

reg = setup()
run = run_picker(reg)


def new_run_form(expanded: bool) -> None:
    """Preset + full config form; Start creates the run, selects it and redraws the page."""
    with st.expander("New run", expanded=expanded, icon=":material/add:"):
        preset = preset_picker("cfg")
        data_upload("cfg")
        cfg = config_form(get_preset(preset).config(), key="cfg")
        if cfg is not None:
            try:
                start_run(cfg, st.session_state.get("cfg.name") or None, reg)
            except (OSError, ValueError) as e:   # a bad run name or an unwritable runs directory
                st.error(f"Could not start the run: {e}")
            else:
                st.rerun()


if run is None:
    st.title("Train")
    st.info("No run selected. Pick a preset below (or on Home) and press **Start new run**.")
    new_run_form(expanded=True)
    st.stop()

view = run.view(with_snapshots=False)
head, badge = st.columns([6, 1], vertical_alignment="center")
head.title(view.name)
with badge:
    state_badge(view)
cfg = view.cfg
st.caption(f"{cfg.dataset} · {cfg.model} · loss {cfg.loss} · batch {cfg.batch_size} · noise dim {cfg.noise_dim}"
           + (f" · from {parent_text(view.parent)}" if view.parent else ""))
run_controls(run, view, key="train")
with st.expander("Live settings: change while it trains", icon=":material/tune:"):
    live_settings(run, view)


def draw(v: RunView) -> None:
    state_message(v)
    progress(v)
    history_charts(v, key="train")
    # Quality metrics and diagnoses: ganlab.metrics fills view.quality through the registry's quality_fn.
    quality_panel(v)


live_fragment(run, draw, key="train")
new_run_form(expanded=st.session_state.get("cfg._upload") is not None)   # open after an upload

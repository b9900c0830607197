"""Train: configure and start a run; control the selected run and watch it learn, live."""
from __future__ import annotations

import streamlit as st

from ganlab import links
from ganlab.config import get_preset
from ganlab.lineage import parent_text
from ganlab.runs import RunView
from ui.classroom import copy_link, fresh_params, presenting
from ui.common import picked_view, run_picker, setup, start_run, state_badge, state_message
from ui.config_form import config_form, data_upload, form_values, load_form, parse_config, preset_picker, taken
from ui.draw import DRAW_BUTTON, draw_data, drawn_run_name
from ui.live import history_charts, live_fragment, model_overview
from ui.panels import live_settings, progress, quality_panel, run_controls

reg = setup()
run = run_picker(reg)
link = fresh_params()
if links.is_config_link(link):   # a configuration link fills the form; it never starts a run by itself
    preset, linked, errors = links.config_from_params(link)
    st.session_state["cfg.preset"] = preset
    load_form(linked or get_preset(preset).config(), "cfg")
    st.session_state["cfg._errors"] = {k: v for k, v in errors.items() if k != links.PRESET_KEY}
    st.session_state["cfg._linked"] = errors.get(links.PRESET_KEY, "")
    st.session_state["cfg._open"] = True   # the linked form stays open across reruns (the canvas's first one too)


def new_run_form(expanded: bool) -> None:
    """Preset + full config form; Start creates the run, selects it and redraws the page."""
    with st.expander("New run", expanded=expanded, icon=":material/add:"):
        note = st.session_state.get("cfg._linked")   # kept until the run starts: reruns must not wipe it
        if note is not None:
            st.info("A link filled this form: check it and press **Start new run** to train it. " + note)
        preset = preset_picker("cfg")
        data_upload("cfg")
        draw_data("cfg")   # the form's "Train on my drawing" starts a csv run of the drawn points at once
        cfg = config_form(get_preset(preset).config(), key="cfg", extra=DRAW_BUTTON)
        shared, _ = parse_config(form_values("cfg"))
        if shared is not None:
            copy_link("Train", links.config_params(shared, preset), key="cfg-link", what="this configuration",
                      label="Link to this configuration")
        if cfg is not None:
            taken("cfg")
            try:
                start_run(cfg, drawn_run_name("cfg"), reg)
            except (OSError, ValueError) as e:   # a bad run name or an unwritable runs directory
                st.error(f"Could not start the run: {e}")
            else:
                st.session_state.pop("cfg._linked", None)
                st.rerun()


if run is None:
    st.title("Train")
    st.info("No run selected. Pick a preset below (or on Home) and press **Start new run**.")
    new_run_form(expanded=True)
    st.stop()

view = picked_view(run)
head, badge = st.columns([6, 1], vertical_alignment="center")
head.title(view.name)
with badge:
    state_badge(view, key="run-badge")
cfg = view.cfg
st.caption(f"{cfg.dataset} · {cfg.model} · loss {cfg.loss} · batch {cfg.batch_size} · noise dim {cfg.noise_dim}"
           + (f" · from {parent_text(view.parent)}" if view.parent else ""))
if not presenting():
    run_controls(run, view, key="train")
    with st.expander("Live settings: change while it trains", icon=":material/tune:"):
        live_settings(run, view)
    c1, c2, _ = st.columns([1, 1, 3])
    with c1:
        copy_link("Train", {"run": run.id}, key="train-link", what="this run", label="Link to this run")
    with c2:
        copy_link("Train", links.config_params(cfg), key="train-cfg-link", what="this run's configuration",
                  label="Link to its configuration")


def draw(v: RunView) -> None:
    state_message(v)
    progress(v)
    model_overview(v, key="train")   # the data flow of a step with its live numbers (GAN Lab's overview)
    history_charts(v, key="train")
    # Quality metrics and diagnoses: ganlab.metrics fills view.quality through the registry's quality_fn.
    quality_panel(v)


live_fragment(run, draw, key="train")
if not presenting():   # open after an upload or a configuration link
    new_run_form(expanded=st.session_state.get("cfg._upload") is not None or st.session_state.get("cfg._open", False))

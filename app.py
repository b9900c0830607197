"""ganlab entry point: `streamlit run app.py`. Page registry and the Home page; no training code here.

The page list is built from the files in pages/, so pages added later (Learn, Compare, Runs...) appear
without touching this file. Each page file starts with ui.common.setup(): on a fresh server a deep link runs
the page file first, and setup() then hands the run back to this entry point (ui.common._navigation_first).
"""
from __future__ import annotations

import streamlit as st

from ganlab.config import PRESETS
from ganlab.data import dataset_available
from ganlab.lesson_book import LESSONS
from ui import classroom
from ui.common import is_mine, run_label, run_picker, setup, start_run, state_badge

TITLES = {"Train": "Train", "Samples": "Samples", "Latent": "Latent explorer", "Discriminator": "Discriminator",
          "Learn": "Learn", "Compare": "Compare", "Runs": "Runs", "Class": "Class (instructor)",
          "Be_D": "Be the discriminator", "Seeds": "Seeds side by side"}
ICONS = {"Train": ":material/model_training:", "Samples": ":material/grid_view:", "Latent": ":material/tune:",
         "Discriminator": ":material/bar_chart:", "Learn": ":material/school:", "Compare": ":material/compare:",
         "Runs": ":material/folder_open:", "Class": ":material/groups:", "Be_D": ":material/psychology:",
         "Seeds": ":material/casino:"}
TRAIN_PAGE = "pages/1_Train.py"
LEARN_PAGE = "pages/5_Learn.py"


def home() -> None:
    reg = setup()
    run_picker(reg)
    st.title("GAN lab")
    st.markdown(
        "A generative adversarial network trains two networks against each other: a **generator** G turns "
        "random noise z into samples, and a **discriminator** D learns to tell them from real data. "
        "Here you start a run, watch the losses, D's scores and the samples change live, pause it and step "
        "one update at a time, and explore what G learned. Everyone on this server sees the same runs, so "
        "a class can watch one run together or compare their own.")
    first = LESSONS[0]
    st.info(f"New to GANs? Start with the first lesson, **{first.title}**: the math, one click to train it, and "
            "what to watch.", icon=":material/school:")
    st.page_link(LEARN_PAGE, label=f"Open the first lesson: {first.title}", icon=":material/arrow_forward:",
                 query_params={"lesson": first.id})
    st.subheader("Quick start")
    groups = {"2D toy data (seconds on a laptop)": [], "Images": []}
    for preset in PRESETS.values():
        groups["2D toy data (seconds on a laptop)" if preset.config().is_2d else "Images"].append(preset)
    for title, presets in groups.items():
        st.markdown(f"**{title}**")
        cols = st.columns(5)
        for i, preset in enumerate(presets):
            ok, why = dataset_available(preset.config().dataset)
            with cols[i % 5].container(border=True):
                clicked = st.button(preset.name, key=f"quick-{preset.name}", disabled=not ok, type="primary",
                                    icon=":material/play_arrow:", help=preset.summary, width="stretch")
                st.caption(preset.summary if ok else f"Unavailable: {why}")
            if clicked:
                try:
                    start_run(preset.config(), preset.name, reg)
                except (OSError, ValueError) as e:
                    st.error(f"Could not start {preset.name}: {e}")
                else:
                    st.switch_page(TRAIN_PAGE)
    st.subheader("Runs")
    runs = reg.list()
    if not runs:
        st.caption("No runs yet. Start one above, or configure your own on the Train page.")
    for run in runs[:20]:
        view = run.summary()
        c1, c2, c3, c4 = st.columns([4, 2, 3, 2], vertical_alignment="center")
        c1.write(f"**{run.name}**{' · yours' if is_mine(run) else ''}  \n`{run.id}`")
        with c2:
            state_badge(view)
        c3.caption(f"{view.cfg.dataset} · {view.cfg.loss} · step {view.step:,}/{view.cfg.steps:,}")
        if c4.button("Open", key=f"open-{run.id}", help=f"Select {run_label(run)} and go to Train"):
            st.session_state["run_id"] = run.id
            st.switch_page(TRAIN_PAGE)
    if len(runs) > 20:
        st.caption(f"... and {len(runs) - 20} older runs (pick them in the sidebar).")


def main() -> None:
    setup(entry=True)
    classroom.presenter()
    classroom.banner()
    pages = [st.Page(home, title="Home", icon=":material/home:", default=True)]
    for path in classroom.page_files():
        stem = classroom.page_stem(path)
        title = TITLES.get(stem, stem.replace("_", " "))
        pages.append(st.Page(f"pages/{path.name}", title=title, icon=ICONS.get(stem)))
    st.navigation(pages).run()


main()

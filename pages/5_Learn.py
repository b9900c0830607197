"""Learn: lessons that explain one GAN idea each, with its math, and start the run that shows it.

The lessons (text, preset, what to watch, what to try next) live in ganlab.lesson_book; this page only lays
them out. A lesson's Start button creates its run, selects it for every page and opens the page to watch.
"""
from __future__ import annotations

import streamlit as st

from ganlab.data import dataset_available
from ganlab.games import FIGURES
from ganlab.lesson_book import LESSONS
from ui.classroom import copy_link, fresh_params, page_file
from ui.common import run_picker, setup, start_run
from ui.live import echart

reg = setup()
run_picker(reg)
st.title("Learn")
st.markdown(
    "Each lesson explains one idea about GANs with its math, then starts a run that shows it: press "
    "**Start**, and the page to watch opens with the new run selected. Every lesson's phenomenon is "
    "checked over several seeds by `python -m ganlab lessons --check`.")

wanted = fresh_params().get("lesson") or st.session_state.get("learn.open")
if wanted:   # a link or the instructor's push opens that lesson
    st.session_state["learn.open"] = wanted
ids = [lesson.id for lesson in LESSONS]
for i, lesson in enumerate(LESSONS):
    cfg = lesson.config()
    ok, why = dataset_available(cfg.dataset)
    opened = lesson.id == wanted if wanted in ids else i == 0
    with st.expander(f"{i + 1}. {lesson.title}", expanded=opened, icon=":material/school:"):
        if opened:
            copy_link("Learn", {"lesson": lesson.id}, key=f"learn-link-{lesson.id}", what="this lesson")
        st.markdown(lesson.explanation)
        if lesson.figure:
            echart(FIGURES[lesson.figure](), key=f"learn-figure-{lesson.id}", height=440)
        left, right = st.columns(2)
        with left:
            st.markdown(f"**What to watch.** {lesson.watch}")
        with right:
            st.markdown(f"**Try next.** {lesson.try_next}")
        changes = ", ".join(f"{k}={','.join(map(str, v)) if isinstance(v, tuple) else v}"
                            for k, v in lesson.changes.items())
        st.caption(f"Preset `{lesson.preset}`" + (f" with {changes}" if changes else "")
                   + f" · {cfg.steps:,} steps" + (f" · checked: {lesson.check.phenomenon}" if lesson.check else ""))
        clicked = st.button(f"Start this lesson's run ({lesson.preset})", key=f"learn-{lesson.id}", type="primary",
                            icon=":material/play_arrow:", disabled=not ok,
                            help=None if ok else f"Unavailable here: {why}")
        if not ok:
            st.caption(f"Unavailable here: {why}")
        if clicked:
            try:
                start_run(cfg, f"lesson: {lesson.id}", reg)
            except (OSError, ValueError) as e:   # an unwritable runs directory, a bad config
                st.error(f"Could not start the run: {e}")
            else:
                st.switch_page(page_file(lesson.page))

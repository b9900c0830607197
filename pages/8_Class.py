"""Class (instructor): every active and recent run as a live tile; pin a run, push a lesson or a link to every
open session, pause or stop any run. Unlocked by the instructor passphrase when one is set."""
from __future__ import annotations

import time
from urllib.parse import parse_qsl, urlsplit

import streamlit as st

from ganlab import broadcast, classview, export
from ganlab.lesson_book import LESSONS
from ganlab.store import default_runs_dir
from ui import session
from ui.classroom import page_file
from ui.common import STATE_STYLE, setup
from ui.panels import command_and_wait

TILES_EVERY = 2.0     # seconds between refreshes of the tiles
COLUMNS = 3           # at 4 a row, a tile's three buttons were cut to "Pa..."
reg = setup()
st.title("Class")
who = session.me()
if not who.instructor:
    st.info("This page is the instructor's: unlock it with the instructor passphrase in the sidebar.")
    st.stop()
runs_dir = default_runs_dir()


def _push(kind: str, page: str, params: dict[str, str], text: str, from_tile: bool = False) -> None:
    try:
        broadcast.push(runs_dir, kind, page, params, text)
        st.session_state["_class_msg"] = ("success", "Sent: every open page shows it within a few seconds.")
        # a tile's Pin reruns only the tiles' fragment, and "Showing on every page now" is above it
        st.session_state["_class_redraw"] = from_tile
    except (OSError, ValueError) as e:
        st.session_state["_class_msg"] = ("error", f"Not sent: {e}")


def _push_link() -> None:
    raw = st.session_state.get("class.link", "").strip()
    parts = urlsplit(raw)
    page = parts.path.strip("/") or "Train"
    if not raw or page_file(page) is None:
        st.session_state["_class_msg"] = ("error", "Paste a link to one of the lab's pages (from a Copy link box).")
        return
    params = dict(parse_qsl(parts.query)[:20])
    _push("link", page, params, st.session_state.get("class.text", "") or f"Open {page}")


def _command(run_id: str, action: str) -> None:
    run = reg.get(run_id)
    try:
        command_and_wait(run, action)
    except (RuntimeError, ValueError, OSError) as e:
        st.session_state["_class_msg"] = ("error", f"{action} failed for {run.name}: {e}")


# --- what every session sees ------------------------------------------------------------------------------
st.subheader("Send to the class")
now = broadcast.current(runs_dir)
if now:
    c1, c2 = st.columns([6, 1], vertical_alignment="center")
    c1.info(f"Showing on every page now ({now['kind']}): {now['text'] or now['page']}")
    c2.button("Clear", key="class-clear", on_click=broadcast.clear, args=(runs_dir,))
lesson_col, link_col = st.columns(2)
with lesson_col:
    pick = st.selectbox("Lesson", range(len(LESSONS)), format_func=lambda i: f"{i + 1}. {LESSONS[i].title}",
                        key="class.lesson")
    lesson = LESSONS[pick]
    st.button("Push this lesson", key="class-push-lesson", icon=":material/campaign:", type="primary",
              on_click=_push, args=("lesson", "Learn", {"lesson": lesson.id}, f"{lesson.title}"))
with link_col:
    st.text_input("A link (from any Copy link box)", key="class.link", placeholder="http://.../Samples?run=...")
    st.text_input("Message with it", key="class.text", max_chars=broadcast.MAX_TEXT)
    st.button("Push this link", key="class-push-link", icon=":material/link:", on_click=_push_link)
kind, msg = st.session_state.pop("_class_msg", (None, None))
if kind:
    getattr(st, kind)(msg)

# --- the class's runs --------------------------------------------------------------------------------------
st.subheader("Runs")
f1, f2, f3 = st.columns([3, 3, 2])
states = f1.multiselect("State", list(STATE_STYLE), key="class.states", placeholder="all states")
needle = f2.text_input("Filter", key="class.filter", placeholder="name, id or owner (e.g. student 3f2a)")
order = f3.selectbox("Sort by", classview.ORDERS, key="class.order")


@st.cache_data(show_spinner=False, max_entries=400)
def picture(run_id: str, step: int) -> bytes | None:
    view = reg.get(run_id).view(with_snapshots=False)
    return export.snapshot_png(view.latest) if view.latest is not None else None


@st.fragment(run_every=TILES_EVERY)
def tiles() -> None:
    if st.session_state.pop("_class_redraw", False):
        st.rerun()
    t0 = time.perf_counter()
    shown = classview.recent(reg.list())
    made = [classview.tile(r) for r in shown]
    names = {t.owner or "": classview.owner_label(t.owner, who.owner_id) for t in made}
    made = classview.arrange(made, order, states, needle, names)
    summary = st.empty()
    for row in range(0, len(made), COLUMNS):
        cols = st.columns(COLUMNS)
        for col, t in zip(cols, made[row:row + COLUMNS]):
            with col.container(border=True, key=f"tile-{t.id}"):
                st.markdown(f"**{t.name}** · {names[t.owner or '']}")
                png = picture(t.id, t.view.latest.step) if t.view.latest is not None else None
                if png:
                    st.image(png, width="stretch")
                else:
                    st.caption("no snapshot yet")
                colour, icon = STATE_STYLE.get(t.state, ("gray", None))
                st.badge(f"{t.state} · step {t.step:,} / {t.steps:,}", color=colour, icon=icon)
                if t.quality:
                    st.caption(t.quality)
                if t.diagnosis:
                    (st.error if t.severity == "error" else st.warning)(t.diagnosis)
                b1, b2, b3 = st.columns(3)
                b1.button("Pin", key=f"pin-{t.id}", help="Show this run to the class", on_click=_push,
                          args=("pin", "Train", {"run": t.id}, f"Watch {t.name}", True), width="stretch")
                live = t.state in ("running", "queued")
                b2.button("Pause" if live or t.state != "paused" else "Resume", key=f"pause-{t.id}",
                          disabled=t.state not in ("running", "queued", "paused"), on_click=_command,
                          args=(t.id, "pause" if t.state != "paused" else "resume"), width="stretch")
                b3.button("Stop", key=f"stop-{t.id}", disabled=t.state not in ("running", "queued", "paused"),
                          on_click=_command, args=(t.id, "stop"), width="stretch")
    summary.container(key="class-updated").caption(
        f"{len(made)} runs shown · updated {time.strftime('%H:%M:%S')} in {time.perf_counter() - t0:.2f} s · "
        f"every {TILES_EVERY:g} s")


tiles()

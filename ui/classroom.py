"""The classroom in the page: "Copy link" boxes, links applied to a page's widgets, presenter mode, and the
instructor's banner in every open session.

- `copy_link(page, params)`: a popover with the page's absolute link (st.code has a copy button). Links name run
  ids and values (ganlab.links), so they work in another browser and after a server restart.
- `fresh_params()`: the URL's query values this session has not applied yet, so a link fills a page once and the
  student's own changes afterwards are not overwritten on every rerun.
- Presenter mode (`?present=1` or the sidebar toggle): large type and charts, no sidebar, controls hidden
  (`presenting()` tells a page to leave them out), one run in focus (the link's `run`).
- `banner()`: a small fragment on every page that polls the class broadcast (ganlab.broadcast) every few
  seconds, so a lesson pushed by the instructor appears without a reload, with one click to follow it.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import streamlit as st

from ganlab import broadcast, links
from ganlab.store import default_runs_dir

PAGES_DIR = Path(__file__).resolve().parent.parent / "pages"
PRESENT_KEY = "present"
BANNER_EVERY = 3.0          # seconds between an open page's checks for a new broadcast
PRESENTER_CSS = """<style>
[data-testid="stSidebar"], [data-testid="stSidebarCollapsedControl"], [data-testid="stExpandSidebarButton"],
[data-testid="stHeader"], [data-testid="stToolbar"] { display: none !important; }
.stMainBlockContainer { zoom: 1.4; max-width: 100% !important; padding-top: 0.5rem !important; }
</style>"""


def page_files() -> list[Path]:
    """pages/<number>_<Name>.py in number order (a file without a number prefix sorts last)."""
    def order(p: Path) -> tuple[int, str]:
        m = re.match(r"(\d+)_", p.name)
        return (int(m.group(1)) if m else 10_000, p.name)
    return sorted((p for p in PAGES_DIR.glob("*.py") if not p.name.startswith("_")), key=order)


def page_stem(path: Path) -> str:
    return re.sub(r"^\d+_", "", path.stem)


def page_file(stem: str) -> str | None:
    """'Train' -> 'pages/1_Train.py' (the path st.page_link and st.switch_page take), None if no such page."""
    for p in page_files():
        if page_stem(p) == stem:
            return f"pages/{p.name}"
    return None


# --- links ------------------------------------------------------------------------------------------------
def base_url() -> str:
    """scheme://host:port of this server as the browser reached it (a student's link must work for the class)."""
    try:
        parts = urlsplit(st.context.url or "")
    except Exception:  # noqa: BLE001 - no browser context (AppTest)
        parts = urlsplit("")
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else "http://localhost:8501"


def copy_link(page: str, params: dict[str, Any], key: str, what: str = "this view", label: str = "Copy link") -> str:
    """The "Copy link" popover: the absolute link to `page` with `params`; returns the link."""
    link = links.url(base_url(), page, params)
    with st.popover(label, icon=":material/link:", key=key):
        st.caption(f"A link to {what}: anyone on this server who opens it sees the same. The copy button is "
                   "at the right of the box.")
        st.code(link, language=None, wrap_lines=True)
        if not presenting():
            st.caption("For the projector: the same link in presenter mode")
            st.code(links.url(base_url(), page, {**params, PRESENT_KEY: 1}), language=None, wrap_lines=True)
    return link


def fresh_params() -> dict[str, str]:
    """Query values this session has not applied before (a link applies once; later changes are the user's)."""
    seen: set = st.session_state.setdefault("_link_seen", set())
    fresh = {}
    for name in st.query_params:
        value = st.query_params.get(name)
        if isinstance(value, str) and (name, value) not in seen:
            seen.add((name, value))
            fresh[name] = value
    return fresh


def keep_params(**values: str) -> None:
    """Write the page's own state into the URL (a reload or a copied link restores it), marked as applied:
    fresh_params must not hand the page's own values back as a link on its next run."""
    seen: set = st.session_state.setdefault("_link_seen", set())
    for name, value in values.items():
        seen.add((name, value))
        if st.query_params.get(name) != value:
            st.query_params[name] = value


# --- presenter mode ---------------------------------------------------------------------------------------
def presenting() -> bool:
    return bool(st.session_state.get("_present"))


def _set_present(on: bool) -> None:
    st.session_state["_present"] = on
    if on:
        st.query_params[PRESENT_KEY] = "1"
    elif PRESENT_KEY in st.query_params:
        del st.query_params[PRESENT_KEY]


def presenter() -> None:
    """Read the URL flag, draw the toggle (sidebar) or the exit button (presenting), and style the page."""
    flag = st.query_params.get(PRESENT_KEY)
    if flag is not None and ("_present_url", flag) != st.session_state.get("_present_seen"):
        st.session_state["_present_seen"] = ("_present_url", flag)
        st.session_state["_present"] = flag.lower() in ("1", "true", "yes", "on")
    if presenting():
        if st.query_params.get(PRESENT_KEY) != "1":
            st.query_params[PRESENT_KEY] = "1"    # keep the flag in the URL for a reload and a copied link
        st.html(PRESENTER_CSS)
        st.button("Leave presenter mode", key="present-off", icon=":material/close_fullscreen:", type="tertiary",
                  on_click=_set_present, args=(False,))
    else:
        st.sidebar.button("Presenter mode", key="present-on", icon=":material/co_present:",
                          on_click=_set_present, args=(True,),
                          help="For a projector: large type and charts, no sidebar, controls hidden.")


# --- the instructor's banner ------------------------------------------------------------------------------
def _dismiss(item_id: str) -> None:
    st.session_state["_broadcast_done"] = item_id


@st.fragment(run_every=BANNER_EVERY)
def banner() -> None:
    """The class broadcast, if there is one this session has not dismissed; polled every few seconds."""
    item = broadcast.current(default_runs_dir())
    if item is None or st.session_state.get("_broadcast_done") == item["id"]:
        return
    target = page_file(item["page"])
    with st.container(border=True, key="class-banner"):
        label = {"lesson": "Lesson from the instructor", "pin": "The instructor pinned a run",
                 "link": "Link from the instructor"}[item["kind"]]
        st.markdown(f"**{label}:** {item['text'] or item['page']}")
        cols = st.columns([1, 1, 6])
        if target is not None and cols[0].button("Follow", key=f"banner-follow-{item['id']}", type="primary",
                                                 icon=":material/arrow_forward:"):
            st.session_state["_broadcast_done"] = item["id"]
            if item["params"].get(PRESENT_KEY) == "1":
                st.session_state["_present"] = True
            st.switch_page(target, query_params=item["params"])
        cols[1].button("Dismiss", key=f"banner-dismiss-{item['id']}", on_click=_dismiss, args=(item["id"],),
                       type="tertiary")

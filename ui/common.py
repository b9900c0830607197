"""Streamlit helpers shared by every page: setup, the run registry, the run picker, starting a run and showing
its state. Live views are in ui/live.py, the run panels in ui/panels.py, the config form in ui/config_form.py,
links and presenter mode in ui/classroom.py, who this browser is in ui/session.py.

How a page uses it (every page file, also when opened directly by URL on a fresh server):

    from ui.common import setup, run_picker
    reg = setup()            # page config + the process-wide run registry; always the first call
    run = run_picker(reg)    # sidebar selector; st.session_state["run_id"] and the URL's ?run= follow it
"""
from __future__ import annotations

import collections
import contextlib
import os
import sys
import threading
import time
from typing import Callable

import numpy as np
import streamlit as st

from ganlab import owners
from ganlab.config import TrainConfig
from ganlab.registry import RunRegistry, get_registry
from ganlab.runs import Run, RunView
from ganlab.store import default_runs_dir
from ui import load, messages, session

RUN_KEY = "run_id"          # session_state key of the selected run id (pages read it)
URL_KEY = "run"             # query parameter carrying the selected run, so a link opens the same run
STATE_STYLE = {             # badge colour and icon per run state
    "created": ("gray", ":material/radio_button_unchecked:"), "queued": ("orange", ":material/hourglass_top:"),
    "running": ("blue", ":material/play_arrow:"), "paused": ("violet", ":material/pause:"),
    "finished": ("green", ":material/check:"), "stopped": ("gray", ":material/stop:"),
    "diverged": ("red", ":material/warning:"), "failed": ("red", ":material/error:"),
    "interrupted": ("orange", ":material/power_off:"),
}


# --- setup and run selection ------------------------------------------------------------------------------
@st.cache_resource(show_spinner=False)
def _registry(runs_dir: str) -> RunRegistry:
    # get_registry is already process-wide per directory; caching it here lets tests reset it with
    # st.cache_resource.clear() and keeps one registry per GANLAB_RUNS_DIR for all sessions.
    return get_registry(runs_dir)


def registry() -> RunRegistry:
    return _registry(str(default_runs_dir().expanduser().resolve()))


def _executor_from_argv() -> None:
    """`streamlit run app.py -- --executor ray` chooses the backend like GANLAB_EXECUTOR does."""
    argv = sys.argv[1:]
    if "--executor" in argv and argv.index("--executor") + 1 < len(argv):
        os.environ.setdefault("GANLAB_EXECUTOR", argv[argv.index("--executor") + 1])


def setup(entry: bool = False) -> RunRegistry:
    """The one shared setup call at the top of every page: wide layout, and the run registry.
    app.py's navigation calls it with entry=True (it is the entry point; pages are not).

    Streamlit 1.67 allows set_page_config more than once per run (the last call wins), so app.py and a page
    may both call this. No page title here: st.navigation titles each page. Training runs in worker
    processes (ganlab.executor), so nothing here tunes the interpreter for it.
    """
    # A bundled icon: a ":material/..." page icon makes the browser fetch its SVG from the internet.
    _freeze_imports()
    _executor_from_argv()
    if not entry:
        _navigation_first()
    st.set_page_config(layout="wide", page_icon=_icon())
    session.me()
    # app.py's call draws the session's sidebar pieces; the page's own call in the same script run must not draw
    # them again (two widgets with one key: every page raised StreamlitDuplicateElementKey with a passphrase set).
    # A page file run on its own (a fresh server's deep link before the hand-over, AppTest) draws them itself.
    if entry or not st.session_state.pop(_ENTRY_DREW, False):   # once per script run
        messages.begin_run()
        session.remember()
        session.instructor_box()
    if entry:
        st.session_state[_ENTRY_DREW] = True
    try:
        return registry()
    except (ValueError, RuntimeError) as e:   # GANLAB_EXECUTOR misspelt, Ray missing or unreachable
        st.error(f"The lab cannot start its runs: {e}")
        st.stop()


def _navigation_first() -> None:
    """A deep link to a fresh server (/Train before anyone opened /) makes Streamlit 1.67 run the page file as an
    old-style pages/ app: no app.py, so no navigation, titles, presenter mode or banner. The flag it keeps for
    that is process-wide and cleared by st.navigation; clear it here and rerun, so app.py routes the link."""
    from streamlit.runtime.pages_manager import PagesManager
    if PagesManager.uses_pages_directory and not _HANDED:   # once per process, as the flag is (AppTest resets
        _HANDED.append(True)                                 # it before every run; a server never does)
        PagesManager.uses_pages_directory = False
        st.rerun()


_HANDED: list[bool] = []
_ENTRY_DREW = "_entry_drew_session_box"   # set by app.py's setup, taken by the page's setup in the same run


_FROZEN = []


def _freeze_imports() -> None:
    """Once per server process: move the objects of the imports (torch's ~300k) out of the collector's reach,
    so Python's own full collections stay cheap while pages refresh (the worker processes train)."""
    if not _FROZEN:
        import gc
        gc.collect()
        gc.freeze()
        _FROZEN.append(True)


@st.cache_resource(show_spinner=False)
def _icon():
    """The tab icon, drawn here (a ring of 8 dots, like ring8) so the lab makes no outside request."""
    from PIL import Image, ImageDraw
    img = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    draw = ImageDraw.Draw(img)
    for i in range(8):
        a = 2 * np.pi * i / 8
        x, y = 32 + 22 * np.cos(a), 32 + 22 * np.sin(a)
        draw.ellipse((x - 6, y - 6, x + 6, y + 6), fill=(79, 70, 229, 255))
    return img


def run_label(run: Run, state: str | None = None) -> str:
    """Name, state and the id's time stamp: two runs with one name stay apart in every picker."""
    stamp = run.id[:15].replace("-", " ") if run.id[:8].isdigit() else run.id[:15]
    return f"{run.name} · {state or run.state} · {stamp}"


def run_page(title: str) -> Run:
    """The opening of a page about one run: set-up, the sidebar's run picker and the title; with no run selected
    the page says how to start one and stops there."""
    run = run_picker(setup())
    st.title(title)
    if run is None:
        st.info("No run selected: start one on Home or Train.")
        st.stop()
    return run


def run_picker(reg: RunRegistry | None = None) -> Run | None:
    """Sidebar run selector shared by every page; returns the selected Run (None when there are no runs).

    The choice lives in st.session_state["run_id"] and in the URL (?run=<id>): a URL value we did not write
    ourselves (a shared link, a fresh tab) wins once; afterwards the picker drives both.
    """
    reg = reg or registry()
    # a fresh listing, and the one every watch compares with from now on: a watch that read an older one redrew
    # the page it had just been drawn with, again and again for as long as that one was kept (18 runs in 0.25 s)
    runs, plain = _shared_runs(reg, fresh=True)
    labels = _labels(plain)   # read once: what the page draws is what is watched
    url = st.query_params.get(URL_KEY)
    was, at = st.session_state.get("_run_url_was", (None, 0.0))
    # the URL this session just replaced, within ECHO_S, is the browser's copy from before (a fragment's tick sent
    # before the new URL arrived, and the redraw it asked for): taken as a link, Start showed another's run
    echo = url == was and time.monotonic() - at < ECHO_S
    if url and url != st.session_state.get("_run_url") and url in runs and not echo:
        st.session_state[RUN_KEY] = url
    current = st.session_state.get(RUN_KEY)
    if current not in runs:
        current = next(iter(runs), None)   # newest run by default, so a page never opens empty by accident
    st.session_state[RUN_KEY] = current
    if current is not None:
        # the view the page draws its badge and buttons from, read before the labels: one read of the run's
        # state for both (a label from the listing and a badge from a later read disagreed when a run was
        # paused in between, until the next watch tick; in a busy class, for more than 2 s)
        view = runs[current].summary()
        st.session_state[_VIEW_KEY] = view
        again = _shared_runs(reg, fresh=True) if view.state != plain[current][2] else None
        if again is not None and current in again[0]:   # the run's state in the listing is the view's now
            runs, plain = again
            labels = _labels(plain)
    with st.sidebar:
        if not runs:
            st.caption("No runs yet: start one from **Home** or **Train**.")
        else:
            shown = st.session_state.setdefault("_picker_shown", {})
            if len(shown) > 2000:
                shown.clear()
            shown.update({label: i for i, label in labels.items()})
            # a key per selected run: a rerun the browser sends before it has the new selection (any fragment's
            # tick right after Start) carries the old run in the old key, which is gone, so it selects nothing;
            # with one key it read as a pick of the old run, and Start opened another student's run
            key = picker_key(current)
            st.session_state[key] = current   # sent each run: the browser shows the label of now, not its own copy
            st.selectbox("Run", list(runs), key=key,
                         format_func=lambda i: labels.get(i, i), on_change=_picked, args=(key,),
                         help="The run every page shows. The URL keeps it: share the link.")
        watch_states(reg, _signature(labels, runs.get(current), plain[current][2] if current in plain else None))
    if current is None:
        if URL_KEY in st.query_params:
            del st.query_params[URL_KEY]
    elif st.query_params.get(URL_KEY) != current:
        st.query_params[URL_KEY] = current
    if st.session_state.get("_run_url") not in (None, current):
        st.session_state["_run_url_was"] = (st.session_state["_run_url"], time.monotonic())
    st.session_state["_run_url"] = current
    return runs.get(current)


def picked_view(run: Run) -> RunView:
    """The selected run's summary (state, step, config; no history) the sidebar's picker label was drawn from: a
    page's badge and buttons drawn from it say what the picker says. For the page's script after run_picker, not
    a fragment (a fragment's rerun does not draw the picker again)."""
    view = st.session_state.get(_VIEW_KEY)
    return view if isinstance(view, RunView) and view.id == run.id else run.summary()


_VIEW_KEY = "_picked_view"
ECHO_S = 5.0   # a run's URL this session replaced reads as the browser's old copy for this long
STATE_POLL_S = 1.0   # a badge, a picker label or a button's enabled state lags status.json by at most this
STATE_POLL_QUICK_S = 0.5   # the same while the server is idle (a tick costs it ~4 ms of CPU)


def is_mine(run: Run | RunView) -> bool:
    """This browser started the run (the instructor's unlock does not make others' runs theirs)."""
    owner = getattr(run, "owner", None)
    return isinstance(owner, str) and owner == session.me().owner_id


Plain = dict[str, tuple[str, str | None, str]]   # run id -> (label, owner, state the label was made with)


def _plain(runs: dict[str, Run]) -> Plain:
    """Each run's picker label, owner and state: the part of a label every session shares. Labels are unique:
    the browser picks by label, so two ring8 runs started in one second (a class pressing Start together) get
    the rest of their ids too, or a pick of one would select the other."""
    states = {i: r.state for i, r in runs.items()}
    labels = {i: run_label(r, states[i]) for i, r in runs.items()}
    twice = {label for label, n in collections.Counter(labels.values()).items() if n > 1}
    return {i: (f"{label} · {i[15:].lstrip('-')}" if label in twice else label, runs[i].owner, states[i])
            for i, label in labels.items()}


def _labels(plain: Plain) -> dict[str, str]:
    """The picker labels as this browser reads them: its own runs marked "yours"."""
    me = session.me().owner_id
    return {i: label + (" · yours" if owner == me else "") for i, (label, owner, _) in plain.items()}


def _signature(labels: dict[str, str], selected: Run | None, state: str | None) -> tuple:
    """What the page's parts outside its live fragments were drawn from: every run's picker label (name, state),
    and the selected run's state and whether it has a worker (its badge and its Start, Pause and Stop buttons)."""
    return tuple(labels.items()), None if selected is None else (selected.id, selected.alive, state)


def watch_states(reg: RunRegistry, drawn: tuple) -> None:
    """A quiet fragment that redraws the whole page once what it was drawn from changed: a run was queued and now
    trains, was paused or finished by someone else, renamed, created or deleted. Nothing is drawn; the check is
    a status read per run (cached, at most every 0.1 s), every STATE_POLL_S (STATE_POLL_QUICK_S while the server
    is idle: a busy page lagged past 2 s when a change just missed a 1 s tick)."""
    ticks: list[bool] = []

    def body() -> None:
        if not ticks:   # the call inside the page's own run: a rerun there would drop that run's button press
            ticks.append(True)
            return
        runs, plain = _shared_runs(reg)
        # the run the page was drawn for, not session_state's: a callback in this fragment run may have moved
        # run_id (the page redraws for that on its own), and comparing against it redrew the page in a loop
        selected = runs.get(drawn[1][0]) if drawn[1] else None
        # the selected run's own state (re-read every 0.1 s), not only its label in the shared listing (0.3 s)
        if _signature(_labels(plain), selected, selected.state if selected else None) != drawn:
            messages.redraw_next()
            st.rerun()

    with st.container(key="state-watch"):
        st.fragment(body, run_every=load.poll_s(STATE_POLL_QUICK_S, STATE_POLL_S))()


_SHARED_S = 0.3   # every open page's check within this reads one listing: 40 tabs cost ~3 listings a second
_shared: dict = {}
_shared_lock = threading.Lock()


def _shared_runs(reg: RunRegistry, fresh: bool = False) -> tuple[dict[str, Run], Plain]:
    """reg.list() and each run's (label, owner), shared by every session's watch for _SHARED_S (listing and
    labelling 40 runs costs ~3 ms of CPU; each session then only adds its own "yours"). `fresh` lists now: a page
    drawn from a listing leaves it here, so no watch compares that page with an older one."""
    with _shared_lock:
        now = time.monotonic()
        if fresh or _shared.get("reg") is not reg or now - _shared.get("at", -1e9) > _SHARED_S:
            runs = {r.id: r for r in reg.list()}
            _shared.update(reg=reg, at=now, runs=runs, plain=_plain(runs))
        return _shared["runs"], _shared["plain"]


def picker_key(run_id: str) -> str:
    """The sidebar picker's widget key while `run_id` is selected."""
    return f"_run_picker.{run_id}"


def _picked(key: str) -> None:
    """The browser sends the picked option's label. One drawn before a run's state changed (a pick, or any
    fragment's tick, sent while the new labels were on their way) matches no option now, and Streamlit hands it
    over as the label itself: it is mapped back to its run. Taken as an id, it selected the newest run, another
    student's, in the middle of a class."""
    if key != picker_key(st.session_state.get(RUN_KEY)):
        # the picker of a run selected before (a Start, a link): the browser sends its old copy with any rerun
        # it sends before the new page arrives, and a label that changed since (another student's run, queued
        # then running) read as a pick: a student's Start opened the other student's run (1 in 6 rehearsals)
        return
    value = st.session_state[key]
    shown = st.session_state.get("_picker_shown", {})
    run_id = value if value in shown.values() else shown.get(value)
    if run_id is not None:
        st.session_state[RUN_KEY] = run_id


def select_run(run_id: str) -> None:
    """Make `run_id` the selected run (takes effect from the next run of the script)."""
    st.session_state[RUN_KEY] = run_id


def wait_until(run: Run, done: Callable[[RunView], bool], timeout: float = 3.0) -> RunView:
    """Poll run.view() until `done(view)` or `timeout` s, so a page drawn after a command shows its effect."""
    deadline = time.monotonic() + timeout
    while True:
        view = run.view(with_snapshots=False)
        if done(view) or time.monotonic() > deadline:
            return view
        time.sleep(0.05)


def live_owners(reg: RunRegistry) -> list[str | None]:
    return [r.owner for r in reg.list() if r.state in ("queued", "running", "paused")]


def start_run(cfg: TrainConfig, name: str | None = None, reg: RunRegistry | None = None) -> Run:
    """Create and start a run owned by this session, select it, and wait until its worker has it.
    Raises owners.NotAllowed past the per-person cap."""
    reg = reg or registry()
    who = session.me()
    owners.check_quota(live_owners(reg), who)
    run = reg.create(cfg, name or None, start=True, owner=who.owner_id)
    select_run(run.id)
    wait_until(run, lambda v: v.state != "created" or not run.alive)
    return run


# --- state display ----------------------------------------------------------------------------------------
def state_badge(view: RunView | Run, key: str | None = None) -> None:
    colour, icon = STATE_STYLE.get(view.state, ("gray", None))
    # a page's own badge sits in a keyed container, so a test finds it; lists of runs draw theirs bare
    with st.container(key=key) if key else contextlib.nullcontext():
        st.badge(view.state, color=colour, icon=icon)


def state_message(view: RunView) -> None:
    """The run's state and message the way a person wants it: errors red, waits blue, success green.

    Always exactly one element, so the live elements below keep their place (and their identity) when the
    message comes and goes.
    """
    msg = view.message or ""
    if view.state in ("failed", "diverged"):
        st.error(f"**{view.state.capitalize()}**: {msg}", icon=":material/error:")
    elif view.state in ("queued", "interrupted", "paused", "created"):
        default = {"paused": "Paused: Resume continues, the Step buttons advance one update at a time.",
                   "created": "Not started yet."}.get(view.state, "")
        st.info(msg or default, icon=STATE_STYLE[view.state][1])
    elif view.state == "finished":
        st.success(msg or "Finished.", icon=":material/check:")
    elif view.state == "stopped":
        st.warning(f"{msg}. Start continues from the last checkpoint." if msg else "Stopped.")
    else:
        st.caption(msg or "Training: the charts refresh every second.")

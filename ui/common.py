"""Streamlit helpers shared by every page: setup, the run picker, state display, live fragments, the
run panels (controls, live settings, progress, charts, quality) and the training-config form.

How a page uses it (every page file, also when opened directly by URL on a fresh server):

    from ui.common import setup, run_picker
    reg = setup()            # page config + the process-wide run registry; always the first call
    run = run_picker(reg)    # sidebar selector; st.session_state["run_id"] and the URL's ?run= follow it

Live pages wrap what changes in `live_fragment(run, render, key=...)`: it polls once a second only while
the run trains (queued/running) and triggers one full rerun when the run ends, so an idle page costs
nothing. Commands are button callbacks (`on_click`), so the whole page already sees the new state.
Charts drawn in a live fragment use `echart` (ganlab/charts.py: keyed ECharts update in place); a keyed
st.plotly_chart still remounts on every data change in Streamlit 1.67, so `chart` (plotly, ganlab/viz.py)
is for views that change only on user input. Pure logic lives in ganlab/; `parse_config` (ui/config_form.py,
re-exported here) is the testable half of the form.
"""
from __future__ import annotations

import os
import sys
import time
from typing import Any, Callable

import numpy as np
import streamlit as st

from ganlab import charts, owners, viz
from ganlab.config import LIVE_FIELDS, ConfigError, TrainConfig
from ganlab.diagnose import diagnose
from ganlab.metrics import quality_rows
from ganlab.runs import Run, RunRegistry, RunView, get_registry
from ganlab.store import default_runs_dir
from ui import session
from ui.config_form import (  # noqa: F401 - re-exported: pages import the form from ui.common
    FORM_GROUPS,
    config_form,
    data_upload,
    field_widget,
    load_form,
    parse_config,
    preset_picker,
    widget_value,
)

RUN_KEY = "run_id"          # session_state key of the selected run id (pages read it)
URL_KEY = "run"             # query parameter carrying the selected run, so a link opens the same run
LIVE_EVERY = 1.0            # seconds between live refreshes while a run trains
STATE_STYLE = {             # badge colour and icon per run state
    "created": ("gray", ":material/radio_button_unchecked:"), "queued": ("orange", ":material/hourglass_top:"),
    "running": ("blue", ":material/play_arrow:"), "paused": ("violet", ":material/pause:"),
    "finished": ("green", ":material/check:"), "stopped": ("gray", ":material/stop:"),
    "diverged": ("red", ":material/warning:"), "failed": ("red", ":material/error:"),
    "interrupted": ("orange", ":material/power_off:"),
}
PLOT_CONFIG = {"displayModeBar": False}


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
    session.remember()
    session.instructor_box()
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


def run_label(run: Run) -> str:
    """Name, state and the id's time stamp: two runs with one name stay apart in every picker."""
    stamp = run.id[:15].replace("-", " ") if run.id[:8].isdigit() else run.id[:15]
    return f"{run.name} · {run.state} · {stamp}"


def run_picker(reg: RunRegistry | None = None) -> Run | None:
    """Sidebar run selector shared by every page; returns the selected Run (None when there are no runs).

    The choice lives in st.session_state["run_id"] and in the URL (?run=<id>): a URL value we did not write
    ourselves (a shared link, a fresh tab) wins once; afterwards the picker drives both.
    """
    reg = reg or registry()
    runs = {r.id: r for r in reg.list()}
    url = st.query_params.get(URL_KEY)
    if url and url != st.session_state.get("_run_url") and url in runs:
        st.session_state[RUN_KEY] = url
    current = st.session_state.get(RUN_KEY)
    if current not in runs:
        current = next(iter(runs), None)   # newest run by default, so a page never opens empty by accident
    st.session_state[RUN_KEY] = current
    with st.sidebar:
        if not runs:
            st.caption("No runs yet: start one from **Home** or **Train**.")
        else:
            st.session_state["_run_picker"] = current   # keep the widget in step with run_id
            st.selectbox("Run", list(runs), key="_run_picker", format_func=lambda i: run_label(runs[i]),
                         on_change=_picked, help="The run every page shows. The URL keeps it: share the link.")
    if current is None:
        if URL_KEY in st.query_params:
            del st.query_params[URL_KEY]
    elif st.query_params.get(URL_KEY) != current:
        st.query_params[URL_KEY] = current
    st.session_state["_run_url"] = current
    return runs.get(current)


def _picked() -> None:
    st.session_state[RUN_KEY] = st.session_state["_run_picker"]


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
def state_badge(view: RunView | Run) -> None:
    colour, icon = STATE_STYLE.get(view.state, ("gray", None))
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


# --- live refresh -----------------------------------------------------------------------------------------
def is_live(view: RunView, run: Run | None = None) -> bool:
    """True while the run trains, including the moment between Start and its thread's first state."""
    return view.active or (run is not None and view.state == "created" and run.alive)


def live(view: RunView, run: Run | None = None) -> float | None:
    """run_every for a fragment watching `view`: LIVE_EVERY while it trains, None (no polling) otherwise."""
    return LIVE_EVERY if is_live(view, run) else None


def live_fragment(run: Run, render: Callable[[RunView], Any], *, key: str, every: float | None = None) -> None:
    """Draw `render(run.view())` in a fragment that refreshes while the run trains.

    `every` overrides the period (e.g. an animation); then `render` returning True keeps the timer going.
    When the run stops training, one full st.rerun() redraws the page without a timer.
    """
    period = every if every is not None else live(run.view(with_snapshots=False), run)

    def body() -> None:
        view = run.view()
        keep = render(view)
        if period is not None and not (keep or is_live(view, run)):
            st.rerun()   # the run ended (or the animation did): redraw once, without polling

    # Fragment ids hash the function name and the parent container's path; a container of its own keeps
    # two live fragments on one page apart.
    with st.container(key=f"frag-{key}"):
        st.fragment(body, run_every=period)()


# --- run panels -------------------------------------------------------------------------------------------
def _command(run_id: str, action: str) -> None:
    """Button callback: run one command and wait briefly for its effect (runs before the page redraws)."""
    run = registry().get(run_id)
    try:
        owners.check(run.owner, session.me(), {"d": "step", "g": "step", "both": "step"}.get(action, action))
    except owners.NotAllowed as e:
        st.session_state["_flash"] = str(e)
        return
    before = run.view(with_snapshots=False)
    last = lambda v: (v.step, len(v.history["time"]), v.history["time"][-1] if len(v.history["time"]) else 0)  # noqa: E731
    try:
        if action == "start":
            run.start()
            wait_until(run, lambda v: v.state not in ("created", "stopped", "interrupted", "failed"))
        elif action == "pause":
            run.pause()
            wait_until(run, lambda v: v.state not in ("running", "queued") or not run.alive)
        elif action == "resume":
            run.resume()
            wait_until(run, lambda v: v.state != "paused")
        elif action == "stop":
            run.stop()
            wait_until(run, lambda v: not run.alive, timeout=10.0)   # the worker saves a checkpoint, then exits
        elif action in ("d", "g", "both"):
            run.request_step(action)
            wait_until(run, lambda v: last(v) != last(before) or v.state == "failed", timeout=10.0)
    except (RuntimeError, ValueError, OSError) as e:
        st.session_state["_flash"] = f"{action} failed: {e}"


def run_controls(run: Run, view: RunView, key: str = "ctl") -> None:
    """Start / Pause / Resume / Stop and single-step buttons for `run` (disabled for others' runs)."""
    s, alive = view.state, run.alive
    mine = owners.may_command(run.owner, session.me())
    done = s in ("finished", "diverged")
    buttons = [
        ("Start", "start", ":material/play_arrow:", alive or s not in ("created", "stopped", "interrupted", "failed")),
        ("Pause", "pause", ":material/pause:", s not in ("running", "queued")),
        ("Resume", "resume", ":material/resume:", s != "paused"),
        ("Stop", "stop", ":material/stop:", not alive and s not in ("running", "queued", "paused")),
        ("Step D", "d", None, done or s == "failed"),
        ("Step G", "g", None, done or s == "failed"),
        ("Step both", "both", ":material/skip_next:", done or s == "failed"),
    ]
    cols = st.columns(len(buttons))
    for col, (label, action, icon, disabled) in zip(cols, buttons):
        col.button(label, key=f"{key}-{action}", icon=icon, disabled=disabled or not mine, on_click=_command,
                   args=(run.id, action), width="stretch",
                   help="A step pauses the run first; 'both' is d_steps D updates then one G update."
                   if action in ("d", "g", "both") else None)
    if not mine:
        st.caption("Someone else started this run: you can watch it and branch it (Runs page); its owner or "
                   "the instructor controls it.")
    flash = st.session_state.pop("_flash", None)
    if flash:
        st.error(flash)


def _apply_live(run_id: str, names: tuple[str, ...]) -> None:
    run = registry().get(run_id)
    try:
        owners.check(run.owner, session.me(), "edit")
    except owners.NotAllowed as e:
        st.session_state["_live_msg"] = ("error", str(e))
        return
    changes = {n: st.session_state[f"live.{run_id}.{n}"] for n in names}
    changes = {n: v for n, v in changes.items() if v != getattr(run.cfg, n)}
    try:
        if changes:
            run.update_live(**changes)
        st.session_state["_live_msg"] = ("ok", f"applied {', '.join(changes)}" if changes else "nothing changed")
    except (ConfigError, ValueError) as e:
        st.session_state["_live_msg"] = ("error", str(e))


def live_settings(run: Run, view: RunView) -> None:
    """Form for the settings a run accepts while it trains (LIVE_FIELDS); they apply from the next step."""
    names = tuple(n for n in LIVE_FIELDS if n != "gp_lambda" or view.cfg.loss == "wgan-gp")
    with st.form(f"live-form-{run.id}", border=False):
        cols = st.columns(4)
        for i, name in enumerate(names):
            with cols[i % 4]:
                field_widget(name, getattr(view.cfg, name), f"live.{run.id}.{name}")
        st.form_submit_button("Apply to the running run", on_click=_apply_live, args=(run.id, names),
                              disabled=not owners.may_command(run.owner, session.me()))
    kind, msg = st.session_state.pop("_live_msg", (None, None))
    if kind == "error":
        st.error(msg)
    elif kind == "ok":
        st.caption(f"Live settings: {msg}.")


def progress(view: RunView) -> None:
    """Step, epoch, speed and device of a run, plus a progress bar."""
    c = st.columns(4)
    c[0].metric("Step", f"{view.step:,} / {view.cfg.steps:,}")
    c[1].metric("Epoch", view.epoch)
    c[2].metric("Images/s" if not view.cfg.is_2d else "Points/s", f"{view.images_per_s:,.0f}")
    c[3].metric("Device", view.device or "-")
    st.progress(min(1.0, view.step / max(1, view.cfg.steps)))


def chart(fig, key: str) -> None:
    """A plotly figure (for views redrawn on user input; it remounts whenever the figure changes)."""
    st.plotly_chart(fig, key=key, config=PLOT_CONFIG, width="stretch")


def echart(option: dict, key: str, height: int = charts.CHART_HEIGHT, width: int | str = "stretch") -> None:
    """An ECharts option from ganlab.charts. The key keeps the element across reruns, so a live refresh
    updates the same canvas in place (no remount, no flicker)."""
    st.echarts_chart(option, key=key, height=height, width=width)


def echart_2d(option: dict, key: str, side: int = charts.SQUARE_SIDE) -> None:
    """A square 2D view from ganlab.charts at its fixed pixel size."""
    width, height = charts.square_size(side, colorbar="visualMap" in option)
    echart(option, key, height=height, width=width)


# cache_resource: every session gets the same option object, no per-read copy (cache_data unpickled a copy each
# time: 2 ms per chart per session). Safe to share: st.echarts_chart copies the dicts it changes and only reads
# the lists and Arrow tables.
@st.cache_resource(max_entries=128, ttl=120, show_spinner=False)
def _option(builder: str, version: tuple, _args: tuple, kwargs: dict) -> dict:
    return getattr(charts, builder)(*_args, **kwargs)


def chart_option(builder: str, version: tuple, *args: Any, **kwargs: Any) -> dict:
    """charts.<builder>(*args, **kwargs), built once per `version` and shared by every session.

    A class watching one run polls it 30 times a second in total; the options only change when the run
    publishes new data, so `version` (run id + what identifies that data) is the cache key, not the data:
    `args` (the data) are not hashed, `kwargs` are. Pass every display choice (layers, sizes) as a kwarg.
    """
    return _option(builder, version, args, kwargs)


def history_version(view: RunView) -> tuple:
    """Changes at most once a second while the run trains (a ring8 run adds 20 rows a second, and every new
    version is one more build of each chart for the class); on every new row once it has stopped."""
    t = view.history.get("time", ())
    if view.active and len(t):
        return (view.id, "live", int(t[-1]))
    return (view.id, len(t), float(t[-1]) if len(t) else 0.0)


def snapshot_version(view: RunView, snap) -> tuple:
    return (view.id, snap.step, snap.time)


def history_charts(view: RunView, key: str = "hist") -> None:
    """Live charts of a run: losses, D scores, gradient norms, the Wasserstein estimate (WGAN-GP)."""
    h, version = view.history, history_version(view)
    label = view.latest.score_label if view.latest else "mean D"
    left, right = st.columns(2)
    with left:
        echart(chart_option("loss_chart", version, h), f"{key}-loss")
    with right:
        echart(chart_option("scores_chart", version, h, label=label), f"{key}-scores")
    left, right = st.columns(2)
    with left:
        echart(chart_option("grads_chart", version, h), f"{key}-grads")
    with right:
        if view.cfg.loss == "wgan-gp":
            echart(chart_option("wdist_chart", version, h), f"{key}-wdist")
        else:
            latest_samples(view, f"{key}-samples")


def latest_samples(view: RunView, key: str, nrow: int | None = None) -> None:
    """The newest snapshot's samples: a montage image, or the real/fake scatter for 2D runs."""
    snap = view.latest
    if snap is None:
        st.caption("Samples appear here after the first snapshot.")
    elif snap.is_2d:
        side = charts.CHART_HEIGHT - charts.MARGIN["top"] - charts.MARGIN["bottom"]
        echart_2d(chart_option("scatter_2d_chart", snapshot_version(view, snap), snap, side=side), key, side=side)
    else:
        show_montage(snap.fake[:64], caption=f"samples at step {snap.step}", nrow=nrow)


def quality_panel(view: RunView) -> None:
    """Latest quality measures and the diagnoses with what to try (ganlab.quality / ganlab.diagnose)."""
    found = diagnose(view.history, view.quality, view.cfg.loss, view.cfg.is_2d)
    for d in found:
        show = st.error if d.severity == "error" else st.warning
        show(f"**{d.title}** (since step {d.step:,}): {d.message}\n\n**Try:** {d.fix}")
    if not view.quality:
        return
    latest = view.quality[-1]
    rows = quality_rows(latest)
    if not rows:
        return
    st.markdown(f"**Quality** at step {latest.get('step', 0):,}")
    st.table({"measure": [r[0] for r in rows], "value": [r[1] for r in rows], "meaning": [r[2] for r in rows]})


def show_montage(images: np.ndarray, caption: str | None = None, nrow: int | None = None,
                 target_px: int = 420) -> np.ndarray:
    """One st.image for a whole grid (updates in place, no flicker); enlarged by whole pixels."""
    tile = viz.montage(images, nrow=nrow)
    scale = max(1, round(target_px / max(tile.shape[:2])))
    img = viz.upscale(tile, scale)
    st.image(img, caption=caption, output_format="PNG")
    return tile


def snapshot_slider(view: RunView, key: str, playing: bool = False) -> int:
    """A slider over the run's snapshots; returns the chosen index.

    It follows the newest snapshot while it sits at the end (so a live page keeps up), stays put on an old
    one otherwise, and advances one snapshot per call while `playing` (the Samples page's animation).
    A link's step (st.session_state[f"{key}.want"], set by the page) selects that snapshot once.
    """
    steps = [s.step for s in view.snapshots]
    n = len(steps)
    if n <= 1:
        return n - 1
    idx = st.session_state.get(key)
    if not isinstance(idx, int) or idx >= n:
        idx = n - 1
    want = st.session_state.pop(f"{key}.want", None)   # a link's step: the last snapshot at or before it
    if isinstance(want, int):
        idx = max([i for i, s in enumerate(steps) if s <= want] or [0])
        st.session_state[f"{key}.follow"] = idx == n - 1
    if playing:
        idx = idx + 1 if idx + 1 < n else 0      # pressing Play at the end starts from the first snapshot
    elif st.session_state.get(f"{key}.follow", True):
        idx = n - 1
    st.session_state[key] = idx
    st.session_state[f"{key}.n"] = n
    st.select_slider("Snapshot", options=range(n), key=key, format_func=lambda i: f"step {steps[i]:,}",
                     on_change=_slid, args=(key,))
    st.session_state[f"{key}.follow"] = idx == n - 1 and not playing
    return idx


def _slid(key: str) -> None:
    st.session_state[f"{key}.follow"] = st.session_state[key] == st.session_state.get(f"{key}.n", 0) - 1


# --- data for the pages -----------------------------------------------------------------------------------
@st.cache_data(show_spinner="Loading real images...", max_entries=8)
def _real_images(dataset: str, data_path: str, image_size: int, seed: int, n: int) -> np.ndarray | None:
    from ganlab.data import load_dataset

    try:
        data = load_dataset(TrainConfig(dataset=dataset, data_path=data_path, image_size=image_size, seed=seed))
    except Exception:  # noqa: BLE001 - a missing dataset only hides the real column
        return None
    idx = np.random.default_rng(seed).choice(len(data), size=min(n, len(data)), replace=False)
    return data.x[idx].numpy()


def real_images(cfg: TrainConfig, n: int = 64) -> np.ndarray | None:
    """n real training images (N, C, H, W) in [-1, 1] for the run's dataset, cached; None if unavailable."""
    return _real_images(cfg.dataset, cfg.data_path, cfg.image_size, cfg.seed, n)


def class_names(view: RunView) -> list[str]:
    """Class labels a conditional run can draw ([] for unconditional runs)."""
    snap = view.latest
    if not view.cfg.conditional or snap is None or snap.labels is None or not len(snap.labels):
        return []
    n = int(np.max(snap.labels)) + 1
    if view.cfg.dataset in ("fashion", "torchvision-fashion"):
        from ganlab.data import FASHION_CLASSES
        return list(FASHION_CLASSES[:n])
    return [str(i) for i in range(n)] if not view.cfg.is_2d else [f"mode {i}" for i in range(n)]

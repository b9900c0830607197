"""Live views of a run: fragments that refresh while it trains, charts that update in place, and the sample
pictures and snapshot slider the pages share.

Live pages wrap what changes in `live_fragment(run, render, key=...)`: it polls once a second only while the run
trains (queued/running) and triggers one full rerun when the run ends, so an idle page costs nothing. Every
chart is an `echart` (ganlab/charts.py: a keyed ECharts updates in place); a keyed st.plotly_chart remounts on
every data change in Streamlit 1.67, so no page draws plotly. Options are built once per (run, version) for
every session (`chart_option`).
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import streamlit as st

from ganlab import charts, overview
from ganlab.config import TrainConfig
from ganlab.data_specs import SPECS
from ganlab.loss_specs import LOSS_SPECS
from ganlab.montage import montage, upscale
from ganlab.runs import Run, RunView
from ganlab.viz import CHART_HEIGHT

LIVE_EVERY = 1.0            # seconds between live refreshes while a run trains


def is_live(view: RunView, run: Run | None = None) -> bool:
    """True while the run trains, including the moment between Start and its thread's first state."""
    return view.active or (run is not None and view.state == "created" and run.alive)


def live(view: RunView, run: Run | None = None) -> float | None:
    """run_every for a fragment watching `view`: LIVE_EVERY while it trains, None (no polling) otherwise."""
    return LIVE_EVERY if is_live(view, run) else None


def live_fragment(run: Run, render: Callable[[RunView], Any], *, key: str, every: float | None = None) -> None:
    """Draw `render(run.view())` in a fragment that refreshes while the run trains.

    `every` overrides the period (e.g. an animation); then `render` returning True keeps the timer going.
    When the run stops training, one full st.rerun() redraws the page without a timer; when its state changes,
    one full st.rerun() redraws what the page shows outside the fragment (a second chance beside the state
    watch's, on a timer of its own: the page follows sooner).
    """
    drawn = run.view(with_snapshots=False)
    period = every if every is not None else live(drawn, run)

    ticks: list[bool] = []   # empty in the page's own run, where a rerun would drop a button press below

    def body() -> None:
        view = run.view()
        keep = render(view)
        if not ticks:
            ticks.append(True)
            return
        if period is not None and not (keep or is_live(view, run)):
            st.rerun()   # the run ended (or the animation did): redraw once, without polling
        if every is None and view.state != drawn.state:
            st.rerun()   # queued -> running: the badge and buttons outside follow now, not at the state watch's tick

    # Fragment ids hash the function name and the parent container's path; a container of its own keeps
    # two live fragments on one page apart.
    with st.container(key=f"frag-{key}"):
        st.fragment(body, run_every=period)()


def echart(option: dict, key: str, height: int = CHART_HEIGHT, width: int | str = "stretch") -> None:
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
    module, _, name = builder.rpartition(".")
    return getattr(_BUILDERS[module or "charts"], name)(*_args, **kwargs)


_BUILDERS = {"charts": charts, "overview": overview}


def chart_option(builder: str, version: tuple, *args: Any, **kwargs: Any) -> dict:
    """charts.<builder>(*args, **kwargs) (or "overview.<builder>"), built once per `version` and shared by every
    session.

    A class watching one run polls it 30 times a second in total; the options only change when the run
    publishes new data, so `version` (run id + what identifies that data) is the cache key, not the data:
    `args` (the data) are not hashed, `kwargs` are. Pass every display choice (layers, sizes) as a kwarg.
    """
    return _option(builder, version, args, kwargs)


def mode_bars(view: RunView, key: str, height: int = CHART_HEIGHT, step: int | None = None) -> bool:
    """Fakes per mode (2D mixtures) as bars with the covered line, from the newest quality measure at or before
    `step` (default: the newest); False if there is none."""
    rows = [q for q in view.quality if step is None or q.get("step", 0) <= step]
    latest = rows[-1] if rows else None
    if not latest or not latest.get("mode_counts"):
        return False
    echart(chart_option("mode_bar_chart", (view.id, "modes", latest.get("step")), latest), key, height=height)
    st.caption("A mode counts as covered when its bar reaches the dashed line; grey bars do not. A collapsed G "
               "shows a few tall bars that move from mode to mode as D catches up.")
    return True


def history_version(view: RunView) -> tuple:
    """Changes at most once a second while the run trains (a ring8 run adds 20 rows a second, and every new
    version is one more build of each chart for the class); on every new row once it has stopped."""
    t = view.history.get("time", ())
    if view.active and len(t):
        return (view.id, "live", int(t[-1]))
    return (view.id, len(t), float(t[-1]) if len(t) else 0.0)


def snapshot_version(view: RunView, snap) -> tuple:
    return (view.id, snap.step, snap.time)


def model_overview(view: RunView, key: str) -> None:
    """GAN Lab's model overview: the data flow of a step with the newest history row's numbers, and the same
    numbers as a caption (readable on a projector and by screen readers). Keyed by that row, so the graph and
    its caption always agree; the layout is fixed, so a refresh changes only the numbers, in place."""
    row = overview.latest_row(view.history)
    if row is None:
        st.caption("The model overview fills in with the first statistics.")
        return
    version = (view.id, "overview", row.get("step"), row.get("time"))
    echart(chart_option("overview.overview_chart", version, row, view.cfg), f"{key}-overview",
           height=overview.HEIGHT)
    st.caption(overview.overview_text(row, view.cfg))


def history_charts(view: RunView, key: str = "hist") -> None:
    """Live charts of a run: losses, D scores, gradient norms, then the newest 2D view with its noise (2D runs)
    or the newest samples, or the Wasserstein estimate (WGAN-GP)."""
    h, version = view.history, history_version(view)
    label = view.latest.score_label if view.latest else "mean D"
    left, right = st.columns(2)
    with left:
        echart(chart_option("loss_chart", version, h), f"{key}-loss")
    with right:
        echart(chart_option("scores_chart", version, h, label=label), f"{key}-scores")
    critic = LOSS_SPECS[view.cfg.loss].gradient_penalty   # a critic: its W estimate means something
    noise = not critic and view.cfg.is_2d and view.latest is not None and view.cfg.noise_dim <= 2
    cols = st.columns([3, 2, 3] if noise else [1, 1], vertical_alignment="center")
    with cols[0]:
        echart(chart_option("grads_chart", version, h), f"{key}-grads")
    if noise:
        with cols[1]:
            noise_view(view, f"{key}-noise")
    with cols[-1]:
        if critic:
            echart(chart_option("wdist_chart", version, h), f"{key}-wdist")
        else:
            latest_samples(view, f"{key}-samples")


def noise_view(view: RunView, key: str) -> None:
    """What G maps from in a 2D run with 1-d or 2-d noise: prior samples and the grid whose image is the
    manifold of the 2D view beside it (ganlab.overview.noise_chart)."""
    cfg, snap = view.cfg, view.latest
    shape = None if snap.manifold is None else tuple(snap.manifold.shape)
    option = chart_option("overview.noise_chart", (view.id, "noise", shape), snap, noise_dim=cfg.noise_dim,
                          noise_dist=cfg.noise_dist, seed=cfg.seed)
    width, height = overview.noise_size(cfg.noise_dim)
    echart(option, key, height=height, width=width)
    st.caption(f"Noise at step {snap.step:,}: G maps each z to one fake point, and the grey grid of z to the "
               "grey manifold lines.")


def latest_samples(view: RunView, key: str, nrow: int | None = None) -> None:
    """The newest snapshot's samples: a montage image, or for 2D runs the real and fake points with G's manifold
    (and, for noise of more than 2 dimensions, which slice of it)."""
    snap = view.latest
    if snap is None:
        st.caption("Samples appear here after the first snapshot.")
    elif snap.is_2d:
        side = CHART_HEIGHT - charts.MARGIN["top"] - charts.MARGIN["bottom"]
        option = chart_option("layered_2d_chart", snapshot_version(view, snap), snap,
                              layers=("fake", "manifold", "real"), side=side, legend=False)   # too narrow
        echart_2d(option, key, side=side)
        st.caption("Blue: real points · orange: fakes G(z) · grey: G's manifold. "
                   + (overview.noise_note(view.cfg.noise_dim) or ""))
    else:
        show_montage(snap.fake[:64], caption=f"samples at step {snap.step}", nrow=nrow)


def show_montage(images: np.ndarray, caption: str | None = None, nrow: int | None = None,
                 target_px: int = 420) -> np.ndarray:
    """One st.image for a whole grid (updates in place, no flicker); enlarged by whole pixels."""
    tile = montage(images, nrow=nrow)
    scale = max(1, round(target_px / max(tile.shape[:2])))
    img = upscale(tile, scale)
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
    if st.session_state.pop(f"{key}.moved", False) and not playing:
        # a person moved the slider: the slider lives in a fragment, so only the fragment reran; what the page
        # draws outside it from the chosen snapshot (download names, Copy link's step) must follow too
        st.rerun()
    return idx


def _slid(key: str) -> None:
    st.session_state[f"{key}.follow"] = st.session_state[key] == st.session_state.get(f"{key}.n", 0) - 1
    st.session_state[f"{key}.moved"] = True


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
    names = SPECS[view.cfg.dataset].class_names
    return list(names[:n]) if len(names) >= n else [str(i) for i in range(n)]

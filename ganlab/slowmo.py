"""Slow motion for 2D runs (GAN Lab's step-by-step mode): one D update or one G update at a time, on a private
copy of the run, with the moment before and after each update for an animated figure.

`Stepper.from_run(store, cfg)` builds a local `Trainer` on the CPU from the run's newest checkpoint (weights,
optimiser state, counters, RNG: the update it takes next is the one the run would take), or fresh from the
run's config at step 0 when the run has no checkpoint yet (the worker seeds its networks the same way, so these
are the run's own starting weights). Checkpoints are loaded and checked through `ckpt_load.load_checked` (no code
from them runs; every field, tensor layout and string is checked) before Trainer.load_state_dict sees them.
Nothing is ever written into the run directory: the run keeps training, or stays as it is. A server never builds
a Stepper itself: `ganlab.slowmo_box` runs it in a sandbox process and hands the page plain Moments and Moves.

`Stepper.step_d()` is exactly one D update (Trainer.step_d), `step_g()` exactly one G update (Trainer.step_g),
`step_both()` one of each; each returns a `Move`: the `Moment`s before and after (and between, for both).
A Moment is plain numpy: fakes from the run's fixed noise, real points, D's score grid over the run's plot range,
the gradient arrows on the fakes (minus dL_G/dx, as on the Discriminator page), D(x) and D(G(z)) means, losses.
`Move.describe()` says what happened in a sentence; `move_figure(move)` draws it as a plotly figure with one
frame per moment and a play button (fakes glide along their arrows, the heatmap changes between frames).

`save()` / `Stepper.restore(data)` turn a stepper into bytes and back exactly (a 2D stepper is ~100 kB; a page
may also keep the object itself). Never imports streamlit.
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import numpy as np

from .config import TrainConfig
from .loss_specs import LOSS_SPECS
from .store import RunStore, StoreError
from .viz import FAKE_COLOR, REAL_COLOR, arrows

SHOWN = 256          # fakes (and their arrows) a moment holds: the first of the run's fixed noise
REALS = 512          # real points a moment holds
KINDS = ("d", "g", "both")


class SlowMoError(RuntimeError):
    """Slow motion cannot start on this run; the message says why in words a student can act on."""


@dataclass(frozen=True)
class Moment:
    """The run's local copy at one moment, as plain numpy."""
    step: int                # G updates (the run's step counter)
    d_updates: int
    fake: np.ndarray         # (SHOWN, 2) G of the fixed noise
    grads: np.ndarray        # (SHOWN, 2) minus dL_G/dx at each fake: where G's loss pushes it
    real: np.ndarray         # (REALS, 2)
    xs: np.ndarray           # (R,) the grid's x values (and y values: the view is square)
    field: np.ndarray        # (R, R) D's score, row i = y value i
    d_real: float            # mean D score on the real points (a probability for sigmoid losses)
    d_fake: float            # mean D score on the fakes
    loss_d: float            # D's loss on these real points and fakes
    loss_g: float            # G's loss on these fakes


@dataclass(frozen=True)
class Move:
    """One slow-motion update: `kind` 'd', 'g' or 'both', the `number`-th of its kind on this stepper, and the
    moments it passed through (before, after; before, after D, after G for 'both')."""
    kind: str
    number: int
    moments: tuple[Moment, ...]
    sigmoid: bool
    boundary: float | None

    @property
    def before(self) -> Moment:
        return self.moments[0]

    @property
    def after(self) -> Moment:
        return self.moments[-1]

    def describe(self) -> str:
        """What just happened, in a sentence or two (markdown)."""
        name = {"d": "D update", "g": "G update", "both": "D+G step"}[self.kind]
        a, b = self.before, self.after
        head = (f"**{name} {self.number}**: D(x) {_f(a.d_real)} → {_f(b.d_real)}, "
                f"D(G(z)) {_f(a.d_fake)} → {_f(b.d_fake)}")
        parts = []
        if self.kind in ("d", "both"):
            d_after = self.moments[1]
            parts.append(f"D loss {_f(a.loss_d)} → {_f(d_after.loss_d)}; " + field_shift(a, d_after))
        if self.kind in ("g", "both"):
            g_before = self.moments[-2]
            parts.append(f"G loss {_f(g_before.loss_g)} → {_f(b.loss_g)}; " + fake_shift(g_before, b))
        if self.kind == "d":
            parts.append("the fakes stay where they were (G did not change)")
        return head + "; " + "; ".join(parts) + "."


def _f(v: float) -> str:
    return f"{v:.3f}" if abs(v) < 100 else f"{v:,.1f}"


def field_shift(a: Moment, b: Moment) -> str:
    """How D's heatmap changed from `a` to `b`, in words."""
    delta = b.field - a.field
    i, j = np.unravel_index(int(np.argmax(np.abs(delta))), delta.shape)
    biggest = float(delta[i, j])
    return (f"the heatmap shifted by {np.abs(delta).mean():.4f} on average, most at "
            f"({a.xs[j]:.1f}, {a.xs[i]:.1f}) where D's score {'rose' if biggest > 0 else 'fell'} "
            f"by {abs(biggest):.4f}")


def fake_shift(a: Moment, b: Moment) -> str:
    """How the fakes moved from `a` to `b` relative to their arrows at `a`, in words."""
    moved = b.fake - a.fake
    dist = np.linalg.norm(moved, axis=1)
    along = float(np.mean(np.sum(moved * a.grads, axis=1) > 0))
    return (f"the {len(moved):,} fakes moved {dist.mean():.4f} on average, {along:.0%} of them along their "
            "arrows")


class Stepper:
    """A private CPU copy of a 2D run that takes one update at a time. `origin` says where it started."""

    def __init__(self, trainer, origin: str, base_step: int) -> None:
        self.trainer = trainer
        self.origin = origin
        self.base_step = base_step            # the run's step this copy started from
        self.d_done = 0                       # D updates taken here (a D+G step counts one of each)
        self.g_done = 0
        self.both_done = 0                    # D+G steps taken here
        spec = LOSS_SPECS.get(trainer.cfg.loss)
        self.sigmoid = bool(trainer.loss.uses_sigmoid)
        self.boundary = spec.boundary if spec is not None else None
        self._moment: Moment | None = None

    # --- building -------------------------------------------------------------------------------------
    @classmethod
    def from_run(cls, store: RunStore, cfg: TrainConfig | None = None) -> "Stepper":
        """From the run's newest checkpoint, or fresh from its config at step 0. SlowMoError when the run is not
        2D, its newest checkpoint is damaged or does not fit, or its data cannot be loaded here."""
        try:
            cfg = cfg if cfg is not None else store.read_config()
        except (OSError, ValueError) as e:
            raise SlowMoError(f"this run's config cannot be read: {str(e)[:160]}") from None
        if not cfg.is_2d:
            raise SlowMoError("slow motion works on 2D runs: it moves single points along their arrows, and an "
                              "image is hundreds of numbers at once. Pick a 2D run (ring8, grid25, ...) in the "
                              "sidebar.")
        ckpt = store.checkpoint_path()
        trainer = _trainer(cfg)
        if ckpt is None:
            return cls(trainer, "fresh networks from the run's config (it has no checkpoint yet), step 0", 0)
        from .ckpt_load import load_checked
        try:
            state, _ = load_checked(ckpt, cfg, require_full=True, run_dir=store.path)
            trainer.load_state_dict(state)
        except (StoreError, KeyError, TypeError, ValueError, RuntimeError) as e:
            raise SlowMoError(f"the run's newest checkpoint ({ckpt.name}) is damaged or does not fit its "
                              f"config, so slow motion cannot start from it: {str(e)[:200]}") from None
        return cls(trainer, f"the run's checkpoint at step {trainer.step:,}", trainer.step)

    def save(self) -> bytes:
        """The whole stepper as bytes: Stepper.restore gives one that takes exactly the same next updates."""
        import torch
        buf = io.BytesIO()
        torch.save({"trainer": self.trainer.state_dict(), "origin": self.origin, "base_step": self.base_step,
                    "d_done": self.d_done, "g_done": self.g_done, "both_done": self.both_done}, buf)
        return buf.getvalue()

    @classmethod
    def restore(cls, data: bytes) -> "Stepper":
        state = load_saved(data)
        ts = state["trainer"]
        trainer = _trainer(TrainConfig.from_dict(ts["config"]))
        trainer.load_state_dict(ts)
        me = cls(trainer, str(state["origin"]), int(state["base_step"]))
        me.d_done, me.g_done, me.both_done = (int(state[k]) for k in ("d_done", "g_done", "both_done"))
        return me

    # --- stepping -------------------------------------------------------------------------------------
    def state(self) -> Moment:
        """The current moment (computed once per weight change)."""
        if self._moment is None:
            self._moment = _moment(self.trainer)
        return self._moment

    def step_d(self) -> Move:
        """Exactly one D update."""
        return self._move("d")

    def step_g(self) -> Move:
        """Exactly one G update."""
        return self._move("g")

    def step_both(self) -> Move:
        """One D update, then one G update."""
        return self._move("both")

    def step(self, kind: str) -> Move:
        if kind not in KINDS:
            raise ValueError(f"a slow-motion step is one of {', '.join(KINDS)}, got {kind!r}")
        return self._move(kind)

    def _move(self, kind: str) -> Move:
        t = self.trainer
        moments = [self.state()]
        t._apply_lr()
        if kind in ("d", "both"):
            t.step_d()
            self.d_done += 1
            self._moment = None
            moments.append(self.state())
        if kind in ("g", "both"):
            t.step_g()
            t.step += 1
            self.g_done += 1
            self._moment = None
            moments.append(self.state())
        self.both_done += kind == "both"
        number = {"d": self.d_done, "g": self.g_done, "both": self.both_done}[kind]
        return Move(kind, number, tuple(moments), self.sigmoid, self.boundary)

    def counter(self) -> str:
        """Where this copy stands, for the page."""
        return (f"{self.d_done} D update{'s' * (self.d_done != 1)} and {self.g_done} G update"
                f"{'s' * (self.g_done != 1)} since {self.origin} (now step {self.trainer.step:,})")


def load_saved(data: bytes) -> dict[str, Any]:
    """A Stepper.save() blob, loaded without running code from it."""
    import torch
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable blob says the same
        raise SlowMoError(f"the saved slow-motion state cannot be read: {str(e)[:120]}") from None
    if not isinstance(state, dict) or not isinstance(state.get("trainer"), dict):
        raise SlowMoError("the saved slow-motion state is not one")
    return state


def _trainer(cfg: TrainConfig):
    """A Trainer on the CPU for `cfg`; SlowMoError when its data or networks cannot be built here."""
    from .trainer import Trainer
    try:
        return Trainer(cfg.replace(device="cpu"), device="cpu")
    except Exception as e:  # noqa: BLE001 - a missing data file or an impossible shape: say so, no traceback
        raise SlowMoError(f"this run's data or networks cannot be built here: {str(e)[:200]}") from None


def _moment(t) -> Moment:
    """The current moment of trainer `t`: the snapshot's layers (fixed noise, D's field, arrows) and the means."""
    import torch
    snap = t.snapshot()
    n = min(SHOWN, len(snap.fake))
    fake = torch.as_tensor(snap.fake[:n])
    real = torch.as_tensor(snap.real[:REALS])
    fy = t.fixed_y[:n] if t.conditional else None
    ry = t.y[t.fixed_real_idx[:len(real)]] if t.conditional else None
    with torch.no_grad(), t._d_for_scoring():
        l_real, l_fake = t.D(real, ry).float(), t.D(fake, fy).float()
        loss_d = float(t.loss.d_loss(l_real, l_fake, t.cfg.label_smoothing))
        loss_g = float(t.loss.g_loss(l_fake))
        d_real, d_fake = float(t.loss.score(l_real).mean()), float(t.loss.score(l_fake).mean())
    return Moment(step=t.step, d_updates=t.d_updates, fake=snap.fake[:n].astype(np.float64),
                  grads=snap.grads[:n].astype(np.float64), real=snap.real[:REALS].astype(np.float64),
                  xs=snap.field_xs.astype(np.float64), field=snap.field.astype(np.float64),
                  d_real=d_real, d_fake=d_fake, loss_d=loss_d, loss_g=loss_g)


# --- the figure -----------------------------------------------------------------------------------------
FRAME_NAMES = {"d": ("before", "after D update"), "g": ("before", "after G update"),
               "both": ("before", "after D update", "after G update")}


def _frame_traces(m: Moment, prev: Moment, extent: tuple[float, float], sigmoid: bool,
                  boundary: float | None) -> list:
    import plotly.graph_objects as go
    starts, ends = arrows(m.fake, m.grads, extent)
    ax, ay = _segments(starts, ends)
    tips = np.zeros(len(ax))
    tips[1::3] = 7
    tx, ty = _segments(prev.fake, m.fake)
    level = boundary if boundary is not None else float(np.median(m.field))
    return [
        go.Heatmap(x=m.xs, y=m.xs, z=_f32(m.field), name="D", colorscale="RdBu", zmin=0.0 if sigmoid else None,
                   zmax=1.0 if sigmoid else None, opacity=0.75, hovertemplate="D=%{z:.3f}<extra></extra>",
                   colorbar=dict(title=dict(text="D", side="top"), thickness=10, len=0.8)),
        go.Contour(x=m.xs, y=m.xs, z=_f32(m.field), name=f"D = {level:g}", showscale=False, hoverinfo="skip",
                   contours=dict(coloring="none", start=level, end=level, size=1),
                   line=dict(color="white", width=2)),
        go.Scatter(x=_f32(tx), y=_f32(ty), mode="lines", name="path of the fakes", hoverinfo="skip",
                   line=dict(color="rgba(120,60,0,0.6)", width=1)),
        go.Scatter(x=_f32(m.fake[:, 0]), y=_f32(m.fake[:, 1]), mode="markers", name="fake", hoverinfo="skip",
                   marker=dict(color=FAKE_COLOR, size=5, opacity=0.85)),
        go.Scatter(x=_f32(ax), y=_f32(ay), mode="lines+markers", name="G's gradient", hoverinfo="skip",
                   line=dict(color="#222", width=1),   # heads on segment ends, along the segment
                   marker=dict(symbol="arrow", angleref="previous", size=tips, color="#222")),
    ]


def _f32(a: np.ndarray) -> np.ndarray:
    return np.asarray(a, dtype=np.float32)   # half the bytes the figure sends; a score needs no more digits


def _segments(starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """x, y arrays drawing each start->end segment, separated by NaN (one trace for all)."""
    n = len(starts)
    xs, ys = np.full(n * 3, np.nan), np.full(n * 3, np.nan)
    xs[0::3], xs[1::3] = starts[:, 0], ends[:, 0]
    ys[0::3], ys[1::3] = starts[:, 1], ends[:, 1]
    return xs, ys


def move_figure(move: Move | None, now: Moment | None = None, height: int = 560):
    """A plotly figure of `move`: one frame per moment (before, ..., after), shown at the last frame, with a
    play button that animates from the first (the fakes glide from where they were, and the dashed line and thin
    paths keep where they started visible). With no move, `now` alone as a still figure."""
    import plotly.graph_objects as go
    moments = move.moments if move is not None else (now,)
    sigmoid = move.sigmoid if move is not None else True
    boundary = move.boundary if move is not None else 0.5
    extent = (float(moments[0].xs[0]), float(moments[0].xs[-1]))
    names = FRAME_NAMES[move.kind] if move is not None else ("now",)
    first = moments[0]
    level = boundary if boundary is not None else float(np.median(first.field))
    static = [go.Scatter(x=_f32(first.real[:, 0]), y=_f32(first.real[:, 1]), mode="markers", name="real",
                         hoverinfo="skip", marker=dict(color=REAL_COLOR, size=4, opacity=0.5)),
              go.Contour(x=first.xs, y=first.xs, z=_f32(first.field), name="boundary before", showscale=False,
                         hoverinfo="skip", contours=dict(coloring="none", start=level, end=level, size=1),
                         line=dict(color="black", width=1.5, dash="dash"), showlegend=True,
                         visible=move is not None and move.kind != "g")]
    frames, timing = [], []
    for i, (name, m) in enumerate(zip(names, moments)):
        traces = _frame_traces(m, moments[i - 1] if i else m, extent, sigmoid, boundary)
        # plotly hides heatmaps and contours while it transitions (and draws them again after): a frame that
        # changes D's field switches at once, a frame where only the fakes move glides over the old field.
        if i == 0 or not np.array_equal(m.field, moments[i - 1].field):
            frames.append(go.Frame(name=name, data=traces, traces=list(range(2, 7))))
            timing.append((dict(duration=700 if i else 350, redraw=True), dict(duration=0)))
        else:
            frames.append(go.Frame(name=name, data=traces[2:], traces=list(range(4, 7))))
            timing.append((dict(duration=900, redraw=True), dict(duration=800, easing="cubic-in-out")))
    data = static + _frame_traces(moments[-1], moments[-2] if len(moments) > 1 else moments[-1], extent,
                                  sigmoid, boundary)
    fig = go.Figure(data=data, frames=frames if move is not None else None)
    play = dict(frame=[f for f, _ in timing], transition=[t for _, t in timing], fromcurrent=False,
                mode="immediate")
    if move is not None:
        fig.update_layout(
            updatemenus=[dict(type="buttons", showactive=False, x=0.0, y=-0.06, xanchor="left", yanchor="top",
                              buttons=[dict(label="▶ play the update", method="animate", args=[None, play])])],
            sliders=[dict(active=len(frames) - 1, x=0.25, len=0.75, y=-0.02, pad=dict(t=30),
                          currentvalue=dict(visible=False),
                          steps=[dict(label=n, method="animate",
                                      args=[[n], dict(mode="immediate", frame=dict(duration=0, redraw=True),
                                                      transition=dict(duration=0))]) for n in names])])
    title = f"Step {moments[-1].step:,} · {moments[-1].d_updates:,} D updates"
    fig.update_layout(title=dict(text=title, x=0.0, y=0.99, yanchor="top", font=dict(size=14)), height=height,
                      margin=dict(l=40, r=10, t=80, b=90 if move is not None else 30),
                      legend=dict(orientation="h", y=1.01, yanchor="bottom", x=0.0, xanchor="left"))
    fig.update_xaxes(range=list(extent), zeroline=False, constrain="domain")
    fig.update_yaxes(range=list(extent), zeroline=False, scaleanchor="x", scaleratio=1, constrain="domain")
    return fig

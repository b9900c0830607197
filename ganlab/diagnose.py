"""Plain-language diagnoses of a training run, each with a hint on what to try.

`diagnose(history, metrics, loss, is_2d, cfg=)` reads the scalar history (columns of snapshots.HISTORY_KEYS, one
row every `stats_every` steps) and the quality metrics (metrics.mode_stats / image_metrics rows with a
"step"), and names the classic GAN failures: divergence, vanishing generator gradients, an overpowering
discriminator, oscillation and mode collapse. The UI calls it about once a second, so every rule looks at
the tail of the run with a few vectorised numpy operations, and any short, empty or ragged input gives [].

Given the run's config (`cfg`), a fix names only changes to it: no "switch to 'nonsaturating'" on a
nonsaturating run, no "Adam beta1 0.5" when beta1 is 0.5 (`_remedies`). Advice on d_lr agrees with the lessons
(ganlab/lessons.toml): a D that wins, or one that outruns G into mode collapse, gets a lower d_lr.

Windows are measured in training steps (the "step" column), not rows, so the rules mean the same thing
whatever `stats_every` is.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .loss_specs import loss_has  # d_real / d_fake are probabilities only under a sigmoid loss

# --- thresholds (each with why) -----------------------------------------------------------------------------
MIN_ROWS = 5                  # fewer rows than this say nothing about a trend
EARLY_ROWS = 5                # "early value" of a column = median of its first rows (one noisy row is not it)
# Divergence: a non-finite value is always an error. Losses of any of our objectives sit well below 1e4 in a
# working run (BCE losses are about the size of D's logits, WGAN-GP critic losses stay far below).
EXPLODE_ABS = 1e4
EXPLODE_RATIO = 100.0         # ...or the recent |loss| grew 100x from its early level (and above EXPLODE_MIN)
EXPLODE_MIN = 100.0
# Vanishing gradients (minimax loss): D(G(z)) below 5% means log(1 - D(G(z))) is flat (its slope in the
# logit is D(G(z)) itself), so G learns ~20x slower than it could; a gradient norm at 1% of its early value
# confirms that G has effectively stopped.
VANISH_D_FAKE = 0.05
VANISH_GRAD_RATIO = 1e-2
VANISH_STEPS = 500            # sustained: a few hundred steps rules out a one-batch dip
# D overpowering (BCE losses): D calls real "real" and fake "fake" with > 95% confidence for a long time;
# healthy runs hover around D(x) ~ 0.5-0.8, D(G(z)) ~ 0.2-0.5.
OVERPOWER_D_REAL = 0.95
OVERPOWER_D_FAKE = 0.05
OVERPOWER_STEPS = 1000
# Oscillation: over the last OSC_STEPS, a smoothed curve swings back and forth (>= OSC_SWINGS crossings
# between its high and low band) with an amplitude that is large next to its level. Smoothing over
# OSC_SMOOTH_STEPS removes batch noise but keeps swings that last hundreds of steps. Noise alone also crosses
# the bands often, so the smoothed curve must keep most of its variance (>= OSC_STRUCTURE times what averaging
# k rows of white noise would leave); a steady trend keeps its variance but crosses only once.
OSC_STEPS = 2000
OSC_MIN_ROWS = 20
OSC_SMOOTH_STEPS = 100
OSC_SWINGS = 4
OSC_STRUCTURE = 3.0
OSC_REL_AMP = 1.0             # loss curves: p95 - p5 of the smoothed curve >= its typical size (>= OSC_FLOOR)
OSC_FLOOR = 0.5               # losses near 0 (WGAN) would make any wobble "large" relative to the level
OSC_PROB_AMP = 0.5            # D(G(z)) as a probability: swinging over half of [0, 1] is G and D taking turns
# Mode collapse: judged only on checks after the first steps, when every G still draws a blob; 2 checks in a
# row so one unlucky batch of samples is not a collapse.
COLLAPSE_AFTER_STEPS = 1000
COLLAPSE_CHECKS = 2
COLLAPSE_CLASS_KL = 0.7       # nats; log(2) = 0.69 is what drawing only 5 of 10 classes evenly scores
COLLAPSE_DIVERSITY = 0.5      # fakes vary half as much as the data ("diversity" of mode_stats / image_metrics);
                              # below a fifth of that (0.1) G draws essentially one thing: an error


@dataclass
class Diagnosis:
    kind: str        # "mode_collapse" | "vanishing_gradients" | "d_overpowering" | "oscillation" | "divergence"
    severity: str    # "warning" | "error"
    title: str       # short, e.g. "Mode collapse"
    message: str     # what is happening, in words, with numbers
    fix: str         # what to try
    step: int        # when it was first seen


def diagnose(history: dict[str, np.ndarray], metrics: list[dict], loss: str, is_2d: bool,
             cfg: Any = None) -> list[Diagnosis]:
    """Diagnoses for a run, errors first, then by the step they were first seen. [] when all looks fine.
    `cfg` (the run's TrainConfig, optional) lets each fix leave out what the run already does."""
    h = _columns(history)
    has = _Settings(cfg, loss)
    found: list[Diagnosis] = []
    if h is not None:
        found += _divergence(h, has)
        if not found:                      # NaN rows would make every other rule say nonsense
            vanishing = _vanishing(h, loss, has)
            found += vanishing
            if not vanishing:              # vanishing already says that D wins; one card is enough
                found += _overpowering(h, loss, has)
            found += _oscillation(h, loss, has)
    found += _collapse(metrics or [], is_2d, has)
    return sorted(found, key=lambda d: (d.severity != "error", d.step))


# --- what a fix may suggest -----------------------------------------------------------------------------------
class _Settings:
    """The run's settings as far as the fixes need them. Without a config nothing counts as in use (the fix
    then lists every remedy), except the loss, which every caller passes."""

    def __init__(self, cfg: Any, loss: str):
        self.cfg, self.loss = cfg, loss

    def get(self, name: str, default: Any = None) -> Any:
        return getattr(self.cfg, name, default) if self.cfg is not None else default

    def other_losses(self, *names: str) -> str:
        """`names` less the run's own loss, quoted, joined by "or" ("" when none is left)."""
        return " or ".join(f"'{n}'" for n in names if n != self.loss)

    def d_faster(self) -> bool | None:
        """Whether D's learning rate is above G's (None: unknown)."""
        g, d = self.get("g_lr"), self.get("d_lr")
        return None if g is None or d is None else d > g


def _remedies(*options: tuple[str, bool], lead: str = "") -> str:
    """One sentence, after `lead`, of the remedies whose `applies` is true: each (text, applies) pair says
    itself whether the run already does it, so a fix never names the run's current setting as the cure."""
    texts = [t for t, applies in options if applies and t]
    if not texts:
        return "Restart from an earlier checkpoint and change one setting at a time."
    out = lead + (texts[0] if len(texts) == 1 else ", ".join(texts[:-1]) + ", or " + texts[-1])
    return out[0].upper() + out[1:] + "."


def _common(has: _Settings) -> dict[str, tuple[str, bool]]:
    """The remedies several fixes share, each off when the run already has it (unknown config: on)."""
    return {
        "beta1": ("use Adam beta1 0.5", has.get("beta1", 0.9) != 0.5),
        "spectral": ("turn on spectral normalisation for D", not has.get("spectral_norm", False)),
        "smoothing": ("one-sided label smoothing 0.1", not has.get("label_smoothing", 0.0) > 0),
        "noise": ("instance noise (e.g. 1.0)", not has.get("instance_noise", 0.0) > 0),
        "d_steps": ("use d_steps 1", has.get("d_steps", 2) != 1),
        "decay": ("turn on linear lr decay", has.get("lr_decay", "none") == "none"),
        "r1": ("an R1 penalty on D (r1_gamma 0.1)", not has.get("r1_gamma", 0.0) > 0),
    }


# --- helpers -----------------------------------------------------------------------------------------------
def _columns(history: dict[str, np.ndarray]) -> dict[str, np.ndarray] | None:
    """Float copies trimmed to a common length (a writer may append between reads); None when too short."""
    if not history or "step" not in history:
        return None
    cols = {}
    for k, v in history.items():
        try:
            cols[k] = np.asarray(v, dtype=np.float64).ravel()
        except (TypeError, ValueError):
            continue                       # a column that is not numbers is no evidence either way
    if "step" not in cols:
        return None
    n = min(len(v) for v in cols.values())
    if n < MIN_ROWS:
        return None
    return {k: v[:n] for k, v in cols.items()}


def _early(x: np.ndarray) -> float:
    good = x[np.isfinite(x)][:EARLY_ROWS]
    return float(np.median(good)) if len(good) else float("nan")


def _trailing_run(step: np.ndarray, cond: np.ndarray) -> tuple[int, float]:
    """(first step, length in steps) of the stretch at the end of the run where `cond` holds; a 3-row
    rolling majority first, so one noisy row does not break a stretch."""
    if len(cond) >= 3:
        c = cond.astype(np.int8)
        cond = cond.copy()
        cond[1:-1] = (c[:-2] + c[1:-1] + c[2:]) >= 2     # the two end rows keep their own value
    if not cond[-1]:
        return int(step[-1]), 0.0
    false_at = np.flatnonzero(~cond)
    start = int(false_at[-1]) + 1 if len(false_at) else 0
    interval = float(np.median(np.diff(step))) if len(step) > 1 else 0.0
    return int(step[start]), float(step[-1] - step[start] + interval)


def _fmt(x: float) -> str:
    return f"{x:.3g}"


# --- rules -------------------------------------------------------------------------------------------------
_ALWAYS_MEASURED = ("loss_d", "loss_g")
# The trainer writes NaN for a statistic it does not measure (wdist outside WGAN-GP): in these columns only
# an infinity, or a NaN after finite values, is a sign of trouble.
_SOMETIMES_MEASURED = ("d_real", "d_fake", "grad_g", "grad_d", "wdist")


def _first_bad(name: str, x: np.ndarray, half: np.ndarray | None = None) -> int | None:
    """Index of the first overflowed value of statistic `name`. `half` marks rows of a lone D or G step
    (Step D / Step G): the half that did not run is recorded as NaN, which is no divergence."""
    finite = np.isfinite(x)
    if finite.all():
        return None
    bad = ~finite
    if name not in _ALWAYS_MEASURED:
        seen = np.flatnonzero(finite)
        after_finite = np.zeros_like(bad)
        if len(seen):
            after_finite[seen[0]:] = True
        bad = np.isinf(x) | (np.isnan(x) & after_finite)
    if half is not None:
        bad &= ~(half & np.isnan(x))
    idx = np.flatnonzero(bad)
    return int(idx[0]) if len(idx) else None


def _divergence(h: dict[str, np.ndarray], has: _Settings) -> list[Diagnosis]:
    step = h["step"]
    c = _common(has)
    gp = has.get("gp_lambda")
    fix = _remedies(("lower both learning rates (e.g. divide by 5)", True), c["beta1"], c["spectral"],
                    ("turn bf16 off", bool(has.get("bf16", False))),
                    (f"set gp_lambda to about 10 (it is {_fmt(gp)})" if gp is not None else
                     "check that gp_lambda is about 10", has.loss == "wgan-gp" and gp != 10))
    first, where = None, ""
    half = np.isin(h["single"], (1, 2)) if "single" in h else None
    for name in _ALWAYS_MEASURED + _SOMETIMES_MEASURED:
        if name in h:
            i = _first_bad(name, h[name], half)
            if i is not None and (first is None or i < first):
                first, where = i, name
    if first is not None:
        s = int(step[first]) if np.isfinite(step[first]) else first
        return [Diagnosis("divergence", "error", "Training diverged",
                          f"{where} became {_fmt(h[where][first])} at step {s}: the numbers overflowed and the "
                          "networks can no longer learn. Restart from an earlier checkpoint.", fix, s)]
    for name in ("loss_d", "loss_g"):
        if name not in h:
            continue
        mag = np.abs(h[name])
        early, recent = _early(mag), float(np.median(mag[-EARLY_ROWS:]))
        exploded = recent > EXPLODE_ABS or (recent > EXPLODE_MIN and recent > EXPLODE_RATIO * max(early, 1e-3))
        if exploded:
            over = np.flatnonzero(mag > max(EXPLODE_MIN, EXPLODE_RATIO * max(early, 1e-3)))
            s = int(step[over[0]]) if len(over) else int(step[-1])
            return [Diagnosis("divergence", "error", "Losses are exploding",
                              f"|{name}| grew from about {_fmt(early)} early on to {_fmt(recent)} now "
                              f"(first above the limit at step {s}): training is blowing up.", fix, s)]
    return []


def _vanishing(h: dict[str, np.ndarray], loss: str, has: _Settings) -> list[Diagnosis]:
    if not loss_has(loss, "saturates") or "d_fake" not in h or "grad_g" not in h:
        return []
    early = _early(h["grad_g"])
    if not early > 0:
        return []
    cond = (h["d_fake"] < VANISH_D_FAKE) & (h["grad_g"] < VANISH_GRAD_RATIO * early)
    start, length = _trailing_run(h["step"], cond)
    if length < VANISH_STEPS:
        return []
    now = float(np.median(h["grad_g"][-EARLY_ROWS:]))
    return [Diagnosis(
        "vanishing_gradients", "error", "Vanishing generator gradients",
        f"D(G(z)) has stayed below {VANISH_D_FAKE} for {length:.0f} steps and G's gradient norm fell to "
        f"{_fmt(now)} ({_fmt(now / early)} of its early {_fmt(early)}): D rejects every fake so confidently that "
        "the minimax loss log(1 - D(G(z))) is flat and G has almost stopped learning.",
        _remedies(("switch the loss to 'nonsaturating' (G maximises log D(G(z)), the fix from the original "
                        "GAN paper)", loss != "nonsaturating"),
                  ("weaken D: lower d_lr", True), _common(has)["noise"], _common(has)["smoothing"]), start)]


def _overpowering(h: dict[str, np.ndarray], loss: str, has: _Settings) -> list[Diagnosis]:
    if not loss_has(loss, "uses_sigmoid") or "d_real" not in h or "d_fake" not in h:
        return []
    cond = (h["d_real"] > OVERPOWER_D_REAL) & (h["d_fake"] < OVERPOWER_D_FAKE)
    start, length = _trailing_run(h["step"], cond)
    if length < OVERPOWER_STEPS:
        return []
    dr, df = float(np.mean(h["d_real"][-EARLY_ROWS:])), float(np.mean(h["d_fake"][-EARLY_ROWS:]))
    c = _common(has)
    return [Diagnosis(
        "d_overpowering", "warning", "The discriminator is overpowering G",
        f"For {length:.0f} steps D has scored real data above {OVERPOWER_D_REAL} (now {dr:.2f}) and fakes below "
        f"{OVERPOWER_D_FAKE} (now {df:.3f}): it wins easily, so its feedback tells G little about where to go.",
        _remedies(("lower d_lr or raise g_lr", True), c["d_steps"], c["smoothing"], c["noise"],
                  ("make D smaller or add dropout", True), lead="give G a chance: "), start)]


def _swings(x: np.ndarray, k: int) -> tuple[int, float, float]:
    """(band crossings, amplitude p95-p5, median) of `x` smoothed by a k-row moving average; (0, 0, median)
    when the smoothed curve is no more structured than noise."""
    k = max(1, min(k, len(x) // 4))
    sm = np.convolve(x, np.ones(k) / k, mode="valid")
    lo, hi, mid = np.percentile(sm, [5, 95, 50])
    amp = float(hi - lo)
    # A k-row average keeps at most k times the noise-only variance: with few rows, ask for a bit less.
    if amp <= 0 or sm.var() * k < min(OSC_STRUCTURE, 0.6 * k) * x.var():
        return 0, 0.0, float(mid)
    # Hysteresis: a swing counts when the curve moves from below the low band to above the high band or back.
    band = np.where(sm > mid + amp / 4, 1, np.where(sm < mid - amp / 4, -1, 0))
    states = band[band != 0]
    crossings = int((states[1:] != states[:-1]).sum()) if len(states) > 1 else 0
    return crossings, amp, float(mid)


def _oscillation(h: dict[str, np.ndarray], loss: str, has: _Settings) -> list[Diagnosis]:
    step = h["step"]
    recent = step >= step[-1] - OSC_STEPS
    if recent.sum() < OSC_MIN_ROWS:
        return []
    start = int(step[recent][0])
    interval = float(np.median(np.diff(step[recent])))
    k = max(3, round(OSC_SMOOTH_STEPS / interval)) if interval > 0 else 3
    found = []
    if loss_has(loss, "uses_sigmoid") and "d_fake" in h:
        n, amp, _ = _swings(h["d_fake"][recent], k)
        if n >= OSC_SWINGS and amp >= OSC_PROB_AMP:
            found.append(f"D(G(z)) swung back and forth {n} times over a range of {amp:.2f} in the last "
                         f"{OSC_STEPS} steps")
    for name in ("loss_g", "loss_d"):
        if name in h and not found:
            n, amp, mid = _swings(h[name][recent], k)
            if n >= OSC_SWINGS and amp >= OSC_REL_AMP * max(abs(mid), OSC_FLOOR):
                found.append(f"{name} swung back and forth {n} times between about {_fmt(mid - amp / 2)} and "
                             f"{_fmt(mid + amp / 2)} in the last {OSC_STEPS} steps")
    if not found:
        return []
    c = _common(has)
    return [Diagnosis(
        "oscillation", "warning", "G and D are oscillating",
        found[0] + ": G and D keep taking turns winning instead of settling, and the samples keep changing.",
        _remedies(("lower both learning rates", True), c["decay"], c["beta1"],
                  ("switch the loss to 'wgan-gp'", loss != "wgan-gp"),
                  ("turn on spectral normalisation for D (it damps the swings)", c["spectral"][1])), start)]


def _collapse(metrics: list[dict], is_2d: bool, has: _Settings) -> list[Diagnosis]:
    rows = [m for m in metrics if isinstance(m, dict) and "step" in m]
    late = [m for m in rows if m["step"] >= COLLAPSE_AFTER_STEPS]
    if len(late) < COLLAPSE_CHECKS:
        return []

    def low(m: dict) -> bool:
        if m.get("diversity", 1.0) < COLLAPSE_DIVERSITY:
            return True
        if is_2d:
            k, c = m.get("n_modes", 0), m.get("modes_covered", 0)
            return k > 1 and 1 <= c <= k // 2     # 0 covered (and spread out) is poor quality, not collapse
        k = m.get("n_classes", 10)
        return m.get("classes_present", k) <= k // 2 or m.get("class_kl", 0.0) > COLLAPSE_CLASS_KL

    flags = [low(m) for m in late]
    if not all(flags[-COLLAPSE_CHECKS:]):
        return []
    first = len(flags) - 1
    while first > 0 and flags[first - 1]:
        first -= 1
    last, step, checks = late[-1], int(late[first]["step"]), len(flags) - first
    earlier = [m for m in rows if m["step"] < step]
    parts = []
    if is_2d:
        k, c = last.get("n_modes", 0), last.get("modes_covered", 0)
        parts.append(f"G covers only {c} of the {k} modes" if c else f"G's samples land on none of the {k} modes")
        parts[-1] += f" (for the last {checks} checks)"
        best = max(earlier, key=lambda m: m.get("modes_covered", 0), default=None)
        if best is not None and best.get("modes_covered", 0) > c:
            parts.append(f"it covered {best['modes_covered']} at step {int(best['step'])}")
    else:
        k = last.get("n_classes", 10)
        c = last.get("classes_present", k)
        parts.append(f"{c} of {k} classes appear among the samples (for the last {checks} checks)")
        parts.append(f"class KL {_fmt(last.get('class_kl', float('nan')))} (0 = balanced, "
                     f"{math.log(k):.2f} = one class)")
    if "diversity" in last:
        parts.append(f"the samples vary {_fmt(last['diversity'])}x as much as the data")
    one_thing = c <= 1 or last.get("diversity", 1.0) < COLLAPSE_DIVERSITY / 5
    return [Diagnosis(
        "mode_collapse", "error" if one_thing else "warning", "Mode collapse",
        "; ".join(parts) + ": G has found a few outputs that fool D and keeps producing them instead of "
        "the whole data.",
        _collapse_fix(has), step)]


def _collapse_fix(has: _Settings) -> str:
    # The mode-collapse lesson (ring8-hop: D at 4x G's lr) says lower d_lr: a D that outruns G keeps moving
    # the spot G chases, so G hops from mode to mode and locks onto a few. With d_lr already at or below
    # g_lr there is nothing to lower towards, and the fix says nothing about d_lr.
    faster = has.d_faster()
    d_lr = {None: ("lower d_lr if D learns faster than G", True),
            True: (f"lower d_lr towards g_lr (D learns {has.get('d_lr') / has.get('g_lr'):.3g}x as fast)"
                   if faster else "", bool(faster)),
            False: ("", False)}[faster]
    others = has.other_losses("nonsaturating", "wgan-gp")
    c = _common(has)
    return _remedies((f"try the {others} loss" if others else "", bool(others)), d_lr, c["r1"],
                     ("a larger noise dimension or batch", True), c["decay"],
                     ("restart from a checkpoint before the collapse", True))

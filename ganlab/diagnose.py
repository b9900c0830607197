"""Plain-language diagnoses of a training run, each with a hint on what to try.

`diagnose(history, metrics, loss, is_2d)` reads the scalar history (columns of snapshots.HISTORY_KEYS, one
row every `stats_every` steps) and the quality metrics (metrics.mode_stats / image_metrics rows with a
"step"), and names the classic GAN failures: divergence, vanishing generator gradients, an overpowering
discriminator, oscillation and mode collapse. The UI calls it about once a second, so every rule looks at
the tail of the run with a few vectorised numpy operations, and any short, empty or ragged input gives [].

Windows are measured in training steps (the "step" column), not rows, so the rules mean the same thing
whatever `stats_every` is.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

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


def diagnose(history: dict[str, np.ndarray], metrics: list[dict], loss: str, is_2d: bool) -> list[Diagnosis]:
    """Diagnoses for a run, errors first, then by the step they were first seen. [] when all looks fine."""
    h = _columns(history)
    found: list[Diagnosis] = []
    if h is not None:
        found += _divergence(h)
        if not found:                      # NaN rows would make every other rule say nonsense
            vanishing = _vanishing(h, loss)
            found += vanishing
            if not vanishing:              # vanishing already says that D wins; one card is enough
                found += _overpowering(h, loss)
            found += _oscillation(h, loss)
    found += _collapse(metrics or [], is_2d)
    return sorted(found, key=lambda d: (d.severity != "error", d.step))


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


def _divergence(h: dict[str, np.ndarray]) -> list[Diagnosis]:
    step = h["step"]
    fix = ("Lower both learning rates (e.g. divide by 5), keep Adam's beta1 at 0.5, turn on spectral "
           "normalisation for D, and leave bf16 off; for WGAN-GP check that gp_lambda is about 10.")
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


def _vanishing(h: dict[str, np.ndarray], loss: str) -> list[Diagnosis]:
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
        "Switch the loss to 'nonsaturating' (G maximises log D(G(z)), the fix from the original GAN paper), or "
        "weaken D: lower d_lr, one-sided label smoothing 0.1, or instance noise.", start)]


def _overpowering(h: dict[str, np.ndarray], loss: str) -> list[Diagnosis]:
    if not loss_has(loss, "uses_sigmoid") or "d_real" not in h or "d_fake" not in h:
        return []
    cond = (h["d_real"] > OVERPOWER_D_REAL) & (h["d_fake"] < OVERPOWER_D_FAKE)
    start, length = _trailing_run(h["step"], cond)
    if length < OVERPOWER_STEPS:
        return []
    dr, df = float(np.mean(h["d_real"][-EARLY_ROWS:])), float(np.mean(h["d_fake"][-EARLY_ROWS:]))
    return [Diagnosis(
        "d_overpowering", "warning", "The discriminator is overpowering G",
        f"For {length:.0f} steps D has scored real data above {OVERPOWER_D_REAL} (now {dr:.2f}) and fakes below "
        f"{OVERPOWER_D_FAKE} (now {df:.3f}): it wins easily, so its feedback tells G little about where to go.",
        "Give G a chance: lower d_lr or raise g_lr, use d_steps 1, add one-sided label smoothing (0.1) or "
        "instance noise, or make D smaller / add dropout.", start)]


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


def _oscillation(h: dict[str, np.ndarray], loss: str) -> list[Diagnosis]:
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
    return [Diagnosis(
        "oscillation", "warning", "G and D are oscillating",
        found[0] + ": G and D keep taking turns winning instead of settling, and the samples keep changing.",
        "Lower both learning rates (or turn on linear lr decay), use Adam beta1 0.5, or switch to WGAN-GP; "
        "spectral normalisation on D also damps the swings.", start)]


def _collapse(metrics: list[dict], is_2d: bool) -> list[Diagnosis]:
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
        "Try the 'nonsaturating' or 'wgan-gp' loss, lower g_lr or raise d_lr so D can catch up, a larger noise "
        "dimension or batch, and lr decay; restarting from a checkpoint before the collapse also helps.", step)]

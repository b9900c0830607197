"""The lessons' checks: one function per check kind (CHECKS), each training what it needs and judging it.

A check function takes (check, cfg, device) and returns (appeared, value text, measures). It trains through
`train(cfg, device, every, on_eval)`, which ganlab.lessons may route elsewhere (`set_trainer`): to seed
ensembles that train all of a lesson's seeds at once. ganlab.lessons runs the checks and prints the table.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
import torch

from .config import TrainConfig
from .lesson_book import Check

EVAL_SAMPLES = 1000             # image checks score this many samples (as ganlab.quality does)
TrainFn = Callable[..., tuple[Any, dict[str, np.ndarray]]]


# --- training: solo by default, routed by ganlab.lessons for ensembles --------------------------------------
def solo_train(cfg: TrainConfig, device: str | None, every: int = 0,
           on_eval: Callable[[Any], None] | None = None) -> tuple[Any, dict[str, np.ndarray]]:
    """Train `cfg` for cfg.steps; returns the trainer and its history (columns of HISTORY_KEYS)."""
    from .snapshots import HISTORY_KEYS
    from .trainer import Trainer

    trainer = Trainer(cfg, device=device)
    rows = []
    while trainer.step < cfg.steps:
        if trainer.train_step():
            rows.append(trainer.collect())
        if on_eval is not None and every and trainer.step % every == 0 and trainer.step < cfg.steps:
            on_eval(trainer)
    history = {k: np.array([r.get(k, np.nan) for r in rows], dtype=float) for k in HISTORY_KEYS}
    return trainer, history


def image_scores(trainer, conditional: bool) -> dict[str, float]:
    from .metrics import get_classifier, image_metrics

    classifier = get_classifier("mnist")
    gen = torch.Generator().manual_seed(1234)      # the same z at every evaluation: changes come from G
    z = trainer.G.noise(EVAL_SAMPLES, gen).to(trainer.device)
    y = (torch.arange(EVAL_SAMPLES) % trainer.data.num_classes).to(trainer.device) if conditional else None
    fake = trainer.generate(z, y).cpu()
    real_idx = torch.randperm(len(trainer.data.x), generator=torch.Generator().manual_seed(0))[:EVAL_SAMPLES]
    row = image_metrics(fake, trainer.data.x[real_idx], classifier)
    if conditional:
        with torch.no_grad():
            row["label_accuracy"] = float((classifier(fake).argmax(1) == y.cpu()).float().mean())
    return row


def _window_median(history: dict[str, np.ndarray], key: str, lo: float, hi: float) -> float:
    steps, values = history["step"], history[key]
    keep = (steps >= lo) & (steps <= hi) & np.isfinite(values)
    return float(np.median(values[keep])) if keep.any() else float("nan")


_TRAIN: TrainFn = solo_train


def set_trainer(fn: TrainFn | None) -> TrainFn:
    """Route the checks' training through `fn` (None: back to solo_train); returns the previous one."""
    global _TRAIN
    previous, _TRAIN = _TRAIN, fn or solo_train
    return previous


def train(cfg: TrainConfig, device: str | None, every: int = 0,
          on_eval: Callable[[Any], None] | None = None) -> tuple[Any, dict[str, np.ndarray]]:
    """What a check calls to train `cfg`: (trainer, history)."""
    return _TRAIN(cfg, device, every, on_eval)


# --- the checks: each trains what it needs and returns (appeared, value text, measures) ------------------------
def _occupied(s: dict[str, Any]) -> tuple[int, ...]:
    """The modes a mode_stats result counts as covered (>= min_count high-quality samples on each)."""
    return tuple(i for i, c in enumerate(s["mode_counts"]) if c >= s["min_count"])


def _modes(check: Check, cfg: TrainConfig, device: str | None) -> tuple[bool, str, dict[str, Any]]:
    """coverage: at least min_modes (default all) covered with hq_min high-quality; collapse: <= max_modes
    covered with >= hq_min (default 0) high quality at the end, and, with hop_every, G hopping: looking at the
    covered modes every hop_every steps, at least left_min (default 1) modes were covered at some look and are
    not at the end (G held them and moved on). `hops` counts the looks whose covered modes differ from the last
    look's that had any."""
    from .metrics import mode_stats
    p = check.params
    every = int(p.get("hop_every", 0)) if check.kind == "collapse" else 0
    path: list[list[Any]] = []

    def stats(trainer) -> dict[str, Any]:
        return mode_stats(trainer.generate(trainer.fixed_z).cpu().numpy(), trainer.data.modes, trainer.data.mode_std)

    def look(trainer) -> None:
        path.append([trainer.step, list(_occupied(stats(trainer)))])

    trainer, _ = train(cfg, device, every, look if every else None)
    s = stats(trainer)
    measures: dict[str, Any] = {"modes_covered": s["modes_covered"], "modes_any": s["modes_any"],
                                "high_quality_frac": round(s["high_quality_frac"], 4),
                                "reverse_kl": round(s["reverse_kl"], 4), "mode_counts": s["mode_counts"]}
    value = f"{s['modes_covered']}/{s['n_modes']} modes, {s['high_quality_frac']:.0%} HQ"
    if check.kind == "coverage":
        appeared = (s["modes_covered"] >= p.get("min_modes", s["n_modes"])
                    and s["high_quality_frac"] >= p.get("hq_min", 0.0))
        return appeared, value, measures
    appeared = s["modes_covered"] <= p["max_modes"] and s["high_quality_frac"] >= p.get("hq_min", 0.0)
    if every:
        path.append([trainer.step, list(_occupied(s))])
        sets = [modes for _, modes in path if modes]
        hops = sum(a != b for a, b in zip(sets, sets[1:]))
        left = sorted(set().union(*map(set, sets)) - set(_occupied(s)))
        measures |= {"hops": hops, "modes_left": left, "path": path}
        value += f"; held and left {len(left)} modes, {hops} hops"
        appeared = appeared and len(left) >= p.get("left_min", 1)
    return appeared, value, measures


def _curve(check: Check, cfg: TrainConfig, device: str | None) -> tuple[bool, str, dict[str, Any]]:
    """curve (a G of 1-d noise): the fakes reach at least min_modes modes (a high-quality sample on each,
    mode_stats' modes_any) while at most hq_max of them are high quality: the rest lie on the curve between."""
    from .metrics import mode_stats
    p = check.params
    trainer, _ = train(cfg, device)
    s = mode_stats(trainer.generate(trainer.fixed_z).cpu().numpy(), trainer.data.modes, trainer.data.mode_std)
    measures = {"modes_any": s["modes_any"], "modes_covered": s["modes_covered"],
                "high_quality_frac": round(s["high_quality_frac"], 4), "mode_counts": s["mode_counts"]}
    appeared = s["modes_any"] >= p["min_modes"] and s["high_quality_frac"] <= p["hq_max"]
    value = (f"reaches {s['modes_any']}/{s['n_modes']} modes, {s['high_quality_frac']:.0%} HQ "
             f"({1 - s['high_quality_frac']:.0%} between modes)")
    return appeared, value, measures


def _vanishing(check: Check, cfg: TrainConfig, device: str | None) -> tuple[bool, str, dict[str, Any]]:
    """G's gradient norm, median over a step window, at least `ratio` times below the non-saturating run's."""
    p = check.params
    lo, hi = p["window"]
    if hi > cfg.steps:   # a shortened (smoke) run: the same window, scaled into it
        lo, hi = lo * cfg.steps / hi, cfg.steps
    if cfg.lr_decay == "none" and cfg.instance_noise == 0:
        # Nothing in a step depends on the run's length (no lr decay, no annealed noise): the steps after the
        # window cannot change what is measured in it, so they are not trained.
        cfg = cfg.replace(steps=max(1, math.ceil(hi)))
    _, h_sat = train(cfg, device)
    _, h_ns = train(cfg.replace(loss="nonsaturating"), device)
    sat, ns = _window_median(h_sat, "grad_g", lo, hi), _window_median(h_ns, "grad_g", lo, hi)
    ratio = ns / sat if sat > 0 else (math.inf if ns > 0 else float("nan"))
    measures = {"grad_g_saturating": sat, "grad_g_nonsaturating": ns, "ratio": ratio, "window": [lo, hi],
                "trained_steps": cfg.steps}
    return bool(ratio >= p["ratio"]), f"{ratio:.3g}x lower (steps {lo:.0f}-{hi:.0f})", measures


def _overpowering(check: Check, cfg: TrainConfig, device: str | None) -> tuple[bool, str, dict[str, Any]]:
    """The diagnosis says D overpowers G (or G's gradient vanishes)."""
    from .diagnose import diagnose
    _, h = train(cfg, device)
    kinds = [d.kind for d in diagnose(h, [], cfg.loss, cfg.is_2d)]
    tail = slice(len(h["step"]) * 3 // 4, None)
    measures = {"diagnoses": kinds, "d_real_tail": float(np.nanmean(h["d_real"][tail])),
                "d_fake_tail": float(np.nanmean(h["d_fake"][tail]))}
    appeared = "d_overpowering" in kinds or "vanishing_gradients" in kinds
    return appeared, f"D(x) {measures['d_real_tail']:.3f}, D(G(z)) {measures['d_fake_tail']:.3f}", measures


def images_shown(row: dict[str, float], params: dict[str, Any], conditional: bool) -> bool:
    """Whether one image score row shows the phenomenon: the asked-for digit read in >= acc_min (conditional),
    else confidence >= conf_min with >= `classes` digits drawn and, if given, class KL to uniform <= kl_max."""
    if conditional:
        return row["label_accuracy"] >= params["acc_min"]
    return (row["classifier_confidence"] >= params["conf_min"] and row["classes_present"] >= params["classes"]
            and row["class_kl"] <= params.get("kl_max", math.inf))


def _images(check: Check, cfg: TrainConfig, device: str | None) -> tuple[bool, str, dict[str, Any]]:
    """images: classifier confidence >= conf_min with `classes` digits drawn; conditional: the asked-for digit
    read in >= acc_min. Scored every eval_every steps, so the table also says when it was first reached."""
    p, conditional = check.params, check.kind == "conditional"
    curve: list[dict[str, float]] = []

    def judge(row: dict[str, float]) -> bool:
        return images_shown(row, p, conditional)

    def evaluate(trainer) -> None:
        row = image_scores(trainer, conditional)
        curve.append({"step": trainer.step, **{k: round(float(v), 4) for k, v in row.items()}})

    trainer, _ = train(cfg, device, p.get("eval_every", 0), evaluate)
    evaluate(trainer)
    final = curve[-1]
    first = next((r["step"] for r in curve if judge(r)), None)
    value = (f"label acc {final['label_accuracy']:.2f}" if conditional else
             f"conf {final['classifier_confidence']:.3f}, {final['classes_present']} digits, "
             f"class KL {final['class_kl']:.3f}")
    value += f", first reached at step {first}" if first is not None else ", not reached"
    return judge(final), value, {"final": final, "first_step_reached": first, "curve": curve}


def _xy_game(check: Check, cfg: TrainConfig, device: str | None) -> tuple[bool, str, dict[str, Any]]:
    """The x*y game: simultaneous steps spiral out (radius x >= grow_min), alternating ones stay bounded
    (within a factor `bound`), and alternating with the penalty on D settles (radius x <= settle_max)."""
    from .games import MODES, radius_ratio, trajectory
    p = check.params
    ratios = {mode: radius_ratio(trajectory(mode, p["lr"], p["steps"])) for mode in MODES}
    appeared = (ratios["simultaneous"] >= p["grow_min"] and 1 / p["bound"] <= ratios["alternating"] <= p["bound"]
                and ratios["penalised"] <= p["settle_max"])
    value = ", ".join(f"{mode} x{ratio:.3g}" for mode, ratio in ratios.items())
    return appeared, value, {f"radius_{mode}": round(ratio, 4) for mode, ratio in ratios.items()}


def _remedy(check: Check, cfg: TrainConfig, device: str | None) -> tuple[bool, str, dict[str, Any]]:
    """remedy: the lesson's run (cfg, with its remedy) against the same seed with `base` applied (the remedy
    off). Over the step `window`, D(G(z)) and G's gradient norm (medians) must rise at least `d_fake_ratio` and
    `grad_ratio` times, and the base run must be diagnosed (D overpowering or vanishing gradients), the remedy not."""
    from .diagnose import diagnose
    p = check.params
    lo, hi = p["window"]
    if hi > cfg.steps:   # a shortened (smoke) run: the same window, scaled into it
        lo, hi = lo * cfg.steps / hi, cfg.steps
    base_cfg = cfg.replace(**p["base"])
    _, h_base = train(base_cfg, device)
    _, h_fix = train(cfg, device)
    bad = ("d_overpowering", "vanishing_gradients")
    m: dict[str, Any] = {"window": [lo, hi]}
    for name, h, c in (("base", h_base, base_cfg), ("remedy", h_fix, cfg)):
        m[f"d_fake_{name}"] = _window_median(h, "d_fake", lo, hi)
        m[f"grad_g_{name}"] = _window_median(h, "grad_g", lo, hi)
        m[f"diagnoses_{name}"] = [d.kind for d in diagnose(h, [], c.loss, c.is_2d) if d.kind in bad]
    m["d_fake_ratio"] = _ratio(m["d_fake_remedy"], m["d_fake_base"])
    m["grad_ratio"] = _ratio(m["grad_g_remedy"], m["grad_g_base"])
    appeared = (m["d_fake_ratio"] >= p["d_fake_ratio"] and m["grad_ratio"] >= p["grad_ratio"]
                and bool(m["diagnoses_base"]) and not m["diagnoses_remedy"])
    value = (f"D(G(z)) x{m['d_fake_ratio']:.3g}, |grad G| x{m['grad_ratio']:.3g}; diagnosed: base "
             f"{'yes' if m['diagnoses_base'] else 'no'}, remedy {'yes' if m['diagnoses_remedy'] else 'no'}")
    return appeared, value, m


def _ratio(a: float, b: float) -> float:
    return a / b if b > 0 else (math.inf if a > 0 else float("nan"))


def nyquist_share(images: torch.Tensor) -> torch.Tensor:
    """Checkerboard energy of each image (N, C, H, W) -> (N,): the share of its power (mean removed) on the
    spectrum's Nyquist row and column (vertical frequency H/2 or horizontal W/2), i.e. in patterns that flip
    sign from one pixel to the next along a row or a column, averaged over channels. White noise scores about
    (H + W - 1) / (H W - 1) (0.07 at 28 px); a flat image 0, a pure checkerboard 1."""
    x = images.double() - images.double().mean(dim=(-2, -1), keepdim=True)
    power = torch.fft.fft2(x).abs() ** 2
    h, w = x.shape[-2:]
    nyq = power[..., h // 2, :].sum(-1) + power[..., :, w // 2].sum(-1) - power[..., h // 2, w // 2]
    return (nyq / power.sum(dim=(-2, -1)).clamp_min(1e-30)).mean(dim=1).float()


def _checkerboard(check: Check, cfg: TrainConfig, device: str | None) -> tuple[bool, str, dict[str, Any]]:
    """checkerboard: G at initialisation (the seed's weights, as the trainer draws them), once with the
    lesson's `upsample` and once with `upsample=resize`, each drawing `samples` images from the same noise in
    training mode (batch statistics). The mean Nyquist share must be >= `min_share` for the lesson's G and at
    least `ratio` times the resize G's."""
    from .data import load_dataset
    from .models import build_models
    p = check.params
    data = load_dataset(cfg)
    shares = {}
    for up in dict.fromkeys((cfg.upsample, "resize")):
        torch.manual_seed(cfg.seed)                     # as the trainer seeds its nets
        g, _ = build_models(cfg.replace(upsample=up), data.sample_shape, data.num_classes)
        with torch.no_grad():
            z = g.noise(p.get("samples", 256), torch.Generator().manual_seed(cfg.seed))
            y = torch.arange(len(z)) % data.num_classes if cfg.conditional else None
            shares[up] = float(nyquist_share(g(z, y)).mean())
    ratio = _ratio(shares[cfg.upsample], shares["resize"])
    measures = {f"share_{up}": round(v, 5) for up, v in shares.items()} | {"ratio": ratio}
    appeared = shares[cfg.upsample] >= p["min_share"] and ratio >= p["ratio"]
    return appeared, f"{cfg.upsample} {shares[cfg.upsample]:.3f} vs resize {shares['resize']:.4f} (x{ratio:.3g})", \
        measures


CHECKS: dict[str, Callable[[Check, TrainConfig, str | None], tuple[bool, str, dict[str, Any]]]] = {
    "coverage": _modes, "collapse": _modes, "vanishing": _vanishing, "overpowering": _overpowering,
    "images": _images, "conditional": _images, "xy_game": _xy_game, "remedy": _remedy,
    "checkerboard": _checkerboard, "curve": _curve,
}

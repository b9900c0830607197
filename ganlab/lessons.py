"""Checking the lessons (ganlab/lesson_book.py holds them, as data) and the `lessons` command.

Each lesson's `Check` states the phenomenon its preset must show, so `python -m ganlab lessons --check` trains
each lesson headless over several seeds and reports how often the phenomenon appeared and how long it took:
a preset that drifts (after a model or loss change elsewhere) shows up as a missed target, not as a lesson
that silently stops teaching. A check kind is one function in CHECKS. The check drives `Trainer` directly (no
run directory), one seed after another.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from typing import Any, Callable

import numpy as np
import torch

from .cli import EXTRA_COMMANDS, UsageError
from .config import TrainConfig
from .lesson_book import LESSONS, Check, Lesson

EVAL_SAMPLES = 1000             # image checks score this many samples (as ganlab.quality does)


# --- the check: train headless, judge, tabulate -----------------------------------------------------------
def _train(cfg: TrainConfig, device: str | None, every: int = 0,
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


def run_check(lesson: Lesson, seed: int, steps: int | None = None, device: str | None = None) -> dict[str, Any]:
    """Train `lesson` once with `seed`; returns {seed, appeared, value, seconds, measures}."""
    check = lesson.check
    if check is None:
        raise ValueError(f"lesson {lesson.id!r} has no check")
    extra: dict[str, Any] = {"seed": seed}
    if steps is not None:
        extra["steps"] = steps
    cfg = lesson.config(**extra)
    threads = torch.get_num_threads()
    if cfg.is_2d:
        # Tiny 2D nets gain nothing from intra-op threads, and OpenMP spinning on shared cores costs 10x or
        # more (measured here: 30 steps of the strong-D lesson took 327 s with 2 threads, 18 s with 1).
        torch.set_num_threads(1)
    try:
        return _run_check(lesson, check, cfg, seed, device)
    finally:
        torch.set_num_threads(threads)


def _run_check(lesson: Lesson, check: Check, cfg: TrainConfig, seed: int, device: str | None) -> dict[str, Any]:
    if check.kind not in CHECKS:
        raise ValueError(f"lesson {lesson.id!r}: unknown check kind {check.kind!r} (one of {', '.join(CHECKS)})")
    started = time.perf_counter()
    appeared, value, measures = CHECKS[check.kind](check, cfg, device)
    return {"seed": seed, "appeared": bool(appeared), "value": value,
            "seconds": round(time.perf_counter() - started, 2), "measures": measures}


# --- the checks: each trains what it needs and returns (appeared, value text, measures) ------------------------
def _modes(check: Check, cfg: TrainConfig, device: str | None) -> tuple[bool, str, dict[str, Any]]:
    """coverage: at least min_modes (default all) covered with hq_min high-quality; collapse: <= max_modes."""
    from .metrics import mode_stats
    p = check.params
    trainer, _ = _train(cfg, device)
    s = mode_stats(trainer.generate(trainer.fixed_z).cpu().numpy(), trainer.data.modes, trainer.data.mode_std)
    measures = {"modes_covered": s["modes_covered"], "high_quality_frac": round(s["high_quality_frac"], 4),
                "reverse_kl": round(s["reverse_kl"], 4)}
    value = f"{s['modes_covered']}/{s['n_modes']} modes, {s['high_quality_frac']:.0%} HQ"
    if check.kind == "coverage":
        appeared = (s["modes_covered"] >= p.get("min_modes", s["n_modes"])
                    and s["high_quality_frac"] >= p.get("hq_min", 0.0))
    else:
        appeared = s["modes_covered"] <= p["max_modes"]
    return appeared, value, measures


def _vanishing(check: Check, cfg: TrainConfig, device: str | None) -> tuple[bool, str, dict[str, Any]]:
    """G's gradient norm, median over a step window, at least `ratio` times below the non-saturating run's."""
    p = check.params
    lo, hi = p["window"]
    if hi > cfg.steps:   # a shortened (smoke) run: the same window, scaled into it
        lo, hi = lo * cfg.steps / hi, cfg.steps
    _, h_sat = _train(cfg, device)
    _, h_ns = _train(cfg.replace(loss="nonsaturating"), device)
    sat, ns = _window_median(h_sat, "grad_g", lo, hi), _window_median(h_ns, "grad_g", lo, hi)
    ratio = ns / sat if sat > 0 else (math.inf if ns > 0 else float("nan"))
    measures = {"grad_g_saturating": sat, "grad_g_nonsaturating": ns, "ratio": ratio, "window": [lo, hi]}
    return bool(ratio >= p["ratio"]), f"{ratio:.3g}x lower (steps {lo:.0f}-{hi:.0f})", measures


def _overpowering(check: Check, cfg: TrainConfig, device: str | None) -> tuple[bool, str, dict[str, Any]]:
    """The diagnosis says D overpowers G (or G's gradient vanishes)."""
    from .diagnose import diagnose
    _, h = _train(cfg, device)
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

    trainer, _ = _train(cfg, device, p.get("eval_every", 0), evaluate)
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


CHECKS: dict[str, Callable[[Check, TrainConfig, str | None], tuple[bool, str, dict[str, Any]]]] = {
    "coverage": _modes, "collapse": _modes, "vanishing": _vanishing, "overpowering": _overpowering,
    "images": _images, "conditional": _images, "xy_game": _xy_game,
}


def check_lesson(lesson: Lesson, seeds: int | None = None, steps: int | None = None, device: str | None = None,
                 progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run `lesson`'s check for seeds 0..n-1, one after another; returns its row of the report."""
    check = lesson.check
    if check is None:
        raise ValueError(f"lesson {lesson.id!r} has no check")
    n = seeds or check.seeds
    cfg = lesson.config()
    runs = []
    for seed in range(n):
        runs.append(run_check(lesson, seed, steps, device))
        if progress is not None:
            r = runs[-1]
            progress(f"{lesson.id} seed {seed}: {'yes' if r['appeared'] else 'no '} {r['value']} "
                     f"({r['seconds']:.1f} s)")
    hits = sum(r["appeared"] for r in runs)
    seconds = sum(r["seconds"] for r in runs)
    return {"id": lesson.id, "preset": lesson.preset, "phenomenon": check.phenomenon, "seeds": n,
            "steps": steps or cfg.steps, "appeared": hits, "rate": hits / n, "target_rate": check.target_rate,
            "passed": hits / n >= check.target_rate, "seconds": round(seconds, 1),
            "seconds_per_seed": round(seconds / n, 1), "runs": runs}


def format_table(results: list[dict[str, Any]]) -> str:
    head = ("lesson", "preset", "phenomenon", "steps", "seen", "rate", "target", "ok", "s/seed", "total s")
    rows = [(r["id"], r["preset"], r["phenomenon"], str(r["steps"]), f"{r['appeared']}/{r['seeds']}",
             f"{r['rate']:.0%}", f">={r['target_rate']:.0%}", "yes" if r["passed"] else "NO",
             f"{r['seconds_per_seed']:.1f}", f"{r['seconds']:.1f}") for r in results]
    widths = [max(len(x) for x in col) for col in zip(head, *rows)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in [head, *rows])


# --- command line -----------------------------------------------------------------------------------------
def add_parser(sub) -> None:
    p = sub.add_parser("lessons", help="list the lessons, or --check that each preset still shows its phenomenon")
    p.add_argument("--check", action="store_true", help="train each lesson's preset headless and report")
    p.add_argument("--seeds", type=int, help="seeds per lesson (default: 10 for 2D lessons, 1 for images)")
    p.add_argument("--only", help="comma-separated lesson ids (default: every lesson that has a check)")
    p.add_argument("--steps", type=int, help="override every preset's steps (a smoke test: targets mean little)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"], help="default: the preset's (auto)")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    p.set_defaults(func=cmd_lessons)


def _selected(only: str | None) -> list[Lesson]:
    if not only:
        return list(LESSONS)
    ids = [s.strip() for s in only.split(",") if s.strip()]
    by_id = {lesson.id: lesson for lesson in LESSONS}
    unknown = [i for i in ids if i not in by_id]
    if unknown or not ids:
        raise UsageError(f"--only: unknown lesson {(unknown or [only])[0]!r}; lessons: {', '.join(by_id)}")
    return [by_id[i] for i in ids]


def cmd_lessons(args: argparse.Namespace) -> int:
    """List lessons, or check them: exit 0 when every checked lesson met its target, 1 otherwise."""
    lessons = _selected(args.only)
    if args.seeds is not None and not 1 <= args.seeds <= 1000:
        raise UsageError(f"--seeds: must be between 1 and 1000, got {args.seeds}")
    if args.steps is not None and not 1 <= args.steps <= 10_000_000:
        raise UsageError(f"--steps: must be between 1 and 10000000, got {args.steps}")
    if not args.check:
        return _list(lessons, args.json)
    unchecked = [lesson.id for lesson in lessons if lesson.check is None]
    if args.only and unchecked:
        raise UsageError(f"--only: lesson {unchecked[0]!r} has no automatic check")
    quiet = args.json and not sys.stderr.isatty()
    results = [check_lesson(lesson, args.seeds, args.steps, args.device, None if quiet else _progress)
               for lesson in lessons if lesson.check is not None]
    print(format_table(results), file=sys.stderr if args.json else sys.stdout, flush=True)
    passed = all(r["passed"] for r in results)
    if args.json:
        print(json.dumps({"passed": passed, "steps_override": args.steps, "lessons": results}))
    return 0 if passed else 1


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _list(lessons: list[Lesson], as_json: bool) -> int:
    rows = [{"id": x.id, "title": x.title, "preset": x.preset, "page": x.page,
             "changes": {k: list(v) if isinstance(v, tuple) else v for k, v in x.changes.items()},
             "phenomenon": x.check.phenomenon if x.check else None} for x in lessons]
    if as_json:
        print(json.dumps(rows))
        return 0
    width = max(len(r["id"]) for r in rows)
    for r in rows:
        print(f"{r['id']:<{width}}  {r['preset']:<17} {r['title']}")
    return 0


EXTRA_COMMANDS["lessons"] = add_parser

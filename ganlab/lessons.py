"""Checking the lessons (ganlab/lesson_book.py holds them, as data) and the `lessons` command.

Each lesson's `Check` states the phenomenon its preset must show, so `python -m ganlab lessons --check` trains
each lesson headless over several seeds and reports how often the phenomenon appeared and how long it took:
a preset that drifts (after a model or loss change elsewhere) shows up as a missed target, not as a lesson
that silently stops teaching. A check kind is one function in ganlab.checks.CHECKS; the check drives `Trainer`
directly (no run directory), one seed after another.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any, Callable

import torch

from .checks import CHECKS
from .cli import EXTRA_COMMANDS, UsageError
from .config import TrainConfig
from .lesson_book import LESSONS, Check, Lesson


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

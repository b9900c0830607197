"""The `lessons` command: list the lessons (ganlab/lesson_book.py holds them, as data) or check them.

Each lesson's `Check` states the phenomenon its preset must show, so `python -m ganlab lessons --check` trains
each lesson headless over several seeds and reports how often the phenomenon appeared and how long it took:
a preset that drifts (after a model or loss change elsewhere) shows up as a missed target, not as a lesson
that silently stops teaching. A check kind is one function in ganlab.checks.CHECKS; ganlab.check_runner runs
them (no run directory): a 2D lesson's seeds as one ensemble, the lessons spread over --jobs processes.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

from .check_runner import check_all
from .cli import EXTRA_COMMANDS, UsageError
from .lesson_book import LESSONS, Lesson


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
    p.add_argument("--jobs", type=int, help="processes to spread the lessons over (default: the CPU count, "
                   "at most 4; 1 = in this process)")
    p.add_argument("--no-ensembles", action="store_true",
                   help="train a 2D lesson's seeds one after another instead of as one seed ensemble")
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
    jobs = args.jobs if args.jobs is not None else min(os.cpu_count() or 1, 4)
    if not 1 <= jobs <= 64:
        raise UsageError(f"--jobs: must be between 1 and 64, got {jobs}")
    quiet = args.json and not sys.stderr.isatty()
    started = time.perf_counter()
    results = check_all([lesson for lesson in lessons if lesson.check is not None], args.seeds, args.steps,
                        args.device, None if quiet else _progress, jobs, not args.no_ensembles)
    wall = round(time.perf_counter() - started, 1)
    out = sys.stderr if args.json else sys.stdout
    print(format_table(results), file=out)
    print(f"lessons_check_s {wall} (wall, {jobs} process{'es' if jobs > 1 else ''}; "
          f"{sum(r['seconds'] for r in results):.0f} s of training and judging)", file=out, flush=True)
    passed = all(r["passed"] for r in results)
    if args.json:
        print(json.dumps({"passed": passed, "steps_override": args.steps, "jobs": jobs, "lessons_check_s": wall,
                          "lessons": results}))
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

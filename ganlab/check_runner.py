"""Running the lessons' checks: seeds as ensembles, lessons in parallel processes.

A lesson's check (ganlab.checks) judges one seed at a time and trains through `checks.train`. Run one seed
after another, a 2D lesson pays for every seed's tiny-kernel steps on its own. Here a 2D lesson's seeds are
trained together as one seed ensemble (ganlab.ensemble; each member is its seed's solo run up to float
rounding, tests/test_ensemble.py): the checks are first asked, seed by seed, what they want trained
(`checks.train` raises `_Need` for a configuration not trained yet), each asked-for configuration is trained
for all the waiting seeds at once, and the checks are asked again until every seed is judged. The ensemble's
members come back as ordinary `Trainer`s with their weights and histories, so a check cannot tell them from
solo runs. A configuration an ensemble cannot train (images, dropout in D, ...) is trained solo.

`check_all` spreads the work over `jobs` processes (one torch thread each, `python -m ganlab.check_runner TASK`:
a fresh interpreter, whatever the caller's __main__ is): each 2D lesson is one task, an image lesson's seeds
are spread over up to `jobs` tasks, and the largest tasks start first (by the last full check's seconds on this
machine, kept in $GANLAB_CACHE/lesson_seconds.json, else by an estimate).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from . import checks
from .config import TrainConfig
from .disk import cache_root
from .lesson_book import Lesson, get_lesson

Progress = Callable[[str], None]


class _Need(BaseException):   # not an Exception: no check's `except Exception` may swallow it
    def __init__(self, cfg: TrainConfig, every: int = 0):
        super().__init__(cfg.seed)
        self.cfg, self.every = cfg, every


def _key(cfg: TrainConfig, every: int = 0) -> str:
    return json.dumps([cfg.replace(seed=0).to_dict(), every], sort_keys=True, default=str)


def _ensemble_ok(cfg: TrainConfig) -> bool:
    from .ensemble import check_supported
    try:
        check_supported(cfg)
    except ValueError:
        return False
    return True


def train_members(cfg: TrainConfig, seeds: list[int], device: str | None,
                  every: int = 0) -> dict[int, tuple[Any, dict, list]]:
    """Train `cfg` for each seed as one ensemble; {seed: (a Trainer holding that member's weights, history,
    the member's weights at every `every` steps before the end as [(step, state)])}."""
    from .ensemble import EnsembleTrainer
    from .optimizers import lr_value
    from .snapshots import HISTORY_KEYS
    from .trainer import Trainer

    ens = EnsembleTrainer(cfg, seeds, device)
    rows: list[list[dict[str, float]]] = [[] for _ in seeds]
    moments: list[list[tuple[int, dict]]] = [[] for _ in seeds]
    while ens.step < cfg.steps:
        if every and ens.step and ens.step % every == 0:   # where a solo run's on_eval would look
            for k, kept in enumerate(moments):
                kept.append((ens.step, ens.member_state_dict(k)))
        if ens.train_step():
            stats = ens.collect()
            common = {"step": stats.pop("step"), "epoch": ens.epoch, "lr_g": lr_value(ens.opt_g.param_groups[0]),
                      "lr_d": lr_value(ens.opt_d.param_groups[0])}
            for k, member_rows in enumerate(rows):
                member_rows.append({**common, **{name: float(v[k]) for name, v in stats.items()}})
    out = {}
    for k, seed in enumerate(seeds):
        trainer = Trainer(cfg.replace(seed=seed), device=ens.device)
        trainer.load_state_dict(ens.member_state_dict(k), weights_only=True)
        trainer.step = ens.step
        history = {h: np.array([r.get(h, np.nan) for r in rows[k]], dtype=float) for h in HISTORY_KEYS}
        out[seed] = (trainer, history, moments[k])
    return out


def run_check(lesson: Lesson, seed: int, steps: int | None = None, device: str | None = None) -> dict[str, Any]:
    """Train `lesson` once with `seed` (solo); returns {seed, appeared, value, seconds, measures}."""
    check = lesson.check
    if check is None:
        raise ValueError(f"lesson {lesson.id!r} has no check")
    if check.kind not in checks.CHECKS:
        raise ValueError(f"lesson {lesson.id!r}: unknown check kind {check.kind!r} "
                         f"(one of {', '.join(checks.CHECKS)})")
    cfg = lesson.config(seed=seed, **({"steps": steps} if steps is not None else {}))
    threads = torch.get_num_threads()
    if cfg.is_2d:
        # Tiny 2D nets gain nothing from intra-op threads, and OpenMP spinning on shared cores costs 10x or
        # more (measured here: 30 steps of the strong-D lesson took 327 s with 2 threads, 18 s with 1).
        torch.set_num_threads(1)
    started = time.perf_counter()
    try:
        appeared, value, measures = checks.CHECKS[check.kind](check, cfg, device)
    finally:
        torch.set_num_threads(threads)
    return {"seed": seed, "appeared": bool(appeared), "value": value,
            "seconds": round(time.perf_counter() - started, 2), "measures": measures}


def _run_seeds(lesson: Lesson, seeds: list[int], steps: int | None, device: str | None,
               ensembles: bool) -> list[dict[str, Any]]:
    """Each seed's run_check; with `ensembles`, what the checks ask to train is trained for all seeds at once.
    Each run's `seconds` is its share of the wall time."""
    if not ensembles or len(seeds) < 2:
        return [run_check(lesson, s, steps, device) for s in seeds]
    trained: dict[tuple[str, int], tuple[Any, dict, list]] = {}

    def lookup(cfg: TrainConfig, dev: str | None, every: int = 0, on_eval=None) -> tuple[Any, dict]:
        if not _ensemble_ok(cfg):
            return checks.solo_train(cfg, dev, every, on_eval)
        found = trained.get((_key(cfg, every if on_eval else 0), cfg.seed))
        if found is None:
            raise _Need(cfg, every if on_eval else 0)
        trainer, history, moments = found
        if on_eval is not None:   # the member as it was at each look, then as it ended
            final = {"G": trainer.G.state_dict(), "D": trainer.D.state_dict()}
            end = trainer.step
            for step, state in moments:
                trainer.load_state_dict(state, weights_only=True)
                trainer.step = step
                on_eval(trainer)
            trainer.load_state_dict(final, weights_only=True)
            trainer.step = end
        return trainer, history

    started = time.perf_counter()
    done: dict[int, dict[str, Any]] = {}
    previous = checks.set_trainer(lookup)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        while len(done) < len(seeds):
            needs: dict[str, tuple[TrainConfig, int, list[int]]] = {}
            for seed in seeds:
                if seed in done:
                    continue
                try:
                    done[seed] = run_check(lesson, seed, steps, device)
                except _Need as need:
                    needs.setdefault(_key(need.cfg, need.every), (need.cfg, need.every, []))[2].append(need.cfg.seed)
            for key, (cfg, every, group) in needs.items():
                for seed, result in train_members(cfg, group, device, every).items():
                    trained[(key, seed)] = result
            for k in [k for k in trained if k[1] in done]:   # judged seeds' members are no longer needed
                del trained[k]
    finally:
        checks.set_trainer(previous)
        torch.set_num_threads(threads)
    share = round((time.perf_counter() - started) / len(seeds), 2)
    return [{**done[s], "seconds": share} for s in seeds]


def summarise(lesson: Lesson, runs: list[dict[str, Any]], steps: int | None) -> dict[str, Any]:
    """A lesson's row of the report from its runs."""
    check = lesson.check
    n = len(runs)
    hits = sum(r["appeared"] for r in runs)
    seconds = sum(r["seconds"] for r in runs)
    return {"id": lesson.id, "preset": lesson.preset, "phenomenon": check.phenomenon, "seeds": n,
            "steps": steps or lesson.config().steps, "appeared": hits, "rate": hits / n,
            "target_rate": check.target_rate, "passed": hits / n >= check.target_rate,
            "seconds": round(seconds, 1), "seconds_per_seed": round(seconds / n, 1), "runs": runs}


def _report(progress: Progress | None, lesson_id: str, runs: list[dict[str, Any]]) -> None:
    if progress is not None:
        for r in runs:
            progress(f"{lesson_id} seed {r['seed']}: {'yes' if r['appeared'] else 'no '} {r['value']} "
                     f"({r['seconds']:.1f} s)")


def check_lesson(lesson: Lesson, seeds: int | None = None, steps: int | None = None, device: str | None = None,
                 progress: Progress | None = None, ensembles: bool = True) -> dict[str, Any]:
    """Run `lesson`'s check for seeds 0..n-1 in this process; returns its row of the report."""
    if lesson.check is None:
        raise ValueError(f"lesson {lesson.id!r} has no check")
    runs = _run_seeds(lesson, list(range(seeds or lesson.check.seeds)), steps, device, ensembles)
    _report(progress, lesson.id, runs)
    return summarise(lesson, runs, steps)


# --- several processes ------------------------------------------------------------------------------------
def _task(lesson_id: str, seeds: list[int], steps: int | None, device: str | None,
          ensembles: bool) -> tuple[str, list[dict[str, Any]]]:
    """One task in a process of its own (`python -m ganlab.check_runner`, one torch thread: the processes share
    the machine's cores); its runs come back as the last line of its output. A process that fails counts its
    seeds as not shown, with its exit status, and the other tasks go on."""
    task = {"lesson": lesson_id, "seeds": seeds, "steps": steps, "device": device, "ensembles": ensembles}
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "ganlab.check_runner", json.dumps(task)], stdout=subprocess.PIPE,
                          text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    lines = done.stdout.strip().splitlines()
    if done.returncode == 0 and lines:
        return lesson_id, json.loads(lines[-1])
    share = round((time.perf_counter() - started) / len(seeds), 2)
    why = f"the check process failed (exit status {done.returncode}; its error is above)"
    return lesson_id, [{"seed": s, "appeared": False, "value": why, "seconds": share, "measures": {}} for s in seeds]


def _cost(lesson: Lesson, seeds: list[int], steps: int | None) -> float:
    """A rough relative cost, only to start the largest tasks first: images are ~100x a 2D step, a 2D
    lesson's ensemble ~1/3 of its seeds run alone."""
    cfg = lesson.config()
    per_step = (100.0 * cfg.batch_size / 64) if not cfg.is_2d else cfg.batch_size / 256 * (1 + cfg.d_steps) / 3
    return (steps or cfg.steps) * per_step * len(seeds)


def timings_path() -> Path:
    """Seconds per seed of each lesson's last full check on this machine ($GANLAB_CACHE, as the classifiers)."""
    return cache_root() / "lesson_seconds.json"


def load_timings() -> dict[str, float]:
    try:
        data = json.loads(timings_path().read_text())
    except (OSError, ValueError):
        return {}
    return {k: float(v) for k, v in data.items() if isinstance(v, (int, float)) and v >= 0} \
        if isinstance(data, dict) else {}


def _save_timings(rows: list[dict[str, Any]]) -> None:
    path = timings_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({**load_timings(), **{r["id"]: r["seconds_per_seed"] for r in rows}}))
        tmp.replace(path)
    except OSError:   # a read-only home: the next run orders by estimate
        pass


def order_tasks(tasks: list[tuple[Lesson, list[int]]], steps: int | None,
                timings: dict[str, float]) -> list[tuple[Lesson, list[int]]]:
    """Largest first: by the last full check's seconds when every lesson has one (and steps are the presets'),
    else by `_cost`'s estimate."""
    if steps is None and all(lesson.id in timings for lesson, _ in tasks):
        return sorted(tasks, key=lambda t: -timings[t[0].id] * len(t[1]))
    return sorted(tasks, key=lambda t: -_cost(t[0], t[1], steps))


def check_all(lessons: list[Lesson], seeds: int | None = None, steps: int | None = None,
              device: str | None = None, progress: Progress | None = None, jobs: int = 1,
              ensembles: bool = True) -> list[dict[str, Any]]:
    """Every lesson's row, in the order given. jobs > 1: tasks (a 2D lesson, or a share of an image lesson's
    seeds) run in that many processes, the largest first."""
    tasks = []
    for lesson in lessons:
        all_seeds = list(range(seeds or lesson.check.seeds))
        if lesson.config().is_2d:
            tasks.append((lesson, all_seeds))
        else:   # an image lesson's seeds in up to `jobs` tasks (a process costs a few seconds of imports)
            parts = max(1, min(jobs, len(all_seeds)))
            tasks.extend((lesson, all_seeds[i::parts]) for i in range(parts))
    runs: dict[str, list[dict[str, Any]]] = {lesson.id: [] for lesson in lessons}
    if jobs <= 1 or len(tasks) <= 1:
        for lesson, task_seeds in tasks:
            got = _run_seeds(lesson, task_seeds, steps, device, ensembles)
            _report(progress, lesson.id, got)
            runs[lesson.id].extend(got)
    else:
        tasks = order_tasks(tasks, steps, load_timings())
        with ThreadPoolExecutor(max_workers=min(jobs, len(tasks))) as pool:   # each thread waits on a process
            futures = [pool.submit(_task, lesson.id, task_seeds, steps, device, ensembles)
                       for lesson, task_seeds in tasks]
            for future in as_completed(futures):
                lesson_id, got = future.result()
                _report(progress, lesson_id, got)
                runs[lesson_id].extend(got)
    rows = [summarise(lesson, sorted(runs[lesson.id], key=lambda r: r["seed"]), steps) for lesson in lessons]
    if steps is None and jobs > 1:   # what the next run's order goes by (one process per task, one thread)
        _save_timings(rows)
    return rows


def main(argv: list[str] | None = None) -> int:
    """`python -m ganlab.check_runner TASK_JSON`: run one task of check_all; print its runs as JSON."""
    task = json.loads((argv if argv is not None else sys.argv[1:])[0])
    torch.set_num_threads(1)
    runs = _run_seeds(get_lesson(task["lesson"]), task["seeds"], task["steps"], task["device"], task["ensembles"])
    print(json.dumps(runs), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Command line: `python -m ganlab presets | train | runs` (bench, lessons and export register here too).

Headless training uses the same `Run` machinery as the app, so it writes the same run directory, and an app
pointed at the same runs directory shows the run live. Bad arguments exit with code 2 and one line, and so does
a checkpoint file (--from-checkpoint, or the newest one of --resume) that the sandboxed check refuses.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any, Callable

from .config import PRESETS, ConfigError, TrainConfig, get_preset

EXIT_USAGE = 2


class UsageError(Exception):
    """Bad command-line input: printed as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:   # one line instead of usage + message
        raise UsageError(message)


def _add_train(sub) -> None:
    p = sub.add_parser("train", help="train a GAN headless into a run directory")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--preset", default=None, help=f"one of: {', '.join(PRESETS)} (default ring8)")
    src.add_argument("--resume", metavar="RUN_DIR", help="continue a run from its last checkpoint")
    src.add_argument("--from-checkpoint", metavar="FILE", help="start a new run from a checkpoint file")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field (repeatable), e.g. --set loss=hinge")
    p.add_argument("--steps", type=int, help="train until this many generator steps")
    p.add_argument("--name", help="display name of the run")
    p.add_argument("--runs-dir", help="where run directories live (default $GANLAB_RUNS_DIR or ./runs)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"], help="default: the preset's (auto)")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    p.set_defaults(func=cmd_train)


def _add_presets(sub) -> None:
    p = sub.add_parser("presets", help="list the presets")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_presets)


def _add_runs(sub) -> None:
    p = sub.add_parser("runs", help="list runs with state, step and parent")
    p.add_argument("--runs-dir")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_runs)


# Other modules add subcommands here: name -> function(subparsers) that adds a parser with set_defaults(func=...).
EXTRA_COMMANDS: dict[str, Callable[[Any], None]] = {}


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m ganlab", description="ganlab: train and explore GANs")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _add_presets(sub)
    _add_train(sub)
    _add_runs(sub)
    _load_extra_commands()
    for add in EXTRA_COMMANDS.values():
        add(sub)
    return parser


def _load_extra_commands() -> None:
    import importlib
    for module, command in (("ganlab.bench", "bench"), ("ganlab.lessons", "lessons"), ("ganlab.downloads", "export")):
        try:
            importlib.import_module(module)   # each registers itself in EXTRA_COMMANDS
        except ModuleNotFoundError as e:
            if e.name == module:
                continue
            # a dependency only this command needs (export draws with plotly): the others still work, and
            # this one says what to install instead of the whole CLI failing with a traceback
            package = (e.name or "?").split(".")[0]
            EXTRA_COMMANDS.setdefault(command, _missing_dependency(command, package))


def _missing_dependency(name: str, package: str) -> Callable[[Any], None]:

    def fail(args) -> int:
        print(f"error: the {name} command needs the Python package {package!r}: "
              "pip install -r requirements.txt", file=sys.stderr)
        return 2

    def add(sub) -> None:
        p = sub.add_parser(name, help=f"(unavailable: needs {package})", add_help=False)
        p.add_argument("rest", nargs=argparse.REMAINDER)
        p.set_defaults(func=fail)
    return add


# --- commands --------------------------------------------------------------------------------------------
def cmd_presets(args) -> int:
    if args.json:
        print(json.dumps({name: {"summary": p.summary, **p.config().to_dict()} for name, p in PRESETS.items()}))
        return 0
    width = max(len(n) for n in PRESETS)
    for name, preset in PRESETS.items():
        print(f"{name:<{width}}  {preset.summary}")
    return 0


def cmd_runs(args) -> int:
    from .registry import RunRegistry
    reg = RunRegistry(args.runs_dir, executor="thread")
    rows = []
    for run in reg.list():
        v = run.summary()
        rows.append({"id": v.id, "name": v.name, "state": v.state, "step": v.step, "steps": v.cfg.steps,
                     "dataset": v.cfg.dataset, "parent": v.parent, "message": v.message})
    if args.json:
        print(json.dumps(rows))
        return 0
    if not rows:
        print(f"no runs in {reg.runs_dir}")
    for r in rows:
        source = (r["parent"].get("run") or r["parent"].get("checkpoint")) if r["parent"] else None
        parent = f"  <- {source}@{r['parent'].get('step')}" if source else ""   # --from-checkpoint: no run
        print(f"{r['id']:<40} {r['state']:<11} {r['step']:>7}/{r['steps']:<7} {r['dataset']}{parent}")
    return 0


def _train_source(args, reg) -> tuple[TrainConfig, dict | None, Any, dict | None]:
    """(config, initial state (a state's bytes, from the checkpoint check), existing run to resume or None,
    parent record)."""
    from .ckpt_load import check_checkpoint
    from .runs import Run
    from .store import StoreError
    if args.resume:
        path = Path(args.resume)
        if not (path / "config.json").is_file():
            raise UsageError(f"--resume: {path} is not a run directory (no config.json)")
        run = Run.open(path, reg)
        cfg = run.cfg
        if args.overrides:
            cfg = cfg.with_overrides(args.overrides)
        return cfg, None, run, None
    if args.from_checkpoint:
        path = Path(args.from_checkpoint)
        if not path.is_file():
            raise UsageError(f"--from-checkpoint: {path} is not a file")
        try:   # unpacked and checked in a sandbox process: a hostile file is a refusal, never a crash
            checked = check_checkpoint(path, overrides=args.overrides)
        except (StoreError, ConfigError) as e:
            raise UsageError(f"--from-checkpoint: {e}") from None
        return checked.cfg, checked.init, None, {"checkpoint": str(path), "step": checked.step}
    cfg = get_preset(args.preset or "ring8").config().with_overrides(args.overrides)
    return cfg, None, None, None


def cmd_train(args) -> int:
    from .quality import default_quality_fn, wait_idle
    from .registry import RunRegistry
    from .states import RunState
    runs_dir = args.runs_dir or (str(Path(args.resume).parent) if args.resume else None)
    # The CLI is its own process: its worker runs in a thread here (the app starts worker processes).
    reg = RunRegistry(runs_dir, max_active=1, quality_fn=default_quality_fn, executor="thread")
    cfg, state, run, parent = _train_source(args, reg)
    changes: dict[str, Any] = {}
    if args.steps is not None:
        changes["steps"] = args.steps
    if args.device:
        changes["device"] = args.device
    cfg = cfg.replace(**changes) if changes else cfg
    if run is None:
        run = reg.create(cfg, args.name or args.preset or "run", parent=parent, init_state=state, start=False)
    else:
        run.cfg = cfg
        run.store.write_config(cfg)
        if run.alive:
            raise UsageError(f"--resume: {run.id} is being trained by another process")
        from .ckpt_load import check_resumable
        check_resumable(run.store)   # in a sandbox process: a damaged checkpoint is exit 2 and one line
        if RunState.parse(run.state, RunState.INTERRUPTED) is RunState.FINISHED and cfg.steps > run.step:
            run.store.update_status(state=RunState.STOPPED.value)   # extending a finished run: more steps
    start = time.time()
    run.start()
    try:
        while run.alive:
            run.join(0.5)
            if not args.json or sys.stderr.isatty():
                _progress(run, start)
    except KeyboardInterrupt:
        run.stop(wait=10)
    if not args.json or sys.stderr.isatty():
        print(file=sys.stderr)
    wait_idle(timeout=120)   # image quality measures of the last snapshot run in their own thread
    v = run.view(with_snapshots=False)
    seconds = time.time() - start
    final = {k: (float(a[-1]) if len(a) and math.isfinite(a[-1]) else None) for k, a in v.history.items()}
    result = {"run_dir": str(run.store.path), "status": v.state, "message": v.message, "steps": v.step,
              "seconds": round(seconds, 3), "device": v.device,
              "images_per_s": _mean_rate(v.history), "final": final,
              "metrics": {k: val for k, val in (v.quality[-1] if v.quality else {}).items() if k != "step"}}
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{v.state}: {v.step} steps in {seconds:.1f} s on {v.device} ({result['images_per_s']:.0f} img/s) "
              f"-> {run.store.path}")
        if v.message:
            print(v.message)
    return 0 if v.state in ("finished", "stopped") else 1


def _mean_rate(history: dict) -> float:
    rates = [r for r in history.get("images_per_s", []) if math.isfinite(r)]
    return round(float(sum(rates[1:]) / len(rates[1:])) if len(rates) > 1 else (rates[0] if rates else 0.0), 1)


def _progress(run, start: float) -> None:
    v = run.view(with_snapshots=False)
    frac = v.step / max(1, v.cfg.steps)
    bar = "#" * int(frac * 30)
    print(f"\r[{bar:<30}] {v.step}/{v.cfg.steps} {v.state} {v.images_per_s:,.0f} img/s "
          f"{time.time() - start:.0f}s", end="", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        return int(args.func(args) or 0)
    except (UsageError, ConfigError) as e:
        print(f"ganlab: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as e:  # noqa: BLE001 - a data/checkpoint problem is one line, not a traceback
        from .dataset import DataError
        from .store import StoreError
        if isinstance(e, (DataError, StoreError)):
            print(f"ganlab: error: {e}", file=sys.stderr)
            return EXIT_USAGE
        raise

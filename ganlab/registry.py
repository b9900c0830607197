"""The runs of one runs directory as a process sees them: `RunRegistry` and the process-wide `get_registry`.

A registry creates run directories (checking the runs folder's quota first), branches a run from one of its
checkpoints (refusing changes its weights would not fit), lists the runs on disk (a damaged directory is listed
in `unreadable`, never fatal), renames and deletes them, and stops its runs' workers on shutdown. It is only a
cache of `ganlab.runs.Run` objects: the run directories are the truth, and workers train.

Seed groups (`create_group`, `groups`): K runs of one config with seeds base, base+1, ...; each member is an
ordinary run directory whose status.json records {"group": {"id", "index", "seeds", "ensemble"}}. A 2D config
the batched model supports trains as one ensemble in one worker holding one training slot
(ganlab.ensemble_worker); any other trains as K ordinary runs, each queued for a slot.
"""
from __future__ import annotations

import os
import shutil
import signal
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import control
from .ckpt_load import check_checkpoint, check_resumable
from .config import TrainConfig
from .disk import budget_bytes, dir_size, sweep_temp
from .executor import get_executor
from .runs import HOST, Run
from .states import BRANCH, RunState
from .store import (
    RunStore,
    StoreError,
    clean_name,
    default_runs_dir,
    new_stamp,
    safe_run_dir,
)

RUNS_QUOTA_MB = 20_000     # the whole runs directory (GANLAB_RUNS_QUOTA_MB); new runs are refused past it
MIN_SEEDS, MAX_SEEDS = 2, 8   # a seed group's size


@dataclass
class SeedGroup:
    """The runs of one seed group, member index order. `ensemble`: trained as one batched model; `note` says how
    it trains (and, for separate runs, why)."""
    id: str
    runs: list[Run]
    seeds: list[int]
    ensemble: bool
    note: str = ""


def group_of(run: Run) -> dict | None:
    """The seed-group record of `run`'s status ({"id", "index", "seeds", "ensemble"}), None for a lone run."""
    group = run._status.get("group")   # the cached status: listing groups reads no file
    return group if isinstance(group, dict) and isinstance(group.get("id"), str) and \
        isinstance(group.get("index"), int) else None


def group_note(cfg: TrainConfig, k: int) -> tuple[bool, str]:
    """(True, how) when `cfg`'s seeds train as one ensemble, else (False, why they train as separate runs)."""
    from .ensemble import check_supported
    try:
        check_supported(cfg)
    except ValueError as e:
        return False, (f"{k} separate runs, each queued for a training slot: the batched seed ensemble cannot "
                       f"train this config ({e})")
    return True, f"one batched model for {k} seeds: one worker, one training slot"


def _reason(e: BaseException) -> str:
    text = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
    return text if isinstance(e, StoreError) else f"{type(e).__name__}: {text}"


class RunRegistry:
    """The runs of one runs directory as this process sees them: thread-safe, shared by all sessions.

    Only a cache: the run directories are the truth, and workers (of `executor`, default process) train.
    At most `max_active` runs of the directory train at once across every process (ganlab.control's
    slots); later starts wait in state "queued" with a message, and begin when a slot frees.
    """

    def __init__(self, runs_dir: Path | str | None = None, max_active: int | None = None,
                 quality_fn: Any = "default", executor: str | None = None):
        self.runs_dir = Path(runs_dir) if runs_dir is not None else default_runs_dir()
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        self.max_active = max_active or control.max_active()
        if executor == "thread" and quality_fn != "default":
            from .executor import ThreadExecutor
            self.executor = ThreadExecutor(quality_fn)
        else:
            self.executor = get_executor(executor)
        self._runs: dict[str, Run] = {}
        self._lock = threading.RLock()
        self.unreadable: dict[str, str] = {}   # run id -> why it cannot be read (filled by list())
        self._size = (-1e9, 0)                  # (when, bytes) of the last walk of the runs directory
        sweep_temp(self.runs_dir)               # temp files of writes a kill interrupted

    def check_quota(self) -> None:
        """StoreError when the runs directory has used its quota (GANLAB_RUNS_QUOTA_MB, default 20 GB)."""
        quota = budget_bytes("GANLAB_RUNS_QUOTA_MB", RUNS_QUOTA_MB)
        now = time.monotonic()
        if now - self._size[0] > 10.0:   # walking thousands of files: at most every 10 s
            self._size = (now, dir_size(self.runs_dir))
        if self._size[1] >= quota:
            raise StoreError(f"the runs folder is full ({self._size[1] / 2**20:,.0f} MB of its "
                             f"{quota / 2**20:,.0f} MB quota): delete old runs on the Runs page first")

    def create(self, cfg: TrainConfig, name: str | None = None, *, parent: dict | None = None,
               init_state: dict | bytes | None = None, start: bool = True, paused: bool = False,
               owner: str | None = None) -> Run:
        """A new run directory (owned by `owner`, an owners.owner_id; None: the instructor's), started unless
        `start` is False. `init_state`: what it starts from, a state or the bytes a checkpoint check re-saved."""
        self.check_quota()
        store = RunStore.create(self.runs_dir, name or cfg.dataset, cfg, parent, owner)
        if init_state is not None:
            store.save_init(init_state)
        run = Run(store, cfg, self)
        with self._lock:
            self._runs[run.id] = run
        if start:
            run.start(paused=paused)
        return run

    def create_group(self, cfg: TrainConfig, seeds: int = 4, name: str | None = None, *, owner: str | None = None,
                     start: bool = True) -> SeedGroup:
        """A seed group of `seeds` runs of `cfg` with seeds cfg.seed, cfg.seed + 1, ... (see the module's notes).
        ValueError for a size outside MIN_SEEDS..MAX_SEEDS; StoreError past the quota."""
        if not isinstance(seeds, int) or isinstance(seeds, bool) or not MIN_SEEDS <= seeds <= MAX_SEEDS:
            raise ValueError(f"seeds: a seed group has {MIN_SEEDS} to {MAX_SEEDS} seeds, got {seeds!r}")
        self.check_quota()
        ensemble, note = group_note(cfg, seeds)
        gid = f"g{new_stamp()}"
        numbers = [cfg.seed + k for k in range(seeds)]
        base = clean_name(name or cfg.dataset)
        runs = []
        for k, seed in enumerate(numbers):
            member = cfg.replace(seed=seed)
            store = RunStore.create(self.runs_dir, f"{base[:70]} seed {seed}", member, None, owner)
            store.update_status(group={"id": gid, "index": k, "seeds": numbers, "ensemble": ensemble})
            run = Run(store, member, self)
            with self._lock:
                self._runs[run.id] = run
            runs.append(run)
        group = SeedGroup(gid, runs, numbers, ensemble, note)
        if start:
            self.start_group(group)
        return group

    def start_group(self, group: SeedGroup, paused: bool = False) -> None:
        """Start the group's worker (an ensemble) or each member's (separate runs)."""
        if not group.ensemble:
            for run in group.runs:
                run.start(paused=paused)
            return
        launch = uuid.uuid4().hex[:12]
        stores = [run.store for run in group.runs]
        offsets = [control.command_offset(s.path) for s in stores]
        for run in group.runs:
            run._apply_status(run.store.update_status(
                state=RunState.QUEUED.value, message="queued: starting the seed group's worker",
                launched=time.time(), launch=launch, host=HOST, pid=None))
        try:
            self.executor.start_group(stores, offsets=offsets, paused=paused, max_active=self.max_active,
                                      launch=launch)
        except Exception as e:
            for store in stores:
                store.update_status(state=RunState.FAILED.value, message=f"could not start a worker: {e}")
            raise RuntimeError(f"could not start a worker: {e}") from None

    def groups(self) -> list[SeedGroup]:
        """The seed groups of the runs directory, newest first (members that were deleted drop out)."""
        found: dict[str, list[tuple[int, Run, dict]]] = {}
        for run in self.list():
            g = group_of(run)
            if g is not None:
                found.setdefault(g["id"], []).append((g["index"], run, g))
        out = []
        for gid, members in found.items():
            members.sort(key=lambda m: m[0])
            info = members[0][2]
            seeds = [int(s) for s in info.get("seeds", []) if isinstance(s, int)]
            ensemble = bool(info.get("ensemble"))
            note = group_note(members[0][1].cfg, len(seeds))[1] if seeds else ""
            out.append(SeedGroup(gid, [m[1] for m in members], seeds, ensemble, note))
        return sorted(out, key=lambda g: g.id, reverse=True)

    def get(self, run_id: str) -> Run:
        with self._lock:
            if run_id in self._runs:
                return self._runs[run_id]
            path = safe_run_dir(self.runs_dir, run_id)
            if not (path / "config.json").is_file():
                raise KeyError(f"no run {run_id!r} in {self.runs_dir}")
            run = Run.open(path, self)
            self._runs[run_id] = run
            return run

    def list(self) -> list[Run]:
        """All runs in the runs directory (newest first), including ones other processes created."""
        ids = []
        try:
            ids = [p.name for p in self.runs_dir.iterdir()
                   if not p.name.startswith(".") and (p / "config.json").is_file()]   # .uploads, .trash-*
        except OSError:
            pass
        runs, broken = [], {}
        for run_id in ids:
            try:
                runs.append(self.get(run_id))
            except Exception as e:  # noqa: BLE001 - a broken directory is listed as unreadable, never fatal
                broken[run_id] = _reason(e)
        self.unreadable = broken
        with self._lock:
            for run_id in [r for r in self._runs if r not in ids]:
                self._runs.pop(run_id)   # deleted from disk by someone else
        return sorted(runs, key=lambda r: (r.created, r.id), reverse=True)   # the id breaks ties: its time stamp

    def branch(self, run: Run, step: int | None = None, name: str | None = None, owner: str | None = None,
               **changes: Any) -> Run:
        """A new run that continues `run` from its checkpoint at (or before) `step`, with `changes`.

        Live fields, `steps` and `loss` may change. A loss keeps the same networks except where the
        architecture depends on it (WGAN-GP drops batch norm in DCGAN's D): such a branch raises
        ValueError before any run is created."""
        path = run.store.checkpoint_path(step)
        if path is None:
            raise StoreError(f"run {run.name!r} has no checkpoint to branch from")
        fixed = {k for k in changes if k not in BRANCH}
        if fixed:
            raise ValueError(f"{sorted(fixed)[0]} cannot change in a branch (it changes the networks)")
        # checked in a sandbox process (a damaged file refuses, never crashes this one); ValueError when the
        # changes build networks its weights do not fit
        checked = check_checkpoint(path, what=f"The check of {path.name}", require_full=True, changes=changes,
                                   run_dir=run.store.path)
        parent = {"run": run.id, "name": run.name, "step": checked.step}
        return self.create(checked.cfg, name or f"{run.name} @{checked.step}", parent=parent,
                           init_state=checked.init, owner=owner)

    def resume(self, run_id: str) -> Run:
        """Start a worker that continues the run from its newest checkpoint, once a sandbox process has checked
        that file (StoreError, one line, when it is damaged: the worker would die on it)."""
        run = self.get(run_id)
        if not run.alive:
            check_resumable(run.store)
        run.start()
        return run

    def rename(self, run_id: str, name: str) -> None:
        run = self.get(run_id)
        name = clean_name(name)
        run._apply_status(run.store.update_status(name=name))

    def delete(self, run_id: str) -> None:
        if run_id in self.unreadable:   # a damaged directory: nothing trains it, remove what is there
            shutil.rmtree(safe_run_dir(self.runs_dir, run_id), ignore_errors=True)
            self.unreadable.pop(run_id, None)
            return
        run = self.get(run_id)
        run.stop(wait=10)
        pid = run._status.get("pid")
        if run.alive and run._status.get("host") == HOST and isinstance(pid, int) and pid != os.getpid():
            try:
                os.kill(pid, signal.SIGKILL)   # a worker that did not stop in 10 s
            except OSError:
                pass
            run.join(5)
        with self._lock:
            self._runs.pop(run_id, None)
        run.store.delete()

    def shutdown(self, timeout: float = 5.0) -> None:
        """Stop every run of this registry that a worker is training, and wait for them."""
        with self._lock:
            runs = list(self._runs.values())
        alive = [r for r in runs if r.alive]
        for run in alive:
            try:
                run.stop()
            except (OSError, StoreError):
                pass
        deadline = time.monotonic() + timeout
        for run in alive:
            run.join(max(0.1, deadline - time.monotonic()))


_REGISTRIES: dict[str, RunRegistry] = {}
_REG_LOCK = threading.Lock()


def get_registry(runs_dir: Path | str | None = None) -> RunRegistry:
    """The process-wide registry for `runs_dir` (default: $GANLAB_RUNS_DIR or ./runs)."""
    path = Path(runs_dir) if runs_dir is not None else default_runs_dir()
    key = str(path.expanduser().resolve())
    with _REG_LOCK:
        if key not in _REGISTRIES:
            _REGISTRIES[key] = RunRegistry(path)
            from .sandbox import pool
            pool().warm()   # a server's first checkpoint check should not wait for a child to import torch
        return _REGISTRIES[key]

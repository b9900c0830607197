"""Runs as the web tier and the CLI see them: a view of a run directory, and commands for its worker.

The web tier holds no training state. A run trains in a worker (ganlab.worker) that an executor starts
(ganlab.executor: a process by default, a Ray actor, or a thread for the CLI); the worker writes the run
directory and reads commands from it (ganlab.control). So any number of server processes can show and
command the same runs, a worker that crashes takes only its run down, and training never shares an
interpreter with page reruns.

`Run.view()` returns plain CPU data for drawing, refreshed from disk at most every SYNC_S and read
incrementally (only rows and snapshots new since the last look). `Run.generate()` runs the latent explorer
on G's weights from generator.pt, reloaded only when the worker has published a newer copy.
"""
from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import control
from .config import TrainConfig
from .executor import get_executor, shutdown_all
from .snapshots import HISTORY_KEYS, Snapshot
from .states import ACTIVE, BRANCH, FINAL, LIVE, RESUMABLE, RunState  # noqa: F401 - re-exported
from .store import (
    RunStore,
    StoreError,
    budget_bytes,
    clean_name,
    default_runs_dir,
    dir_size,
    file_size,
    load_checkpoint,
    safe_run_dir,
    sweep_temp,
)

BRANCH_FIELDS = BRANCH
MAX_HISTORY = 4000         # rows kept in memory; older rows are thinned 2:1 (the file keeps all)
MAX_SNAPSHOTS = 120        # snapshots kept in memory; older ones thinned 2:1 (disk keeps them)
SYNC_S = 0.1               # a run re-reads its directory at most this often, however many pages look
LAUNCH_GRACE_S = 30.0      # a worker launched this recently may not hold its lock yet
HOST = socket.gethostname()
RUNS_QUOTA_MB = 20_000     # the whole runs directory (GANLAB_RUNS_QUOTA_MB); new runs are refused past it

INTERRUPTED = "the process training this run ended; Resume continues from the last checkpoint"


@dataclass
class RunView:
    """A consistent, read-only copy of a run's state for drawing."""
    id: str
    name: str
    state: str
    message: str
    cfg: TrainConfig
    step: int
    epoch: int
    device: str
    images_per_s: float
    parent: dict | None
    history: dict[str, np.ndarray]
    snapshots: list[Snapshot]
    quality: list[dict[str, Any]] = field(default_factory=list)

    @property
    def latest(self) -> Snapshot | None:
        return self.snapshots[-1] if self.snapshots else None

    @property
    def active(self) -> bool:
        return RunState.parse(self.state, RunState.INTERRUPTED).training


def _int(value: Any, default: int = 0) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


class Run:
    """One run directory, followed from disk; commands go to its worker."""

    def __init__(self, store: RunStore, cfg: TrainConfig, registry: "RunRegistry | None" = None):
        self.store = store
        self.id = store.run_id
        self.cfg = cfg
        self.registry = registry
        self._status: dict[str, Any] = {}
        self._sync_lock = threading.Lock()
        self._cmd_lock = threading.Lock()
        self._lock = threading.Lock()          # guards the published lists below
        self._synced = self._synced_full = 0.0
        self._tail: tuple[int, dict | None] = (-1, None)   # (history size, last row) before the history is read
        self._history: list[dict[str, float]] = []
        self._hist_off = 0
        self._quality: list[dict[str, Any]] = []
        self._qual_off = 0
        self._snapshots: list[Snapshot] = []
        self._snap_mtime = -1
        self._cfg_mtime = -1
        self._columns: tuple | None = None     # history as arrays, see _history_arrays
        self._g: tuple[int, torch.nn.Module] | None = None   # (generator.pt mtime_ns, G)
        self._g_lock = threading.Lock()
        self._apply_status(store.read_status())

    @classmethod
    def open(cls, path: Path, registry: "RunRegistry | None" = None) -> "Run":
        store = RunStore(path)
        run = cls(store, store.read_config(), registry)
        run._sync(force=True)   # status and config only: the history is read when a page draws the run
        return run

    # --- what the status file says -------------------------------------------------------------------
    def _apply_status(self, status: dict[str, Any]) -> None:
        self._status = status
        name = status.get("name")
        self.name = name if isinstance(name, str) and name else self.id
        parent = status.get("parent")
        self.parent = parent if isinstance(parent, dict) else None
        created = status.get("created")
        self.created = float(created) if isinstance(created, (int, float)) else 0.0

    @property
    def state(self) -> str:
        self._sync()
        return RunState.parse(self._status.get("state"), RunState.INTERRUPTED).value

    @property
    def message(self) -> str:
        self._sync()
        msg = self._status.get("message")
        return msg if isinstance(msg, str) else ""

    @property
    def step(self) -> int:
        self._sync()
        last = self._last_row()
        return max(_int(self._status.get("step")), _int(last.get("step") if last else None))

    @property
    def epoch(self) -> int:
        last = self._last_row()
        return max(_int(self._status.get("epoch")), _int(last.get("epoch") if last else None))

    @property
    def owner(self) -> str | None:
        owner = self._status.get("owner")
        return owner if isinstance(owner, str) else None

    @property
    def device(self) -> str:
        dev = self._status.get("device")
        return dev if isinstance(dev, str) else ""

    @property
    def images_per_s(self) -> float:
        last = self._last_row()
        v = last.get("images_per_s") if last else None
        return float(v) if isinstance(v, (int, float)) else 0.0

    # --- the worker --------------------------------------------------------------------------------------
    @property
    def executor(self):
        return self.registry.executor if self.registry is not None else get_executor()

    @property
    def alive(self) -> bool:
        """A worker has this run (it may be queued for a training slot)."""
        if self.executor.launching(self.id):
            return True
        host = self._status.get("host")
        return control.worker_alive(self.store.path, local=not isinstance(host, str) or host == HOST)

    def _launch_pending(self, status: dict[str, Any]) -> bool:
        """A worker was launched but has not written its status yet (its pid is not there yet)."""
        launched = status.get("launched")
        return status.get("pid") is None and isinstance(launched, (int, float)) and \
            time.time() - launched < LAUNCH_GRACE_S

    def start(self, paused: bool = False, offset: int | None = None) -> None:
        """Start a worker for the run (resuming from its last checkpoint when it ended early)."""
        with self._cmd_lock:
            if self.alive:
                if not paused:
                    control.send(self.store.path, "resume")
                return
            state = RunState.parse(self.store.read_status().get("state"), RunState.INTERRUPTED)
            if state.final and not state.resumable:
                raise RuntimeError(f"run is {state}; branch it to train more")
            launch = uuid.uuid4().hex[:12]
            offset = control.command_offset(self.store.path) if offset is None else offset
            status = self.store.update_status(state=RunState.QUEUED.value, message="queued: starting a worker",
                                              launched=time.time(), launch=launch, host=HOST, pid=None)
            self._apply_status(status)
            max_active = self.registry.max_active if self.registry is not None else control.max_active()
            try:
                self.executor.start(self.store, offset=offset, paused=paused, max_active=max_active, launch=launch)
            except Exception as e:
                self.store.update_status(state=RunState.FAILED.value, message=f"could not start a worker: {e}")
                raise RuntimeError(f"could not start a worker: {e}") from None
            self._synced = 0.0

    def _send(self, cmd: str, **args: Any) -> None:
        try:
            control.send(self.store.path, cmd, **args)
        except FileNotFoundError:
            raise StoreError(f"run {self.name!r} was deleted") from None

    def pause(self) -> None:
        if self.alive:
            self._send("pause")

    def resume(self) -> None:
        if self.alive:
            self._send("resume")
        elif RunState.parse(self.state, RunState.INTERRUPTED).can_start or self.state in ACTIVE:
            self.start()

    def stop(self, wait: float | None = None) -> None:
        if not self.alive:
            return
        self._send("stop")
        if wait is not None:
            self.join(wait)

    def request_step(self, kind: str = "both") -> None:
        """One update while paused (or before starting): 'd', 'g' or 'both' (d_steps D updates + one G)."""
        if kind not in ("d", "g", "both"):
            raise ValueError(f"step kind must be d, g or both, got {kind!r}")
        state = RunState.parse(self.state, RunState.INTERRUPTED)
        if not state.can_step:
            raise RuntimeError(f"run is {state}: it cannot take single steps")
        if self.alive:
            self._send("step", kind=kind)
            return
        offset = control.command_offset(self.store.path)
        self._send("step", kind=kind)
        self.start(paused=True, offset=offset)

    def update_live(self, **changes: Any) -> TrainConfig:
        """Change lr, D steps or switches; takes effect at the worker's next step. Raises ConfigError / ValueError."""
        bad = sorted(set(changes) - set(LIVE))
        if bad:
            raise ValueError(f"{bad[0]} cannot change during a run (live: {', '.join(LIVE)})")
        new = self.cfg.replace(**changes)
        try:
            self.store.write_config(new)
        except FileNotFoundError:
            raise StoreError(f"run {self.name!r} was deleted") from None
        self.cfg = new
        if self.alive:
            self._send("edit", changes=changes)
        return new

    def join(self, timeout: float | None = None) -> None:
        """Wait until no worker has the run (or `timeout` s)."""
        if self.executor.name == "thread":
            self.executor.join(self.id, timeout)
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.alive and (deadline is None or time.monotonic() < deadline):
            time.sleep(0.02)
        self._synced = 0.0

    # --- reading -------------------------------------------------------------------------------------------
    def _sync(self, force: bool = False, full: bool = False) -> None:
        """Bring the cached state up to the directory's: status and config always (a few small reads); with
        `full`, the new history rows, quality rows and snapshots too (incremental: only what is new)."""
        now = time.monotonic()
        if not force and now - self._synced < SYNC_S and (not full or now - self._synced_full < SYNC_S):
            return
        if not self._sync_lock.acquire(blocking=force):
            return   # another thread is reading the directory right now; its result is as fresh
        try:
            self._synced = time.monotonic()
            alive = self.alive          # before the status: a worker writes its final state before it exits
            status = self.store.read_status()
            if not status and not self.store.path.exists():
                status = {**self._status, "state": RunState.FAILED.value,
                          "message": "FileNotFoundError: the run's folder was deleted (No such file or directory)"}
                self._apply_status(status)
            elif status:
                state = RunState.parse(status.get("state"), RunState.INTERRUPTED)
                if state.live and not alive and not self._launch_pending(status):
                    status = self._mark_interrupted(status)
                self._apply_status(status)
            self._read_config()
            if full or self._synced_full:   # once a page has drawn it, keep the history current
                self._synced_full = time.monotonic()
                self._read_history()
                self._read_quality()
                self._read_snapshots()
            else:
                self._read_tail()
        finally:
            self._sync_lock.release()

    def _read_tail(self) -> None:
        """The last history row without reading the history (listing 100 long runs stays fast)."""
        size = file_size(self.store.path / "history.jsonl")
        if size != self._tail[0]:
            self._tail = (size, self.store.last_row())

    def _last_row(self) -> dict | None:
        if self._history:
            return self._history[-1]
        return self._tail[1]

    def _mark_interrupted(self, status: dict[str, Any]) -> dict[str, Any]:
        again = self.store.read_status()   # the worker may have ended the run just now
        if not RunState.parse(again.get("state"), RunState.INTERRUPTED).live:
            return again
        try:
            return self.store.update_status(state=RunState.INTERRUPTED.value, message=INTERRUPTED)
        except OSError:
            return {**again, "state": RunState.INTERRUPTED.value, "message": INTERRUPTED}

    def _read_config(self) -> None:
        try:
            mtime = (self.store.path / "config.json").stat().st_mtime_ns
        except OSError:
            return
        if mtime != self._cfg_mtime:
            self._cfg_mtime = mtime
            try:
                self.cfg = self.store.read_config()
            except (StoreError, ValueError):
                pass   # a half-edited or damaged config: keep the last good one

    def _read_history(self) -> None:
        rows, self._hist_off = self.store.tail_rows("history", self._hist_off)
        if not rows:
            return
        with self._lock:
            hist = list(self._history)
            for row in rows:
                step = row.get("step")
                last = hist[-1].get("step") if hist else None
                if isinstance(step, (int, float)) and isinstance(last, (int, float)) and step < last:
                    while hist and isinstance(hist[-1].get("step"), (int, float)) and hist[-1]["step"] >= step:
                        hist.pop()   # a resume from a checkpoint rewrites the rows from its step on
                hist.append(row)
            while len(hist) > MAX_HISTORY:
                hist = hist[:len(hist) // 2:2] + hist[len(hist) // 2:]
            self._history = hist

    def _read_quality(self) -> None:
        rows, self._qual_off = self.store.tail_rows("quality", self._qual_off)
        # measures are numbers keyed by name; anything else in the file (damage, a future field) is dropped
        rows = [{k: v for k, v in r.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
                for r in rows if isinstance(r.get("step"), int) and not isinstance(r.get("step"), bool)]
        if rows:
            with self._lock:
                q = self._quality + rows
                self._quality = q[::2] if len(q) > MAX_HISTORY else q

    def _read_snapshots(self) -> None:
        try:
            mtime = self.store.snap_dir.stat().st_mtime_ns
        except OSError:
            return
        if mtime == self._snap_mtime:
            return
        self._snap_mtime = mtime
        steps = self.store.snapshot_steps()
        on_disk = set(steps)
        with self._lock:
            kept = [s for s in self._snapshots if s.step in on_disk]
        have = {s.step for s in kept}
        new = []
        for st in [s for s in steps if s not in have][-MAX_SNAPSHOTS:]:
            try:
                snap = self.store.load_snapshot(st)
            except Exception:  # noqa: BLE001 - half-written or damaged (BadZipFile, EOFError, ...): skipped
                continue
            if _snapshot_fits(snap, self.cfg.is_2d):
                new.append(snap)
        snaps = sorted(kept + new, key=lambda s: s.step)
        while len(snaps) > MAX_SNAPSHOTS:   # keep the first, thin the older half 2:1
            half = len(snaps) // 2
            snaps = snaps[:half:2] + snaps[half:]
        with self._lock:
            self._snapshots = snaps

    def summary(self) -> RunView:
        """State, step and config without history or snapshots: what lists of runs show (cheap)."""
        self._sync()
        return RunView(self.id, self.name, self.state, self.message, self.cfg, self.step, self.epoch,
                       self.device, self.images_per_s, self.parent, {k: _EMPTY for k in HISTORY_KEYS}, [])

    def view(self, with_snapshots: bool = True) -> RunView:
        self._sync(full=True)
        with self._lock:
            rows = list(self._history)
            snaps = list(self._snapshots) if with_snapshots else self._snapshots[-1:]
            quality = list(self._quality)
        view = RunView(self.id, self.name, self.state, self.message, self.cfg, self.step, self.epoch,
                       self.device, self.images_per_s, self.parent, {}, snaps, quality)
        view.history = self._history_arrays(rows)
        return view

    def _history_arrays(self, rows: list[dict[str, float]]) -> dict[str, np.ndarray]:
        """`rows` (a copy of the history) as one read-only array per key, converting only rows appended since
        the last call. A class polls a run 20 times a second; converting all 4,000 rows each time cost 15 ms."""
        cached = self._columns   # (rows converted, first row, last row, arrays): replaced whole, never changed
        n = len(rows)
        if cached is not None and 0 < cached[0] <= n and rows[0] is cached[1] and rows[cached[0] - 1] is cached[2]:
            done, cols = cached[0], cached[3]   # same rows so far (thinning or a rewind breaks the identity)
        else:
            done, cols = 0, {k: np.zeros(0) for k in HISTORY_KEYS}
        if done < n:
            new = rows[done:]
            cols = {k: np.concatenate([cols[k], np.array([_num(r.get(k)) for r in new], dtype=float)])
                    for k in HISTORY_KEYS}
            for a in cols.values():
                a.flags.writeable = False   # shared by every view of this version
            self._columns = (n, rows[0], rows[-1], cols)
        return dict(cols)

    def generate(self, z: np.ndarray, y: np.ndarray | None = None) -> np.ndarray:
        """G(z) from the newest weights the worker published (eval mode; never the trainer's live tensors)."""
        with self._g_lock:
            g = self._generator()
            zt = torch.as_tensor(np.asarray(z, dtype=np.float32))
            yt = torch.as_tensor(np.asarray(y, dtype=np.int64)) if y is not None else None
            with torch.no_grad():
                return g(zt, yt).float().numpy()

    def _generator(self) -> torch.nn.Module:
        from .models import build_models
        path = self.store.generator_path()
        try:
            mtime = path.stat().st_mtime_ns
        except OSError:
            mtime = None
        if self._g is not None and (mtime is None or self._g[0] == mtime):
            return self._g[1]
        weights = None
        if mtime is not None:
            try:
                state = torch.load(path, map_location="cpu", weights_only=True)
                weights, classes = state["G"], int(state.get("classes", 0))
            except Exception:  # noqa: BLE001 - a damaged generator.pt: fall back to the newest checkpoint
                weights = None
        if weights is None:   # a run directory from before generator.pt, or a damaged one
            ckpt = self.store.checkpoint_path()
            if ckpt is None:
                raise RuntimeError("this run has no generator weights yet: start it first")
            try:
                state = load_checkpoint(ckpt)
            except StoreError as e:
                raise RuntimeError(f"this run's generator weights are unreadable: {e}") from None
            weights, classes = state["G"], _label_count(state)
        self._sync(force=True, full=True)
        with self._lock:
            snap = self._snapshots[-1] if self._snapshots else None
        if snap is None:
            raise RuntimeError("this run has no snapshot yet")
        g, _ = build_models(self.cfg, tuple(snap.fake.shape[1:]), classes)
        try:
            g.load_state_dict(weights)
        except (RuntimeError, TypeError, AttributeError) as e:
            raise RuntimeError(f"this run's generator weights do not fit its config: {str(e)[:160]}") from None
        g.eval()
        self._g = (mtime or 0, g)
        return g


def _snapshot_fits(snap: Snapshot, is_2d: bool) -> bool:
    """A snapshot pages can draw: samples of the run's kind (2D points or N x C x H x W images)."""
    fake = np.asarray(snap.fake)
    if is_2d:
        return fake.ndim == 2 and fake.shape[1] == 2 and np.issubdtype(fake.dtype, np.floating)
    return fake.ndim == 4 and fake.shape[1] in (1, 3) and np.issubdtype(fake.dtype, np.floating)


_EMPTY = np.zeros(0)
_EMPTY.flags.writeable = False


def _reason(e: BaseException) -> str:
    text = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
    return text if isinstance(e, StoreError) else f"{type(e).__name__}: {text}"


def _num(v: Any) -> float:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else float("nan")


def _label_count(state: dict) -> int:
    emb = state["G"].get("embed.weight")
    return int(emb.shape[0]) if emb is not None else 0


def _check_weights_fit(run: Run, cfg: TrainConfig, state: dict, changes: dict) -> None:
    """Raise ValueError (naming the changed fields) when `cfg` builds networks `state`'s weights do not fit."""
    from .models import build_models
    steps = run.store.snapshot_steps()
    if not steps:
        return   # no sample shape to build with; the new run's worker reports a mismatch itself
    snap = run.store.load_snapshot(steps[-1])
    g, d = build_models(cfg, tuple(snap.fake.shape[1:]), _label_count(state))
    try:
        g.load_state_dict(state["G"])
        d.load_state_dict(state["D"])
    except RuntimeError:
        names = ", ".join(f"{k}={v}" for k, v in sorted(changes.items()))
        raise ValueError(f"{names} changes the networks' layers ({cfg.model} D drops batch norm for "
                         "WGAN-GP), so this checkpoint's weights do not fit: start a new run instead") from None


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
               init_state: dict | None = None, start: bool = True, paused: bool = False,
               owner: str | None = None) -> Run:
        """A new run directory (owned by `owner`, an owners.owner_id; None: the instructor's), started unless
        `start` is False."""
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
        return sorted(runs, key=lambda r: r.created, reverse=True)

    def branch(self, run: Run, step: int | None = None, name: str | None = None, owner: str | None = None,
               **changes: Any) -> Run:
        """A new run that continues `run` from its checkpoint at (or before) `step`, with `changes`.

        Live fields, `steps` and `loss` may change. A loss keeps the same networks except where the
        architecture depends on it (WGAN-GP drops batch norm in DCGAN's D): such a branch raises
        ValueError before any run is created."""
        path = run.store.checkpoint_path(step)
        if path is None:
            raise StoreError(f"run {run.name!r} has no checkpoint to branch from")
        state = load_checkpoint(path)
        parent_cfg = TrainConfig.from_dict(state["config"])
        fixed = {k for k in changes if k not in BRANCH}
        if fixed:
            raise ValueError(f"{sorted(fixed)[0]} cannot change in a branch (it changes the networks)")
        cfg = parent_cfg.replace(**changes)
        if cfg != parent_cfg:
            _check_weights_fit(run, cfg, state, changes)
        parent = {"run": run.id, "name": run.name, "step": int(state["step"])}
        return self.create(cfg, name or f"{run.name} @{state['step']}", parent=parent, init_state=state,
                           owner=owner)

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
        return _REGISTRIES[key]


@atexit.register
def _shutdown_all() -> None:
    shutdown_all(timeout=10.0)

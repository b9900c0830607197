"""One run as the web tier and the CLI see it: a cached view of its directory, and commands for its worker.

The web tier holds no training state. A run trains in a worker (ganlab.worker) that an executor starts
(ganlab.executor: a process by default, a Ray actor, or a thread for the CLI); the worker writes the run
directory and reads commands from it (ganlab.control). So any number of server processes can show and
command the same runs, a worker that crashes takes only its run down, and training never shares an
interpreter with page reruns.

`Run.view()` returns plain CPU data for drawing, refreshed from disk at most every SYNC_S and read
incrementally (only rows and snapshots new since the last look). `Run.generate()` runs the latent explorer
on G's weights from generator.pt (ganlab.weights), reloaded only when the worker has published a newer copy.
The runs of a whole runs directory (create, branch, list, delete, the quota) are ganlab.registry's.
"""
from __future__ import annotations

import atexit
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from . import control
from .config import TrainConfig
from .disk import file_size
from .executor import get_executor, shutdown_all
from .slots import hand_over, parked, stop_parked, successor
from .snapshots import HISTORY_KEYS, Snapshot, drawable, is_measure
from .states import ACTIVE, LIVE, RunState
from .store import RunStore, StoreError
from .weights import LatentGenerator

MAX_HISTORY = 4000         # rows kept in memory; older rows are thinned 2:1 (the file keeps all)
MAX_SNAPSHOTS = 120        # snapshots kept in memory; older ones thinned 2:1 (disk keeps them)
SYNC_S = 0.1               # a run re-reads its directory at most this often, however many pages look
LAUNCH_GRACE_S = 30.0      # a worker launched this recently may not hold its lock yet
HOST = socket.gethostname()

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


class RunHolder(Protocol):
    """What a Run asks of the registry that holds it (ganlab.registry.RunRegistry)."""
    executor: Any
    max_active: int


def _int(value: Any, default: int = 0) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


class Run:
    """One run directory, followed from disk; commands go to its worker."""

    def __init__(self, store: RunStore, cfg: TrainConfig, registry: RunHolder | None = None):
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
        self._latent = LatentGenerator(store)
        self._apply_status(store.read_status())

    @classmethod
    def open(cls, path: Path, registry: RunHolder | None = None) -> "Run":
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
        # a branch (or an uploaded checkpoint's run) starts at its parent's step, also before its first row
        start = _int(self.parent.get("step")) if self.parent else 0
        return max(_int(self._status.get("step")), _int(last.get("step") if last else None), start)

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
        """A worker has this run (maybe queued for a slot). One that parked it has left, though it may be exiting."""
        host = self._status.get("host")
        if control.worker_alive(self.store.path, local=not isinstance(host, str) or host == HOST):
            return True
        return self.executor.launching(self.id) and parked(self.store.read_status()) is None

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
            offset, paused = successor(self.store.path, self.store.read_status(), offset, paused)
            status = self.store.update_status(state=RunState.QUEUED.value, message="queued: starting a worker",
                                              launched=time.time(), launch=launch, host=HOST, pid=None, parked=None)
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
        hand_over(self.store, lambda: self.alive, self._stop_parked if cmd == "stop" else lambda: self.start(True))

    def _stop_parked(self) -> None:
        with self._cmd_lock:
            if not self.alive and (status := stop_parked(self.store)) is not None:
                self._apply_status(status)

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
            return self._stop_parked()   # a parked paused run has no worker to ask
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
                if state.live and not alive and not self._launch_pending(status) and parked(status) is None:
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
        # numbers keyed by name and mode_counts; anything else (damage, a future field) is dropped
        rows = [{k: v for k, v in r.items() if is_measure(k, v)}
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
            if drawable(snap, self.cfg.is_2d):
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
        return self._latent.generate(z, y, self._newest_snapshot)

    def _newest_snapshot(self) -> tuple[TrainConfig, Snapshot | None]:
        """The config and the newest snapshot, read from disk now (G is built for the snapshot's sample shape)."""
        self._sync(force=True, full=True)
        with self._lock:
            return self.cfg, (self._snapshots[-1] if self._snapshots else None)


_EMPTY = np.zeros(0)
_EMPTY.flags.writeable = False


def _num(v: Any) -> float:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else float("nan")


@atexit.register
def _shutdown_all() -> None:
    shutdown_all(timeout=10.0)

"""How any number of web processes and one worker per run talk through the run directory.

- Commands: `send()` appends one JSON line to `<run>/commands.jsonl` (one O_APPEND write, so lines from several
  server processes never interleave); the worker's `CommandReader` reads lines past its offset at each step.
- The worker lock: the worker of a run holds an flock on `<run>/.worker.lock` for its whole life, so a second
  worker for the same run (two servers pressing Start at once) gives up, and `worker_alive()` is true exactly
  while a worker process exists: the kernel drops the lock when the process dies, however it dies.
- Heartbeat: the worker touches `<run>/heartbeat` every HEARTBEAT_S, for readers on hosts where the lock of
  a shared file system is not visible (a Ray cluster on NFS).
- Training slots: at most `max_active` workers of one runs directory train at once, across every process on the
  machine: slot i is an flock on `<runs>/.slots/slot-<i>.lock`; the holder writes its run id into it. Only a
  worker that trains holds one (a paused one gives it back): ganlab.slots has the rules.
"""
from __future__ import annotations

import fcntl
import json
import os
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from .store import rows_after

COMMANDS = "commands.jsonl"
WORKER_LOCK = ".worker.lock"
HEARTBEAT = "heartbeat"
HEARTBEAT_S = 2.0
STALE_S = 20.0        # a heartbeat older than this means the worker is gone
MAX_COMMAND = 4096    # bytes; a command line is small (a live edit of a few fields)
KINDS = ("pause", "resume", "stop", "step", "edit")


def send(run_dir: Path, cmd: str, **args: Any) -> dict[str, Any]:
    """Append a command for the run's worker; returns it (with its id and time, for latency measures)."""
    if cmd not in KINDS:
        raise ValueError(f"unknown command {cmd!r} (one of {', '.join(KINDS)})")
    row = {"cmd": cmd, "id": uuid.uuid4().hex[:12], "t": time.time(), **args}
    data = (json.dumps(row) + "\n").encode()
    if len(data) > MAX_COMMAND:
        raise ValueError("command too large")
    fd = os.open(Path(run_dir) / COMMANDS, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    return row


def command_offset(run_dir: Path) -> int:
    """Where a worker started now should begin reading (commands before it belong to earlier workers)."""
    try:
        return (Path(run_dir) / COMMANDS).stat().st_size
    except OSError:
        return 0


class CommandReader:
    """New commands since `offset`; a torn last line (a writer mid-append) waits for the next poll."""

    def __init__(self, run_dir: Path, offset: int = 0):
        self.path = Path(run_dir) / COMMANDS
        self.offset = offset

    def poll(self) -> list[dict[str, Any]]:
        rows, self.offset = rows_after(self.path, self.offset)
        return [r for r in rows if r.get("cmd") in KINDS]


# --- locks ------------------------------------------------------------------------------------------------
LOCK_PATIENCE_S = 0.1   # how long a taker waits out a probe (`is_locked`), which holds a lock for microseconds


def try_lock(path: Path, patience: float = LOCK_PATIENCE_S) -> int | None:
    """An open fd holding an exclusive flock on `path`, or None when another holder has it. A lock that stays
    taken for `patience` s counts as held: a probe of `is_locked` takes it only for an instant (a worker that
    gave up on a probe's instant left its run interrupted before it started: a flake under CI's load)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + patience
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if time.monotonic() >= deadline:
                break
            time.sleep(0.005)
        except OSError:
            break
    os.close(fd)
    return None


def is_locked(path: Path) -> bool:
    """Someone holds the exclusive flock on `path`. The probe takes a shared lock, so probes never block each
    other, and a taker's `try_lock` waits out its instant."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False   # no lock file (or its directory is gone): nobody holds it
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        os.close(fd)   # closing drops the shared lock
    return False


def release(fd: int | None) -> None:
    if fd is not None:
        try:
            os.close(fd)   # closing the last fd of the lock's open file drops the flock
        except OSError:
            pass


def worker_alive(run_dir: Path, local: bool = True) -> bool:
    """A worker process holds this run's lock. For a worker on another host (`local=False`, e.g. a Ray node),
    whose flock this host may not see, a fresh heartbeat counts instead."""
    if not local:
        return heartbeat_fresh(run_dir)
    return is_locked(Path(run_dir) / WORKER_LOCK)


def heartbeat_fresh(run_dir: Path) -> bool:
    try:
        return time.time() - (Path(run_dir) / HEARTBEAT).stat().st_mtime < STALE_S
    except OSError:
        return False


class Heartbeat:
    """A daemon thread touching the run's heartbeat file until stopped."""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / HEARTBEAT
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="ganlab-heartbeat", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.is_set():
            try:
                self.path.touch()
            except OSError:
                pass
            self._stop.wait(HEARTBEAT_S)

    def stop(self) -> None:
        self._stop.set()
        try:
            self.path.unlink(missing_ok=True)
        except OSError:
            pass


def acquire_slot(runs_dir: Path, max_active: int, run_id: str) -> tuple[int, int] | None:
    """(lock fd, slot index) of a free training slot, or None when all `max_active` are held (by workers
    of any process)."""
    slots = Path(runs_dir) / ".slots"
    slots.mkdir(parents=True, exist_ok=True)
    for i in range(max(1, max_active)):
        fd = try_lock(slots / f"slot-{i}.lock")
        if fd is not None:
            os.ftruncate(fd, 0)
            os.pwrite(fd, run_id.encode(), 0)
            return fd, i
    return None


def slot_holders(runs_dir: Path, max_active: int) -> list[str]:
    """Run ids holding a training slot now."""
    out = []
    for i in range(max(1, max_active)):
        path = Path(runs_dir) / ".slots" / f"slot-{i}.lock"
        if not is_locked(path):
            continue
        try:
            out.append(path.read_text()[:100])
        except OSError:
            pass
    return out


def max_active() -> int:
    """GANLAB_MAX_ACTIVE (default 2: a 2-core laptop has no room for more), at least 1."""
    try:
        return max(1, int(os.environ.get("GANLAB_MAX_ACTIVE", "2")))
    except ValueError:
        return 2


def paused_idle_s() -> float:
    """GANLAB_PAUSED_IDLE_S (default 300): how long a paused run keeps its trainer in memory before its worker
    writes a checkpoint and exits (ganlab.slots: parking); 0 or less never parks."""
    try:
        return float(os.environ.get("GANLAB_PAUSED_IDLE_S", "300"))
    except ValueError:
        return 300.0

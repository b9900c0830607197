"""A run directory on disk: config, status, append-only metrics, snapshots and checkpoints.

Layout of `<runs_dir>/<run_id>/`:
    config.json        the TrainConfig (written once, rewritten on live edits)
    status.json        state, message, step, epoch, pid, name, parent, timestamps (atomic replace)
    history.jsonl      one JSON object per stats row (append-only; a torn last line is ignored)
    quality.jsonl      one JSON object per quality evaluation (append-only)
    snapshots/s<step>.npz      Snapshot arrays (atomic)
    checkpoints/step-<step>.pt torch.save of tensors/numbers only, loaded with weights_only=True
    generator.pt       G's weights at the newest snapshot, for the latent explorer (atomic)
    init.pt            the state a branch or an upload starts from, until the run's first checkpoint
    commands.jsonl     commands for the worker (ganlab.control); .worker.lock, heartbeat: the worker's life
Writes are crash-safe: whole files go through a temp file + os.replace, so a reader never sees half a file.
How many snapshots and checkpoints stay, and the disk budget helpers, are ganlab.disk.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import threading
import time
from pathlib import Path
from typing import Any, Iterator

from .config import TrainConfig
from .disk import MAX_MILESTONES, MAX_SNAPSHOT_FILES, dir_size, file_size, thin
from .snapshots import Snapshot

RUN_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
MAX_NAME = 80


class StoreError(ValueError):
    """A run directory, run name or checkpoint is unusable; the message says why."""


def default_runs_dir() -> Path:
    return Path(os.environ.get("GANLAB_RUNS_DIR", "runs")).expanduser()


def clean_name(name: str) -> str:
    """A display name: printable, trimmed, at most 80 characters (it never becomes a path by itself)."""
    if not isinstance(name, str):
        raise StoreError("run name must be text")
    name = "".join(ch for ch in name if ch.isprintable()).strip()
    if not name:
        raise StoreError("run name is empty")
    if len(name) > MAX_NAME:
        raise StoreError(f"run name is longer than {MAX_NAME} characters")
    return name


def slug(name: str) -> str:
    s = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-._")
    return (s or "run")[:40]


_STAMP_LOCK = threading.Lock()
_last_ms = [0]


def new_stamp() -> str:
    """The time part of a new run id, `YYYYMMDD-HHMMSS-mmm` (local time, milliseconds), strictly later than the
    last one this process made: ids made one after another sort in the order they were made, with no wait.

    Ids made before milliseconds (`YYYYMMDD-HHMMSS-<slug>`) still load, and both kinds start with the date and
    time (`id[:15]`, what pickers show), so old and new ids sort together by the second they were made in."""
    with _STAMP_LOCK:
        ms = max(time.time_ns() // 1_000_000, _last_ms[0] + 1)
        _last_ms[0] = ms
    return time.strftime("%Y%m%d-%H%M%S", time.localtime(ms // 1000)) + f"-{ms % 1000:03d}"


def safe_run_dir(runs_dir: Path, run_id: str) -> Path:
    """The directory of `run_id` inside `runs_dir`; refuses ids that could escape it."""
    if not isinstance(run_id, str) or not RUN_ID_RE.match(run_id) or ".." in run_id:
        raise StoreError(f"invalid run id {run_id!r}")
    root = Path(runs_dir).resolve()
    path = (root / run_id).resolve()
    if path.parent != root:
        raise StoreError(f"run id {run_id!r} escapes the runs directory")
    return path


def atomic_write(path: Path, data: bytes) -> None:
    # pid + thread: two threads of one process may write the same file within one clock tick (e.g. status)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.{time.monotonic_ns()}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Rows of an append-only JSON-lines file; a torn or corrupt line (crash mid-append) is skipped."""
    rows: list[dict[str, Any]] = []
    try:
        with open(path, "rb") as f:
            for line in f:
                try:
                    row = json.loads(line)
                except ValueError:
                    continue
                if isinstance(row, dict):
                    rows.append(row)
    except FileNotFoundError:
        pass
    return rows


def rows_after(path: Path, offset: int) -> tuple[list[dict[str, Any]], int]:
    """JSON-object lines of an append-only file after byte `offset`, and the offset after them. A torn last line
    (a writer mid-append) waits for the next call; a corrupt line is skipped; a shrunk file is read afresh."""
    try:
        size = path.stat().st_size
    except OSError:
        return [], offset
    if size < offset:
        offset = 0   # the file was replaced
    if size == offset:
        return [], offset
    with open(path, "rb") as f:
        f.seek(offset)
        data = f.read(size - offset)
    end = data.rfind(b"\n") + 1
    rows = []
    for line in data[:end].splitlines():
        try:
            row = json.loads(line)
        except (ValueError, RecursionError):
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows, offset + end


def drop_rewound(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows as the run finally went: a resume from a checkpoint appends rows from the checkpoint's step again,
    so rows the interrupted process wrote past that point (before a step that goes back) are dropped."""
    out: list[dict[str, Any]] = []
    last = None
    for row in rows:
        step = row.get("step")
        if isinstance(step, (int, float)) and last is not None and step < last:
            while out and isinstance(out[-1].get("step"), (int, float)) and out[-1]["step"] >= step:
                out.pop()
        out.append(row)
        last = step if isinstance(step, (int, float)) else last
    return out


class RunStore:
    """Reads and writes one run directory. Thread-safe for one writer and many readers."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.snap_dir = self.path / "snapshots"
        self.ckpt_dir = self.path / "checkpoints"

    @classmethod
    def create(cls, runs_dir: Path, name: str, cfg: TrainConfig, parent: dict | None = None,
               owner: str | None = None) -> "RunStore":
        name = clean_name(name)
        runs_dir = Path(runs_dir)
        runs_dir.mkdir(parents=True, exist_ok=True)
        base = new_stamp() + "-" + slug(name)
        for i in range(1000):
            run_id = base if i == 0 else f"{base}-{i}"
            path = safe_run_dir(runs_dir, run_id)
            try:
                path.mkdir()
                break
            except FileExistsError:
                continue
        else:  # pragma: no cover - 1000 runs with one name in one millisecond (other processes)
            raise StoreError("could not create a unique run directory")
        store = cls(path)
        store.snap_dir.mkdir()
        store.ckpt_dir.mkdir()
        store.write_config(cfg)
        store.write_status({"state": "created", "message": "", "step": 0, "epoch": 0, "name": name,
                            "parent": parent, "created": time.time(), "pid": None, "owner": owner})
        return store

    @property
    def run_id(self) -> str:
        return self.path.name

    # --- config and status -------------------------------------------------------------------------
    def write_config(self, cfg: TrainConfig) -> None:
        atomic_write(self.path / "config.json", cfg.to_json().encode())

    def read_config(self) -> TrainConfig:
        try:
            data = json.loads((self.path / "config.json").read_text())
        except (OSError, ValueError, RecursionError) as e:
            raise StoreError(f"{self.path.name}: unreadable config.json ({str(e)[:120] or type(e).__name__})") from None
        if not isinstance(data, dict):
            raise StoreError(f"{self.path.name}: config.json is not a mapping of settings")
        try:
            return TrainConfig.from_dict(data)
        except (ValueError, TypeError, RecursionError) as e:
            raise StoreError(f"{self.path.name}: invalid config.json ({str(e)[:160]})") from None

    def write_status(self, status: dict[str, Any]) -> None:
        status = {**status, "updated": time.time()}
        atomic_write(self.path / "status.json", json.dumps(status).encode())

    def read_status(self) -> dict[str, Any]:
        try:
            data = json.loads((self.path / "status.json").read_text())
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError, RecursionError):
            return {}

    def update_status(self, **changes: Any) -> dict[str, Any]:
        status = {**self.read_status(), **changes}
        self.write_status(status)
        return status

    # --- metrics -------------------------------------------------------------------------------------
    def append_rows(self, kind: str, rows: list[dict[str, Any]]) -> None:
        """Append rows to history.jsonl / quality.jsonl; each write is whole lines in one call."""
        if not rows:
            return
        data = "".join(json.dumps(r, allow_nan=True) + "\n" for r in rows).encode("utf-8")
        with open(self.path / f"{kind}.jsonl", "a+b") as f:
            end = f.seek(0, os.SEEK_END)
            if end:   # a crash mid-append leaves a line without "\n": start afresh or the new rows join it
                f.seek(end - 1)
                if f.read(1) != b"\n":
                    data = b"\n" + data
            f.write(data)
            f.flush()

    def tail_rows(self, kind: str, offset: int) -> tuple[list[dict[str, Any]], int]:
        """Whole rows of history.jsonl / quality.jsonl appended after byte `offset` (see rows_after)."""
        return rows_after(self.path / f"{kind}.jsonl", offset)

    def last_row(self, kind: str = "history") -> dict[str, Any] | None:
        """The newest whole row, read from the file's last 4 KB (cheap however long the history is)."""
        size = file_size(self.path / f"{kind}.jsonl")
        rows, _ = self.tail_rows(kind, max(0, size - 4096))
        return rows[-1] if rows else None

    def read_rows(self, kind: str) -> list[dict[str, Any]]:
        rows = read_jsonl(self.path / f"{kind}.jsonl")
        return drop_rewound(rows) if kind == "history" else rows   # quality rows may arrive out of order

    # --- snapshots -----------------------------------------------------------------------------------
    def save_snapshot(self, snap: Snapshot) -> None:
        atomic_write(self.snap_dir / f"s{snap.step:09d}.npz", snap.to_bytes())
        for step in thin(self.snapshot_steps(), MAX_SNAPSHOT_FILES):
            (self.snap_dir / f"s{step:09d}.npz").unlink(missing_ok=True)

    def drop_snapshots_after(self, step: int) -> None:
        """A resume from the checkpoint at `step`: snapshots of the steps it will train again go."""
        for s in self.snapshot_steps():
            if s > step:
                (self.snap_dir / f"s{s:09d}.npz").unlink(missing_ok=True)

    def snapshot_steps(self) -> list[int]:
        steps = []
        for p in self.snap_dir.glob("s*.npz"):
            try:
                steps.append(int(p.stem[1:]))
            except ValueError:
                continue
        return sorted(steps)

    def load_snapshot(self, step: int) -> Snapshot:
        return Snapshot.from_bytes((self.snap_dir / f"s{step:09d}.npz").read_bytes())

    def iter_snapshots(self, last: int | None = None) -> Iterator[Snapshot]:
        """Snapshots in step order; `last` limits it to the newest ones (opening a long run stays cheap)."""
        steps = self.snapshot_steps()
        for step in steps[-last:] if last else steps:
            try:
                yield self.load_snapshot(step)
            except (OSError, ValueError, KeyError):
                continue

    # --- checkpoints ---------------------------------------------------------------------------------
    def save_checkpoint(self, state: dict[str, Any], step: int, keep: int = 5, milestone_steps: int = 0) -> Path:
        """Write a checkpoint, then prune: keep the last `keep`, plus milestones (steps that are multiples of
        `milestone_steps`; 0 = none). Milestones go by step, not by position: pruning after every save
        shifts positions, so "every 10th in the list" never reached a 10th and kept none."""
        import io

        import torch  # here, not at the top: a queued worker reads and writes its run before it loads torch
        buf = io.BytesIO()
        torch.save(state, buf)
        path = self.ckpt_dir / f"step-{step:09d}.pt"
        atomic_write(path, buf.getvalue())
        ckpts = self.checkpoint_steps()
        old = ckpts[:-keep] if keep else []
        milestones = [s for s in old if milestone_steps > 0 and s % milestone_steps == 0]
        for s in [s for s in old if s not in milestones] + thin(milestones, MAX_MILESTONES):
            (self.ckpt_dir / f"step-{s:09d}.pt").unlink(missing_ok=True)
        return path

    def checkpoint_steps(self) -> list[int]:
        steps = []
        for p in self.ckpt_dir.glob("step-*.pt"):
            try:
                steps.append(int(p.stem.split("-", 1)[1]))
            except ValueError:
                continue
        return sorted(steps)

    def checkpoint_path(self, step: int | None = None) -> Path | None:
        steps = self.checkpoint_steps()
        if not steps:
            return None
        if step is None:
            step = steps[-1]
        elif step not in steps:   # nearest kept checkpoint at or before `step`
            before = [s for s in steps if s <= step]
            step = before[-1] if before else steps[0]
        return self.ckpt_dir / f"step-{step:09d}.pt"

    # --- what a worker starts from, and what it publishes for the latent explorer ---------------------------
    def init_path(self) -> Path:
        return self.path / "init.pt"

    def save_init(self, state: dict[str, Any] | bytes) -> None:
        """init.pt from a state, or from bytes a sandbox process saved after checking them (written unread)."""
        if isinstance(state, (bytes, bytearray)):
            atomic_write(self.init_path(), bytes(state))
            return
        import io

        import torch
        buf = io.BytesIO()
        torch.save(state, buf)
        atomic_write(self.init_path(), buf.getvalue())

    def discard_init(self) -> None:
        """The run has checkpoints of its own now (they hold everything init.pt did)."""
        if self.checkpoint_steps():
            self.init_path().unlink(missing_ok=True)

    def generator_path(self) -> Path:
        return self.path / "generator.pt"

    def save_generator(self, g_state: dict[str, Any], step: int, classes: int) -> None:
        import io

        import torch
        buf = io.BytesIO()
        torch.save({"G": g_state, "step": int(step), "classes": int(classes)}, buf)
        atomic_write(self.generator_path(), buf.getvalue())

    def enforce_budget(self, budget: int) -> int:
        """Bring the run's files under `budget` bytes if pruning can: milestone checkpoints first (oldest
        first), then older snapshots, then all but the newest two checkpoints. Returns the size after."""
        size = dir_size(self.path)
        ckpts = self.checkpoint_steps()
        while size > budget and len(ckpts) > 2:
            victim = ckpts.pop(0)   # the oldest first: milestones are the oldest checkpoints
            path = self.ckpt_dir / f"step-{victim:09d}.pt"
            size -= file_size(path)
            path.unlink(missing_ok=True)
        snaps = self.snapshot_steps()
        while size > budget and len(snaps) > 8:
            for step in snaps[1:len(snaps) // 2:2]:
                path = self.snap_dir / f"s{step:09d}.npz"
                size -= file_size(path)
                path.unlink(missing_ok=True)
            snaps = self.snapshot_steps()
        return size

    def delete(self) -> None:
        """Remove the run directory: renamed away first (one atomic step, so no list ever shows a half-deleted
        run, and a writer that races the delete writes into the renamed folder), then removed."""
        trash = self.path.with_name(f".trash-{self.path.name}-{time.monotonic_ns()}")
        os.rename(self.path, trash)
        shutil.rmtree(trash, ignore_errors=True)
        if trash.exists():   # a writer added files mid-removal: once more
            shutil.rmtree(trash, ignore_errors=True)


def load_checkpoint(source: Path | bytes) -> dict[str, Any]:
    """Load a checkpoint without executing code from it (weights_only=True); bad files raise StoreError."""
    import io
    import pickle
    import zipfile

    import torch
    try:
        f = io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else open(source, "rb")
    except OSError as e:
        raise StoreError(f"cannot open checkpoint: {e}") from None
    try:
        with f:
            state = torch.load(f, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        # torch's text opens with advice to retry with weights_only=False, which must never reach a user: keep
        # the line naming what was blocked. Garbage bytes land here too ("Unsupported operand"), blocking nothing.
        blocked = [ln.strip() for ln in str(e).splitlines() if "global" in ln.lower() and "weights_only" not in ln]
        if not blocked:
            raise StoreError("not a ganlab checkpoint (not a file that torch.save wrote)") from None
        raise StoreError(f"refused: the checkpoint contains objects other than tensors and numbers "
                         f"({blocked[0][:160]})") from None
    except (RuntimeError, EOFError, ValueError, zipfile.BadZipFile, OSError, AttributeError, KeyError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__   # EOFError has no text
        raise StoreError(f"not a ganlab checkpoint (could not read it: {first[:160]})") from None
    if not isinstance(state, dict) or "G" not in state or "config" not in state:
        raise StoreError("not a ganlab checkpoint (it has no generator weights or no config)")
    return state


"""Runs in background threads, and the process-wide registry that holds them.

A `Run` owns one run directory and (while it trains) one daemon thread driving a `Trainer`. Readers (any
number of pages, sessions and threads) call `view()`, which returns plain CPU data copied under a lock; they
never touch the trainer's tensors. The latent explorer calls `generate()`, which uses a private copy of G's
weights in eval mode, refreshed at each snapshot, so it never races the optimiser.

Commands (start, pause, resume, stop, step) only set flags under a condition variable; the thread acts on
them between updates, so they can be pressed in any order, from any thread, at any speed.
"""
from __future__ import annotations

import atexit
import copy
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from .config import LIVE_FIELDS, TrainConfig
from .graphs import device_lock
from .snapshots import HISTORY_KEYS, Snapshot
from .store import RunStore, StoreError, clean_name, default_runs_dir, load_checkpoint, safe_run_dir

ACTIVE = ("queued", "running", "paused", "created")
FINAL = ("finished", "stopped", "diverged", "failed", "interrupted")
BRANCH_FIELDS = (*LIVE_FIELDS, "steps", "loss")   # what a branch may change (see RunRegistry.branch)
MAX_HISTORY = 4000         # rows kept in memory; older rows are thinned 2:1 (the file keeps all)
MAX_SNAPSHOTS = 120        # snapshots kept in memory; older ones thinned 2:1 (disk keeps them)
SNAPSHOT_EVERY_2D = 250
CHECKPOINT_EVERY_2D = 1000
CHECKPOINT_MIN_S = 30.0
CPU_THREADS = torch.get_num_threads()   # intra-op threads of image runs on CPU: torch's default, read at import

INTERRUPTED = "the process training this run ended; Resume continues from the last checkpoint"

# quality_fn(run, snapshot, g_copy, trainer) -> measures now, or None (it may call run.add_quality later)
QualityFn = Callable[..., "dict[str, float] | None"]


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
        return self.state in ("queued", "running")


class Run:
    def __init__(self, store: RunStore, cfg: TrainConfig, registry: "RunRegistry | None" = None,
                 init_state: dict | None = None):
        self.store = store
        self.id = store.run_id
        self.cfg = cfg
        self.registry = registry
        status = store.read_status()
        self.name = status.get("name", self.id)
        self.parent = status.get("parent")
        self.created = status.get("created", time.time())
        self.state = status.get("state", "created")
        self.message = status.get("message", "")
        self.step = int(status.get("step", 0))
        self.epoch = int(status.get("epoch", 0))
        self.device = status.get("device", "")
        self.images_per_s = 0.0
        self._init_state = init_state         # checkpoint state to continue from (resume / branch)
        self._lock = threading.Lock()         # guards the published data below
        self._cond = threading.Condition()    # guards commands
        self._paused = False
        self._stop = False
        self._pending: list[str] = []         # single-step requests: "d", "g", "both"
        self._thread: threading.Thread | None = None
        self._history: list[dict[str, float]] = []
        self._snapshots: list[Snapshot] = []
        self._quality: list[dict[str, Any]] = []
        self._live_cfg: TrainConfig | None = None
        self._g_copy: torch.nn.Module | None = None
        self._g_lock = threading.Lock()
        self._trainer = None
        self._synced = 0.0
        self._last_ckpt = 0.0
        self._milestone_steps = 0             # set by _train from the checkpoint interval
        self._columns: tuple | None = None    # history as arrays, see _history_arrays

    # --- construction from disk ----------------------------------------------------------------------
    @classmethod
    def open(cls, path: Path, registry: "RunRegistry | None" = None) -> "Run":
        store = RunStore(path)
        run = cls(store, store.read_config(), registry)
        run._history = store.read_rows("history")
        run._quality = store.read_rows("quality")
        run._snapshots = list(store.iter_snapshots(last=MAX_SNAPSHOTS))
        if run._history:   # status.json's step is from the last state change; the history may be further on
            run.step = max(run.step, int(run._history[-1].get("step", 0)))
            run.epoch = max(run.epoch, int(run._history[-1].get("epoch", 0)))
        if run.state in ACTIVE and run.state != "created" and not _pid_alive(store.read_status().get("pid")):
            run.state, run.message = "interrupted", INTERRUPTED
        return run

    # --- commands (any thread) ----------------------------------------------------------------------
    def start(self, paused: bool = False) -> None:
        with self._cond:
            if self._thread is not None and self._thread.is_alive():
                return
            if self.state in ("finished", "diverged") and self._init_state is None:
                raise RuntimeError(f"run is {self.state}; branch or resume it to train more")
            if self.state in FINAL:   # resume stopped/interrupted/failed runs from their last checkpoint
                self._init_state = self._latest_checkpoint()
            self._paused = paused
            self._stop = False
            self._thread = threading.Thread(target=self._main, name=f"ganlab-run-{self.id}", daemon=True)
            self._thread.start()

    def pause(self) -> None:
        with self._cond:
            self._paused = True
            if self.state == "running":
                self._set_state("paused")
            self._cond.notify_all()

    def resume(self) -> None:
        with self._cond:
            self._paused = False
            self._cond.notify_all()
        if self._thread is None or not self._thread.is_alive():
            if self.state in ("created", "stopped", "interrupted", "paused"):
                self.start()

    def stop(self, wait: float | None = None) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
            thread = self._thread
        if wait is not None and thread is not None and thread is not threading.current_thread():
            thread.join(wait)

    def request_step(self, kind: str = "both") -> None:
        """One update while paused (or before starting): 'd', 'g' or 'both' (d_steps D updates + one G)."""
        if kind not in ("d", "g", "both"):
            raise ValueError(f"step kind must be d, g or both, got {kind!r}")
        with self._cond:
            if len(self._pending) < 100:
                self._pending.append(kind)
            self._paused = True
            self._cond.notify_all()
        if self._thread is None or not self._thread.is_alive():
            if self.state not in ("finished", "diverged", "failed"):
                self.start(paused=True)

    def update_live(self, **changes: Any) -> TrainConfig:
        """Change lr, D steps or switches; takes effect on the next step. Raises ConfigError / ValueError."""
        bad = sorted(set(changes) - set(LIVE_FIELDS))
        if bad:
            raise ValueError(f"{bad[0]} cannot change during a run (live: {', '.join(LIVE_FIELDS)})")
        new = self.cfg.replace(**changes)
        with self._cond:
            self.cfg = new
            self._live_cfg = new
        self.store.write_config(new)
        return new

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # --- reading (any thread) ------------------------------------------------------------------------
    def sync_from_disk(self) -> None:
        """Follow a run that another process (e.g. `python -m ganlab train`) is writing."""
        if self._thread is not None or time.monotonic() - self._synced < 0.5:
            return
        self._synced = time.monotonic()
        status = self.store.read_status()
        if not status or status.get("state") not in ACTIVE and self.state == status.get("state"):
            return
        rows = self.store.read_rows("history")
        quality = self.store.read_rows("quality")
        have = {s.step for s in self._snapshots}
        new = [st for st in self.store.snapshot_steps() if st not in have]
        snaps = []
        for st in new[-MAX_SNAPSHOTS:]:
            try:
                snaps.append(self.store.load_snapshot(st))
            except (OSError, ValueError, KeyError):
                continue
        state = status.get("state", self.state)
        message = status.get("message", "")
        if state in ACTIVE and state != "created" and not _pid_alive(status.get("pid")):
            state, message = "interrupted", INTERRUPTED
        with self._lock:
            self._history, self._quality = rows[-MAX_HISTORY:], quality
            self._snapshots = (self._snapshots + snaps)[-MAX_SNAPSHOTS:]
            self.state, self.message = state, message
            self.step, self.epoch = int(status.get("step", self.step)), int(status.get("epoch", self.epoch))
            self.device = status.get("device", self.device)
            if rows:
                self.images_per_s = float(rows[-1].get("images_per_s", 0.0))
                # status.json changes only with the state; the history shows how far the writer has come
                self.step = max(self.step, int(rows[-1].get("step", 0)))
                self.epoch = max(self.epoch, int(rows[-1].get("epoch", 0)))
        if snaps:
            with self._g_lock:
                self._g_copy = None   # newer weights on disk

    def view(self, with_snapshots: bool = True) -> RunView:
        self.sync_from_disk()
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
        the last call. A class polls a run 20 times a second; converting all 4,000 rows each time cost 15 ms
        per call, and that time holds the GIL the training thread needs between its torch ops."""
        cached = self._columns   # (rows converted, first row, last row, arrays): replaced whole, never changed
        n = len(rows)
        if cached is not None and 0 < cached[0] <= n and rows[0] is cached[1] and rows[cached[0] - 1] is cached[2]:
            done, cols = cached[0], cached[3]   # same rows so far (thinning or a rewind breaks the identity)
        else:
            done, cols = 0, {k: np.zeros(0) for k in HISTORY_KEYS}
        if done < n:
            new = rows[done:]
            cols = {k: np.concatenate([cols[k], np.array([r.get(k, np.nan) for r in new], dtype=float)])
                    for k in HISTORY_KEYS}
            for a in cols.values():
                a.flags.writeable = False   # shared by every view of this version
            self._columns = (n, rows[0], rows[-1], cols)
        return dict(cols)

    def generate(self, z: np.ndarray, y: np.ndarray | None = None) -> np.ndarray:
        """G(z) from a private eval-mode copy of G's weights (refreshed at each snapshot)."""
        with self._g_lock:
            g = self._g_copy
            if g is None:
                g = self._load_g_copy()
            zt = torch.as_tensor(np.asarray(z, dtype=np.float32))
            yt = torch.as_tensor(np.asarray(y, dtype=np.int64)) if y is not None else None
            with torch.no_grad():
                return g(zt, yt).float().numpy()

    def _load_g_copy(self) -> torch.nn.Module:
        from .models import build_models
        path = self.store.checkpoint_path()
        if path is None:
            raise RuntimeError("this run has no generator weights yet: start it first")
        state = load_checkpoint(path)
        cfg = TrainConfig.from_dict(state["config"])
        shape = tuple(self._snapshots[-1].fake.shape[1:]) if self._snapshots else None
        if shape is None:
            raise RuntimeError("this run has no snapshot yet")
        classes = int(self._snapshots[-1].labels.max()) + 1 if self._snapshots[-1].labels is not None else 0
        classes = max(classes, _label_count(state))
        g, _ = build_models(cfg, shape, classes)
        g.load_state_dict(state["G"])
        g.eval()
        self._g_copy = g
        return g

    # --- the thread ------------------------------------------------------------------------------------
    def _set_state(self, state: str, message: str = "") -> None:
        with self._lock:
            self.state, self.message = state, message
        try:
            self.store.update_status(state=state, message=message, step=self.step, epoch=self.epoch,
                                     device=self.device, pid=os.getpid())
        except OSError:
            pass   # a full or vanished disk must not kill the run's thread

    def _latest_checkpoint(self) -> dict | None:
        path = self.store.checkpoint_path()
        return load_checkpoint(path) if path is not None else None

    def _main(self) -> None:
        slot = False
        try:
            if self.registry is not None:
                while not self.registry._acquire(self):
                    with self._cond:
                        if self._stop:
                            self._set_state("stopped", "stopped while queued")
                            return
                        self._cond.wait(0.5)
                slot = True
            self._train()
        except torch.cuda.OutOfMemoryError:
            self._set_state("failed", "the GPU ran out of memory: lower the batch size or the network width")
        except Exception as e:  # noqa: BLE001 - any error ends this run only, with a message
            self._set_state("failed", _short_error(e))
        finally:
            self._trainer = None
            if slot:
                self.registry._release(self)

    def _train(self) -> None:
        from .trainer import Trainer, resolve_device
        self._set_state("running", "loading data and building the networks")
        with device_lock(resolve_device(self.cfg.device)):
            trainer = Trainer(self.cfg)
        if trainer.device.type == "cpu":
            # Tiny 2D nets gain nothing from intra-op threads, and OpenMP spinning collapses throughput when
            # cores are shared (measured: 45 vs 6 steps/s on a loaded 2-core box). Set for image runs too: torch
            # keeps the last value set by any thread as the default of threads started later, so after one 2D
            # run (or the quality worker) every later image run would otherwise train on one core.
            torch.set_num_threads(1 if trainer.is_2d else CPU_THREADS)
        if self._init_state is not None:
            with device_lock(trainer.device):
                trainer.load_state_dict(self._init_state, weights_only=self._init_state.get("_weights_only", False))
            self._init_state = None
            with self._lock:   # rows written after the checkpoint (before a crash) are replaced by new ones
                self._history = [r for r in self._history if r.get("step", 0) <= trainer.step]
                self._snapshots = [s for s in self._snapshots if s.step <= trainer.step]
        self._trainer = trainer
        self.device = str(trainer.device)
        self.step, self.epoch = trainer.step, trainer.epoch
        cfg = self.cfg
        snap_every = cfg.snapshot_every or (SNAPSHOT_EVERY_2D if trainer.is_2d else trainer.steps_per_epoch)
        ckpt_every = cfg.checkpoint_every or (CHECKPOINT_EVERY_2D if trainer.is_2d else trainer.steps_per_epoch)
        self._milestone_steps = 10 * ckpt_every   # every 10th regular checkpoint outlives pruning
        # Automatic cadence for image runs: once an epoch, but not more often than every CHECKPOINT_MIN_S. An MLP
        # GAN's weights + Adam state are 35 MB; writing them every 3 s cost 2-7% of throughput (bench).
        ckpt_min_s = 0.0 if cfg.checkpoint_every or trainer.is_2d else CHECKPOINT_MIN_S
        with device_lock(trainer.device):
            if not _weights_finite(trainer):   # started from a diverged state: never checkpoint it as "good"
                self._diverged(trainer, None, None, [])
                return
            self._publish_snapshot(trainer)
            if not self._history:
                self._checkpoint(trainer)
        with self._cond:
            paused = self._paused
        self._set_state("paused" if paused else "running")
        last_good = trainer.step
        pending_rows: list[dict[str, float]] = []
        last_flush = time.monotonic()
        while True:
            with self._cond:
                if self._live_cfg is not None:
                    trainer.set_config(self._live_cfg)
                    cfg = self._live_cfg
                    self._live_cfg = None
                if self._stop:
                    break
                if self._paused and not self._pending:
                    if self.state != "paused":
                        self._set_state("paused")
                    self._cond.wait(0.5)
                    continue
                kind = self._pending.pop(0) if self._pending else None
                if kind is None and self.state != "running":
                    self._set_state("running")
            with device_lock(trainer.device):   # see graphs.device_lock
                if kind is None:
                    recorded = trainer.train_step()
                    shown = f"{trainer.device} (CUDA graph)" if trainer.graphed else str(trainer.device)
                    if self.device != shown:   # the Train page's Device
                        self.device = shown
                else:
                    recorded = self._single_step(trainer, kind)
                if recorded:
                    row = trainer.collect()
                    if trainer.nonfinite:
                        self._diverged(trainer, row, last_good, pending_rows)
                        return
                    pending_rows.append(row)
                    with self._lock:
                        self._history.append(row)
                        if len(self._history) > MAX_HISTORY:
                            self._history = self._history[:len(self._history) // 2:2] + \
                                self._history[len(self._history) // 2:]
                        self.step, self.epoch, self.images_per_s = trainer.step, trainer.epoch, row["images_per_s"]
                    if kind is not None or time.monotonic() - last_flush > 1.0:
                        self.store.append_rows("history", pending_rows)
                        pending_rows, last_flush = [], time.monotonic()
                else:
                    self.step, self.epoch = trainer.step, trainer.epoch
                if kind is not None or trainer.step % snap_every == 0 or trainer.step >= cfg.steps:
                    self._publish_snapshot(trainer)
                due = trainer.step % ckpt_every == 0 and time.monotonic() - self._last_ckpt >= ckpt_min_s
                if due or trainer.step >= cfg.steps:
                    if not _weights_finite(trainer):
                        self._diverged(trainer, None, last_good, pending_rows)
                        return
                    self._checkpoint(trainer)
                    last_good = trainer.step
                if trainer.step >= cfg.steps:
                    self.store.append_rows("history", pending_rows)
                    self._set_state("finished", f"finished {trainer.step} steps")
                    return
        self.store.append_rows("history", pending_rows)
        with device_lock(trainer.device):
            if _weights_finite(trainer):
                self._checkpoint(trainer)
        self._set_state("stopped", f"stopped at step {trainer.step}")

    def _single_step(self, trainer, kind: str) -> bool:
        trainer._apply_lr()
        if kind == "d":
            trainer.step_d(record=True)
            return True
        if kind == "g":
            trainer.step_g(record=True)
            trainer.step += 1
            return True
        for _ in range(trainer.cfg.d_steps):
            trainer.step_d(record=True)
        trainer.step_g(record=True)
        trainer.step += 1
        return True

    def _diverged(self, trainer, row: dict | None, last_good: int | None, pending: list[dict]) -> None:
        # Rows not yet flushed and the row that showed the NaN go to disk and memory alike, so the app and a
        # reopened run draw the same curve up to the divergence.
        self.store.append_rows("history", pending + ([row] if row is not None else []))
        with self._lock:
            if row is not None:
                self._history.append(row)
            self.step, self.epoch = trainer.step, trainer.epoch
        if last_good is None:
            self._set_state("diverged", f"the starting weights already hold NaN/Inf (step {trainer.step}); "
                                        "branch from an earlier checkpoint")
            return
        self._set_state("diverged", f"NaN/Inf appeared at step {trainer.step}; the last good checkpoint "
                                    f"(step {last_good}) is kept. Try a lower learning rate.")

    def _publish_snapshot(self, trainer) -> None:
        snap = trainer.snapshot()
        g = copy.deepcopy(trainer.G).to("cpu").eval()
        with self._g_lock:
            self._g_copy = g
        with self._lock:
            self._snapshots.append(snap)
            if len(self._snapshots) > MAX_SNAPSHOTS:   # keep the first, thin the older half 2:1
                half = len(self._snapshots) // 2
                self._snapshots = self._snapshots[:half:2] + self._snapshots[half:]
        self.store.save_snapshot(snap)
        if self.registry is not None and self.registry.quality_fn is not None:
            try:
                quality = self.registry.quality_fn(self, snap, g, trainer)
            except Exception as e:  # noqa: BLE001 - a failed measure never stops training
                quality = None
                self.message = f"quality measures unavailable: {_short_error(e)}"
            if quality:
                self.add_quality({"step": snap.step, **quality})

    def add_quality(self, row: dict[str, Any]) -> None:
        """Record one evaluation of the quality measures (called from the training or the quality thread)."""
        with self._lock:
            self._quality.append(row)
            if len(self._quality) > MAX_HISTORY:
                self._quality = self._quality[::2]
        self.store.append_rows("quality", [row])

    def _checkpoint(self, trainer) -> None:
        self._last_ckpt = time.monotonic()
        self.store.save_checkpoint(trainer.state_dict(), trainer.step, keep=self.cfg.keep_checkpoints,
                                   milestone_steps=self._milestone_steps)


def _weights_finite(trainer) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in trainer.g_params + trainer.d_params)


def _label_count(state: dict) -> int:
    emb = state["G"].get("embed.weight")
    return int(emb.shape[0]) if emb is not None else 0


def _check_weights_fit(run: Run, cfg: TrainConfig, state: dict, changes: dict) -> None:
    """Raise ValueError (naming the changed fields) when `cfg` builds networks `state`'s weights do not fit."""
    from .models import build_models
    with run._lock:
        snap = run._snapshots[-1] if run._snapshots else None
    steps = run.store.snapshot_steps()
    if snap is None and steps:
        snap = run.store.load_snapshot(steps[-1])
    if snap is None:
        return   # no sample shape to build with; the new run's thread reports a mismatch itself
    g, d = build_models(cfg, tuple(snap.fake.shape[1:]), _label_count(state))
    try:
        g.load_state_dict(state["G"])
        d.load_state_dict(state["D"])
    except RuntimeError:
        names = ", ".join(f"{k}={v}" for k, v in sorted(changes.items()))
        raise ValueError(f"{names} changes the networks' layers ({cfg.model} D drops batch norm for "
                         "WGAN-GP), so this checkpoint's weights do not fit: start a new run instead") from None


def _short_error(e: BaseException) -> str:
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return f"{type(e).__name__}: {text[:300]}" if not isinstance(e, ValueError) else text[:300]


def _pid_alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    if pid == os.getpid():
        return False   # our own earlier life (same pid reused after a restart is treated as dead)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunRegistry:
    """Every run of one runs directory in this process: thread-safe, shared by all sessions.

    At most `max_active` runs train at once (2 by default: a 2-core laptop has no room for more); later
    starts wait in state "queued" with a message, and begin when a slot frees.
    """

    def __init__(self, runs_dir: Path | str | None = None, max_active: int | None = None,
                 quality_fn: QualityFn | None = None):
        self.runs_dir = Path(runs_dir) if runs_dir is not None else default_runs_dir()
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        self.max_active = max_active or int(os.environ.get("GANLAB_MAX_ACTIVE", "2"))
        self.quality_fn = quality_fn
        self._runs: dict[str, Run] = {}
        self._training: set[str] = set()
        self._lock = threading.RLock()

    # --- slots ---------------------------------------------------------------------------------------
    def _has_slot(self) -> bool:
        with self._lock:
            return len(self._training) < self.max_active

    def _acquire(self, run: Run) -> bool:
        with self._lock:
            if len(self._training) >= self.max_active:
                if run.state != "queued":
                    run._set_state("queued", f"queued: {len(self._training)} runs are training (the limit is "
                                             f"{self.max_active}); it starts when one of them ends")
                return False
            self._training.add(run.id)
            return True

    def _release(self, run: Run) -> None:
        with self._lock:
            self._training.discard(run.id)

    # --- runs ----------------------------------------------------------------------------------------
    def create(self, cfg: TrainConfig, name: str | None = None, *, parent: dict | None = None,
               init_state: dict | None = None, start: bool = True, paused: bool = False) -> Run:
        store = RunStore.create(self.runs_dir, name or cfg.dataset, cfg, parent)
        run = Run(store, cfg, self, init_state)
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
        """All runs in the runs directory (newest first), including ones written by other processes."""
        ids = []
        try:
            ids = [p.name for p in self.runs_dir.iterdir() if (p / "config.json").is_file()]
        except OSError:
            pass
        runs = []
        for run_id in ids:
            try:
                runs.append(self.get(run_id))
            except (KeyError, StoreError, ValueError, OSError):
                continue   # a broken directory is skipped, never fatal for the list
        with self._lock:
            for run_id in [r for r in self._runs if r not in ids]:
                self._runs.pop(run_id)   # deleted from disk by someone else
        return sorted(runs, key=lambda r: r.created, reverse=True)

    def branch(self, run: Run, step: int | None = None, name: str | None = None, **changes: Any) -> Run:
        """A new run that continues `run` from its checkpoint at (or before) `step`, with `changes`.

        Live fields, `steps` and `loss` may change. A loss keeps the same networks except where the
        architecture depends on it (WGAN-GP drops batch norm in DCGAN's D): such a branch raises
        ValueError before any run is created."""
        path = run.store.checkpoint_path(step)
        if path is None:
            raise StoreError(f"run {run.name!r} has no checkpoint to branch from")
        state = load_checkpoint(path)
        parent_cfg = TrainConfig.from_dict(state["config"])
        fixed = {k for k in changes if k not in BRANCH_FIELDS}
        if fixed:
            raise ValueError(f"{sorted(fixed)[0]} cannot change in a branch (it changes the networks)")
        cfg = parent_cfg.replace(**changes)
        if cfg != parent_cfg:
            _check_weights_fit(run, cfg, state, changes)
        parent = {"run": run.id, "name": run.name, "step": int(state["step"])}
        return self.create(cfg, name or f"{run.name} @{state['step']}", parent=parent, init_state=state)

    def rename(self, run_id: str, name: str) -> None:
        run = self.get(run_id)
        name = clean_name(name)
        run.name = name
        run.store.update_status(name=name)

    def delete(self, run_id: str) -> None:
        run = self.get(run_id)
        run.stop(wait=10)
        with self._lock:
            self._runs.pop(run_id, None)
        run.store.delete()

    def shutdown(self, timeout: float = 5.0) -> None:
        with self._lock:
            runs = list(self._runs.values())
        for run in runs:
            run.stop()
        for run in runs:
            run.join(timeout)


_REGISTRIES: dict[str, RunRegistry] = {}
_REG_LOCK = threading.Lock()


def get_registry(runs_dir: Path | str | None = None) -> RunRegistry:
    """The process-wide registry for `runs_dir` (default: $GANLAB_RUNS_DIR or ./runs)."""
    path = Path(runs_dir) if runs_dir is not None else default_runs_dir()
    key = str(path.expanduser().resolve())
    with _REG_LOCK:
        if key not in _REGISTRIES:
            from .quality import default_quality_fn
            _REGISTRIES[key] = RunRegistry(path, quality_fn=default_quality_fn)
        return _REGISTRIES[key]


@atexit.register
def _shutdown_all() -> None:
    for reg in list(_REGISTRIES.values()):
        reg.shutdown(timeout=3.0)

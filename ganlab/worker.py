"""The worker of one run: trains its run directory until the run ends, outside the web process.

`python -m ganlab.worker RUN_DIR` is what the process backend spawns (ganlab.executor); a Ray actor and the
CLI's thread call `serve()`, the same code. The worker is the only writer of the run's training state:
status.json (state, step, message), history.jsonl and quality.jsonl rows, snapshots, checkpoints and
generator.pt (G's weights for the latent explorer, refreshed at each snapshot). It reads commands from
commands.jsonl (ganlab.control) and applies them between updates, so they take effect at the next step.

Order of a worker's life: take the run's lock (or leave: another worker has the run), wait for one of the
runs directory's training slots (state queued; a stop here ends the run), import torch and build the trainer,
then train. torch is imported only once a slot is held, so a queue of 30 runs costs 30 small processes.
The slot follows compute (ganlab.slots): a worker started paused builds without waiting for one, pausing gives
it back, Resume takes one again or queues; a run paused longer than GANLAB_PAUSED_IDLE_S is parked (a
checkpoint, then the worker exits) and stays paused.
"""
from __future__ import annotations

import argparse
import faulthandler
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any, Callable

from . import control
from .slots import Slot, park_message, pick_gpu
from .snapshots import SINGLE_CODES
from .states import RunState, check_transition

SNAPSHOT_EVERY_2D = 250
CHECKPOINT_EVERY_2D = 1000
CHECKPOINT_MIN_S = 30.0
FLUSH_S = 0.5            # history rows reach the disk at least this often (pages refresh once a second)
POLL_S = 0.02            # commands are read at most this often while training
IDLE_S = 0.05            # ... and while paused or queued
RUN_BUDGET_MB = 200     # disk per run (GANLAB_RUN_BUDGET_MB): snapshots and checkpoints are thinned to fit
OOM = "out of memory: lower the batch size or the network width"


class Worker:
    """Trains one run directory. `quality_fn(worker, snap, g, trainer)` may return measures or queue them
    (calling `add_quality` later); None disables quality measures."""

    def __init__(self, run_dir: Path | str, *, offset: int = 0, paused: bool = False, max_active: int | None = None,
                 launch: str = "", quality_fn: Callable[..., Any] | None | str = "default"):
        from .store import RunStore
        self.store = RunStore(Path(run_dir))
        self.commands = control.CommandReader(self.store.path, offset)
        self.paused = paused
        self.stop_asked = False
        self.pending: list[str] = []
        self.edits: list[dict[str, Any]] = []
        self.max_active = max_active or control.max_active()
        self.slot = Slot(self.store.path.parent, self.max_active, self.store.run_id)
        self.idle_s = control.paused_idle_s()
        self.touched = time.monotonic()   # the last command or step: a paused run parks idle_s after it
        self.updates = self.saved = 0     # steps taken, and taken when the last checkpoint was written
        self.launch = launch
        self._quality_fn = quality_fn
        self.wait_quality = False   # a worker process sets it: its exit would drop queued measures
        self.over_budget = 0        # set when pruning cannot bring the run's files under its budget
        self.state = RunState.parse(self.store.read_status().get("state"), RunState.INTERRUPTED)
        self.step = self.epoch = 0
        self.device = ""
        self.message = ""

    # --- commands ------------------------------------------------------------------------------------
    def _read_commands(self) -> None:
        for c in self.commands.poll():
            apply_command(self, c)
            self.touched = time.monotonic()

    # --- status --------------------------------------------------------------------------------------
    def _set_state(self, state: RunState, message: str = "") -> None:
        state = check_transition(self.state, state)
        self.state, self.message = state, message
        try:
            self.store.update_status(state=state.value, message=message, step=self.step, epoch=self.epoch,
                                     device=self.device, pid=os.getpid(), host=socket.gethostname(),
                                     launch=self.launch)
        except OSError:
            pass   # a full or vanished disk must not kill the worker before it can end cleanly

    def add_quality(self, row: dict[str, Any]) -> None:
        """Record one evaluation of the quality measures (from the training or the quality thread)."""
        try:
            self.store.append_rows("quality", [row])
        except OSError:
            pass

    # --- life ------------------------------------------------------------------------------------------
    def serve(self) -> str:
        """Train until the run ends; returns the final state ('' when another worker already has the run)."""
        lock = control.try_lock(self.store.path / control.WORKER_LOCK)
        if lock is None:
            return ""
        beat = control.Heartbeat(self.store.path)
        try:
            self.state = RunState.parse(self.store.read_status().get("state"), RunState.INTERRUPTED)
            if not self.state.can_start and not self.state.live:
                return self.state.value   # finished or diverged meanwhile (a second Start raced the first)
            self._read_commands()   # the successor of a parked worker reads what came as it left (ganlab.slots)
            if not self._wait_for_slot():
                return self.state.value
            self._train()
        except MemoryError:
            self._fail(OOM)
        except Exception as e:  # noqa: BLE001 - any error ends this run only, with a message
            self._fail(_oom_message(e) or short_error(e))
        finally:
            self.slot.give_back()
            beat.stop()
            control.release(lock)
        return self.state.value

    def _fail(self, message: str) -> None:
        if self.state.can_become(RunState.FAILED):
            self._set_state(RunState.FAILED, message)

    def _wait_for_slot(self) -> bool:
        """Hold a slot before the build (False: stopped while queued). A paused start builds without waiting
        (with a free slot if there is one, for its GPU); a pause while queued waits on: 30 queued runs paused
        at once would otherwise build 30 trainers."""
        if self.paused:
            self.slot.take()
            return True
        while not self.slot.take():
            self._read_commands()
            if self.stop_asked:
                self._set_state(RunState.STOPPED, "stopped while queued")
                return False
            self._queue("it starts")
            time.sleep(IDLE_S * 4)
        return True

    def _queue(self, then: str) -> None:
        """State queued, with a message naming the runs that train (rewritten only when it changes)."""
        message = self.slot.queued_message(then)
        if self.state is not RunState.QUEUED or self.message != message:
            self._set_state(RunState.QUEUED, message)

    def _train(self) -> None:
        pick_gpu(self.slot.index or 0)
        import torch

        from .cuda_graph import device_lock
        from .disk import budget_bytes
        from .store import load_checkpoint
        from .trainer import Trainer, resolve_device
        cfg = self.store.read_config()
        self._set_state(RunState.RUNNING, "loading data and building the networks")
        init = self._initial_state(load_checkpoint)
        with device_lock(resolve_device(cfg.device)):
            trainer = Trainer(cfg)
        if trainer.device.type == "cpu":
            # Tiny 2D nets gain nothing from intra-op threads, and OpenMP spinning collapses throughput when
            # cores are shared (measured: 45 vs 6 steps/s on a loaded 2-core box).
            torch.set_num_threads(1 if trainer.is_2d else CPU_THREADS)
        if init is not None:
            with device_lock(trainer.device):
                trainer.load_state_dict(init, weights_only=bool(init.get("_weights_only", False)))
            self.store.drop_snapshots_after(trainer.step)   # a resume trains those steps again
        self.device = str(trainer.device)
        self.step, self.epoch = trainer.step, trainer.epoch
        snap_every = cfg.snapshot_every or (SNAPSHOT_EVERY_2D if trainer.is_2d else trainer.steps_per_epoch)
        ckpt_every = cfg.checkpoint_every or (CHECKPOINT_EVERY_2D if trainer.is_2d else trainer.steps_per_epoch)
        milestones = 10 * ckpt_every   # every 10th regular checkpoint outlives pruning
        # Image runs checkpoint once an epoch, but not more often than every CHECKPOINT_MIN_S: an MLP GAN's
        # weights + Adam state are 35 MB, and writing them every 3 s cost 2-7% of throughput (bench).
        ckpt_min_s = 0.0 if cfg.checkpoint_every or trainer.is_2d else CHECKPOINT_MIN_S
        last_ckpt = 0.0

        budget = budget_bytes("GANLAB_RUN_BUDGET_MB", RUN_BUDGET_MB)

        def checkpoint() -> None:
            nonlocal last_ckpt
            last_ckpt = time.monotonic()
            self.saved = self.updates
            self.save_checkpoint(trainer.state_dict(), trainer.step, cfg.keep_checkpoints, milestones, budget)

        with device_lock(trainer.device):
            if not weights_finite(trainer):   # started from a diverged state: never checkpoint it as "good"
                return self._diverged(trainer, None, None, [])
            self._publish_snapshot(trainer)
            if not self.store.checkpoint_steps() or init is not None and init.get("_weights_only"):
                checkpoint()
        self.store.discard_init()
        self._read_commands()
        self._set_state(RunState.PAUSED if self.paused else RunState.RUNNING)
        last_good = trainer.step
        rows: list[dict[str, float]] = []
        last_flush = last_poll = time.monotonic()
        first_row = True
        while True:
            now = time.monotonic()
            if now - last_poll >= POLL_S or self.paused or not self.slot.held:
                self._read_commands()
                last_poll = now
            while self.edits:
                cfg = cfg.replace(**self.edits.pop(0))
                trainer.set_config(cfg)
            if self.stop_asked:
                break
            if self.paused and not self.pending:
                self.slot.give_back()   # at once: a paused run never keeps another from training
                if self.state is not RunState.PAUSED:
                    self._flush(rows)
                    self._set_state(RunState.PAUSED)
                if 0 < self.idle_s <= time.monotonic() - self.touched and self._park(trainer, rows, checkpoint):
                    return None
                time.sleep(IDLE_S)
                continue
            kind = self.pending.pop(0) if self.pending else None
            if kind is None and not self.slot.take():   # Resume with every slot held: queued until one frees
                self._queue("it resumes")
                time.sleep(IDLE_S * 4)
                continue
            self.updates += 1
            if kind is not None:
                self.touched = time.monotonic()
                if self.state is RunState.QUEUED:   # a step while queued pauses the run (apply_command)
                    self._set_state(RunState.PAUSED)
            elif self.state is not RunState.RUNNING:
                self._set_state(RunState.RUNNING)
            with device_lock(trainer.device):   # see cuda_graph.device_lock
                if kind is None:
                    recorded = trainer.train_step()
                    shown = f"{trainer.device} (CUDA graph)" if trainer.graphed else str(trainer.device)
                    if self.device != shown:   # the Train page's Device
                        self.device = shown
                        self.store.update_status(device=shown)
                else:
                    recorded = trainer.single_step(kind)
                self.step, self.epoch = trainer.step, trainer.epoch
                if recorded:
                    row = trainer.collect()
                    if kind is not None:
                        row["single"] = SINGLE_CODES[kind]   # the half that did not run is NaN, not divergence
                    if trainer.nonfinite:
                        return self._diverged(trainer, row, last_good, rows)
                    rows.append(row)
                if kind is not None or trainer.step % snap_every == 0 or trainer.step >= cfg.steps:
                    self._publish_snapshot(trainer)   # before a step's row: a page that sees the row sees it
                if rows and (kind is not None or time.monotonic() - last_flush > FLUSH_S or first_row):
                    first_row = False   # the first row at once: the page shows the run has begun
                    self._flush(rows)
                    last_flush = time.monotonic()
                due = trainer.step % ckpt_every == 0 and time.monotonic() - last_ckpt >= ckpt_min_s
                if due or trainer.step >= cfg.steps:
                    if not weights_finite(trainer):
                        return self._diverged(trainer, None, last_good, rows)
                    checkpoint()
                    last_good = trainer.step
                if trainer.step >= cfg.steps:
                    self._flush(rows)
                    self._set_state(RunState.FINISHED, f"finished {trainer.step} steps")
                    return self._wait_quality()
                if self.over_budget:
                    self._flush(rows)
                    self._set_state(RunState.STOPPED, f"stopped at step {trainer.step}: its files passed the disk "
                                    f"budget of {self.over_budget // 2**20} MB per run (GANLAB_RUN_BUDGET_MB)")
                    return self._wait_quality()
                if kind is not None:
                    self.store.update_status(step=self.step, epoch=self.epoch)
        self._flush(rows)
        with device_lock(trainer.device):
            if weights_finite(trainer):
                checkpoint()
        self._set_state(RunState.STOPPED, f"stopped at step {trainer.step}")
        self._wait_quality()

    def _park(self, trainer, rows: list[dict[str, float]], checkpoint: Callable[[], None]) -> bool:
        """Put a long-paused run's trainer away (ganlab.slots): a checkpoint at its step, status paused with
        `parked`, then one last look at the commands. True: the worker may exit; False: a command came (or the
        weights are not finite), and it goes on with the trainer it has."""
        from .cuda_graph import device_lock
        self._flush(rows)
        self.touched = time.monotonic()   # a refusal below waits a whole idle period before the next try
        with device_lock(trainer.device):
            if not weights_finite(trainer):
                return False
            if self.updates != self.saved or self.store.checkpoint_steps()[-1:] != [trainer.step]:
                checkpoint()   # a D step changes the state, not the step
        self._wait_quality()
        self.message = park_message(trainer.step)
        self.store.update_status(state=RunState.PAUSED.value, message=self.message, step=trainer.step,
                                 epoch=trainer.epoch, parked={"step": trainer.step, "offset": self.commands.offset})
        # A page that sent a command before reading `parked` counts on this look (Run._hand_over)
        cmds = self.commands.poll()
        if not cmds:
            return True
        for c in cmds:
            apply_command(self, c)
        self.message = ""
        self.store.update_status(message="", parked=None)
        return False

    def save_checkpoint(self, state: dict[str, Any], step: int, keep: int, milestones: int, budget: int) -> None:
        """Write a checkpoint, prune, and flag the run when its files cannot fit its disk budget."""
        self.store.save_checkpoint(state, step, keep=keep, milestone_steps=milestones)
        if self.store.enforce_budget(budget) > budget:
            self.over_budget = budget

    def _initial_state(self, load_checkpoint) -> dict | None:
        """Where training continues from: the newest checkpoint (resume), else init.pt (branch, upload)."""
        path = self.store.checkpoint_path()
        if path is not None:
            return load_checkpoint(path)
        init = self.store.init_path()
        return load_checkpoint(init) if init.exists() else None

    def _flush(self, rows: list[dict[str, float]]) -> None:
        if rows:
            self.store.append_rows("history", rows)
            rows.clear()

    def _diverged(self, trainer, row: dict | None, last_good: int | None, rows: list[dict]) -> None:
        # The row that showed the NaN goes to disk, so the app draws the curve up to the divergence.
        self._flush(rows + ([row] if row is not None else []))
        self.step, self.epoch = trainer.step, trainer.epoch
        if last_good is None:
            self._set_state(RunState.DIVERGED, f"the starting weights already hold NaN/Inf (step {trainer.step}); "
                                               "branch from an earlier checkpoint")
            return
        self._set_state(RunState.DIVERGED, f"NaN/Inf appeared at step {trainer.step}; the last good checkpoint "
                                           f"(step {last_good}) is kept. Try a lower learning rate.")

    def _publish_snapshot(self, trainer) -> None:
        import copy
        snap = trainer.snapshot()
        g = copy.deepcopy(trainer.G).to("cpu").eval()
        self.store.save_snapshot(snap)
        self.store.save_generator(g.state_dict(), snap.step, trainer.data.num_classes if trainer.conditional else 0)
        fn = self._quality()
        if fn is None:
            return
        try:
            quality = fn(self, snap, g, trainer)
        except Exception as e:  # noqa: BLE001 - a failed measure never stops training
            quality = None
            self.store.update_status(message=f"quality measures unavailable: {short_error(e)}")
        if quality:
            self.add_quality({"step": snap.step, **quality})

    def _quality(self):
        if self._quality_fn == "default":
            from .quality import default_quality_fn
            self._quality_fn = default_quality_fn
        return self._quality_fn

    def _wait_quality(self) -> None:
        """A worker process waits for the last image measures before it exits (they run in a thread)."""
        if self._quality_fn is not None and self.wait_quality:
            from .quality import wait_idle
            wait_idle(timeout=120)


def apply_command(target: Any, c: dict[str, Any]) -> None:
    """One command of commands.jsonl applied to a worker's `paused`, `stop_asked`, `pending` and `edits` (the
    solo Worker's, or a seed group's, which reads the commands of all its members)."""
    kind = c["cmd"]
    if kind == "pause":
        target.paused = True
    elif kind == "resume":
        target.paused = False
    elif kind == "stop":
        target.stop_asked = True
    elif kind == "step" and c.get("kind") in ("d", "g", "both") and len(target.pending) < 100:
        target.pending.append(c["kind"])
        target.paused = True
    elif kind == "edit" and isinstance(c.get("changes"), dict):
        target.edits.append(c["changes"])


def weights_finite(trainer) -> bool:
    import torch
    return all(bool(torch.isfinite(p).all()) for p in trainer.g_params + trainer.d_params)


def short_error(e: BaseException) -> str:
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return f"{type(e).__name__}: {text[:300]}" if not isinstance(e, ValueError) else text[:300]


def _oom_message(e: BaseException) -> str | None:
    text = str(e)
    if type(e).__name__ == "OutOfMemoryError" or "out of memory" in text or "can't allocate memory" in text:
        where = "the GPU" if "CUDA" in text or type(e).__name__ == "OutOfMemoryError" else "the worker"
        return f"{where} ran {OOM}"
    return None


def _limit_memory() -> None:
    """GANLAB_WORKER_MEMORY_MB caps a worker's data memory, so one huge run fails alone with a message
    instead of pushing the whole machine into the OOM killer."""
    mb = os.environ.get("GANLAB_WORKER_MEMORY_MB")
    if mb:
        import resource
        limit = int(float(mb) * 2**20)
        resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))


def _lower_priority() -> None:
    """GANLAB_WORKER_NICE (default 10; 0 keeps the server's priority): training is background work, so pages come
    first where they share cores (a badge lagged past 2 s beside two runs training flat out). Idle cores stay its."""
    raw = os.environ.get("GANLAB_WORKER_NICE", "10").strip() or "10"
    nice = int(raw) if raw.isdigit() else 10   # anything else: the default (README names the values)
    if nice > 0:
        os.nice(min(nice, 19))


try:
    CPU_THREADS = max(1, len(os.sched_getaffinity(0)))
except AttributeError:   # pragma: no cover - not Linux
    CPU_THREADS = os.cpu_count() or 1


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ganlab.worker", description="train one run directory")
    p.add_argument("run_dir")
    p.add_argument("--offset", type=int, default=0, help="read commands.jsonl from this byte offset")
    p.add_argument("--paused", action="store_true")
    p.add_argument("--max-active", type=int, default=None)
    p.add_argument("--launch", default="")
    args = p.parse_args(argv)
    return serve_process(lambda: Worker(args.run_dir, offset=args.offset, paused=args.paused,
                                        max_active=args.max_active, launch=args.launch))


def serve_process(make: Callable[[], Any]) -> int:
    """A worker process's life after its arguments: crash stacks into the log, the memory cap, then `make()`'s
    worker serves; exit status 0 when it ended as a run may end, 1 otherwise."""
    faulthandler.enable()   # a native crash prints its Python stack into worker.log
    os.environ["GANLAB_WORKER"] = "process"
    _limit_memory()
    _lower_priority()
    worker = make()
    worker.wait_quality = True   # the process's exit would drop queued measures
    state = worker.serve()
    sys.stdout.flush()
    return 0 if state in ("", "finished", "stopped", "paused", "diverged") else 1


if __name__ == "__main__":
    sys.exit(main())

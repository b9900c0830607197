"""The worker of a seed group: K run directories of one 2D config that differ only in seed, trained by one process
as one batched model (ganlab.ensemble.EnsembleTrainer), each member's directory written as a solo worker writes it.

`python -m ganlab.ensemble_worker DIR1 ... DIRK` is what the process backend spawns for a group
(`executor.start_group`); a Ray actor and the thread backend call `GroupWorker.serve()`, the same code.

Each member keeps what makes it an ordinary run: its status.json (state, step, message; pid, host and launch of
this process), history rows (the member's slice of the ensemble's statistics), snapshots of its own G on its
own fixed noise, checkpoints and generator.pt. A solo `Trainer` per member ("shadow", never trained) holds the
member's weights copied in at each snapshot and checkpoint: its `snapshot()` and `state_dict()` are exactly the
solo worker's (its fixed noise and fixed real points come from the member's seed, as a solo run's do), so every
page, a branch and a Resume (which trains the member alone, as any run) take a member like any run. A checkpoint
holds the member's weights, optimiser state (`member_optimizer_state`), counters and RNG stream: a solo Resume
continues the member as if it had trained alone.

One worker holds every member's worker lock and heartbeat, and one training slot for the group while it trains
(given back while paused, taken again on Resume, queued when none is free: ganlab.slots; a group never parks,
its worker stays until the group ends). Commands sent
to any member (pause, resume, stop, single steps, live edits) apply to the whole group. A member that diverges
(`diverged_at[k]`) ends alone in state diverged; the others go on. An error ends every member (failed); a crash
of the process is recorded for every member by the executor, as for a solo worker.
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from typing import Any

from . import control
from .slots import Slot, pick_gpu
from .snapshots import SINGLE_CODES
from .states import RunState
from .worker import (
    CHECKPOINT_EVERY_2D,
    FLUSH_S,
    IDLE_S,
    OOM,
    POLL_S,
    RUN_BUDGET_MB,
    SNAPSHOT_EVERY_2D,
    Worker,
    _oom_message,
    apply_command,
    serve_process,
    short_error,
)

TOGETHER = "the seed group stops together"


class GroupWorker:
    """Trains the member run directories `run_dirs` (member k = seed k of the group) as one ensemble."""

    def __init__(self, run_dirs: list[Path | str], *, offsets: list[int] | None = None, paused: bool = False,
                 max_active: int | None = None, launch: str = "", quality_fn: Any = "default"):
        offsets = offsets or [0] * len(run_dirs)
        if len(offsets) != len(run_dirs):
            raise ValueError("offsets: one command offset per member")
        self.members = [Worker(d, offset=o, paused=paused, max_active=max_active, launch=launch,
                               quality_fn=quality_fn) for d, o in zip(run_dirs, offsets)]
        self.max_active = self.members[0].max_active
        self.slot = Slot(self.members[0].store.path.parent, self.max_active, self.members[0].store.run_id)
        self.paused = paused
        self.stop_asked = False
        self.pending: list[str] = []
        self.edits: list[dict[str, Any]] = []
        self.wait_quality = False
        self.ens: Any = None            # the EnsembleTrainer, once built
        self.shadows: list[Any] = []    # one solo Trainer per member: snapshots and checkpoints
        self.alive: list[int] = list(range(len(self.members)))   # members still training

    # --- commands and states ---------------------------------------------------------------------------
    def _read_commands(self) -> None:
        cmds = [c for m in self.members for c in m.commands.poll()]
        for c in sorted(cmds, key=lambda c: c.get("t", 0) if isinstance(c.get("t"), (int, float)) else 0):
            apply_command(self, c)

    def _set_all(self, state: RunState, message: str = "", members: list[int] | None = None) -> None:
        for k in self.alive if members is None else members:
            m = self.members[k]
            if self.ens is not None:
                m.step, m.epoch = self.ens.step, self.ens.epoch
            if m.state.can_become(state):
                m._set_state(state, message)

    def _fail_all(self, message: str) -> None:
        self._set_all(RunState.FAILED, message)

    # --- life --------------------------------------------------------------------------------------------
    def serve(self) -> str:
        """Train until every member has ended; returns the first member's final state ('failed' when any
        failed; '' when another worker already has a member)."""
        locks: list[int] = []
        for m in self.members:
            fd = control.try_lock(m.store.path / control.WORKER_LOCK)
            if fd is None:
                for held in locks:
                    control.release(held)
                return ""
            locks.append(fd)
        beats = [control.Heartbeat(m.store.path) for m in self.members]
        try:
            for m in self.members:
                m.state = RunState.parse(m.store.read_status().get("state"), RunState.INTERRUPTED)
            if not all(m.state.can_start or m.state.live for m in self.members):
                return self.members[0].state.value   # a member ended meanwhile: the group cannot start as one
            if self._wait_for_slot():
                self._train()
        except MemoryError:
            self._fail_all(OOM)
        except Exception as e:  # noqa: BLE001 - any error ends this group only, with a message
            self._fail_all(_oom_message(e) or short_error(e))
        finally:
            self.slot.give_back()
            for beat in beats:
                beat.stop()
            for fd in locks:
                control.release(fd)
        states = [m.state for m in self.members]
        return RunState.FAILED.value if RunState.FAILED in states else states[0].value

    def _wait_for_slot(self) -> bool:
        """As the solo worker's (worker.Worker._wait_for_slot): False when stopped while queued."""
        if self.paused:
            self.slot.take()
            return True
        while not self.slot.take():
            self._read_commands()
            if self.stop_asked:
                self._set_all(RunState.STOPPED, "stopped while queued")
                return False
            self._queue(f"this seed group of {len(self.members)} starts")
            time.sleep(IDLE_S * 4)
        return True

    def _queue(self, then: str) -> None:
        message = self.slot.queued_message(then)
        first = self.members[0]
        if first.state is not RunState.QUEUED or first.message != message:
            self._set_all(RunState.QUEUED, message)

    def _build(self) -> Any:
        """The ensemble and the members' shadow Trainers, from the members' configs."""
        from .cuda_graph import device_lock
        from .ensemble import EnsembleTrainer
        from .trainer import Trainer, resolve_device
        cfgs = [m.store.read_config() for m in self.members]
        base = cfgs[0]
        if any(c.replace(seed=base.seed) != base for c in cfgs):
            raise ValueError("a seed group's members must differ only in seed")
        device = resolve_device(base.device)
        with device_lock(device):
            self.ens = EnsembleTrainer(base, [c.seed for c in cfgs], device)
            self.shadows = [Trainer(c, device=self.ens.device) for c in cfgs]
        return base

    def _train(self) -> None:
        pick_gpu(self.slot.index or 0)
        import torch

        from .cuda_graph import device_lock
        from .disk import budget_bytes
        n = len(self.members)
        self._set_all(RunState.RUNNING, f"loading data and building one batched model for {n} seeds")
        cfg = self._build()
        ens = self.ens
        if ens.device.type == "cpu":
            torch.set_num_threads(1)   # tiny batched 2D nets: threads only spin on a shared CPU (see worker.py)
        shown = f"{ens.device} (one model for {n} seeds)"
        for m in self.members:
            m.device = shown
        snap_every = cfg.snapshot_every or SNAPSHOT_EVERY_2D
        ckpt_every = cfg.checkpoint_every or CHECKPOINT_EVERY_2D
        budget = budget_bytes("GANLAB_RUN_BUDGET_MB", RUN_BUDGET_MB)
        last_good = [0] * n
        rows: list[list[dict[str, float]]] = [[] for _ in range(n)]
        with device_lock(ens.device):
            self._snapshots()
            self._checkpoints(cfg, ckpt_every, budget, last_good)
        self._read_commands()
        self._set_all(RunState.PAUSED if self.paused else RunState.RUNNING)
        last_flush = last_poll = time.monotonic()
        clock = (time.perf_counter(), ens.step)
        first_row = True
        while self.alive:
            now = time.monotonic()
            if now - last_poll >= POLL_S or self.paused or not self.slot.held:
                self._read_commands()
                last_poll = now
            while self.edits:
                cfg = self._edit(cfg, self.edits.pop(0))
            if self.stop_asked:
                break
            if self.paused and not self.pending:
                self.slot.give_back()   # at once: a paused group never keeps another run from training
                if any(self.members[k].state is not RunState.PAUSED for k in self.alive):
                    self._flush(rows)
                    self._set_all(RunState.PAUSED)
                time.sleep(IDLE_S)
                continue
            kind = self.pending.pop(0) if self.pending else None
            if kind is None and not self.slot.take():   # Resume with every slot held: queued until one frees
                self._queue(f"this seed group of {n} resumes")
                time.sleep(IDLE_S * 4)
                continue
            if kind is not None and any(self.members[k].state is RunState.QUEUED for k in self.alive):
                self._set_all(RunState.PAUSED)   # a step while queued pauses the group (apply_command)
            if kind is None and any(self.members[k].state is not RunState.RUNNING for k in self.alive):
                self._set_all(RunState.RUNNING)
            with device_lock(ens.device):
                recorded = ens.train_step() if kind is None else ens.single_step(kind)
                if recorded:
                    stats, t = ens.collect(), time.perf_counter()
                    rate = (ens.step - clock[1]) * cfg.batch_size / max(t - clock[0], 1e-9)
                    clock = (t, ens.step)
                    for k in self.alive:
                        rows[k].append(self._row(stats, k, rate, kind))
                for k in [k for k in self.alive if ens.diverged_at[k] is not None]:
                    self._diverged(k, rows, last_good[k])
                if not self.alive:
                    return self._wait_quality()
                if kind is not None or ens.step % snap_every == 0 or ens.step >= cfg.steps:
                    self._snapshots()   # before a step's row: a page that sees the row sees it
                if any(rows) and (kind is not None or time.monotonic() - last_flush > FLUSH_S or first_row):
                    first_row = False
                    self._flush(rows)
                    last_flush = time.monotonic()
                if ens.step % ckpt_every == 0 or ens.step >= cfg.steps:
                    self._checkpoints(cfg, ckpt_every, budget, last_good, rows)
                if ens.step >= cfg.steps:
                    self._flush(rows)
                    self._set_all(RunState.FINISHED, f"finished {ens.step} steps")
                    return self._wait_quality()
                over = [self.members[k].over_budget for k in self.alive if self.members[k].over_budget]
                if over:
                    self._flush(rows)
                    self._set_all(RunState.STOPPED, f"stopped at step {ens.step}: a member's files passed the disk "
                                  f"budget of {over[0] // 2**20} MB per run (GANLAB_RUN_BUDGET_MB); {TOGETHER}")
                    return self._wait_quality()
                if kind is not None:
                    for k in self.alive:
                        self.members[k].store.update_status(step=ens.step, epoch=ens.epoch)
        self._flush(rows)
        with device_lock(ens.device):
            self._checkpoints(cfg, ckpt_every, budget, last_good, rows)
        self._set_all(RunState.STOPPED, f"stopped at step {ens.step} ({TOGETHER})")
        self._wait_quality()

    # --- one step, one row -------------------------------------------------------------------------------
    def _row(self, stats: dict[str, Any], k: int, rate: float, kind: str | None) -> dict[str, float]:
        from .optimizers import lr_value
        from .trainer import STAT_NAMES
        ens = self.ens
        row = {name: float(stats[name][k]) for name in STAT_NAMES}
        row.update(step=ens.step, epoch=ens.epoch, time=time.time(), images_per_s=rate,
                   lr_g=lr_value(ens.opt_g.param_groups[0]), lr_d=lr_value(ens.opt_d.param_groups[0]))
        if kind is not None:
            row["single"] = SINGLE_CODES[kind]   # the half that did not run is NaN, not divergence
        return row

    def _edit(self, cfg: Any, changes: dict[str, Any]) -> Any:
        """A live edit sent to any member changes the whole group (every member's config.json says so)."""
        from .ensemble import check_supported
        try:
            new = cfg.replace(**changes)
            check_supported(new)
        except ValueError as e:
            for k in self.alive:
                self.members[k].store.update_status(message=f"edit refused: {e}")
            return cfg
        self.ens.cfg = new
        for k in self.alive:
            shadow = self.shadows[k]
            shadow.set_config(new.replace(seed=shadow.cfg.seed))
            self.members[k].store.write_config(shadow.cfg)
        return new

    # --- per member: snapshots, checkpoints, rows, divergence ---------------------------------------------
    def _shadow(self, k: int) -> Any:
        """Member k's solo Trainer holding the member's weights, optimiser state, counters and RNG stream now."""
        from .optimizers import load_optimizer_state
        ens, shadow = self.ens, self.shadows[k]
        shadow.load_state_dict(ens.member_state_dict(k), weights_only=True)
        opt = ens.member_optimizer_state(k)
        load_optimizer_state(shadow.opt_g, opt["opt_g"])
        load_optimizer_state(shadow.opt_d, opt["opt_d"])
        shadow.step, shadow.d_updates = ens.step, ens.d_updates
        shadow.gen.set_state(ens.gens[k].get_state())
        return shadow

    def _snapshots(self) -> None:
        for k in self.alive:
            self.members[k]._publish_snapshot(self._shadow(k))

    def _checkpoints(self, cfg: Any, every: int, budget: int, last_good: list[int],
                     rows: list[list[dict]] | None = None) -> None:
        """A checkpoint of every member whose weights are finite (a member whose are not diverges here)."""
        for k in list(self.alive):
            state = self._shadow(k).state_dict()
            if not all(bool(v.isfinite().all()) for net in ("G", "D") for v in state[net].values()):
                self._diverged(k, rows or [[] for _ in self.members], last_good[k])
                continue
            self.members[k].save_checkpoint(state, self.ens.step, cfg.keep_checkpoints, 10 * every, budget)
            self.members[k].store.discard_init()
            last_good[k] = self.ens.step

    def _flush(self, rows: list[list[dict[str, float]]]) -> None:
        for k, member_rows in enumerate(rows):
            self.members[k]._flush(member_rows)

    def _diverged(self, k: int, rows: list[list[dict[str, float]]], last_good: int) -> None:
        """Member k ends alone (diverged); its NaN row goes to disk so the curve shows where."""
        ens, m = self.ens, self.members[k]
        at = ens.diverged_at[k] if ens.diverged_at[k] is not None else ens.step
        if not rows[k] or all(math.isfinite(v) for key, v in rows[k][-1].items() if key in ("loss_d", "loss_g")):
            rows[k].append({"step": ens.step, "epoch": ens.epoch, "time": time.time(),
                            "loss_d": float("nan"), "loss_g": float("nan")})
        m._flush(rows[k])
        m.step, m.epoch = ens.step, ens.epoch
        others = len(self.alive) - 1
        m._set_state(RunState.DIVERGED, f"NaN/Inf appeared at step {at}; the last good checkpoint (step {last_good}) "
                                        f"is kept. " + (f"The other {others} seeds go on." if others else
                                                        "Try a lower learning rate."))
        self.alive.remove(k)

    def _wait_quality(self) -> None:
        if self.wait_quality:
            self.members[0].wait_quality = True
            self.members[0]._wait_quality()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ganlab.ensemble_worker", description="train a seed group")
    p.add_argument("run_dirs", nargs="+")
    p.add_argument("--offsets", default="", help="comma-separated commands.jsonl byte offsets, one per member")
    p.add_argument("--paused", action="store_true")
    p.add_argument("--max-active", type=int, default=None)
    p.add_argument("--launch", default="")
    args = p.parse_args(argv)
    offsets = [int(o) for o in args.offsets.split(",")] if args.offsets else None
    return serve_process(lambda: GroupWorker(args.run_dirs, offsets=offsets, paused=args.paused,
                                             max_active=args.max_active, launch=args.launch))


if __name__ == "__main__":
    sys.exit(main())

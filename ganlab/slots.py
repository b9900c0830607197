"""Slots follow compute: a worker holds a training slot only while it trains, and a paused run's trainer is put
away after a while. One place for the rules that the solo worker (ganlab.worker), a seed group's worker
(ganlab.ensemble_worker) and the web tier (ganlab.runs) share.

- `Slot`: one worker's training slot (the flocks of ganlab.control). A worker waits for one before it builds
  its trainer (state queued), gives it back the moment it pauses, and takes one again on Resume; when none is
  free then, the run is queued again (paused -> queued -> running) with `queued_message`, which names the runs
  that hold the slots. Single steps (Step D / Step G) while paused run without a slot: one update takes
  milliseconds, and making a student's step wait behind two long runs would hide what the step shows.
- The slot's index also picks the GPU on a machine with several (`pick_gpu`), once, before torch starts CUDA.
  A worker started paused takes a free slot for its build if there is one (so it gets that slot's GPU), else
  builds without one on slot 0's GPU; a later Resume keeps the GPU the process started on.
- Parking: a solo run paused longer than GANLAB_PAUSED_IDLE_S (`control.paused_idle_s`) writes a checkpoint and
  its worker exits, so a room of paused students does not hold a room of trainers in memory. The run stays
  paused; status.json says so with `parked` = {"step": N, "offset": the commands the worker had read}. The web
  tier then starts a new worker for a Resume or a step (`Run.start`), which reads the commands from that offset
  first, so a command sent while the worker was leaving is not lost. Seed groups do not park (one small 2D
  batched model; a Resume of one member would split the group into solo runs).
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Callable

from . import control
from .store import RunStore


class Slot:
    """The training slot of one worker (a solo run, or a seed group, named by its first member)."""

    def __init__(self, runs_dir: Path, max_active: int, holder: str):
        self.runs_dir, self.max_active, self.holder = Path(runs_dir), max_active, holder
        self.fd: int | None = None
        self.index: int | None = None   # the last slot held: it chose the GPU

    @property
    def held(self) -> bool:
        return self.fd is not None

    def take(self) -> bool:
        """Hold a free slot (kept when already held); False when all `max_active` are held by others."""
        if self.fd is None:
            got = control.acquire_slot(self.runs_dir, self.max_active, self.holder)
            if got is not None:
                self.fd, self.index = got
        return self.fd is not None

    def give_back(self) -> None:
        control.release(self.fd)
        self.fd = None

    def queued_message(self, then: str) -> str:
        """'queued: waiting for a training slot: ...' naming the runs that train now; `then` says what follows
        ('it starts', 'it resumes'). Holders are slot owners, so a paused run is never counted."""
        holders = control.slot_holders(self.runs_dir, self.max_active)
        names = sorted(_name(self.runs_dir, h) for h in holders)   # stable: it is rewritten only on change
        n = len(names)
        who = f"{n} run{'' if n == 1 else 's'} {'is' if n == 1 else 'are'} training" + \
            (f" ({', '.join(names)})" if names else "")
        return (f"queued: waiting for a training slot: {who}, the limit is {self.max_active}; "
                f"{then} when one of them pauses or ends")


def _name(runs_dir: Path, run_id: str) -> str:
    try:
        name = RunStore(runs_dir / run_id).read_status().get("name")
    except (OSError, ValueError):
        name = None
    return f"'{name}'" if isinstance(name, str) and name else run_id


def pick_gpu(slot: int) -> None:
    """On a machine with several GPUs, a worker process trains on the least loaded one: slots are taken lowest
    first, and slot i trains on GPU i mod (number of GPUs). Set before torch starts CUDA. Threads (the CLI) and
    Ray actors (Ray places them) keep the devices they see."""
    if os.environ.get("GANLAB_WORKER") != "process":
        return
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    gpus = visible.split(",") if visible else sorted(p.name for p in Path("/proc/driver/nvidia/gpus").glob("*"))
    if len(gpus) < 2:
        return
    os.environ["CUDA_VISIBLE_DEVICES"] = gpus[slot % len(gpus)] if visible else str(slot % len(gpus))


# --- parking ---------------------------------------------------------------------------------------------
def parked(status: dict[str, Any]) -> dict[str, int] | None:
    """{"step", "offset"} when `status` is a paused run whose worker put its trainer away, else None."""
    park = status.get("parked")
    if status.get("state") != "paused" or not isinstance(park, dict):
        return None
    step, offset = park.get("step"), park.get("offset")
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in (step, offset)):
        return None
    return {"step": step, "offset": offset}


def park_message(step: int) -> str:
    return (f"Paused; its trainer was put away to free memory: Resume continues from step {step:,} "
            "(the first step takes a few seconds)")


def successor(run_dir: Path, status: dict[str, Any], offset: int | None, paused: bool) -> tuple[int, bool]:
    """(offset, paused) for a new worker of `run_dir`: by default it reads the commands sent from now on (or from
    `offset`); a parked run's reads those its predecessor had not read, and a Resume goes after them as a
    command, so they apply in the order they were given."""
    park = parked(status)
    if park is None:
        return control.command_offset(run_dir) if offset is None else offset, paused
    if not paused:
        control.send(run_dir, "resume")
    return park["offset"], True


def stop_parked(store: RunStore) -> dict[str, Any] | None:
    """Stop a parked run (no worker to ask; its checkpoint is on disk): the new status, None when not parked."""
    park = parked(store.read_status())
    if park is None:
        return None
    return store.update_status(state="stopped", message=f"stopped at step {park['step']}", parked=None)


def hand_over(store: RunStore, alive: Callable[[], bool], then: Callable[[], None], timeout: float = 5.0) -> None:
    """After a command to a live worker: if that worker is parking the run, wait until it either saw the command
    (it writes `parked` before its last look at the commands, and clears it when one came) or left, and then
    call `then` (start a successor, which reads the command). Not parked at the first look: the worker's last
    look comes after this command, so it has it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if parked(store.read_status()) is None:
            return
        if not alive():
            then()
            return
        time.sleep(0.01)

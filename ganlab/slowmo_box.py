"""Slow motion in a sandbox process: the web server's handle on a `slowmo.Stepper` that lives as bytes.

A Stepper is torch work on a run's checkpoint, a file that may be damaged or hostile (stride-0 Adam moments
killed the web server with SIGSEGV), so the server never builds one. `open_copy(store, cfg)` asks a sandbox
process (`ganlab.sandbox`, task "slowmo_start") to build it from the run's newest checkpoint and send back its
state (`Stepper.save()`, ~100 kB for a 2D run) with the current Moment; each `SlowCopy.step(kind)` sends that
state to a sandbox process (task "slowmo_step"), which restores the stepper, takes the update and sends back the
new state and the Move. So the copy is the same whichever child takes a call, and survives a child's crash.

Moments and Moves come back as plain numpy and numbers and are rebuilt here as `slowmo.Moment` / `slowmo.Move`,
which `Move.describe()` and `slowmo.move_figure` draw without torch. Every refusal is a SlowMoError (one line).
"""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from .config import TrainConfig
from .slowmo import KINDS, Moment, Move, SlowMoError
from .store import RunStore

START_WALL_S = 60.0   # building a Trainer loads the run's 2D data set
STEP_WALL_S = 30.0
_MOMENT_FIELDS = tuple(f.name for f in dataclasses.fields(Moment))


class SlowCopy:
    """The page's slow-motion copy of a run: the interface of slowmo.Stepper that ui.slowmo uses."""

    def __init__(self, blob: bytes, moment: Moment, counter: str) -> None:
        self._blob = blob
        self._moment = moment
        self._counter = counter

    def state(self) -> Moment:
        return self._moment

    def counter(self) -> str:
        return self._counter

    def step(self, kind: str) -> Move:
        """One update ('d', 'g' or 'both') in a sandbox process."""
        from .sandbox import call
        if kind not in KINDS:
            raise ValueError(f"a slow-motion step is one of {', '.join(KINDS)}, got {kind!r}")
        out = call("slowmo_step", self._blob, kind, what="The slow-motion step", error=SlowMoError,
                   wall_s=STEP_WALL_S)
        try:
            move = _move(out["move"])
            blob, counter = bytes(out["state"]), str(out["counter"])
        except (KeyError, TypeError, ValueError) as e:
            raise SlowMoError(f"the slow-motion step gave an unusable answer ({str(e)[:120]})") from None
        self._blob, self._moment, self._counter = blob, move.after, counter
        return move


def open_copy(store: RunStore, cfg: TrainConfig | None = None) -> SlowCopy:
    """A slow-motion copy of the run in `store` (see slowmo.Stepper.from_run); SlowMoError (one line) when it
    cannot start, a checkpoint that crashes its sandbox process included."""
    from .sandbox import call
    out = call("slowmo_start", str(store.path), None if cfg is None else cfg.to_dict(),
               what="Copying the run's newest checkpoint", error=SlowMoError, wall_s=START_WALL_S)
    try:
        return SlowCopy(bytes(out["state"]), _moment(out["moment"]), str(out["counter"]))
    except (KeyError, TypeError, ValueError) as e:
        raise SlowMoError(f"slow motion gave an unusable answer ({str(e)[:120]})") from None


def _moment(d: Any) -> Moment:
    if not isinstance(d, dict) or set(d) != set(_MOMENT_FIELDS):
        raise ValueError("not a moment")
    values = {k: np.asarray(v, dtype=np.float64) if isinstance(v, np.ndarray) else v for k, v in d.items()}
    for k in ("step", "d_updates"):
        values[k] = int(values[k])
    for k in ("d_real", "d_fake", "loss_d", "loss_g"):
        values[k] = float(values[k])
    return Moment(**values)


def _move(d: Any) -> Move:
    if not isinstance(d, dict) or d.get("kind") not in KINDS:
        raise ValueError("not a move")
    boundary = d.get("boundary")
    return Move(d["kind"], int(d["number"]), tuple(_moment(m) for m in d["moments"]), bool(d["sigmoid"]),
                None if boundary is None else float(boundary))


# --- the sandbox tasks ----------------------------------------------------------------------------------------
def _plain_move(move: Move) -> dict[str, Any]:
    return {"kind": move.kind, "number": move.number, "moments": [dataclasses.asdict(m) for m in move.moments],
            "sigmoid": move.sigmoid, "boundary": move.boundary}


def start_task(run_dir: str, cfg: dict | None) -> dict[str, Any]:
    from .slowmo import Stepper
    stepper = Stepper.from_run(RunStore(run_dir), None if cfg is None else TrainConfig.from_dict(cfg))
    return {"state": stepper.save(), "moment": dataclasses.asdict(stepper.state()), "counter": stepper.counter()}


def step_task(blob: bytes, kind: str) -> dict[str, Any]:
    from .slowmo import Stepper
    stepper = Stepper.restore(blob)
    move = stepper.step(kind)
    return {"state": stepper.save(), "move": _plain_move(move), "counter": stepper.counter()}

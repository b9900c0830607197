"""The run state machine, and which config fields may change when: one place for the worker, app, CLI and lineage.

A run's state lives in its status.json (see ganlab.store). Only the worker that trains a run moves it between
the live states; the web tier and the CLI only start workers, send commands (ganlab.control) and mark a run
whose worker vanished as interrupted (or failed, naming the signal that killed it), and stop a parked run.

    created ──▶ queued ──▶ running ⇄ paused ──▶ finished | diverged       (final: branch to train more)
                   ▲ │          │         │ │
                   │ └──────────┴─────────┴─┼──▶ stopped | failed | interrupted   (resumable from a checkpoint)
                   └────────────────────────┘  Resume while every training slot is held (ganlab.slots)

A paused run holds no training slot. Its worker may have put its trainer away (status.json `parked`, see
ganlab.slots): the run is still paused, with no worker until Resume or a step starts one.
"""
from __future__ import annotations

from enum import StrEnum

from .config import LIVE_FIELDS


class RunState(StrEnum):
    CREATED = "created"
    QUEUED = "queued"
    RUNNING = "running"
    PAUSED = "paused"
    FINISHED = "finished"
    STOPPED = "stopped"
    DIVERGED = "diverged"
    FAILED = "failed"
    INTERRUPTED = "interrupted"

    @classmethod
    def parse(cls, value: object, default: "RunState | None" = None) -> "RunState":
        """The state named by `value` (from a status file); unknown values give `default` or raise ValueError."""
        try:
            return cls(value)
        except ValueError:
            if default is not None:
                return default
            raise ValueError(f"unknown run state {value!r}") from None

    @property
    def live(self) -> bool:
        """A worker owns the run (it may be waiting for a training slot), or the run is paused and parked (no
        worker until Resume)."""
        return self in _LIVE

    @property
    def training(self) -> bool:
        """Shown as moving: pages poll while the run is queued or running."""
        return self in (RunState.QUEUED, RunState.RUNNING)

    @property
    def final(self) -> bool:
        """Ended; the run trains again only as a branch (finished, diverged) or a resume (the others)."""
        return self in _FINAL

    @property
    def resumable(self) -> bool:
        """Ended early: Start/Resume continues from the last checkpoint."""
        return self in (RunState.STOPPED, RunState.INTERRUPTED, RunState.FAILED)

    @property
    def can_start(self) -> bool:
        """A new worker may be started for the run (when none is alive)."""
        return self is RunState.CREATED or self.resumable

    @property
    def can_step(self) -> bool:
        """Single D/G steps are allowed (they start a paused worker when none is alive)."""
        return self not in (RunState.FINISHED, RunState.DIVERGED, RunState.FAILED)

    def can_become(self, other: "RunState") -> bool:
        return other is self or other in TRANSITIONS[self]


_LIVE = frozenset({RunState.QUEUED, RunState.RUNNING, RunState.PAUSED})
_FINAL = frozenset({RunState.FINISHED, RunState.STOPPED, RunState.DIVERGED, RunState.FAILED, RunState.INTERRUPTED})
_ENDS = {RunState.STOPPED, RunState.FAILED, RunState.INTERRUPTED}
_START = {RunState.QUEUED, RunState.RUNNING, RunState.PAUSED, RunState.FAILED}

TRANSITIONS: dict[RunState, frozenset[RunState]] = {
    RunState.CREATED: frozenset(_START | {RunState.STOPPED}),
    RunState.QUEUED: frozenset({RunState.RUNNING, RunState.PAUSED} | _ENDS),
    RunState.RUNNING: frozenset({RunState.PAUSED, RunState.FINISHED, RunState.DIVERGED} | _ENDS),
    RunState.PAUSED: frozenset({RunState.RUNNING, RunState.QUEUED, RunState.FINISHED, RunState.DIVERGED} | _ENDS),
    RunState.FINISHED: frozenset(),
    RunState.DIVERGED: frozenset(),
    RunState.STOPPED: frozenset(_START),
    RunState.INTERRUPTED: frozenset(_START | {RunState.STOPPED}),
    RunState.FAILED: frozenset(_START),
}

ACTIVE = tuple(s.value for s in (RunState.QUEUED, RunState.RUNNING, RunState.PAUSED, RunState.CREATED))
FINAL = tuple(s.value for s in RunState if s.final)
RESUMABLE = tuple(s.value for s in RunState if s.resumable)


class InvalidTransition(RuntimeError):
    pass


def check_transition(old: RunState | str, new: RunState | str) -> RunState:
    """`new` as a RunState when `old` may move to it; InvalidTransition (naming both) otherwise."""
    a, b = RunState.parse(old, RunState.INTERRUPTED), RunState.parse(new)
    if not a.can_become(b):
        raise InvalidTransition(f"a {a} run cannot become {b}")
    return b


# --- which config fields may change, and when ----------------------------------------------------------
# LIVE: while the run trains (the worker applies them at its next step). BRANCH: in a branch, which keeps the
# networks (a loss change is checked against the weights). Every other field is fixed for the run's lifetime.
LIVE = tuple(LIVE_FIELDS)
BRANCH = (*LIVE, "steps", "loss")


def field_change(name: str) -> str:
    """'live', 'branch' or 'never'."""
    if name in LIVE:
        return "live"
    if name in BRANCH:
        return "branch"
    return "never"

"""Tests for ganlab.slots with real worker processes on tiny 2D runs: a paused run gives its training slot to a
queued run at once, Resume with every slot held queues it (the message names the runs that train, never a
paused one) until a slot frees, and a run paused past GANLAB_PAUSED_IDLE_S is parked (a checkpoint, its worker
process gone, still paused) and continues exactly from that step on Resume, or on a single step."""
from __future__ import annotations

import os
import time

import pytest
from engine_util import tiny, wait_for

from ganlab import control
from ganlab.registry import RunRegistry
from ganlab.runs import Run
from ganlab.store import load_checkpoint


@pytest.fixture
def reg(tmp_path):
    registry = RunRegistry(tmp_path / "runs", max_active=2, executor="process")
    yield registry
    registry.shutdown(timeout=20)


def trains(run: Run, more: int = 3) -> bool:
    """The run is running and its step has grown by `more` since the first look."""
    start = run.step
    return wait_for(lambda: run.state == "running" and run.step >= start + more,
                    lambda: f"{run.name} to train ({run.state}: {run.message})")


def holders(reg: RunRegistry) -> set[str]:
    return set(control.slot_holders(reg.runs_dir, reg.max_active))


def test_a_paused_run_gives_its_slot_away_and_resume_queues_until_one_frees(reg):
    a, b = reg.create(tiny(), "a"), reg.create(tiny(), "b")
    trains(a), trains(b)
    c = reg.create(tiny(), "c")
    wait_for(lambda: c.state == "queued" and "training" in c.message, "c to queue behind a and b")
    assert "2 runs are training ('a', 'b'), the limit is 2; it starts" in c.message, c.message

    a.pause()   # a paused run keeps its trainer, not its slot: c trains while a stays paused
    wait_for(lambda: c.state == "running" and c.step > 3, lambda: f"c to take a's slot ({c.state}: {c.message})")
    assert a.state == "paused" and a.alive and holders(reg) == {b.id, c.id}
    d = reg.create(tiny(), "d")   # the queue counts the runs that hold slots, never the paused one
    wait_for(lambda: d.state == "queued" and "training" in d.message, "d to queue behind b and c")
    assert "2 runs are training ('b', 'c'), the limit is 2" in d.message, d.message
    d.stop(wait=30)
    assert d.state == "stopped"
    paused_at = a.step
    a.request_step("g")   # a single step while paused runs without a slot
    wait_for(lambda: a.step == paused_at + 1, "a's single step without a slot")
    assert a.state == "paused" and holders(reg) == {b.id, c.id}

    a.resume()   # both slots are held: a waits, and says for what
    wait_for(lambda: a.state == "queued", lambda: f"a to queue on Resume ({a.state}: {a.message})")
    assert a.message.startswith("queued: waiting for a training slot: 2 runs are training ('b', 'c')"), a.message
    assert "it resumes when one of them pauses or ends" in a.message
    time.sleep(0.5)   # nothing to wait for: the check is that a queued run does not train
    assert a.state == "queued" and a.step == paused_at + 1
    a.pause()   # paused again while queued: back to paused at once (its trainer is still there)
    wait_for(lambda: a.state == "paused", "a to pause while queued")
    a.resume()
    wait_for(lambda: a.state == "queued", "a to queue again")
    c.stop(wait=30)
    trains(a)
    assert holders(reg) == {a.id, b.id}


def parked(status: dict) -> dict | None:
    """The status's record of a parked run (read here, not through ganlab.slots, so the test runs on any code)."""
    return status.get("parked") if status.get("state") == "paused" else None


def test_a_long_paused_run_is_parked_and_continues_exactly(tmp_path, monkeypatch):
    monkeypatch.setenv("GANLAB_PAUSED_IDLE_S", "0.5")
    reg = RunRegistry(tmp_path / "runs", max_active=2, executor="process")
    try:
        ref, run = reg.create(tiny(), "reference"), reg.create(tiny(), "parks")
        trains(run)
        pid = run.store.read_status()["pid"]
        run.pause()
        park = wait_for(lambda: parked(run.store.read_status()), "the paused run to park")
        wait_for(lambda: not run.alive and not _exists(pid), "its worker process to exit")
        step = park["step"]
        assert run.state == "paused" and run.step == step and "Resume continues from step" in run.message
        assert run.store.checkpoint_steps()[-1] == step, "a checkpoint at the parked step"
        again = RunRegistry(reg.runs_dir).get(run.id)   # another server (or a restart): paused, not interrupted
        assert again.state == "paused" and not again.alive

        run.resume()
        wait_for(lambda: run.step >= step + 30, lambda: f"the parked run to continue ({run.state}: {run.message})")
        wait_for(lambda: ref.step >= step + 30, "the reference run")
        mine = {r["step"]: r for r in run.store.read_rows("history")}
        theirs = {r["step"]: r for r in ref.store.read_rows("history")}
        for s in range(step + 1, step + 31):   # the same weights, optimiser state and RNG: the same numbers
            assert (mine[s]["loss_d"], mine[s]["loss_g"]) == (theirs[s]["loss_d"], theirs[s]["loss_g"]), s
        ref.stop()

        run.pause()   # a single step on a parked run starts a worker, paused, which takes it
        park = wait_for(lambda: parked(run.store.read_status()), "the run to park again")
        wait_for(lambda: not run.alive, "its worker to exit")
        n, before = len(run.store.read_rows("history")), load_checkpoint(run.store.checkpoint_path())["d_updates"]
        run.request_step("d")
        wait_for(lambda: len(run.store.read_rows("history")) == n + 1, "the D step's row")
        assert run.state == "paused" and run.store.read_rows("history")[-1].get("single") == 1
        wait_for(lambda: parked(run.store.read_status()) and not run.alive, "the run to park after its step")
        assert load_checkpoint(run.store.checkpoint_path())["d_updates"] == before + 1, "the D step was saved"
        run.stop()   # no worker to ask: the run stops at its checkpoint
        assert run.state == "stopped" and run.store.checkpoint_steps()[-1] == park["step"]
    finally:
        reg.shutdown(timeout=20)


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True

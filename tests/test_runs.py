"""Tests for ganlab.runs with real training threads on tiny 2D GANs: the run life cycle (start, pause, single D/G
steps, resume, stop, finish), run directories reopened by a new registry, the active-run cap, failures and
divergence that end one run with a message, a hammer of concurrent commands, and branches that continue exactly.

Waits poll with a deadline (engine_util.wait_for: the machine is shared and slow at times); a fixed sleep only
where a test checks that nothing happens in that time."""
from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from engine_util import TIMEOUT, hammer, settled, tiny, wait_for

from ganlab.config import TrainConfig
from ganlab.registry import RunRegistry, get_registry
from ganlab.runs import Run
from ganlab.states import FINAL
from ganlab.store import load_checkpoint
from ganlab.trainer import Trainer

torch.set_num_threads(1)

def rows(run: Run) -> int:
    return len(run.view(with_snapshots=False).history["step"])


def finished(run: Run) -> bool:
    return run.state in FINAL and not run.alive


@pytest.fixture
def reg(tmp_path):
    registry = RunRegistry(tmp_path / "runs", max_active=2)
    yield registry
    registry.shutdown(timeout=20)


# --- life cycle -------------------------------------------------------------------------------------------
def test_start_pause_single_steps_resume_stop(reg):
    run = reg.create(tiny(), "life")
    wait_for(lambda: run.state == "running" and run.step > 3, "the run to train")
    run.pause()
    wait_for(lambda: run.view().state == "paused", "the worker to pause")
    step = settled(lambda: run.step, "the paused run's step to settle")
    time.sleep(0.3)   # nothing to wait for: the check is that no step happens in this time
    assert run.step == step, "a paused run must not train"

    n = rows(run)
    run.request_step("d")
    wait_for(lambda: rows(run) == n + 1, "the D step's row")
    v = run.view(with_snapshots=False)
    assert v.step == step and v.state == "paused"
    assert math.isfinite(v.history["loss_d"][-1]) and math.isnan(v.history["loss_g"][-1])
    run.request_step("g")
    wait_for(lambda: rows(run) == n + 2, "the G step's row")
    assert run.step == step + 1
    assert math.isfinite(run.view().history["loss_g"][-1])
    run.request_step("both")
    wait_for(lambda: rows(run) == n + 3, "the D+G step's row")
    assert run.step == step + 2 and run.state == "paused"
    # the row is published first, the snapshot right after it
    wait_for(lambda: run.view().latest.step == step + 2, "each single step to publish a snapshot")
    with pytest.raises(ValueError, match="d, g or both"):
        run.request_step("x")

    run.resume()
    wait_for(lambda: run.state == "running" and run.step > step + 5, "training to resume")
    run.stop(wait=TIMEOUT)
    assert finished(run) and run.state == "stopped"
    assert run.message == f"stopped at step {run.step}"
    assert run.store.checkpoint_steps()[-1] == run.step
    assert load_checkpoint(run.store.checkpoint_path())["step"] == run.step
    status = run.store.read_status()
    assert status["state"] == "stopped" and status["step"] == run.step


def test_request_step_before_start_starts_paused(reg):
    run = reg.create(tiny(), "stepper", start=False)
    assert run.state == "created"
    run.request_step("both")
    wait_for(lambda: rows(run) == 1, "the first single step")
    assert run.step == 1 and run.state == "paused"
    run.stop(wait=TIMEOUT)
    assert run.state == "stopped"


def test_finished_run_is_written_and_reopened(reg, tmp_path):
    run = reg.create(tiny(steps=30, snapshot_every=10, checkpoint_every=10), "done")
    wait_for(lambda: finished(run), "the run to finish")
    assert run.state == "finished" and run.step == 30 and run.message == "finished 30 steps"
    assert run.store.checkpoint_steps() == [0, 10, 20, 30]
    with pytest.raises(RuntimeError, match="finished"):
        run.start()

    other = RunRegistry(reg.runs_dir)                     # e.g. the app after a restart
    (again,) = other.list()
    assert again.id == run.id and again is not run
    v = again.view()
    assert v.state == "finished" and v.step == 30 and v.name == "done" and v.parent is None
    assert list(v.history["step"]) == list(range(1, 31))
    assert np.isfinite(v.history["loss_d"]).all()
    assert [s.step for s in v.snapshots] == [0, 10, 20, 30]
    assert v.latest.field is not None and v.latest.fake.shape == (32, 2)
    z = np.zeros((3, 2), np.float32)
    assert again.generate(z).shape == (3, 2), "the latent explorer works on a reopened run"
    assert get_registry(reg.runs_dir) is get_registry(str(reg.runs_dir))


# --- the active-run cap ----------------------------------------------------------------------------------
def test_second_run_queues_until_the_first_ends(tmp_path):
    registry = RunRegistry(tmp_path / "runs", max_active=1)
    try:
        first = registry.create(tiny(), "first")
        wait_for(lambda: first.state == "running", "the first run")
        second = registry.create(tiny(), "second")
        wait_for(lambda: second.state == "queued" and "limit is 1" in second.message, "the second run to queue")
        assert second.step == 0
        first.stop(wait=TIMEOUT)
        wait_for(lambda: second.state == "running" and second.step > 0, "the queued run to start")
        third = registry.create(tiny(), "third")
        wait_for(lambda: third.state == "queued", "the third run to queue")
        third.stop(wait=TIMEOUT)
        assert third.state == "stopped" and "queued" in third.message
        second.stop(wait=TIMEOUT)
    finally:
        registry.shutdown(timeout=20)


# --- failures ----------------------------------------------------------------------------------------------
def test_failing_run_ends_alone_with_a_short_message(reg, tmp_path):
    missing = tmp_path / "missing.csv"
    bad = reg.create(tiny(dataset="csv", data_path=str(missing)), "bad")
    good = reg.create(tiny(steps=20), "good")
    wait_for(lambda: finished(bad), "the bad run to fail")
    assert bad.state == "failed"
    assert "missing.csv" in bad.message and "\n" not in bad.message and len(bad.message) <= 400
    assert bad.store.read_status()["state"] == "failed"
    wait_for(lambda: finished(good), "the good run")
    assert good.state == "finished" and good.step == 20


def diverging_state(scale: float) -> dict:
    """A real trainer's state with D's weights multiplied by `scale` (NaN for scale=nan)."""
    tr = Trainer(tiny(), device="cpu")
    state = tr.state_dict()
    state["D"] = {k: v * scale if v.is_floating_point() else v for k, v in state["D"].items()}
    return state


def test_overflowing_weights_diverge_and_keep_the_last_good_checkpoint(reg):
    # 1e20-sized weights are finite (the starting checkpoint is good), but D's second layer overflows to inf.
    run = reg.create(tiny(), "boom", init_state=diverging_state(1e20))
    wait_for(lambda: finished(run), "the run to diverge")
    assert run.state == "diverged", run.message
    assert "step 1" in run.message and "step 0" in run.message
    assert run.store.checkpoint_steps() == [0]
    state = load_checkpoint(run.store.checkpoint_path())
    assert all(torch.isfinite(v).all() for v in state["D"].values() if v.is_floating_point())
    reopened = RunRegistry(reg.runs_dir).get(run.id)
    assert reopened.view().state == "diverged"
    assert len(reopened.view().history["step"]) == rows(run), "every row shown is on disk too"
    with pytest.raises(RuntimeError, match="diverged"):
        run.start()


@pytest.mark.parametrize("loss", ["nonsaturating", "hinge"])
def test_nan_weights_diverge_without_writing_a_nan_checkpoint(reg, loss):
    run = reg.create(tiny(loss=loss), "nan", init_state=diverging_state(float("nan")))
    wait_for(lambda: finished(run), "the run to diverge")
    assert run.state == "diverged", run.message
    assert "step" in run.message and "NaN" in run.message
    for step in run.store.checkpoint_steps():
        state = load_checkpoint(run.store.checkpoint_path(step))
        assert all(torch.isfinite(v).all() for v in state["D"].values() if v.is_floating_point()), \
            f"checkpoint {step} holds NaN weights: a resume would continue from garbage"


def test_live_r1_switch_survives_stop_and_resume_of_a_dcgan(reg):
    cfg = TrainConfig(dataset="mnist5k", model="dcgan", channels=4, noise_dim=4, batch_size=4, stats_every=1,
                      lr_decay="none", grid_size=4, snapshot_every=1000, checkpoint_every=1000, steps=100_000,
                      device="cpu")
    run = reg.create(cfg, "dcgan", paused=True)
    wait_for(lambda: run.state == "paused", "the run to start paused")
    run.update_live(r1_gamma=1.0)
    run.request_step("both")
    wait_for(lambda: run.step == 1, "one step with R1")
    run.stop(wait=TIMEOUT)
    assert run.state == "stopped"
    run.request_step("both")                               # restarts from the checkpoint, config with r1 on
    wait_for(lambda: run.step == 2 or run.state == "failed", "a step after the restart")
    assert run.state != "failed", run.message
    run.stop(wait=TIMEOUT)


# --- concurrency -------------------------------------------------------------------------------------------
def test_hammering_commands_from_threads_never_deadlocks(reg):
    run = reg.create(tiny(snapshot_every=5, checkpoint_every=10), "hammer")
    wait_for(lambda: run.step > 0, "the run to train")
    ops = [lambda rnd: run.pause(), lambda rnd: run.resume(), lambda rnd: run.stop(), lambda rnd: run.view(),
           lambda rnd: run.request_step(rnd.choice(["d", "g", "both"])),
           lambda rnd: run.update_live(g_lr=rnd.choice([1e-3, 2e-3]), d_steps=rnd.choice([1, 2])),
           lambda rnd: run.generate(np.zeros((2, 2), np.float32))]
    hammer(lambda rnd: rnd.choice(ops)(rnd), 2.5)
    run.stop(wait=TIMEOUT)
    wait_for(lambda: finished(run), "the run to reach a final state after stop")
    assert run.state in ("stopped", "finished"), run.message
    assert run.store.read_status()["state"] == run.state
    steps = run.view().history["step"]
    assert np.all(np.diff(steps) >= 0), "history steps never go backwards"
    assert run.store.checkpoint_steps(), "a stopped run has a checkpoint"


# --- branches ----------------------------------------------------------------------------------------------
def test_branch_continues_exactly_from_the_parent_checkpoint(reg):
    parent = reg.create(tiny(steps=20, checkpoint_every=10, snapshot_every=10), "parent")
    wait_for(lambda: finished(parent), "the parent to finish")
    child = reg.branch(parent, 15, steps=13)                # nearest checkpoint at or before 15: step 10
    wait_for(lambda: finished(child), "the child to finish")
    assert child.state == "finished", child.message
    assert child.parent == {"run": parent.id, "name": "parent", "step": 10}
    assert child.store.read_status()["parent"] == child.parent
    assert child.name == "parent @10"

    state = load_checkpoint(parent.store.checkpoint_path(10))
    ref = Trainer(TrainConfig.from_dict(state["config"]).replace(steps=13), device="cpu")
    ref.load_state_dict(state)
    expected = []
    for _ in range(3):
        ref.train_step()
        expected.append(ref.collect())
    history = child.view().history
    assert list(history["step"]) == [11, 12, 13]
    assert list(history["loss_d"]) == [r["loss_d"] for r in expected]
    assert list(history["loss_g"]) == [r["loss_g"] for r in expected]
    final = load_checkpoint(child.store.checkpoint_path())
    assert final["step"] == 13
    for net, module in (("G", ref.G), ("D", ref.D)):
        for k, v in module.state_dict().items():
            assert torch.equal(final[net][k], v), f"{net}.{k} differs from continuing the parent's checkpoint"


def test_branch_with_live_change_and_refused_change(reg):
    parent = reg.create(tiny(steps=10, checkpoint_every=10), "p")
    wait_for(lambda: finished(parent), "the parent to finish")
    child = reg.branch(parent, None, g_lr=0.01, steps=12)
    wait_for(lambda: finished(child), "the child")
    assert child.cfg.g_lr == 0.01 and child.parent["step"] == 10
    assert child.view().history["lr_g"][-1] == 0.01
    with pytest.raises(ValueError, match="g_layers"):
        reg.branch(parent, None, g_layers=(4,))
    assert len(reg.list()) == 2, "a refused branch creates no run"


def test_rename_and_delete(reg):
    run = reg.create(tiny(steps=5), "old name")
    wait_for(lambda: finished(run), "the run")
    reg.rename(run.id, "  new name ")
    assert run.name == "new name" and RunRegistry(reg.runs_dir).get(run.id).name == "new name"
    path = Path(run.store.path)
    reg.delete(run.id)
    assert not path.exists() and reg.list() == []
    with pytest.raises(KeyError):
        reg.get(run.id)

"""Faults in a full classroom end one run with a message, never the app or another run.

Complements tests/test_runs.py (which starts runs from NaN or overflowing weights, a missing CSV at create
time, and hammers one run): here a run diverges mid-training after good checkpoints because someone raised
the learning rate live; a run's data disappears between the form's check and its thread; a run's folder is
deleted while it trains; the GPU runs out of memory (raised from the step, since no real OOM exists on a
CPU); and commands hammer several runs at once with the active-run cap in play.
Workers on the thread backend (the same Worker code a worker process runs; faults are patched into the
trainer, which needs this process; real crashes of worker processes are in test_executor.py) on tiny 2D
configs; waits poll with deadlines, nothing relies on a fixed sleep.
"""
from __future__ import annotations

import os
import random
import shutil
import threading
from pathlib import Path

import engine_util
import numpy as np
import pytest
import torch
from engine_util import TIMEOUT, hammer, wait_for

from ganlab import control
from ganlab import trainer as trainer_mod
from ganlab.config import TrainConfig
from ganlab.data import check_data_path
from ganlab.dataset import DataError
from ganlab.registry import RunRegistry
from ganlab.runs import Run
from ganlab.states import FINAL
from ganlab.store import load_checkpoint, read_jsonl

torch.set_num_threads(1)

def tiny(**changes) -> TrainConfig:
    return engine_util.tiny(**{"checkpoint_every": 10, **changes})   # faults need a recent good checkpoint


def ended(run: Run) -> bool:
    return run.state in FINAL and not run.alive


def assert_short(message: str) -> None:
    assert message and "\n" not in message and len(message) <= 400, message
    assert "Traceback" not in message


def keeps_training(run: Run, what: str) -> None:
    """The run's step goes on increasing (it was not stopped or slowed to a halt by the other run's fault)."""
    first = run.step
    wait_for(lambda: run.step > first + 5, what)
    assert run.state == "running", run.message


@pytest.fixture
def reg(tmp_path):
    registry = RunRegistry(tmp_path / "runs", max_active=2, executor="thread")
    yield registry
    registry.shutdown(timeout=20)


# --- divergence ----------------------------------------------------------------------------------------------
def test_live_learning_rate_blowup_diverges_and_keeps_the_last_good_checkpoint(reg):
    # LSGAN on plain SGD trains at lr 1e-3; at lr 1.0 its losses overflow within a few steps (measured: step 4).
    run = reg.create(tiny(loss="lsgan", g_opt="sgd", d_opt="sgd", g_lr=1e-3, d_lr=1e-3), "blowup")
    wait_for(lambda: max(run.store.checkpoint_steps(), default=0) >= 20, "two good checkpoints")
    before = max(run.store.checkpoint_steps())   # taken before the change (later ones may hold huge weights)
    run.update_live(g_lr=1.0, d_lr=1.0)
    wait_for(lambda: ended(run), "the run to diverge")
    v = run.view()
    assert v.state == "diverged", v.message
    kept = run.store.checkpoint_steps()
    good = kept[-1]
    assert good >= 20 and f"step {good}" in v.message and f"at step {v.step}" in v.message
    assert good <= v.step and "lower learning rate" in v.message
    for step in kept:   # every checkpoint left on disk can be resumed from
        state = load_checkpoint(run.store.checkpoint_path(step))
        for net in ("G", "D"):
            assert all(torch.isfinite(t).all() for t in state[net].values() if t.is_floating_point()), step
    rows = read_jsonl(run.store.path / "history.jsonl")
    last = rows[-1]
    stats = [last[k] for k in ("loss_d", "loss_g", "grad_d", "grad_g", "d_real", "d_fake") if k in last]
    assert last["step"] == v.step and not np.isfinite(stats).all(), \
        "the row that showed the NaN is on disk, so the reopened run draws the same curve"
    assert RunRegistry(reg.runs_dir).get(run.id).view().state == "diverged"
    with pytest.raises(RuntimeError, match="diverged"):
        run.start()

    # The way out: branch from a checkpoint before the change with a sane learning rate. ("Last good" means
    # finite: a checkpoint taken a step after the change may hold finite but already exploding weights.)
    assert before in kept, "keep_checkpoints still holds the checkpoint from before the change"
    child = reg.branch(run, before, g_lr=1e-3, d_lr=1e-3, steps=before + 15)
    wait_for(lambda: ended(child), "the branch to finish")
    assert child.state == "finished" and child.parent["step"] == before, child.message


# --- failures inside the training thread ------------------------------------------------------------------
def test_data_deleted_after_the_form_check_fails_that_run_alone(reg, tmp_path):
    good = reg.create(tiny(), "steady")
    wait_for(lambda: good.step > 5, "the steady run to train")
    csv = tmp_path / "points.csv"
    csv.write_text("".join(f"{i % 7},{i % 5}\n" for i in range(50)))
    cfg = tiny(dataset="csv", data_path=str(csv))
    check_data_path(cfg)                      # what the Train form checks before it creates a run
    csv.unlink()                              # ...and the file is gone before the thread loads it
    bad = reg.create(cfg, "vanishing data")
    wait_for(lambda: ended(bad), "the run to fail")
    assert bad.state == "failed" and "points.csv" in bad.message and "no such CSV file" in bad.message
    assert_short(bad.message)
    assert bad.store.read_status()["state"] == "failed"
    keeps_training(good, "the other run to keep training after the failure")

    empty = tmp_path / "no-images"
    (empty / "sub").mkdir(parents=True)
    (empty / "sub" / "notes.txt").write_text("not an image")
    folder = reg.create(tiny(dataset="folder", data_path=str(empty), model="mlp"), "no images")
    wait_for(lambda: ended(folder), "the folder run to fail")
    assert folder.state == "failed" and "no readable images" in folder.message and "skipped 1" in folder.message
    assert_short(folder.message)
    keeps_training(good, "the other run to keep training after the second failure")
    with pytest.raises(DataError, match="no such CSV file"):
        check_data_path(cfg)


def test_run_folder_deleted_while_training_fails_that_run_alone(reg):
    good = reg.create(tiny(), "steady")
    doomed = reg.create(tiny(), "doomed")
    wait_for(lambda: doomed.step > 5 and good.step > 5, "both runs to train")
    # A student cleans up the runs folder by hand. Moved away first (atomic): a plain rmtree races the thread,
    # which may write a checkpoint into a folder rmtree has just emptied.
    trash = Path(reg.runs_dir).parent / "trash"
    os.rename(doomed.store.path, trash)
    shutil.rmtree(trash)
    wait_for(lambda: ended(doomed), "the run without a folder to end")
    assert doomed.state == "failed", doomed.message
    assert_short(doomed.message)
    assert "No such file" in doomed.message or "FileNotFoundError" in doomed.message
    keeps_training(good, "the other run to keep training")
    assert [r.id for r in reg.list()] == [good.id], "the deleted run leaves the list"
    wait_for(lambda: control.slot_holders(reg.runs_dir, 2) == [good.id], "the failed run to give its slot back")


def test_unexpected_error_in_a_step_becomes_one_short_line(reg, monkeypatch):
    real_step = trainer_mod.Trainer.train_step
    good = reg.create(tiny(), "steady")
    wait_for(lambda: good.step > 5, "the steady run to train")

    def flaky(self):
        if self.cfg.seed == 7 and self.step >= 3:   # only the run under test breaks, after a few good steps
            raise RuntimeError("shape mismatch somewhere deep\n" + "detail " * 500)
        return real_step(self)

    monkeypatch.setattr(trainer_mod.Trainer, "train_step", flaky)
    bad = reg.create(tiny(seed=7), "buggy")
    wait_for(lambda: ended(bad), "the buggy run to fail")
    assert bad.state == "failed" and bad.message.startswith("RuntimeError: shape mismatch somewhere deep")
    assert_short(bad.message)
    assert bad.step == 3
    keeps_training(good, "the other run to keep training")


def test_cuda_out_of_memory_fails_with_a_hint_and_frees_the_slot(tmp_path, monkeypatch):
    # A real OOM cannot happen on a CPU; torch.cuda.OutOfMemoryError itself can be raised anywhere.
    real_step = trainer_mod.Trainer.train_step
    boom = threading.Event()

    def oom_when_huge(self):
        if self.cfg.batch_size == 4096 and boom.is_set():
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB (GPU 0; 7.8 GiB "
                                              "total capacity; 6.1 GiB already allocated)")
        return real_step(self)

    monkeypatch.setattr(trainer_mod.Trainer, "train_step", oom_when_huge)
    registry = RunRegistry(tmp_path / "runs", max_active=1, executor="thread")
    try:
        run = registry.create(tiny(batch_size=4096), "too big")   # trains, holding the only slot
        wait_for(lambda: run.state == "running" and run.step > 0, "the big run to take the slot")
        waiting = registry.create(tiny(), "next in line")
        wait_for(lambda: waiting.state == "queued", "the second run to queue")
        boom.set()                                                 # its next step runs out of memory
        wait_for(lambda: ended(run), "the run to fail")
        assert run.state == "failed"
        assert "out of memory" in run.message and "batch size" in run.message and "width" in run.message
        assert_short(run.message)
        assert run.store.read_status()["message"] == run.message
        wait_for(lambda: waiting.state == "running" and waiting.step > 3, "the queued run to get the free slot")
        waiting.stop(wait=TIMEOUT)
        assert waiting.state == "stopped"
    finally:
        registry.shutdown(timeout=20)


# --- many runs, many hands ----------------------------------------------------------------------------------
def test_hammering_several_runs_with_the_cap_in_play(tmp_path):
    """Four threads press random commands on three runs while only two may train: nothing blocks, nothing
    raises, every run settles in a final state that matches its status file, and no training slot leaks."""
    registry = RunRegistry(tmp_path / "runs", max_active=2, executor="thread")
    try:
        runs = [registry.create(tiny(snapshot_every=5, seed=i), f"r{i}") for i in range(3)]
        wait_for(lambda: sum(r.state == "running" for r in runs) == 2 and any(r.state == "queued" for r in runs),
                 "two runs training and one queued")
        def press(rnd: random.Random) -> None:
            run = rnd.choice(runs)
            op = rnd.choice(["pause", "resume", "stop", "start", "step", "live", "view", "generate", "list"])
            if op == "start" and run.state in ("finished", "diverged"):
                return
            if op == "generate" and not run.view(with_snapshots=False).snapshots:
                return
            if op == "step":
                run.request_step(rnd.choice(["d", "g", "both"]))
            elif op == "live":
                run.update_live(g_lr=rnd.choice([1e-3, 2e-3]), d_steps=rnd.choice([1, 2]))
            elif op == "generate":
                run.generate(np.zeros((2, 2), np.float32))
            elif op == "list":
                registry.list()
            else:
                getattr(run, op)()            # pause, resume, stop, start, view

        hammer(press, 3.0)
        for run in runs:
            run.stop(wait=TIMEOUT)
        wait_for(lambda: all(ended(r) for r in runs), "every run to reach a final state")
        for run in runs:
            assert run.state in ("stopped", "finished"), (run.name, run.state, run.message)
            assert run.store.read_status()["state"] == run.state
            steps = run.view().history["step"]
            assert np.all(np.diff(steps) >= 0), "history steps never go backwards"
        assert control.slot_holders(registry.runs_dir, 2) == [], "a training slot leaked: later runs would queue"
        late = registry.create(tiny(), "after the storm")
        wait_for(lambda: late.state == "running" and late.step > 0,
                 lambda: f"a new run to get a slot: {late.state}, {late.message}")
    finally:
        registry.shutdown(timeout=20)

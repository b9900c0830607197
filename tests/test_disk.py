"""Bounded disk: snapshots and milestone checkpoints thinned to log spacing, a per-run budget, a quota for the
runs directory, and temp files of interrupted writes swept at start-up."""
from __future__ import annotations

import os
import time

import pytest
from engine_util import tiny, wait_for

from ganlab.disk import MAX_MILESTONES, MAX_SNAPSHOT_FILES, dir_size, sweep_temp, thin
from ganlab.registry import RunRegistry
from ganlab.snapshots import Snapshot
from ganlab.store import RunStore, StoreError


def test_thinning_keeps_the_first_and_the_newest_and_spaces_the_old_ones():
    steps: list[int] = []
    for s in range(0, 5000):
        steps.append(s)
        gone = set(thin(steps, 100))
        steps = [x for x in steps if x not in gone]
        assert len(steps) <= 100
    assert steps[0] == 0 and steps[-1] == 4999
    assert steps[-40:] == list(range(4960, 5000)), "recent steps stay dense"
    gaps = [b - a for a, b in zip(steps, steps[1:])]
    assert gaps[0] > gaps[-1] and max(gaps) >= 16, "old steps sparse (roughly log-spaced)"


def test_snapshot_files_and_milestones_stay_bounded(tmp_path):
    import numpy as np
    import torch
    store = RunStore.create(tmp_path, "disk", tiny())
    for s in range(MAX_SNAPSHOT_FILES * 3):
        store.save_snapshot(Snapshot(step=s, epoch=0, time=0.0, fake=np.zeros((4, 2), np.float32)))
    assert len(store.snapshot_steps()) <= MAX_SNAPSHOT_FILES and store.snapshot_steps()[0] == 0
    for s in range(0, 4000, 10):
        store.save_checkpoint({"w": torch.zeros(3)}, s, keep=3, milestone_steps=100)
    ckpts = store.checkpoint_steps()
    assert len(ckpts) <= 3 + MAX_MILESTONES and ckpts[-3:] == [3970, 3980, 3990]
    assert ckpts[0] == 0, "the first milestone stays"


def test_a_run_over_its_budget_is_pruned_then_stopped_with_a_message(tmp_path, monkeypatch):
    monkeypatch.setenv("GANLAB_RUN_BUDGET_MB", "0.3")
    reg = RunRegistry(tmp_path / "runs", executor="thread")
    run = reg.create(tiny(snapshot_every=1, checkpoint_every=5, keep_checkpoints=50), "budget")
    wait_for(lambda: run.state == "stopped" or run.step > 20000, "the budget to stop the run", 120)
    assert run.state == "stopped" and "disk budget" in run.message, run.message
    assert dir_size(run.store.path) < 0.6 * 2**20
    assert len(run.store.checkpoint_steps()) >= 1, "pruning keeps the newest checkpoints"


def test_the_runs_directory_quota_refuses_new_runs(tmp_path, monkeypatch):
    reg = RunRegistry(tmp_path / "runs", executor="thread")
    (tmp_path / "runs" / "big.bin").write_bytes(b"\0" * (2 * 2**20))
    monkeypatch.setenv("GANLAB_RUNS_QUOTA_MB", "1")
    with pytest.raises(StoreError, match="runs folder is full"):
        reg.create(tiny(), "one too many", start=False)
    monkeypatch.setenv("GANLAB_RUNS_QUOTA_MB", "100")
    reg._size = (-1e9, 0)
    reg.create(tiny(), "fits", start=False)


def test_stale_temp_files_are_swept_at_start(tmp_path):
    store = RunStore.create(tmp_path, "tmp", tiny())
    dead = store.ckpt_dir / ".step-000000100.pt.999999999.1.2.tmp"     # a writer pid that no longer exists
    old = store.snap_dir / f".s000000005.npz.{os.getpid()}.1.2.tmp"    # ours, but an hour old
    live = store.path / f".status.json.{os.getpid()}.1.3.tmp"         # ours and fresh: a write in progress
    for p in (dead, old, live):
        p.write_bytes(b"x" * 10)
    os.utime(old, (time.time() - 3600, time.time() - 3600))
    assert sweep_temp(tmp_path) == 2
    assert not dead.exists() and not old.exists() and live.exists()
    RunRegistry(tmp_path, executor="thread")   # the registry sweeps when it starts


def test_delete_is_atomic_and_a_leftover_is_swept(tmp_path):
    reg = RunRegistry(tmp_path, executor="thread")
    run = reg.create(tiny(steps=30), "gone")
    run.join(60)
    reg.delete(run.id)
    assert reg.list() == [] and not any(tmp_path.glob(".trash-*"))
    left = tmp_path / ".trash-20260101-000000-x-1"     # a kill between the rename and the removal
    (left / "snapshots").mkdir(parents=True)
    (left / "config.json").write_text("{}")
    assert RunRegistry(tmp_path, executor="thread").list() == [] and not left.exists()


def test_a_live_edit_on_a_deleted_run_is_a_clear_error(tmp_path):
    reg = RunRegistry(tmp_path, executor="thread")
    run = reg.create(tiny(), "edited", paused=True)
    wait_for(lambda: run.state == "paused", "the run to pause")
    reg.delete(run.id)
    with pytest.raises(StoreError, match="was deleted"):
        run.update_live(g_lr=1e-3)

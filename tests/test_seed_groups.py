"""Seed groups (ganlab.registry.create_group, ganlab.ensemble_worker): K run directories of one config trained as one
batched model, each member written as its solo run would be; a diverged member ends alone; commands to any member
move the whole group; a crash ends every member; bad sizes and image configs get clear answers."""
from __future__ import annotations

import math
import os
import signal

import numpy as np
import pytest
import torch

from ganlab.config import get_preset
from ganlab.ensemble_worker import GroupWorker
from ganlab.registry import RunRegistry, group_of
from ganlab.store import load_checkpoint
from ganlab.trainer import STAT_NAMES, Trainer
from tests.engine_util import tiny, wait_for

RTOL, ATOL = 1e-4, 1e-5   # as tests/test_ensemble.py: the batched model equals the solo one up to float rounding


@pytest.fixture
def reg(tmp_path):
    reg = RunRegistry(tmp_path / "runs", executor="thread", quality_fn=None)
    yield reg
    reg.shutdown()


def _states(group) -> list[tuple[str, str]]:
    return [(r.state, r.message) for r in group.runs]


def _ended(group, state: str = "finished") -> bool:
    return all(r.state == state for r in group.runs)


def test_members_write_what_their_solo_runs_would(reg):
    cfg = tiny(steps=10, snapshot_every=5, checkpoint_every=5)
    group = reg.create_group(cfg, seeds=3, name="trio")
    assert group.ensemble and "one batched model for 3 seeds" in group.note
    assert group.seeds == [cfg.seed, cfg.seed + 1, cfg.seed + 2]
    wait_for(lambda: _ended(group), lambda: f"the group to finish: {_states(group)}")
    for k, run in enumerate(group.runs):
        again = reg.get(run.id)   # an ordinary run of the registry, with its group in its status
        assert group_of(again) == {"id": group.id, "index": k, "seeds": group.seeds, "ensemble": True}
        assert run.cfg == cfg.replace(seed=cfg.seed + k) and run.message == "finished 10 steps"
        solo = Trainer(run.cfg, device="cpu")
        snaps = {s.step: s for s in run.store.iter_snapshots()}
        assert sorted(snaps) == [0, 5, 10]
        rows = run.store.read_rows("history")
        assert [r["step"] for r in rows] == list(range(1, 11))
        np.testing.assert_allclose(snaps[0].fake, solo.snapshot().fake, rtol=RTOL, atol=ATOL)
        for row in rows:
            solo.train_step()
            want = solo.collect()
            for name in STAT_NAMES:
                assert math.isclose(row[name], want[name], rel_tol=RTOL, abs_tol=ATOL) or \
                    (math.isnan(row[name]) and math.isnan(want[name])), f"member {k} step {row['step']} {name}"
            if solo.step in snaps:
                snap = solo.snapshot()
                np.testing.assert_allclose(snaps[solo.step].fake, snap.fake, rtol=RTOL, atol=ATOL)
                np.testing.assert_allclose(snaps[solo.step].real, snap.real)   # the member's own fixed points
        # Its checkpoint loads into a solo Trainer as any run's does (weights, optimiser state, counters, RNG).
        resumed = Trainer(run.cfg, device="cpu")
        resumed.load_state_dict(load_checkpoint(run.store.checkpoint_path()))
        assert resumed.step == 10 and resumed.d_updates == solo.d_updates
        torch.testing.assert_close(resumed.gen.get_state(), solo.gen.get_state())
        for a, b in zip(resumed.G.parameters(), solo.G.parameters()):
            torch.testing.assert_close(a, b, rtol=RTOL, atol=ATOL)
        for opt in ("opt_g", "opt_d"):   # Adam's moments too: a Resume continues as the solo run would
            mine, want = getattr(resumed, opt).state_dict()["state"], getattr(solo, opt).state_dict()["state"]
            for i in want:
                torch.testing.assert_close(mine[i]["exp_avg_sq"], want[i]["exp_avg_sq"], rtol=1e-3, atol=1e-8)
        assert run.generate(np.zeros((2, cfg.noise_dim), np.float32)).shape == (2, 2)   # the latent explorer
    assert [len(g.runs) for g in reg.groups()] == [3]


class _Poisoned(GroupWorker):
    """A group whose member 1 gets infinite weights after step 3 (a lr no single config could give one seed)."""

    def _build(self):
        cfg = super()._build()
        ens, step = self.ens, self.ens.train_step

        def train_step() -> bool:
            if ens.step == 3:
                with torch.no_grad():
                    ens.opt_g.param_groups[0]["params"][0][1].fill_(float("inf"))
            return step()
        ens.train_step = train_step
        return cfg


def test_a_diverged_member_ends_alone_and_the_others_finish(reg):
    group = reg.create_group(tiny(steps=30, checkpoint_every=2), seeds=3, name="poison", start=False)
    state = _Poisoned([r.store.path for r in group.runs], quality_fn=None).serve()
    assert state == "finished"
    (a, a_msg), (b, b_msg), (c, _) = _states(group)
    assert (a, b, c) == ("finished", "diverged", "finished"), _states(group)
    assert "NaN/Inf appeared at step 3" in b_msg and "The other 2 seeds go on" in b_msg, b_msg
    assert "last good checkpoint (step 2)" in b_msg
    bad = group.runs[1].store
    assert bad.checkpoint_steps()[-1] == 2 and group.runs[0].store.checkpoint_steps()[-1] == 30
    assert all(torch.isfinite(v).all() for v in load_checkpoint(bad.checkpoint_path())["G"].values())
    assert math.isnan(bad.read_rows("history")[-1]["loss_g"])   # the curve shows where it went wrong


def test_commands_to_one_member_move_the_group_and_a_member_resumes_alone(reg):
    group = reg.create_group(tiny(checkpoint_every=25), seeds=3, name="cmds")
    wait_for(lambda: all(r.step >= 30 for r in group.runs), lambda: f"training: {_states(group)}")
    group.runs[2].pause()
    wait_for(lambda: _ended(group, "paused"), lambda: f"all paused: {_states(group)}")
    group.runs[0].update_live(g_lr=5e-4)   # a live edit reaches every member's config
    wait_for(lambda: all(r.summary().cfg.g_lr == 5e-4 for r in group.runs), "the edit in every member's config")
    group.runs[1].resume()
    wait_for(lambda: _ended(group, "running"), lambda: f"all running: {_states(group)}")
    group.runs[1].stop(wait=30)
    wait_for(lambda: _ended(group, "stopped"), lambda: f"all stopped: {_states(group)}")
    assert all("the seed group stops together" in r.message for r in group.runs), _states(group)
    steps = {r.step for r in group.runs}
    assert len(steps) == 1 and all(r.store.checkpoint_steps()[-1] == r.step for r in group.runs)
    stopped_at, member = steps.pop(), group.runs[1]
    member.start()   # Resume trains one member alone, from its checkpoint, as an ordinary run
    wait_for(lambda: member.step > stopped_at + 20, "the member training alone")
    assert member.device == "cpu" and group.runs[0].state == "stopped"
    member.stop(wait=30)


def test_the_group_holds_one_training_slot(tmp_path):
    reg = RunRegistry(tmp_path / "runs", executor="thread", quality_fn=None, max_active=1)
    try:
        solo = reg.create(tiny(), "solo")
        wait_for(lambda: solo.state == "running", "the solo run")
        group = reg.create_group(tiny(steps=20), seeds=2, name="queued")
        wait_for(lambda: all("this seed group of 2 starts" in r.message for r in group.runs),
                 lambda: f"the group queued: {_states(group)}")
        solo.stop(wait=30)
        wait_for(lambda: _ended(group), lambda: f"the group to finish: {_states(group)}")
    finally:
        reg.shutdown()


def test_bad_sizes_and_image_configs_get_clear_answers(reg):
    for bad in (1, 9, True, "4"):
        with pytest.raises(ValueError, match="seeds: a seed group has 2 to 8 seeds"):
            reg.create_group(tiny(), seeds=bad)
    assert reg.list() == []
    group = reg.create_group(get_preset("mnist-fast").config(device="cpu"), seeds=4, start=False)
    assert not group.ensemble and "4 separate runs, each queued for a training slot" in group.note
    assert "dataset" in group.note and "2D data sets only" in group.note
    assert [r.cfg.seed for r in group.runs] == group.seeds and all(r.state == "created" for r in group.runs)
    assert [g.ensemble for g in reg.groups()] == [False]


def test_a_killed_group_process_fails_every_member(tmp_path):
    reg = RunRegistry(tmp_path / "runs", executor="process", quality_fn=None)
    group = reg.create_group(tiny(), seeds=2, name="crash")
    wait_for(lambda: all(r.step > 0 for r in group.runs), lambda: f"training: {_states(group)}")
    pids = {r.store.read_status().get("pid") for r in group.runs}
    assert len(pids) == 1 and all(isinstance(p, int) for p in pids)   # one process trains both
    os.kill(pids.pop(), signal.SIGKILL)
    wait_for(lambda: _ended(group, "failed"), lambda: f"every member failed: {_states(group)}")
    assert all("killed by SIGKILL" in r.message for r in group.runs), _states(group)


def test_a_paused_group_gives_its_slot_back_and_resume_queues(tmp_path):
    """Slots follow compute (ganlab.slots) for a seed group too: paused, it holds no slot; Resume with the slot
    held queues the whole group until it frees."""
    reg = RunRegistry(tmp_path / "runs", executor="thread", quality_fn=None, max_active=1)
    try:
        group = reg.create_group(tiny(), seeds=2, name="group")
        wait_for(lambda: all(r.state == "running" and r.step > 3 for r in group.runs), lambda: _states(group))
        group.runs[0].pause()
        wait_for(lambda: all(r.state == "paused" for r in group.runs), lambda: f"the group to pause: {_states(group)}")
        solo = reg.create(tiny(), "solo")
        wait_for(lambda: solo.state == "running" and solo.step > 3, "the solo run to take the group's slot")
        group.runs[1].resume()
        wait_for(lambda: all(r.state == "queued" and "this seed group of 2 resumes" in r.message for r in group.runs),
                 lambda: f"the group to queue on Resume: {_states(group)}")
        solo.stop(wait=30)
        wait_for(lambda: all(r.state == "running" for r in group.runs),
                 lambda: f"the group to resume: {_states(group)}")
        group.runs[0].stop(wait=30)
    finally:
        reg.shutdown()

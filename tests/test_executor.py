"""Workers outside the web process: one control path on every backend, the cap across registries, crash containment.

The process backend (what the app uses) and the Ray backend (a real local Ray cluster, `ray start --head` on
127.0.0.1, started by this module) run the same command sequence. Crashes are real: a SIGSEGV inside torch's
fused Adam (a checkpoint with damaged optimiser state), kill -9, and a worker that runs out of memory.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from engine_util import settled, tiny, wait_for

from ganlab import control, executor
from ganlab.registry import RunRegistry
from ganlab.states import InvalidTransition, RunState, check_transition
from ganlab.store import load_checkpoint

RAY = Path(sys.executable).with_name("ray")
RAY_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",   # keep every Ray service on 127.0.0.1
           "RAY_USAGE_STATS_ENABLED": "0"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ray_cluster():
    """A real Ray head on 127.0.0.1 (CPU only) for this module; GANLAB_RAY_ADDRESS points at it."""
    port = _free_port()
    env = {**os.environ, **RAY_ENV}
    os.environ.update(RAY_ENV)   # before ray is imported: it reads them at import
    pytest.importorskip("ray")
    cmd = [str(RAY), "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}", "--num-cpus=4",
           "--include-dashboard=false", "--disable-usage-stats"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    old = {"GANLAB_RAY_ADDRESS": os.environ.get("GANLAB_RAY_ADDRESS")}
    os.environ["GANLAB_RAY_ADDRESS"] = f"127.0.0.1:{port}"
    try:
        yield f"127.0.0.1:{port}"
    finally:
        ex = executor._EXECUTORS.pop("ray", None)
        if ex is not None:
            ex.shutdown(10)
            ex.ray.shutdown()
        subprocess.run([str(RAY), "stop", "--force"], env=env, capture_output=True, timeout=120)
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture(params=["process", "ray"])
def backend_reg(request, tmp_path):
    if request.param == "ray":
        request.getfixturevalue("ray_cluster")
    reg = RunRegistry(tmp_path / "runs", max_active=4, executor=request.param)
    yield reg
    reg.shutdown(timeout=20)


def _rows(run) -> int:
    return len(run.view(with_snapshots=False).history["step"])


def test_one_control_path_on_every_backend(backend_reg):
    """start, pause, single steps, a live edit, resume, stop and a restart, through the same commands."""
    reg = backend_reg
    assert reg.executor.name in ("process", "ray")
    run = reg.create(tiny(), "control")
    wait_for(lambda: run.state == "running" and run.step > 20, "the worker to train", 120)
    run.pause()
    wait_for(lambda: run.state == "paused", "pause to take effect")
    step = settled(lambda: run.step, "the paused worker's step to settle")
    rows = _rows(run)
    time.sleep(0.5)   # nothing to wait for: the check is that no step happens in this time
    assert run.step == step, "a paused worker trains no further"
    run.request_step("d")
    wait_for(lambda: _rows(run) == rows + 1, "one D step to be recorded")
    assert run.step == step, "a D step alone is not a training step"
    h = run.view(with_snapshots=False).history
    assert h["loss_d"][-1] == h["loss_d"][-1] and h["loss_g"][-1] != h["loss_g"][-1], "G's half stays NaN"
    run.request_step("g")
    wait_for(lambda: run.step == step + 1, "one G step")
    run.request_step("both")
    wait_for(lambda: run.step == step + 2, "one step of both")
    run.update_live(g_lr=0.0123)
    run.resume()
    wait_for(lambda: run.state == "running", "resume")
    wait_for(lambda: abs(run.view(with_snapshots=False).history["lr_g"][-1] - 0.0123) < 1e-9, "the live lr")
    assert run.store.read_config().g_lr == 0.0123
    run.stop(wait=30)
    assert run.state == "stopped" and not run.alive
    stopped_at = run.step
    assert run.store.checkpoint_steps()[-1] == stopped_at, "a stop saves a checkpoint"
    run.start()
    wait_for(lambda: run.step > stopped_at + 5, "the restarted worker to continue from the checkpoint", 120)
    h = run.view(with_snapshots=False).history["step"]
    assert (h[1:] >= h[:-1]).all(), "steps only grow"
    z = torch.zeros(3, run.cfg.noise_dim).numpy()
    assert run.generate(z).shape == (3, 2), "the latent explorer reads the published G"
    child = reg.branch(run, name="child", g_lr=0.002)
    wait_for(lambda: child.state == "running", "the branch to train", 120)
    assert child.cfg.g_lr == 0.002 and child.parent["run"] == run.id
    reg.delete(child.id)
    assert not child.store.path.exists() and not child.alive
    run.stop(wait=30)


def test_cap_holds_across_registries(tmp_path):
    """Two registries on one directory (as two servers) share GANLAB_MAX_ACTIVE through the slots on disk."""
    a = RunRegistry(tmp_path / "runs", max_active=1, executor="process")
    b = RunRegistry(tmp_path / "runs", max_active=1, executor="thread")
    try:
        first = a.create(tiny(), "first")
        wait_for(lambda: first.state == "running", "the first run to train", 120)
        second = b.create(tiny(), "second")
        wait_for(lambda: second.state == "queued" and second.message.startswith("queued:"), "the second to queue")
        time.sleep(1.0)   # nothing to wait for: the check is that the queued run does not start in this time
        assert second.state == "queued" and second.step == 0
        assert control.slot_holders(a.runs_dir, 1) == [first.id]
        # the other registry sees the queued run and can stop it; a start there queues it again
        seen = a.get(second.id)
        assert seen.state == "queued"
        first.stop(wait=30)
        wait_for(lambda: second.state == "running", "the queued run to take the free slot", 60)
        seen.pause()
        wait_for(lambda: second.state == "paused", "a pause sent from the other registry")
        seen.stop(wait=30)
        wait_for(lambda: b.get(second.id).state == "stopped", "the stop sent from the other registry")
    finally:
        a.shutdown(20)
        b.shutdown(20)


@pytest.fixture
def proc_reg(tmp_path):
    reg = RunRegistry(tmp_path / "runs", max_active=3, executor="process")
    yield reg
    reg.shutdown(20)


def keeps_training(run) -> None:
    s = run.step
    wait_for(lambda: run.step > s + 50, f"{run.name} to keep training")
    assert run.state == "running"


def _damage_optimiser(path: Path) -> None:
    state = load_checkpoint(path)
    for entry in state["opt_d"]["state"].values():
        entry["exp_avg"] = torch.zeros(0)   # fused Adam then writes through a null pointer: SIGSEGV
        entry["exp_avg_sq"] = torch.zeros(0)
    torch.save(state, path)


def _trained_then_stopped(reg, name: str):
    run = reg.create(tiny(checkpoint_every=20), name)
    wait_for(lambda: run.step > 60, f"{name} to train", 120)
    run.stop(wait=30)
    return run


def test_segfault_in_a_worker_fails_that_run_alone(proc_reg):
    victim = _trained_then_stopped(proc_reg, "victim")
    good = proc_reg.create(tiny(), "good")
    wait_for(lambda: good.state == "running", "the other run", 120)
    ckpts = victim.store.checkpoint_steps()
    _damage_optimiser(victim.store.checkpoint_path())
    victim.start()
    wait_for(lambda: victim.state == "failed", "the crashed worker to be marked failed", 120)
    assert "SIGSEGV" in victim.message and f"step {ckpts[-1]}" in victim.message, victim.message
    assert victim.store.checkpoint_steps() == ckpts, "the crash removes no checkpoint"
    load_checkpoint(victim.store.checkpoint_path(ckpts[-2]))   # the older ones still load
    keeps_training(good)


def test_sigkill_is_named_and_resume_continues_from_the_checkpoint(proc_reg):
    good = proc_reg.create(tiny(), "good")
    victim = proc_reg.create(tiny(checkpoint_every=20), "victim")
    wait_for(lambda: victim.step > 100 and len(victim.store.checkpoint_steps()) > 1, "checkpoints", 120)
    pid = victim.store.read_status()["pid"]
    assert pid != os.getpid(), "the run trains in its own process"
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: victim.state == "failed", "the killed worker to be marked failed", 60)
    assert "SIGKILL" in victim.message and "Resume" in victim.message, victim.message
    last = victim.store.checkpoint_steps()[-1]
    load_checkpoint(victim.store.checkpoint_path())   # intact
    victim.start()
    wait_for(lambda: victim.state == "running" and victim.step > last, "the resume", 120)
    keeps_training(good)


def _nice(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[16])   # field 19: nice


@pytest.mark.parametrize("setting,lower", [(None, 10), ("3", 3), ("0", 0), ("lots", 10)])
def test_a_worker_trains_below_the_server_s_cpu_priority(tmp_path, monkeypatch, setting, lower):
    """Pages come first on shared cores: a worker runs at nice +GANLAB_WORKER_NICE (default 10) over the server."""
    if setting is None:
        monkeypatch.delenv("GANLAB_WORKER_NICE", raising=False)
    else:
        monkeypatch.setenv("GANLAB_WORKER_NICE", setting)
    reg = RunRegistry(tmp_path / "runs", max_active=1, executor="process")
    try:
        run = reg.create(tiny(), "nice")
        wait_for(lambda: run.state == "running" and isinstance(run.store.read_status().get("pid"), int),
                 "the worker", 120)
        assert _nice(run.store.read_status()["pid"]) == min(19, os.nice(0) + lower)
        keeps_training(run)
    finally:
        reg.shutdown(20)


def test_out_of_memory_worker_fails_alone(tmp_path, monkeypatch):
    monkeypatch.setenv("GANLAB_WORKER_MEMORY_MB", "1500")   # each worker's data memory is capped
    reg = RunRegistry(tmp_path / "runs", max_active=3, executor="process")
    try:
        good = reg.create(tiny(), "good")
        big = reg.create(tiny(dataset="mnist5k", model="dcgan", channels=128, batch_size=4096, noise_dim=16), "big")
        wait_for(lambda: big.state == "failed", "the huge run to fail", 150)
        assert "out of memory" in big.message, big.message
        keeps_training(good)
    finally:
        reg.shutdown(20)


def test_a_second_worker_for_the_same_run_leaves(tmp_path):
    from ganlab.worker import Worker
    reg = RunRegistry(tmp_path / "runs", max_active=2, executor="process")
    try:
        run = reg.create(tiny(), "one")
        wait_for(lambda: run.state == "running", "the worker", 120)
        assert Worker(run.store.path).serve() == "", "the run's lock is held: a second worker gives up"
        assert run.state == "running"
    finally:
        reg.shutdown(20)


def test_a_worker_gone_without_a_word_is_interrupted_on_disk(tmp_path):
    reg = RunRegistry(tmp_path / "runs", max_active=2, executor="thread")
    run = reg.create(tiny(), "ghost", start=False)
    run.store.update_status(state="running", pid=999_999_999, launched=0)
    other = RunRegistry(tmp_path / "runs")
    assert other.get(run.id).state == "interrupted"
    assert run.store.read_status()["state"] == "interrupted", "written to disk when first seen"


@pytest.mark.parametrize("old,new,ok", [
    ("created", "queued", True), ("queued", "running", True), ("running", "paused", True),
    ("paused", "running", True), ("running", "finished", True), ("finished", "running", False),
    ("diverged", "queued", False), ("stopped", "queued", True), ("interrupted", "running", True),
    ("failed", "queued", True), ("running", "created", False), ("paused", "diverged", True),
])
def test_state_machine_transitions(old, new, ok):
    if ok:
        assert check_transition(old, new) == RunState(new)
    else:
        with pytest.raises(InvalidTransition):
            check_transition(old, new)


def test_state_predicates():
    assert [s.value for s in RunState if s.live] == ["queued", "running", "paused"]
    assert {s.value for s in RunState if s.resumable} == {"stopped", "interrupted", "failed"}
    assert not RunState.FINISHED.can_start and RunState.CREATED.can_start
    assert RunState.parse("nonsense", RunState.INTERRUPTED) is RunState.INTERRUPTED
    with pytest.raises(ValueError):
        RunState.parse(None)


def test_exit_descriptions():
    assert "SIGSEGV" in executor.describe_exit(-signal.SIGSEGV)
    assert "out-of-memory" in executor.describe_exit(-signal.SIGKILL)
    assert executor.describe_exit(3) == "exited with code 3"



def test_a_liveness_probe_never_makes_a_taker_give_up(tmp_path):
    """Pages ask `worker_alive` many times a second while a worker takes its run's lock. The probe once took the
    exclusive lock for an instant, and a worker that met that instant gave up ('another worker has the run'): the
    run showed 'interrupted' before its first step. Probes share a lock and a taker waits out their instant."""
    import threading
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    lock = run_dir / control.WORKER_LOCK
    lock.touch()
    done = threading.Event()

    def probe() -> None:
        while not done.is_set():
            control.worker_alive(run_dir)
    probes = [threading.Thread(target=probe, daemon=True) for _ in range(3)]
    for t in probes:
        t.start()
    try:
        refused = 0
        for _ in range(300):
            fd = control.try_lock(lock)
            if fd is None:
                refused += 1
                continue
            assert control.worker_alive(run_dir), "a held lock reads as a live worker"
            control.release(fd)
        assert refused == 0, f"{refused} of 300 takes gave up on a probe"
    finally:
        done.set()
        for t in probes:
            t.join()
    held = control.try_lock(lock)   # a real holder still refuses a second taker, after the patience
    try:
        t0 = time.monotonic()
        assert control.try_lock(lock) is None and time.monotonic() - t0 < 1.0
        assert control.slot_holders(tmp_path, 1) == []   # no slot files: nothing held
    finally:
        control.release(held)

"""Tests for the command line (`python -m ganlab ...`), run as a user runs it: a real subprocess per command.

One short ring8 training (200 steps) is shared by the tests that list, resume and restart runs; each of those
works on its own copy of the run directory. Bad input must exit with code 2 and one line on stderr.
Each subprocess pays a torch import (seconds on a busy machine), so variations of a case already covered by a
subprocess call `cli.main` in-process: the same code path without the interpreter start."""
from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ganlab import cli
from ganlab.config import PRESETS
from ganlab.store import RunStore, load_checkpoint

REPO = Path(__file__).resolve().parents[1]
RESULT_KEYS = {"run_dir", "status", "steps", "seconds", "device", "images_per_s", "final", "metrics"}


class Exploit:
    def __init__(self, target: Path):
        self.target = target

    def __reduce__(self):
        return (os.system, (f"touch {self.target}",))


def ganlab(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GANLAB_RUNS_DIR": str(REPO / "no-such-default-runs-dir")}
    return subprocess.run([sys.executable, "-m", "ganlab", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=timeout)


def last_json(proc: subprocess.CompletedProcess):
    assert proc.stdout.strip(), f"no output; stderr: {proc.stderr[-2000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


def in_process(capsys, *args: str) -> subprocess.CompletedProcess:
    """cli.main(args) with its exit code and output, shaped like a finished subprocess."""
    code = cli.main(list(args))
    out = capsys.readouterr()
    return subprocess.CompletedProcess(list(args), code, out.out, out.err)


def one_line_usage_error(proc: subprocess.CompletedProcess, *fragments: str) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stdout[-500:], proc.stderr[-2000:])
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got:\n{proc.stderr}"
    assert lines[0].startswith("ganlab: error:") and "Traceback" not in proc.stderr
    for fragment in fragments:
        assert fragment in lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict:
    """`train --preset ring8 --steps 200 --json` once; returns its result with the runs dir."""
    runs = tmp_path_factory.mktemp("cli") / "runs"
    proc = ganlab("train", "--preset", "ring8", "--steps", "200", "--json", "--runs-dir", str(runs))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {**last_json(proc), "_runs": runs}


def copy_run(trained: dict, dest: Path) -> Path:
    target = dest / "runs" / Path(trained["run_dir"]).name
    shutil.copytree(trained["run_dir"], target)
    return target


# --- presets ---------------------------------------------------------------------------------------------
def test_presets_lists_every_preset(capsys):
    proc = ganlab("presets")
    assert proc.returncode == 0, proc.stderr
    names = [line.split()[0] for line in proc.stdout.strip().splitlines()]
    assert names == list(PRESETS)
    for name, preset in PRESETS.items():
        assert preset.summary in proc.stdout, name
    data = json.loads(in_process(capsys, "presets", "--json").stdout)
    assert list(data) == list(PRESETS) and data["ring8"]["dataset"] == "ring8"


# --- train -----------------------------------------------------------------------------------------------
def test_train_prints_a_json_result_last(trained):
    assert set(trained) - {"_runs", "message"} == RESULT_KEYS
    assert trained["status"] == "finished" and trained["steps"] == 200
    assert trained["seconds"] > 0 and trained["images_per_s"] > 0 and trained["device"] in ("cpu", "cuda", "mps")
    assert math.isfinite(trained["final"]["loss_d"]) and math.isfinite(trained["final"]["loss_g"])
    assert trained["final"]["step"] == 200
    assert isinstance(trained["metrics"], dict)
    run_dir = Path(trained["run_dir"])
    assert run_dir.parent == trained["_runs"]
    store = RunStore(run_dir)
    assert store.read_status()["state"] == "finished"
    assert store.checkpoint_steps()[-1] == 200
    assert [r["step"] for r in store.read_rows("history")][-1] == 200


def test_bad_preset_and_unknown_flag_exit_2_with_one_line(tmp_path):
    one_line_usage_error(ganlab("train", "--preset", "ring9", "--runs-dir", str(tmp_path)), "preset", "ring9",
                         "ring8")
    one_line_usage_error(ganlab("train", "--bogus", "--runs-dir", str(tmp_path)), "--bogus")
    assert not any(tmp_path.iterdir()), "a refused command must not create a run"


@pytest.mark.parametrize("args, fragments", [
    (["train", "--set", "nope=1"], ["nope", "unknown field"]),
    (["train", "--set", "g_lr=fast"], ["g_lr", "fast"]),
    (["train", "--set", "g_lr"], ["key=value"]),
    (["train", "--set", "loss=kl"], ["loss", "wgan-gp"]),
    (["train", "--steps", "many"], ["--steps"]),
    (["frobnicate"], ["frobnicate"]),
    (["train", "--resume", "/nonexistent/run"], ["not a run directory"]),
])
def test_bad_arguments_exit_2_with_one_line(args, fragments, tmp_path, capsys):
    proc = in_process(capsys, *args, "--runs-dir", str(tmp_path)) if args[0] == "train" else \
        in_process(capsys, *args)
    one_line_usage_error(proc, *fragments)
    assert not any(tmp_path.iterdir()), "a refused command must not create a run"


def test_runs_lists_the_run_as_json(trained, capsys):
    proc = ganlab("runs", "--runs-dir", str(trained["_runs"]), "--json")
    assert proc.returncode == 0, proc.stderr
    (row,) = json.loads(proc.stdout)
    assert row["id"] == Path(trained["run_dir"]).name
    assert row["state"] == "finished" and row["step"] == 200 and row["dataset"] == "ring8" and row["parent"] is None
    text = in_process(capsys, "runs", "--runs-dir", str(trained["_runs"]))
    assert row["id"] in text.stdout and "finished" in text.stdout


def test_resume_continues_to_more_steps(trained, tmp_path):
    run_dir = copy_run(trained, tmp_path)
    proc = ganlab("train", "--resume", str(run_dir), "--steps", "300", "--json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = last_json(proc)
    assert result["status"] == "finished" and result["steps"] == 300
    assert Path(result["run_dir"]) == run_dir
    store = RunStore(run_dir)
    steps = [r["step"] for r in store.read_rows("history")]
    assert steps[-1] == 300 and steps == sorted(steps) and 200 in steps
    assert store.checkpoint_steps()[-1] == 300 and store.read_config().steps == 300


def test_from_checkpoint_starts_a_new_run(trained, tmp_path, capsys):
    ckpt = Path(trained["run_dir"]) / "checkpoints" / "step-000000200.pt"
    runs = tmp_path / "runs"
    proc = ganlab("train", "--from-checkpoint", str(ckpt), "--steps", "220", "--json", "--runs-dir", str(runs))
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = last_json(proc)
    assert result["status"] == "finished" and result["steps"] == 220
    assert Path(result["run_dir"]).parent == runs
    status = RunStore(Path(result["run_dir"])).read_status()
    assert status["parent"] == {"checkpoint": str(ckpt), "step": 200}
    listed = in_process(capsys, "runs", "--runs-dir", str(runs))
    assert listed.returncode == 0 and "<- " in listed.stdout, listed.stderr


def test_from_checkpoint_refuses_an_unsafe_file(trained, tmp_path, capsys):
    target = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    state = load_checkpoint(Path(trained["run_dir"]) / "checkpoints" / "step-000000200.pt")
    torch.save({**state, "extra": Exploit(target)}, evil)
    runs = tmp_path / "runs"
    line = one_line_usage_error(ganlab("train", "--from-checkpoint", str(evil), "--runs-dir", str(runs)),
                                "--from-checkpoint", "refused")
    assert "weights_only" not in line
    assert not target.exists(), "the checkpoint's code ran"
    assert not runs.exists() or not any(runs.iterdir())
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"\x00not a checkpoint" * 20)
    one_line_usage_error(in_process(capsys, "train", "--from-checkpoint", str(garbage), "--runs-dir", str(runs)),
                         "not a ganlab checkpoint")


def test_a_command_whose_dependency_is_missing_says_so_and_the_others_work():
    """A GPU box with torch but no plotly still trains, benchmarks and checks lessons; export names the package."""
    import subprocess
    import sys
    code = ("import sys; sys.modules['plotly'] = None; from ganlab.cli import main; "
            "sys.exit(main(sys.argv[1:]))")
    env_cmd = [sys.executable, "-c", code]
    ok = subprocess.run(env_cmd + ["lessons"], capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0 and "first-gan" in ok.stdout, ok.stderr
    bad = subprocess.run(env_cmd + ["export", "x"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "needs the Python package 'plotly'" in bad.stderr, bad.stderr
    assert "Traceback" not in bad.stderr

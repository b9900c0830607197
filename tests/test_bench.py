"""The speed benchmark as CI runs it: `python -m ganlab bench --quick --json` in a subprocess on CPU.

No thresholds: speed is judged from the benchmark's ratios on a known machine, never from a timed test.
This checks that every measure is produced, finite and positive, and that the JSON is the last stdout line.
The pure helpers (table, target checks, the baseline loops) are checked in-process in a second or two.
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest
import torch

from ganlab import bench
from ganlab.bench_digits import time_to_digits
from ganlab.bench_loops import ExamplesLoop, bare_step, trainer_step
from ganlab.config import get_preset
from ganlab.data import load_dataset
from ganlab.trainer import Trainer

RATIOS = ("ratio_mlp", "ratio_dcgan", "engine_frac_mlp", "engine_frac_dcgan", "engine_frac_ring8", "watched_frac",
          "watched_frac_mlp", "trainer_frac_mlp", "trainer_frac_dcgan", "trainer_frac_ring8", "channels_last_dcgan")
SECONDS = ("regen_p50_ms", "regen_p95_ms", "ring8_10k_s", "first_step_s")
RATES = tuple(f"{loop}_{p}_img_s" for p in ("mlp", "dcgan") for loop in ("examples", "trainer", "bare", "engine")) + \
    tuple(f"{loop}_ring8_img_s" for loop in ("trainer", "bare", "engine")) + ("nchw_dcgan_img_s",)


def _positive(out: dict, key: str) -> None:
    value = out.get(key)
    assert isinstance(value, (int, float)) and math.isfinite(value) and value > 0, f"{key} = {value!r}"


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_quick_bench_json_has_every_measure(tmp_path):
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "GANLAB_RUNS_DIR": str(tmp_path / "runs")}
    proc = subprocess.run([sys.executable, "-m", "ganlab", "bench", "--quick", "--json", "--device", "cpu",
                           "--no-browser"],
                          capture_output=True, text=True, timeout=540, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["device"] == "cpu" and out["quick"] is True
    for key in RATIOS + SECONDS + RATES + ("ensemble_speedup_8", "ensemble_bound_8", "ensemble_matmul_bound_8"):
        _positive(out, key)
    # 8/8 modes may take longer than the quick window on a slow machine: then it is null, never a fake number
    assert out["ring8_8modes_s"] is None or (math.isfinite(out["ring8_8modes_s"]) and out["ring8_8modes_s"] > 0)
    assert out["regen_p95_ms"] >= out["regen_p50_ms"]
    assert out["watched_frac_draws"] > 0, "the reader threads must actually have drawn during watched windows"
    assert set(out["per_round"]) >= set(RATIOS)
    assert isinstance(out["targets_missed"], list)
    assert not (tmp_path / "runs").exists(), "the benchmark's runs live in a temporary directory"


def test_table_marks_targets_and_missing_values():
    out = {"device": "cpu", "quick": True, "torch": "x", "cpu_threads": 2, "bench_s": 1.0,
           "ratio_mlp": 2.0, "ratio_dcgan": 1.0, "ring8_8modes_s": None, "ring8_10k_s": 40.0,
           "examples_mlp_img_s": 1000.0, "per_round": {"ratio_mlp": [1.5, 2.0, 2.5]}}
    lines = {line.split()[0]: line for line in bench.format_table(out).splitlines() if line.strip()}
    assert "ok" in lines["ratio_mlp"] and "1.50..2.50" in lines["ratio_mlp"]
    assert "MISSED" in lines["ratio_dcgan"]
    assert "None" in lines["ring8_8modes_s"] and "MISSED" in lines["ring8_8modes_s"]
    assert "estimated" in lines["ring8_10k_s"]
    assert lines["mlp"].split()[1] == "1,000" and lines["mlp"].split()[2] == "-"


def test_lessons_check_times_the_lessons_command_in_its_own_process():
    out = bench.lessons_check("cpu", ("--only", "strong-d,oscillation", "--steps", "10", "--seeds", "2"))
    assert out["lessons_check_s"] > 0 and out["lessons_jobs"] >= 1
    assert set(out["lessons_seconds"]) == {"strong-d", "oscillation"} and isinstance(out["lessons_passed"], bool)


def test_meets_rejects_missing_and_nan():
    assert bench._meets(1.6, ">=", 1.6) and bench._meets(50.0, "<=", 50.0)
    assert not bench._meets(None, ">=", 1.0) and not bench._meets(float("nan"), "<=", 1.0)
    assert not bench._meets(51.0, "<=", 50.0)


def test_baseline_loops_train_the_same_nets():
    """The examples-style loop and the bare loop each update both networks and count the samples they used."""
    torch.manual_seed(0)
    cfg = get_preset("mnist-mlp").config(device="cpu", g_layers=(16,), d_layers=(16,), batch_size=8)
    data = load_dataset(cfg)
    ex = ExamplesLoop(cfg, data, torch.device("cpu"))
    g0, d0 = [p.clone() for p in ex.G.parameters()], [p.clone() for p in ex.D.parameters()]
    assert ex.step() == 8
    assert any(not torch.equal(a, b) for a, b in zip(g0, ex.G.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(d0, ex.D.parameters()))
    real, label = next(ex.batches)
    assert real.shape == (8, 1, 28, 28) and real.min() >= -1 and real.max() <= 1, "ToTensor + Normalize(0.5, 0.5)"
    tr = Trainer(cfg, data, "cpu")
    g0 = [p.clone() for p in tr.g_params]
    assert bare_step(tr) == 8 and trainer_step(tr) == 8
    assert any(not torch.equal(a, b) for a, b in zip(g0, tr.g_params))
    assert all(p.requires_grad for p in tr.d_params), "D is unfrozen after G's update"


def test_time_to_digits_scores_fixed_noise_and_stops_its_clock_while_scoring():
    threads = torch.get_num_threads()
    out = time_to_digits("mnist-keras", cap_s=1.5, every=10)   # too short to reach readable digits
    curve = out["digits_curve"]
    assert out["digits_preset"] == "mnist-keras" and len(curve) >= 1
    assert [row[0] for row in curve] == list(range(10, 10 * len(curve) + 1, 10))   # a score every 10 steps
    assert all(a[1] < b[1] for a, b in zip(curve, curve[1:])) and curve[-1][1] >= 1.5
    assert all(0.0 < row[2] <= 1.0 and 1 <= row[3] <= 10 for row in curve)
    reached = [row for row in curve if row[2] >= 0.80 and row[3] == 10]
    assert out["digits_s"] == (reached[0][1] if reached else None)
    assert torch.get_num_threads() == threads                     # the race gives the threads back

"""ganlab.export_code: a run exported as a standalone PyTorch script (and notebook) reproduces the lab's run.

Each case trains a short real lab run on CPU (stats every step), exports it, runs the script as a subprocess
with TRAIN_STEPS (stop early; the lr schedule and noise annealing still run to the run's STEPS) and LOSS_LOG,
and compares every row with the run's history.jsonl. On CPU the script draws every random number in the
Trainer's order, so the rows come out bit-identical: 2D runs are asserted exactly equal (both train them on
one thread); image runs to rtol 1e-5, room for multi-threaded conv/matmul reductions that the lab's worker and
the script may split differently (measured here: max difference 0.0 for these too).
bf16 and CUDA graphs are GPU-only options: the script runs plain fp32 and says so in its header, so no test
here covers them. Runs are kept small (2 cores): the whole file takes about a minute.
"""
from __future__ import annotations

import ast
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ganlab import downloads, export, export_code
from ganlab.cli import main
from ganlab.config import TrainConfig, get_preset
from ganlab.registry import RunRegistry
from ganlab.store import RunStore

SMALL_2D = dict(g_layers=(32, 32), d_layers=(32, 32), batch_size=128)
SMALL_IMG = dict(batch_size=16, channels=8)
# (case, preset, overrides, lab steps, script steps): STEPS > TRAIN_STEPS where the lr decays, so the early
# stop is checked against the schedule of the whole run.
CASES = [
    ("ring8 nonsaturating+R1, lr decay", "ring8", {}, 300, 200),
    ("ring8 wgan-gp, 5 D steps", "ring8-wgan-gp", SMALL_2D, 160, 120),
    ("moons conditional lsgan, noise, smoothing, dropout, SN, uniform z, rmsprop/sgd", "ring8",
     dict(SMALL_2D, dataset="moons", conditional=True, loss="lsgan", instance_noise=0.3, label_smoothing=0.1,
          d_dropout=0.2, spectral_norm=True, noise_dist="uniform", g_opt="rmsprop", d_opt="sgd"), 150, 150),
    ("spiral hinge, 2 D steps", "ring8", dict(SMALL_2D, dataset="spiral", loss="hinge", d_steps=2), 100, 100),
    ("mnist-dcgan", "mnist-dcgan", SMALL_IMG, 20, 20),
    ("mnist-mlp", "mnist-mlp", dict(SMALL_IMG, g_layers=(64, 128), d_layers=(128, 64)), 20, 20),
    ("mnist-cgan wgan-gp (conditional DCGAN without BN)", "mnist-cgan", dict(SMALL_IMG, loss="wgan-gp"), 12, 12),
]
KEYS = ("loss_d", "loss_g", "d_real", "d_fake")


@pytest.fixture(scope="module")
def reg(tmp_path_factory) -> RunRegistry:
    return RunRegistry(tmp_path_factory.mktemp("runs"), executor="thread", quality_fn=None)


def lab_run(reg: RunRegistry, cfg: TrainConfig, name: str) -> RunStore:
    run = reg.create(cfg.replace(device="cpu", stats_every=1, snapshot_every=50, checkpoint_every=1000), name)
    run.join(180)
    assert run.state == "finished", run.message
    return run.store


def run_code(cmd: list[str], cwd: Path, steps: int) -> list[dict[str, float]]:
    env = {**os.environ, "TRAIN_STEPS": str(steps), "LOSS_LOG": "losses.csv", "MPLBACKEND": "Agg"}
    env.pop("PYTHONPATH", None)
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(open(cwd / "losses.csv"))]


def assert_matches(store: RunStore, rows: list[dict[str, float]], steps: int, exact: bool) -> None:
    """Every row equals the lab's: exactly for 2D runs (one thread, as the lab trains them), else to rtol 1e-5."""
    history = {h["step"]: h for h in store.read_rows("history")}
    assert [int(r["step"]) for r in rows] == list(range(1, steps + 1))
    mine = np.array([[r[k] for k in KEYS] for r in rows])
    lab = np.array([[history[int(r["step"])][k] for k in KEYS] for r in rows])
    np.testing.assert_allclose(mine, lab, rtol=0 if exact else 1e-5, atol=0 if exact else 1e-6)


@pytest.mark.parametrize("case, preset, changes, lab_steps, steps", CASES, ids=[c[0] for c in CASES])
def test_script_reproduces_the_lab_run(reg, tmp_path, case, preset, changes, lab_steps, steps):
    store = lab_run(reg, get_preset(preset).config(**changes, steps=lab_steps), case.split()[0])
    code = export_code.script_py(store.path)
    imports = [n for n in ast.walk(ast.parse(code)) if isinstance(n, (ast.Import, ast.ImportFrom))]
    modules = {(a.name if isinstance(n, ast.Import) else n.module).split(".")[0] for n in imports for a in n.names}
    assert modules <= {"gzip", "os", "struct", "typing", "numpy", "torch", "torchvision"}, modules
    (tmp_path / "train.py").write_bytes(code)
    rows = run_code([sys.executable, "train.py"], tmp_path, steps)
    assert_matches(store, rows, steps, exact=get_preset(preset).config().is_2d)


def test_csv_upload_is_embedded_and_reproduced(reg, tmp_path):
    rng = np.random.default_rng(3)
    data = tmp_path / "points.csv"
    data.write_text("x,y\n" + "".join(f"{a:.5f},{b:.5f}\n" for a, b in rng.normal(0, 20, (300, 2))))  # rescaled
    store = lab_run(reg, get_preset("ring8").config(**SMALL_2D, dataset="csv", data_path=str(data), steps=60), "csv")
    code = export_code.script_py(store.path)
    data.unlink()                                                  # embedded: the script needs no file
    (tmp_path / "train.py").write_bytes(code)
    assert_matches(store, run_code([sys.executable, "train.py"], tmp_path, 60), 60, exact=True)


def test_notebook_cells_run_in_order_and_reproduce(reg, tmp_path):
    store = lab_run(reg, get_preset("mnist-keras").config(**SMALL_IMG, g_layers=(64,), d_layers=(64,),
                                                          steps=15), "keras")
    nb = json.loads(export_code.notebook_ipynb(store.path))
    assert nb["nbformat"] == 4 and nb["metadata"]["kernelspec"]["language"] == "python"
    kinds = [c["cell_type"] for c in nb["cells"]]
    assert kinds[0] == "markdown" and kinds.count("code") == 6 and all(
        a == "markdown" for a, b in zip(kinds, kinds[1:]) if b == "code")     # a heading before each code cell
    titles = [c["source"][0].strip() for c in nb["cells"] if c["cell_type"] == "markdown"][1:]
    assert titles == ["## Settings", "## Data", "## Networks", "## Loss", "## Training", "## Samples"]
    code_cells = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]
    script = export_code.script_py(store.path).decode()
    assert all(cell in script for cell in code_cells)             # the same code as the script
    (tmp_path / "nb.ipynb").write_text(json.dumps(nb))
    runner = ("import json, sys\nns = {}\nfor i, c in enumerate(json.load(open(sys.argv[1]))['cells']):\n"
              "    if c['cell_type'] == 'code':\n"
              "        exec(compile(''.join(c['source']), f'cell {i}', 'exec'), ns)\n")
    rows = run_code([sys.executable, "-c", runner, "nb.ipynb"], tmp_path, 15)
    assert_matches(store, rows, 15, exact=False)
    assert np.load(tmp_path / "keras-samples.npy").shape == (64, 1, 28, 28)


def test_folder_data_and_big_csvs_are_refused_by_name(tmp_path):
    folder = RunStore.create(tmp_path, "imgs", TrainConfig(dataset="folder", data_path=str(tmp_path)))
    for what in ("script", "notebook"):
        with pytest.raises(export.ExportError, match="dataset 'folder'.*cannot be written as code"):
            downloads.export_bytes(folder.path, what)
    big = tmp_path / "big.csv"
    big.write_text("".join(f"{i},{i}\n" for i in range(6000)))
    cfg = TrainConfig(dataset="csv", data_path=str(big))
    assert "6,000 points" in export_code.refusal(cfg) or "5,999 points" in export_code.refusal(cfg)
    with pytest.raises(export.ExportError, match="at most 5,000"):
        export_code.script_py(RunStore.create(tmp_path, "big", cfg).path)
    assert export_code.refusal(get_preset("ring8").config()) is None
    assert main(["export", str(folder.path), "--what", "script", "--out", str(tmp_path / "x.py")]) == 2
    assert not (tmp_path / "x.py").exists()


def test_cli_writes_the_script_and_notebook(reg, tmp_path, capsys):
    store = lab_run(reg, get_preset("ring8").config(**SMALL_2D, steps=5, lr_decay="none"), "cli run")
    for what, name in (("script", "train_cli-run.py"), ("notebook", "train_cli-run.ipynb")):
        assert downloads.default_file_name("cli run", what) == name
        out = tmp_path / name
        assert main(["export", str(store.path), "--what", what, "--out", str(out)]) == 0
        assert out.read_bytes() == downloads.export_bytes(store.path, what)
    assert "notebook:" in capsys.readouterr().err
    compile((tmp_path / "train_cli-run.py").read_text(), "train_cli-run.py", "exec")


def test_runs_page_offers_both_downloads_or_says_why_not(tmp_path, monkeypatch, clean_cache):
    from apptest_util import open_page
    runs = tmp_path / "runs"
    good = lab_run(RunRegistry(runs, executor="thread", quality_fn=None),
                   get_preset("ring8").config(**SMALL_2D, steps=3), "good")
    bad = RunStore.create(runs, "imgs", TrainConfig(dataset="folder", data_path=str(tmp_path)))
    monkeypatch.setenv("GANLAB_RUNS_DIR", str(runs))
    for store, disabled in ((good, False), (bad, True)):
        at = open_page("pages/7_Runs.py", store.run_id).run()
        assert not at.exception
        buttons = {b.label: b for b in at.get("download_button")}
        for label in ("Training script (.py)", "Notebook (.ipynb)"):
            assert buttons[label].proto.disabled is disabled
        assert ("dataset 'folder'" in buttons["Notebook (.ipynb)"].proto.help) is disabled

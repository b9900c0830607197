"""ganlab.export: every export opens with a standard reader (PIL, csv, json, zipfile), the CLI writes the
same files, and TensorBoard export works or says how to enable it."""
from __future__ import annotations

import csv
import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ganlab import downloads, export
from ganlab.cli import main
from ganlab.config import TrainConfig, get_preset
from ganlab.registry import RunRegistry
from ganlab.snapshots import HISTORY_KEYS, Snapshot
from ganlab.store import RunStore

TINY = dict(steps=40, batch_size=64, g_layers=(16, 16), d_layers=(16, 16), stats_every=5, snapshot_every=10,
            checkpoint_every=20)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """One finished tiny ring8 run (40 steps, 5 snapshots, 8 history rows)."""
    reg = RunRegistry(tmp_path_factory.mktemp("runs"))
    run = reg.create(get_preset("ring8").config(**TINY), "ring tiny")
    run.join(120)
    assert run.state == "finished", run.message
    return run.store.path


@pytest.fixture
def image_store(tmp_path) -> RunStore:
    """A run directory holding two synthetic image snapshots (no training: only the files matter here)."""
    store = RunStore.create(tmp_path, "digits", TrainConfig(dataset="mnist5k", model="mlp"))
    rng = np.random.default_rng(0)
    for step in (0, 100):
        store.save_snapshot(Snapshot(step=step, epoch=step // 50, time=0.0,
                                     fake=rng.uniform(-1, 1, (16, 1, 28, 28)).astype(np.float32)))
    return store


def test_grid_png_of_an_image_run_is_the_montage(image_store):
    img = Image.open(io.BytesIO(export.grid_png(image_store)))
    # 16 digits -> 4x4 grid of 28px + 1px padding, enlarged x2
    assert img.format == "PNG" and img.size == ((4 * 29 + 1) * 2, (4 * 29 + 1) * 2)
    first = Image.open(io.BytesIO(export.grid_png(image_store, step=50)))   # nearest at or before 50: step 0
    assert np.asarray(first).tolist() != np.asarray(img).tolist()


def test_png_and_gif_of_a_2d_run_decode(run_dir):
    png = Image.open(io.BytesIO(downloads.export_bytes(run_dir, "png")))
    assert png.format == "PNG" and png.mode == "RGB" and png.size == (320, 320)
    gif = Image.open(io.BytesIO(export.evolution_gif(run_dir)))
    assert gif.format == "GIF" and gif.n_frames == len(RunStore(run_dir).snapshot_steps()) == 5


def test_gif_is_thinned_to_max_frames_keeping_first_and_last(image_store):
    rng = np.random.default_rng(1)
    snaps = [Snapshot(step=i, epoch=0, time=0.0, fake=rng.uniform(-1, 1, (4, 1, 8, 8)).astype(np.float32))
             for i in range(10)]
    gif = Image.open(io.BytesIO(export.snapshots_gif(snaps, max_frames=3)))
    assert gif.n_frames == 3
    gif.seek(2)
    assert np.array_equal(np.asarray(gif.convert("L")), export.snapshot_picture(snaps[-1]))   # the last one
    with pytest.raises(export.ExportError, match="no snapshots"):
        export.snapshots_gif([])


def test_metrics_csv_has_a_header_and_every_row(run_dir):
    rows = list(csv.DictReader(io.StringIO(export.metrics_csv(run_dir).decode())))
    history = RunStore(run_dir).read_rows("history")
    assert len(rows) == len(history) == 8
    plain = [k for k in HISTORY_KEYS if k != "single"]   # "single" marks rows of the step buttons only
    assert list(rows[0])[:len(plain)] == plain
    assert [int(r["step"]) for r in rows] == [h["step"] for h in history]
    assert float(rows[-1]["loss_d"]) == pytest.approx(history[-1]["loss_d"])
    assert rows[0]["wdist"] == ""                             # NaN (not a WGAN run) is an empty cell


def test_rows_csv_keeps_extra_columns_and_blanks_missing_values():
    text = export.rows_csv([{"step": 1, "loss_d": float("nan"), "modes": 3}, {"step": 2, "extra": "x"}],
                           first=("step", "loss_d")).decode()
    rows = list(csv.reader(io.StringIO(text)))
    assert rows == [["step", "loss_d", "modes", "extra"], ["1", "", "3", ""], ["2", "", "", "x"]]


def test_config_json_round_trips(run_dir):
    cfg = TrainConfig.from_dict(json.loads(export.config_json(run_dir)))
    assert cfg == RunStore(run_dir).read_config() and cfg.steps == 40


def test_zip_holds_the_whole_run_without_temp_files(run_dir):
    temp = run_dir / ".history.jsonl.123.456.tmp"              # an atomic write caught half-way
    temp.write_bytes(b"half")
    try:
        names = zipfile.ZipFile(io.BytesIO(export.run_zip(run_dir))).namelist()
    finally:
        temp.unlink()
    rid = run_dir.name
    assert f"{rid}/config.json" in names and f"{rid}/status.json" in names and f"{rid}/history.jsonl" in names
    assert any(n.startswith(f"{rid}/checkpoints/step-") for n in names)
    assert len([n for n in names if n.startswith(f"{rid}/snapshots/")]) == 5
    assert not any(n.endswith(".tmp") for n in names)
    with zipfile.ZipFile(io.BytesIO(export.run_zip(run_dir))) as zf:
        assert json.loads(zf.read(f"{rid}/config.json"))["steps"] == 40


@pytest.mark.parametrize("what", ["png", "gif", "csv", "json", "zip", "report"])
def test_cli_export_writes_the_file(run_dir, tmp_path, what):
    out = tmp_path / f"out.{what}"
    assert main(["export", str(run_dir), "--what", what, "--out", str(out)]) == 0
    data = out.read_bytes()
    if what in ("png", "gif"):
        assert Image.open(out).format == what.upper()
    elif what == "zip":
        assert f"{run_dir.name}/config.json" in zipfile.ZipFile(out).namelist()
    elif what == "report":   # the class report: one HTML page naming the run (its content: tests/test_report.py)
        assert data.startswith(b"<!DOCTYPE html>") and run_dir.name.encode() in data
        assert downloads.default_file_name("ring 8", "report") == "ring-8-report.html"
    else:
        assert data == downloads.export_bytes(run_dir, what)


def test_cli_export_refuses_bad_input_with_one_line(run_dir, tmp_path, capsys):
    assert main(["export", str(tmp_path), "--what", "csv", "--out", str(tmp_path / "x.csv")]) == 2
    assert "not a run directory" in capsys.readouterr().err
    assert main(["export", str(run_dir), "--what", "pdf", "--out", str(tmp_path / "x")]) == 2
    assert main(["export", str(run_dir), "--what", "csv", "--out", str(tmp_path / "no" / "x.csv")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_tensorboard_export_writes_events_or_explains(run_dir, tmp_path, capsys):
    out = tmp_path / "tb"
    code = main(["export", str(run_dir), "--what", "tensorboard", "--out", str(out)])
    if not export.tensorboard_available():
        assert code == 2 and "pip install tensorboard" in capsys.readouterr().err
        with pytest.raises(export.ExportError, match="pip install tensorboard"):
            export.tensorboard_zip(run_dir)
        return
    assert code == 0 and list(out.glob("events.out.tfevents.*"))
    assert zipfile.ZipFile(io.BytesIO(export.tensorboard_zip(run_dir))).namelist()


def test_default_file_names_never_hold_a_path():
    assert "/" not in downloads.default_file_name("my run/../x", "png", 40)
    assert downloads.default_file_name("ring 8", "png", 40) == "ring-8-step40.png"
    assert downloads.default_file_name("ring", "zip") == "ring.zip"

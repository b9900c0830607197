"""Tests for ganlab.store: atomic writes, torn JSON lines, run-id and name checks, checkpoint pruning, and a
checkpoint loader that refuses anything but tensors and numbers (a crafted pickle must not run code)."""
from __future__ import annotations

import io
import json
import os
import re
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from ganlab.config import TrainConfig
from ganlab.snapshots import Snapshot
from ganlab.store import (
    MAX_NAME,
    RunStore,
    StoreError,
    atomic_write,
    clean_name,
    load_checkpoint,
    read_jsonl,
    safe_run_dir,
)

torch.set_num_threads(1)


def leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.rglob("*") if p.name.endswith(".tmp")]


def tiny_state(step: int = 0) -> dict:
    return {"config": TrainConfig().to_dict(), "G": {"w": torch.ones(2)}, "D": {"w": torch.zeros(2)},
            "step": step}


class Exploit:
    """Unpickling this calls os.system: exactly what a hostile 'checkpoint' upload would carry."""

    def __init__(self, target: Path):
        self.target = target

    def __reduce__(self):
        return (os.system, (f"touch {self.target}",))


# --- files ---------------------------------------------------------------------------------------------
def test_atomic_write_replaces_whole_file_and_leaves_no_temp(tmp_path):
    path = tmp_path / "status.json"
    atomic_write(path, b"first")
    atomic_write(path, b"second, longer")
    assert path.read_bytes() == b"second, longer"
    assert leftovers(tmp_path) == []


def test_atomic_write_from_many_threads_keeps_one_whole_file(tmp_path):
    path = tmp_path / "config.json"
    errors: list[BaseException] = []

    def writer(i: int) -> None:
        try:
            for _ in range(50):
                atomic_write(path, json.dumps({"writer": i, "pad": "x" * 1000}).encode())
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)
    threads = [threading.Thread(target=writer, args=(i,)) for i in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    assert json.loads(path.read_text())["writer"] in range(4)
    assert leftovers(tmp_path) == []


def test_read_jsonl_skips_torn_and_corrupt_lines(tmp_path):
    path = tmp_path / "history.jsonl"
    path.write_text('{"step": 1}\n[1, 2]\nnot json\n{"step": 2}\n{"step": 3, "loss')   # crash mid-append
    assert read_jsonl(path) == [{"step": 1}, {"step": 2}]
    assert read_jsonl(tmp_path / "missing.jsonl") == []


def test_append_after_a_torn_line_keeps_the_new_rows(tmp_path):
    store = RunStore.create(tmp_path, "torn", TrainConfig())
    store.append_rows("history", [{"step": 1}])
    with open(store.path / "history.jsonl", "a") as f:
        f.write('{"step": 2, "lo')                          # the process died here
    store.append_rows("history", [{"step": 3}, {"step": 4}])
    assert [r["step"] for r in store.read_rows("history")] == [1, 3, 4]


def test_rows_keep_nan(tmp_path):
    store = RunStore.create(tmp_path, "nan", TrainConfig())
    store.append_rows("history", [{"step": 1, "loss_g": float("nan")}])
    (row,) = store.read_rows("history")
    assert np.isnan(row["loss_g"])


# --- names and ids --------------------------------------------------------------------------------------
@pytest.mark.parametrize("run_id", ["../x", "..", "/etc", "/tmp/x", "", "a/b", ".hidden", "x..y", "a" * 101, None])
def test_safe_run_dir_rejects_escapes(tmp_path, run_id):
    with pytest.raises(StoreError):
        safe_run_dir(tmp_path, run_id)


def test_safe_run_dir_accepts_plain_ids(tmp_path):
    assert safe_run_dir(tmp_path, "20240101-120000-ring8") == (tmp_path / "20240101-120000-ring8").resolve()


def test_clean_name_limits():
    assert clean_name("  my run\x00\x07 ") == "my run"
    assert clean_name("é" * MAX_NAME) == "é" * MAX_NAME
    for bad in ("", "   ", "\x00\x01", "x" * (MAX_NAME + 1), 5):
        with pytest.raises(StoreError):
            clean_name(bad)


def test_create_makes_unique_safe_directories(tmp_path):
    cfg = TrainConfig()
    a = RunStore.create(tmp_path, "../../evil name", cfg)
    b = RunStore.create(tmp_path, "../../evil name", cfg)
    assert a.path != b.path
    for store in (a, b):
        assert store.path.parent == tmp_path and ".." not in store.run_id
        assert store.read_config() == cfg
        status = store.read_status()
        assert status["state"] == "created" and status["name"] == "../../evil name"
    assert leftovers(tmp_path) == []


def test_run_ids_sort_in_creation_order_with_no_wait(tmp_path):
    """Ids carry milliseconds and strictly increase within a process: no sleep between creations."""
    names = ["zeta", "alpha", "mid", "alpha", "a"]
    ids = [RunStore.create(tmp_path, name, TrainConfig()).run_id for name in names]
    assert sorted(ids) == ids and len(set(ids)) == len(ids)
    for rid, name in zip(ids, names):
        assert re.fullmatch(rf"\d{{8}}-\d{{6}}-\d{{3}}-{name}", rid), rid


def test_second_resolution_ids_still_load_and_list_by_creation(tmp_path):
    from ganlab.registry import RunRegistry

    old = RunStore.create(tmp_path, "old", TrainConfig())
    legacy = tmp_path / "20240101-120000-old"     # the id format before milliseconds
    old.path.rename(legacy)
    new = RunStore.create(tmp_path, "new", TrainConfig())
    reg = RunRegistry(tmp_path)
    assert [r.id for r in reg.list()] == [new.run_id, legacy.name]
    assert reg.get(legacy.name).name == "old" and sorted([new.run_id, legacy.name])[0] == legacy.name


def test_status_update_and_unreadable_config(tmp_path):
    store = RunStore.create(tmp_path, "s", TrainConfig())
    store.update_status(state="running", step=5)
    status = store.read_status()
    assert status["state"] == "running" and status["step"] == 5 and status["name"] == "s"
    (store.path / "config.json").write_text("{broken")
    with pytest.raises(StoreError, match="config.json"):
        store.read_config()
    (store.path / "status.json").write_text("[]")
    assert store.read_status() == {}


def test_snapshot_round_trip(tmp_path):
    store = RunStore.create(tmp_path, "snap", TrainConfig())
    snap = Snapshot(step=7, epoch=1, time=1.5, fake=np.zeros((4, 2), np.float32), hist_real=np.arange(3),
                    score_label="critic score")
    store.save_snapshot(snap)
    (store.snap_dir / "s000000009.npz").write_bytes(b"garbage")   # a damaged file is skipped, not fatal
    assert store.snapshot_steps() == [7, 9]
    (loaded,) = list(store.iter_snapshots())
    assert loaded.step == 7 and loaded.score_label == "critic score" and loaded.is_2d
    assert np.array_equal(loaded.hist_real, np.arange(3))


# --- checkpoints ----------------------------------------------------------------------------------------
def test_checkpoint_pruning_keeps_last_n_and_milestones(tmp_path):
    store = RunStore.create(tmp_path, "ckpt", TrainConfig())
    for step in range(0, 2600, 100):                       # 26 checkpoints, every 100 steps
        store.save_checkpoint(tiny_state(step), step, keep=3, milestone_steps=1000)
    kept = store.checkpoint_steps()
    assert kept == [0, 1000, 2000, 2300, 2400, 2500], "the last 3 plus every 10th (by step) survive"
    for step in (2600, 2700, 2800, 2900):                  # milestones outlive later pruning
        store.save_checkpoint(tiny_state(step), step, keep=3, milestone_steps=1000)
    assert store.checkpoint_steps() == [0, 1000, 2000, 2700, 2800, 2900]
    store.save_checkpoint(tiny_state(3000), 3000, keep=2)   # no milestones: only the last 2
    assert store.checkpoint_steps() == [2900, 3000]
    assert leftovers(tmp_path) == []


def test_checkpoint_path_picks_nearest_at_or_before(tmp_path):
    store = RunStore.create(tmp_path, "ckpt", TrainConfig())
    assert store.checkpoint_path() is None
    for step in (0, 10, 20):
        store.save_checkpoint(tiny_state(step), step, keep=10)
    assert store.checkpoint_path().name == "step-000000020.pt"
    assert store.checkpoint_path(15).name == "step-000000010.pt"
    assert store.checkpoint_path(10).name == "step-000000010.pt"
    state = load_checkpoint(store.checkpoint_path(15))
    assert state["step"] == 10 and torch.equal(state["G"]["w"], torch.ones(2))


def test_load_checkpoint_accepts_bytes_and_refuses_missing_file(tmp_path):
    buf = io.BytesIO()
    torch.save(tiny_state(3), buf)
    assert load_checkpoint(buf.getvalue())["step"] == 3
    with pytest.raises(StoreError, match="cannot open"):
        load_checkpoint(tmp_path / "nope.pt")


@pytest.mark.parametrize("zipfile_format", [True, False])
def test_load_checkpoint_refuses_a_pickle_that_runs_code(tmp_path, zipfile_format):
    target = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    state = {**tiny_state(), "extra": Exploit(target)}
    torch.save(state, path, _use_new_zipfile_serialization=zipfile_format)
    with pytest.raises(StoreError, match="refused") as info:
        load_checkpoint(path)
    assert "posix.system" in str(info.value) or "os.system" in str(info.value), "name what was blocked"
    assert "weights_only" not in str(info.value), "never advise loading unsafely"
    with pytest.raises(StoreError):
        load_checkpoint(path.read_bytes())
    assert not target.exists(), "loading a checkpoint executed code from it"


@pytest.mark.parametrize("content", [b"", b"\x00garbage\xff" * 50, b"PK\x03\x04broken zip"])
def test_load_checkpoint_refuses_garbage(tmp_path, content):
    path = tmp_path / "bad.pt"
    path.write_bytes(content)
    with pytest.raises(StoreError, match="not a ganlab checkpoint"):
        load_checkpoint(path)


@pytest.mark.parametrize("obj", [{"D": {}, "config": {}}, {"G": {}}, [1, 2, 3], torch.zeros(3)])
def test_load_checkpoint_refuses_valid_torch_files_that_are_not_checkpoints(tmp_path, obj):
    path = tmp_path / "other.pt"
    torch.save(obj, path)
    with pytest.raises(StoreError, match="not a ganlab checkpoint"):
        load_checkpoint(path)

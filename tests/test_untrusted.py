"""Untrusted input from a classroom: run names and ids, uploaded checkpoint bytes, CSV files, server settings.

Complements tests/test_store.py (safe_run_dir and clean_name on their own, crafted reduce payloads in both
torch formats, garbage bytes), tests/test_data.py (CSV rows, hostile zips) and tests/test_persistence.py
(crafted upload refused, CLI exit code): here the same inputs go through the paths a user reaches (registry,
upload check, URL parameter) and every refusal must leave nothing behind on disk.
"""
from __future__ import annotations

import io
import random
import time
import tomllib
import zipfile
from pathlib import Path

import pytest
import torch
from streamlit.testing.v1 import AppTest

from ganlab.config import TrainConfig, get_preset
from ganlab.data import load_dataset
from ganlab.dataset import DataError
from ganlab.lineage import check_upload, create_from_upload
from ganlab.registry import RunRegistry, get_registry
from ganlab.store import RUN_ID_RE, StoreError, load_checkpoint

torch.set_num_threads(1)

REPO = Path(__file__).resolve().parent.parent
SMALL = dict(steps=5, batch_size=16, g_layers=(8,), d_layers=(8,), noise_dim=2, stats_every=1,
             snapshot_every=5, checkpoint_every=5, device="cpu")


def files_under(path: Path) -> set[str]:
    return {str(p.relative_to(path)) for p in path.rglob("*")}


def one_line_and_short(message: str, limit: int = 400) -> None:
    assert message and len(message) <= limit and "\n" not in message, message
    assert "Traceback" not in message and "weights_only=False" not in message, message


@pytest.fixture
def reg(tmp_path: Path):
    registry = RunRegistry(tmp_path / "runs", max_active=2)
    yield registry
    registry.shutdown(timeout=20)


# --- run names and ids -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", [
    "../../../../tmp/evil", "/etc/passwd", "/", "..", ".", "a/b\\c", "C:\\Windows\\system32", "nul\x00byte",
    "\x00\x00x", "line\nbreak\ttab", "🙂🔥 run", "ラン", "%2e%2e%2f", "CON", "  spaced  ", "-rf", "$(rm -rf ~)",
    "x" * 80,
])
def test_hostile_run_names_give_a_safe_directory_inside_the_runs_dir(reg: RunRegistry, name: str) -> None:
    run = reg.create(TrainConfig(**SMALL), name, start=False)
    runs_dir = Path(reg.runs_dir).resolve()
    path = Path(run.store.path).resolve()
    assert path.parent == runs_dir and RUN_ID_RE.match(path.name) and ".." not in path.name
    assert run.name.isprintable() and 0 < len(run.name) <= 80
    assert [r.id for r in RunRegistry(reg.runs_dir).list()] == [run.id], "the run reopens under its safe id"
    assert sorted(p.name for p in runs_dir.parent.iterdir()) == ["runs"], "nothing written beside the runs dir"


@pytest.mark.parametrize("name, needle", [
    ("x" * 10_000, "longer than 80"), ("   ", "empty"), ("\x00\x01\x02", "empty"), (None, "text"),
])
def test_unusable_run_names_are_refused_with_a_message_and_no_directory(reg: RunRegistry, name, needle) -> None:
    with pytest.raises(StoreError, match=needle) as info:
        reg.create(TrainConfig(**SMALL), name if name is not None else 5, start=False)   # 5: not text at all
    one_line_and_short(str(info.value))
    assert list(Path(reg.runs_dir).iterdir()) == []


def test_rename_refuses_bad_names_and_keeps_the_old_one(reg: RunRegistry) -> None:
    run = reg.create(TrainConfig(**SMALL), "kept", start=False)
    for bad in ("x" * 10_000, "\x00", "   "):
        with pytest.raises(StoreError):
            reg.rename(run.id, bad)
    assert run.name == "kept" and RunRegistry(reg.runs_dir).get(run.id).name == "kept"
    reg.rename(run.id, "../../new\x00 name")
    assert RunRegistry(reg.runs_dir).get(run.id).name == "../../new name"   # a display name, never a path
    assert [p.name for p in Path(reg.runs_dir).iterdir()] == [run.id]


@pytest.mark.parametrize("run_id", ["../outside", "..", "/etc", "%2e%2e", "outside/../..", "", ".", "a" * 500])
def test_hostile_run_ids_never_reach_outside_the_runs_dir(reg: RunRegistry, tmp_path: Path, run_id: str) -> None:
    outside = tmp_path / "outside"                 # a real run directory next to the runs dir, not inside it
    outside.mkdir()
    (outside / "config.json").write_text(TrainConfig(**SMALL).to_json())
    with pytest.raises((StoreError, KeyError)):
        reg.get(run_id)
    with pytest.raises((StoreError, KeyError)):
        reg.delete(run_id)
    with pytest.raises((StoreError, KeyError)):
        reg.rename(run_id, "pwned")
    assert (outside / "config.json").is_file() and sorted(p.name for p in outside.iterdir()) == ["config.json"]


def test_a_hostile_run_in_the_url_opens_no_run_and_no_error(tmp_path, monkeypatch, clean_cache) -> None:
    runs = tmp_path / "runs"
    monkeypatch.setenv("GANLAB_RUNS_DIR", str(runs))
    reg = get_registry(runs)
    try:
        for run_id in ("../../etc/passwd", "%00", "x" * 5000):
            at = AppTest.from_file(str(REPO / "pages/1_Train.py"), default_timeout=60)
            at.query_params["run"] = run_id
            at.run()
            assert not at.exception, [e.value for e in at.exception]
            assert any("No run selected" in i.value for i in at.info)
            assert at.session_state["run_id"] is None
    finally:
        reg.shutdown(timeout=10)


# --- uploaded checkpoints ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def good_checkpoint(tmp_path_factory) -> bytes:
    registry = RunRegistry(tmp_path_factory.mktemp("src") / "runs")
    try:
        run = registry.create(get_preset("ring8").config(**SMALL), "source")
        run.join(60)
        assert run.state == "finished", run.message
        return run.store.checkpoint_path().read_bytes()
    finally:
        registry.shutdown(timeout=20)


def _saved(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def laughs_config(good: bytes, depth: int = 40) -> bytes:
    """A real checkpoint whose config holds a list of 2**depth leaves built from shared references: a few
    hundred bytes on disk, but anything that walks it in full (a repr for an error message) never finishes."""
    x: list = [0]
    for _ in range(depth):
        x = [x, x]
    state = load_checkpoint(good)
    return _saved({**state, "config": {**state["config"], "g_layers": x}})


def storage_size_bomb() -> bytes:
    """A real checkpoint whose tensor claims 3 billion elements while its data record holds 16 bytes."""
    buf = io.BytesIO(_saved({"G": {"w": torch.ones(4)}, "D": {}, "config": {}}))
    out = io.BytesIO()
    huge = b"\x8a\x05" + (3_000_000_000).to_bytes(5, "little")      # LONG1: a 5-byte integer
    with zipfile.ZipFile(buf) as zin, zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename.endswith("data.pkl"):
                patched = data.replace(b"K\x04tq\tQK\x00K\x04\x85", huge + b"tq\tQK\x00" + huge + b"\x85")
                assert patched != data, "torch changed its pickle layout; update this payload"
                data = patched
            zout.writestr(info, data)
    return out.getvalue()


def deep_pickle(depth: int = 200_000) -> bytes:
    """A plain (legacy-format-free) pickle of lists nested 200,000 deep: no recursion in the unpickler."""
    return b"\x80\x02" + b"]" * depth + b"a" * (depth - 1) + b"."


PAYLOADS = {
    "billion laughs in the config": laughs_config,
    "storage claims 3e9 elements": lambda g: storage_size_bomb(),
    "nested 200k deep": lambda g: deep_pickle(),
    "truncated at 10%": lambda g: g[: len(g) // 10],
    "truncated at 50%": lambda g: g[: len(g) // 2],
    "truncated by one byte": lambda g: g[:-1],
    "random bytes": lambda g: random.Random(0).randbytes(5000),
    "random bytes after a zip header": lambda g: b"PK\x03\x04" + random.Random(1).randbytes(5000),
    "a zip of text": lambda g: _zip_of({"archive/data.pkl": b"hello"}),
    "a tensor, not a dict": lambda g: _saved(torch.zeros(3)),
    "config not a mapping": lambda g: _saved({**load_checkpoint(g), "config": [1, 2]}),
    "weights of another shape": lambda g: _saved({**load_checkpoint(g), "G": {"net.0.weight": torch.zeros(2, 2)}}),
}


def _zip_of(entries: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for name, data in entries.items():
            z.writestr(name, data)
    return out.getvalue()


@pytest.mark.parametrize("kind", list(PAYLOADS))
def test_hostile_uploads_are_refused_quickly_with_no_side_effect(reg: RunRegistry, good_checkpoint: bytes,
                                                                 tmp_path: Path, kind: str) -> None:
    data = PAYLOADS[kind](good_checkpoint)
    before = files_under(tmp_path)
    t0 = time.monotonic()
    with pytest.raises(StoreError) as info:
        check_upload(data)
    assert time.monotonic() - t0 < 20, f"{kind}: took {time.monotonic() - t0:.0f} s to refuse"
    one_line_and_short(str(info.value))
    assert files_under(tmp_path) == before, "refusing an upload wrote files"
    assert reg.list() == []


def test_a_good_upload_with_a_hostile_file_name_makes_a_safe_run(reg: RunRegistry, good_checkpoint: bytes) -> None:
    upload = check_upload(good_checkpoint)
    for file_name in ("../../../etc/passwd.pt", "x" * 300 + ".pt", "\x00\x01.pt", ".pt", "🙂.pt"):
        run = create_from_upload(reg, upload, file_name, explore=True)
        assert Path(run.store.path).resolve().parent == Path(reg.runs_dir).resolve()
        assert 0 < len(run.name) <= 80 and run.name.isprintable()
        assert len(run.parent["checkpoint"]) <= 200
        run.stop(wait=30)


# --- CSV files -------------------------------------------------------------------------------------------------
def csv_cfg(path: Path) -> TrainConfig:
    return TrainConfig(dataset="csv", data_path=str(path))


GOOD_ROWS = "".join(f"{i * 0.1},{-i * 0.2}\n" for i in range(12))


@pytest.mark.parametrize("content, needle", [
    (GOOD_ROWS + "1,inf\n", "line 13"),
    (GOOD_ROWS + "1e400,2\n", "line 13"),                      # parses to inf
    (GOOD_ROWS + "1,2\x003\n", "line 13"),                    # a NUL inside a row
    (GOOD_ROWS + "9" * 1_000_000 + ",1,2\n", "line 13"),       # a 1 MB row: named, not echoed in full
    ("x,y\r\n" + GOOD_ROWS.replace("\n", "\r\n") + "1;2;3\r\n", "line 14"),
    (GOOD_ROWS + '"1","2"\n', "line 13"),                      # quoted values are not numbers here
    ("x,y\n", "at least 10 points"),
])
def test_csv_bad_rows_name_the_line_in_a_short_message(tmp_path: Path, content: str, needle: str) -> None:
    path = tmp_path / "points.csv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataError, match=needle) as info:
        load_dataset(csv_cfg(path))
    one_line_and_short(str(info.value), limit=len(str(path)) + 200)


@pytest.mark.parametrize("content", [b"\xff\xfe\x00\x01" * 100, random.Random(2).randbytes(2000) + b"\xff"])
def test_binary_csv_is_refused_with_a_reason(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "photo.csv"
    path.write_bytes(content)
    with pytest.raises(DataError) as info:
        load_dataset(csv_cfg(path))
    assert "photo.csv" in str(info.value)
    one_line_and_short(str(info.value), limit=len(str(path)) + 300)


def test_csv_path_tricks_are_clear_errors(tmp_path: Path) -> None:
    for raw, needle in ((str(tmp_path), "cannot read"), ("~nosuchuser-ganlab/p.csv", "no such CSV file"),
                        (str(tmp_path / "a\x00b.csv"), "no such CSV file")):
        with pytest.raises(DataError, match=needle):
            load_dataset(TrainConfig(dataset="csv", data_path=raw))


# --- server settings -----------------------------------------------------------------------------------------------
def test_server_listens_on_localhost_and_caps_uploads() -> None:
    conf = tomllib.loads((REPO / ".streamlit" / "config.toml").read_text())
    server = conf["server"]
    assert server["address"] in ("localhost", "127.0.0.1"), "a classroom opt-in, never the default"
    assert isinstance(server["maxUploadSize"], int) and 1 <= server["maxUploadSize"] <= 200
    assert conf.get("browser", {}).get("gatherUsageStats") is False

"""One damaged run directory never blanks a page or the runs list (tabulated kinds of damage).

Each case damages one file of a real finished run, next to an intact one, then: a fresh registry lists the
intact run; the damaged one is either listed and drawable or named under `unreadable` with a reason (and can be
deleted); the Home, Runs and Train pages render without an exception.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from apptest_util import open_page
from engine_util import tiny

from ganlab.registry import RunRegistry


def _deep(n: int) -> str:
    return "[" * n + "]" * n


DAMAGE = {
    "status.json truncated": lambda d: _cut(d / "status.json"),
    "status.json step null": lambda d: _edit(d / "status.json", step=None, epoch=None),
    "status.json name a number": lambda d: _edit(d / "status.json", name=12345),
    "status.json unknown state": lambda d: _edit(d / "status.json", state="exploded"),
    "status.json a list": lambda d: (d / "status.json").write_text("[1, 2, 3]"),
    "status.json nested 5000 deep": lambda d: (d / "status.json").write_text(_deep(5000)),
    "status.json parent a string": lambda d: _edit(d / "status.json", parent="x"),
    "parent an uploaded file (no name)": lambda d: _edit(d / "status.json", parent={"checkpoint": "x.pt", "step": 3}),
    "parent a CLI checkpoint path": lambda d: _edit(d / "status.json", parent={"checkpoint": "/tmp/a.pt"}),
    "status.json missing": lambda d: (d / "status.json").unlink(),
    "config.json nested 5000 deep": lambda d: (d / "config.json").write_text('{"steps": ' + _deep(5000) + "}"),
    "config.json truncated": lambda d: _cut(d / "config.json"),
    "config.json invalid value": lambda d: _edit(d / "config.json", batch_size=-1),
    "config.json a list": lambda d: (d / "config.json").write_text("[]"),
    "history step null": lambda d: _append(d / "history.jsonl", {"step": None, "loss_d": "x"}),
    "history binary garbage": lambda d: (d / "history.jsonl").write_bytes(bytes(range(256)) * 20),
    "history rows are lists": lambda d: (d / "history.jsonl").write_text("[1]\n[2]\n"),
    "history nested 5000 deep": lambda d: (d / "history.jsonl").write_text(_deep(5000) + "\n"),
    "quality garbage": lambda d: (d / "quality.jsonl").write_text('{"step": [1], "modes_covered": "x"}\n{\n'),
    "snapshot truncated": lambda d: _cut(max((d / "snapshots").glob("*.npz"))),
    "snapshot of another shape": lambda d: _wrong_snapshot(d),
    "snapshots dir is a file": lambda d: (shutil.rmtree(d / "snapshots"), (d / "snapshots").write_text("x")),
    "checkpoints dir missing": lambda d: shutil.rmtree(d / "checkpoints"),
    "generator.pt garbage": lambda d: (d / "generator.pt").write_bytes(b"garbage"),
}


def _cut(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _edit(path: Path, **changes) -> None:
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


def _append(path: Path, row: dict) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(row) + "\n")


def _wrong_snapshot(d: Path) -> None:
    import numpy as np

    from ganlab.snapshots import Snapshot
    (d / "snapshots" / "s000099999.npz").write_bytes(
        Snapshot(step=99999, epoch=0, time=0.0, fake=np.zeros((3, 3, 3))).to_bytes())


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("src") / "runs"
    reg = RunRegistry(root, executor="thread")
    for name in ("intact", "damaged"):
        run = reg.create(tiny(steps=60), name)
        run.join(60)
        assert run.state == "finished", run.message
    return root


@pytest.mark.parametrize("kind", list(DAMAGE))
def test_one_damaged_run_leaves_every_page_working(kind, source, tmp_path, monkeypatch, clean_cache) -> None:
    root = tmp_path / "runs"
    shutil.copytree(source, root)
    dirs = [p for p in root.iterdir() if (p / "status.json").is_file()]
    by_name = {json.loads((p / "status.json").read_text())["name"]: p for p in dirs}
    DAMAGE[kind](by_name["damaged"])
    monkeypatch.setenv("GANLAB_RUNS_DIR", str(root))
    reg = RunRegistry(root)
    runs = {r.id: r for r in reg.list()}
    intact = by_name["intact"].name
    assert intact in runs and runs[intact].state == "finished" and runs[intact].step == 60
    damaged = by_name["damaged"].name
    if damaged in runs:
        view = runs[damaged].view()
        assert view.state in ("finished", "interrupted", "failed", "created"), view.state
        assert all(s.fake.ndim == 2 for s in view.snapshots)
    else:
        assert damaged in reg.unreadable and reg.unreadable[damaged], "named with a reason"
    for script, run_id in (("app.py", None), ("pages/7_Runs.py", damaged), ("pages/1_Train.py", damaged),
                           ("pages/4_Discriminator.py", damaged), ("pages/2_Samples.py", damaged),
                           ("pages/3_Latent.py", damaged)):
        at = open_page(script, run_id).run()
        assert not at.exception, (kind, script, [e.value for e in at.exception])
    if damaged not in runs:
        reg.delete(damaged)
        assert not (root / damaged).exists() and intact in {r.id for r in reg.list()}

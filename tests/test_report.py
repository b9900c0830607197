"""ganlab.report: the class report of a run is one offline HTML file whose charts hold the run's real values,
whose pictures decode to the exported grids, with the quality labels, diagnoses and lineage; a run without
history still gets a report, a damaged one a clear ExportError."""
from __future__ import annotations

import base64
import io
import json
import shutil
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from plotly.offline import get_plotlyjs

from ganlab import export
from ganlab.config import TrainConfig, get_preset
from ganlab.figures import MAX_CHART_POINTS
from ganlab.registry import RunRegistry
from ganlab.report import STRIP_FRAMES, report_html
from ganlab.store import RunStore

TINY = dict(steps=40, batch_size=64, g_layers=(16, 16), d_layers=(16, 16), stats_every=5, snapshot_every=10,
            checkpoint_every=20)
DIGITS = TrainConfig(dataset="mnist5k", model="mlp", g_layers=(32,), d_layers=(32,), noise_dim=8, batch_size=32,
                     steps=40, stats_every=5, snapshot_every=20, checkpoint_every=40, grid_size=16, device="cpu",
                     lr_decay="none")


class Page(HTMLParser):
    """The parts of a report the tests look at: tags with their attributes, script bodies, visible text."""

    def __init__(self, data: bytes):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.scripts: list[str] = []
        self.text: list[str] = []
        self._in_script = False
        self.feed(data.decode("utf-8"))
        self.plain = " ".join(" ".join(self.text).split())

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"
        if self._in_script:
            self.scripts.append("")

    def handle_endtag(self, tag):
        self._in_script = False if tag == "script" else self._in_script

    def handle_data(self, data):
        if self._in_script:
            self.scripts[-1] += data
        else:
            self.text.append(data)

    def images(self) -> list[tuple[str, Image.Image]]:
        out = []
        for tag, attrs in self.tags:
            if tag == "img":
                head, data = attrs["src"].split(",", 1)
                assert head == "data:image/png;base64"
                out.append((attrs.get("alt", ""), Image.open(io.BytesIO(base64.b64decode(data)))))
        return out

    def traces(self) -> list[dict]:
        """Every plotly trace of the page, its arrays decoded (plotly 6+ writes numpy arrays as base64)."""
        found = []
        for body in self.scripts:
            at = body.find("Plotly.newPlot(")
            if at < 0:
                continue
            start = body.index("[", at)
            traces, _ = json.JSONDecoder().raw_decode(body[start:])
            found += [{k: _array(v) for k, v in t.items()} for t in traces]
        return found


def _array(v):
    if isinstance(v, dict) and "bdata" in v:
        return np.frombuffer(base64.b64decode(v["bdata"]), dtype=np.dtype(v["dtype"]))
    return np.asarray(v) if isinstance(v, list) else v


def _trace(page: Page, name: str) -> dict:
    matches = [t for t in page.traces() if t.get("name") == name]
    assert matches, f"no trace {name!r} in {[t.get('name') for t in page.traces()]}"
    return matches[0]


@pytest.fixture(scope="module")
def reg(tmp_path_factory) -> RunRegistry:
    return RunRegistry(tmp_path_factory.mktemp("runs"))


@pytest.fixture(scope="module")
def ring(reg):
    """A finished tiny ring8 run (40 steps, 5 snapshots, 8 history rows) and its report."""
    run = reg.create(get_preset("ring8").config(**TINY), "ring tiny")
    run.join(120)
    assert run.state == "finished", run.message
    return run, report_html(run.store.path)


@pytest.fixture(scope="module")
def digits(reg):
    run = reg.create(DIGITS, "digits")
    run.join(120)
    assert run.state == "finished", run.message
    return run, report_html(run.store.path)


def _outside_links(page: Page) -> list[str]:
    return [f"{tag} {k}={v[:60]}" for tag, attrs in page.tags for k, v in attrs.items()
            if k in ("src", "href") and v and not v.startswith(("data:", "#"))]


def test_ring_report_is_one_offline_file_with_the_real_losses(ring):
    run, data = ring
    page = Page(data)
    assert _outside_links(page) == []
    assert not [s for t, a in page.tags if t == "script" for s in [a.get("src")] if s]
    assert data.count(get_plotlyjs()[:400].encode()) == 1          # plotly.js inline, exactly once
    assert "ring tiny" in page.plain and run.id in page.plain and "finished" in page.plain
    assert "40 of 40" in page.plain and "nonsaturating" in page.plain
    history = run.store.read_rows("history")
    loss = _trace(page, "D loss")
    assert loss["x"].tolist() == [r["step"] for r in history]
    assert loss["y"] == pytest.approx([r["loss_d"] for r in history])
    assert _trace(page, "G loss")["y"] == pytest.approx([r["loss_g"] for r in history])
    assert any(t.get("name") == "D(x) real" for t in page.traces())
    assert "D" in {t.get("name") for t in page.traces()}            # the layered 2D view's heatmap


def test_ring_report_pictures_are_the_exported_ones(ring):
    run, data = ring
    images = Page(data).images()
    steps = run.store.snapshot_steps()
    strip = [img for alt, img in images if alt.startswith("step ")]
    assert len(strip) == min(len(steps), STRIP_FRAMES) == 5
    final = [img for alt, img in images if alt == f"samples at step {steps[-1]}"]
    assert len(final) == 1
    exported = Image.open(io.BytesIO(export.grid_png(run.store)))
    assert final[0].size == exported.size == (320, 320)
    assert np.array_equal(np.asarray(final[0].convert("RGB")), np.asarray(exported.convert("RGB")))


def test_ring_report_has_quality_labels_and_diagnoses(ring):
    run, data = ring
    page = Page(data)
    latest = run.store.read_rows("quality")[-1]
    assert "modes covered" in page.plain and f"{latest['modes_covered']} / {latest['n_modes']}" in page.plain
    assert "high-quality samples" in page.plain and "reverse KL over modes" in page.plain
    assert "Diagnoses" in page.plain and "A new run" in page.plain


def test_image_report_grids_decode_at_the_grid_size(digits):
    run, data = digits
    page = Page(data)
    assert _outside_links(page) == []
    steps = run.store.snapshot_steps()
    images = dict(page.images())
    final = images[f"samples at step {steps[-1]}"]
    assert final.size == Image.open(io.BytesIO(export.grid_png(run.store))).size == ((4 * 29 + 1) * 2,) * 2
    first = images[f"step {steps[0]}"]                                 # the strip: the montage at scale 1
    assert first.size == (4 * 29 + 1,) * 2 and first.mode == "L"
    for label in ("Fréchet distance", "classes present", "class KL to uniform", "diversity vs data"):
        assert label in page.plain
    quality = run.store.read_rows("quality")
    assert quality and f"{quality[-1]['frechet']:.2f}" in page.plain


def test_branch_report_shows_its_lineage(reg, ring):
    parent, _ = ring
    child = reg.branch(parent, step=20, steps=60)
    child.join(120)
    grandchild = reg.branch(child, steps=80)
    page = Page(report_html(grandchild.store.path))
    assert "Branched from a run" in page.plain and f"{child.name} @ {child.store.checkpoint_steps()[-1]}" in page.plain
    assert "ring tiny @ 20" in page.plain                           # the full chain, through the runs directory
    grandchild.join(120)


def test_deleted_parent_and_uploaded_checkpoint_in_the_lineage(tmp_path):
    cfg = get_preset("ring8").config(**TINY)
    gone = RunStore.create(tmp_path, "child", cfg, parent={"run": "gone-run", "name": "old run", "step": 7})
    assert "old run @ 7 (deleted)" in Page(report_html(gone.path)).plain
    upload = RunStore.create(tmp_path, "up", cfg, parent={"checkpoint": "mine.pt", "step": 300})
    assert "an uploaded checkpoint: mine.pt @ 300" in Page(report_html(upload.path)).plain


def test_a_run_without_history_or_snapshots_still_reports(tmp_path):
    store = RunStore.create(tmp_path, "fresh", TrainConfig(dataset="mnist5k", model="mlp"))
    data = report_html(store.path)
    page = Page(data)
    assert "fresh" in page.plain and "created" in page.plain and "mnist5k" in page.plain
    assert "No training history yet" in page.plain and "no snapshots yet" in page.plain
    assert "No quality measures yet" in page.plain and "Nothing to diagnose yet" in page.plain
    assert page.images() == [] and page.traces() == []


def test_long_history_is_thinned(tmp_path, ring):
    run, _ = ring
    path = shutil.copytree(run.store.path, tmp_path / "long")
    n = 50_000
    lines = (f'{{"step": {5 * i}, "loss_d": {1 + i / n}, "loss_g": 0.7, "d_real": 0.6, "d_fake": 0.4, "grad_g": 0.5, '
             f'"grad_d": 1.0, "lr_g": 0.001, "lr_d": 0.001}}\n' for i in range(n))
    (path / "history.jsonl").write_text("".join(lines))
    data = report_html(path)
    loss = _trace(Page(data), "D loss")
    assert len(loss["x"]) <= MAX_CHART_POINTS and loss["x"][-1] == 5 * (n - 1)   # the last row always kept
    assert loss["y"][-1] == pytest.approx(1 + (n - 1) / n)
    assert len(data) < len(get_plotlyjs()) + 600_000                 # the curves add little to plotly.js
    assert "50,000 history rows" in Page(data).plain


def test_resume_rewind_and_corrupt_lines(tmp_path, ring):
    run, _ = ring
    path = shutil.copytree(run.store.path, tmp_path / "resumed")
    with open(path / "history.jsonl", "ab") as f:          # a crash mid-append, then a resume from step 20
        f.write(b'{"step": 45, "loss_d": 9.9\n{"step": 25, "loss_d": 0.123}\n')
    page = Page(report_html(path))
    loss = _trace(page, "D loss")
    assert loss["x"].tolist() == [5, 10, 15, 20, 25] and loss["y"][-1] == pytest.approx(0.123)
    assert "Resumed from its checkpoint at step 25" in page.plain and "1 damaged line(s) skipped" in page.plain


def _copy(run, tmp_path: Path, name: str) -> Path:
    return Path(shutil.copytree(run.store.path, tmp_path / name))


def test_damaged_runs_give_a_clear_export_error(tmp_path, ring):
    run, _ = ring
    no_config = _copy(run, tmp_path, "no-config")
    (no_config / "config.json").unlink()
    with pytest.raises(export.ExportError, match="not a run directory"):
        report_html(no_config)
    bad_config = _copy(run, tmp_path, "bad-config")
    (bad_config / "config.json").write_text('{"steps": ')
    with pytest.raises(export.ExportError, match="unreadable config.json"):
        report_html(bad_config)
    truncated = _copy(run, tmp_path, "truncated")
    hist = (truncated / "history.jsonl").read_bytes()
    (truncated / "history.jsonl").write_bytes(hist[:len(hist) // 2])
    with pytest.raises(export.ExportError, match="history.jsonl is truncated"):
        report_html(truncated)
    RunStore(truncated).update_status(state="running")        # a writer mid-append: the whole rows are drawn
    assert len(_trace(Page(report_html(truncated)), "D loss")["x"]) == hist[:len(hist) // 2].count(b"\n")
    bad_snap = _copy(run, tmp_path, "bad-snapshots")
    for p in (bad_snap / "snapshots").glob("*.npz"):
        p.write_bytes(b"not a zip")
    assert "5 snapshot file(s) could not be read" in Page(report_html(bad_snap)).plain


def test_a_diverged_history_is_diagnosed(tmp_path, ring):
    run, _ = ring
    path = _copy(run, tmp_path, "diverged")
    with open(path / "history.jsonl", "ab") as f:
        f.write(b'{"step": 45, "loss_d": NaN, "loss_g": Infinity}\n')
    page = Page(report_html(path))
    assert "Training diverged" in page.plain and "Try:" in page.plain
    assert np.isnan(_trace(page, "D loss")["y"][-1])

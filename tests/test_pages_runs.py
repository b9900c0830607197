"""AppTest of the Compare and Runs pages: empty, with two finished runs, branch, rename, delete with its
confirmation step, exports, and uploads (good, broken, and one that would run code)."""
from __future__ import annotations

import io
import json
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
from apptest_util import echarts
from streamlit.testing.v1 import AppTest

from ganlab.charts import series_rows
from ganlab.config import get_preset
from ganlab.registry import RunRegistry, get_registry

REPO = Path(__file__).resolve().parent.parent
COMPARE, RUNS = str(REPO / "pages" / "6_Compare.py"), str(REPO / "pages" / "7_Runs.py")
TIMEOUT = 60
TINY = dict(steps=40, batch_size=64, g_layers=(16, 16), d_layers=(16, 16), stats_every=5, snapshot_every=20,
            checkpoint_every=20)


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory) -> Path:
    """A runs directory with two finished tiny ring8 runs: 'alpha' (nonsaturating) and 'beta' (lsgan)."""
    root = tmp_path_factory.mktemp("template")
    reg = RunRegistry(root)
    for name, loss in (("alpha", "nonsaturating"), ("beta", "lsgan")):
        run = reg.create(get_preset("ring8").config(**TINY, loss=loss), name)
        run.join(120)
        assert run.state == "finished", run.message
    return root


@pytest.fixture
def runs_dir(tmp_path, monkeypatch, clean_cache) -> Path:
    path = tmp_path / "runs"
    path.mkdir()
    monkeypatch.setenv("GANLAB_RUNS_DIR", str(path))
    return path


@pytest.fixture
def with_runs(runs_dir, two_runs) -> Path:
    for d in two_runs.iterdir():
        shutil.copytree(d, runs_dir / d.name)
    return runs_dir


def ids(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir() if (p / "config.json").is_file())


def run_id(path: Path, name: str) -> str:
    return next(i for i in ids(path) if i.endswith(name))


def page(path: str, **state) -> AppTest:
    at = AppTest.from_file(path, default_timeout=TIMEOUT)
    for k, v in state.items():
        at.session_state[k] = v
    return at.run()


def no_exception(at: AppTest) -> AppTest:
    assert not at.exception, at.exception[0].value
    return at


def button(at: AppTest, label: str):
    return next(b for b in at.button if b.label == label)


# --- empty ------------------------------------------------------------------------------------------------------
def test_pages_render_without_runs(runs_dir):
    at = no_exception(page(COMPARE))
    assert "at least two runs" in at.info[0].value
    at = no_exception(page(RUNS))
    assert "No runs yet" in at.info[0].value
    assert len(at.get("file_uploader")) == 1 and not at.get("download_button")


# --- Compare -----------------------------------------------------------------------------------------------------
def test_compare_overlays_two_runs_and_matches_epochs(with_runs):
    at = no_exception(page(COMPARE))
    assert sorted(at.multiselect(key="compare.ids").value) == ids(with_runs)
    curves = echarts(at)
    names = {line["name"] for line in curves[0]["series"]}
    assert {"alpha: D loss", "alpha: G loss", "beta: D loss", "beta: G loss"} <= names
    assert curves[1]["title"]["text"] == "Discriminator scores"
    views = [c for c in curves if c["title"]["text"].startswith(("alpha", "beta"))]
    assert len(views) == 2 and not at.get("plotly_chart")    # one ECharts 2D view per run, on the same axes
    assert views[0]["xAxis"][1] == views[1]["xAxis"][1] and views[0]["yAxis"][1] == views[0]["xAxis"][1]
    assert not at.get("select_slider")            # 40 steps of batch 64 on 20,000 points: all in epoch 0
    at.radio(key="compare.by").set_value("step").run()
    slider = at.select_slider(key="compare.at.step")
    assert [str(o) for o in slider.options] == ["0", "20", "40"] and slider.value == 40
    slider.set_value(0).run()
    no_exception(at)
    titles = [c["title"]["text"] for c in echarts(at) if c["title"]["text"].startswith("alpha")]
    assert titles and "step 0 " in titles[0]


def test_compare_needs_two_selected(with_runs):
    at = page(COMPARE)
    at.multiselect(key="compare.ids").set_value([run_id(with_runs, "alpha")]).run()
    no_exception(at)
    assert any("Pick two to four" in i.value for i in at.info)


# --- Runs: list, rename, delete, exports ---------------------------------------------------------------------
def test_runs_page_lists_runs_with_exports(with_runs):
    at = no_exception(page(RUNS))
    table = at.dataframe[0].value
    assert sorted(table["name"]) == ["alpha", "beta"] and set(table["state"]) == {"finished"}
    labels = [b.label for b in at.get("download_button")]
    for label in ("Download checkpoint", "Grid PNG", "Evolution GIF", "Metrics CSV", "Config JSON", "Run folder (zip)"):
        assert label in labels


def test_rename(with_runs):
    rid = run_id(with_runs, "alpha")
    at = page(RUNS, run_id=rid)
    at.text_input(key=f"runs.name.{rid}").set_value("alpha renamed")
    button(at, "Rename").click().run()
    no_exception(at)
    assert at.success[0].value == "Renamed."
    assert json.loads((with_runs / rid / "status.json").read_text())["name"] == "alpha renamed"
    assert "alpha renamed" in list(at.dataframe[0].value["name"])


def test_delete_asks_first_and_cancel_keeps_the_run(with_runs):
    rid = run_id(with_runs, "alpha")
    at = page(RUNS, run_id=rid)
    button(at, "Delete run").click().run()
    assert "cannot be undone" in at.warning[0].value and (with_runs / rid).is_dir()
    button(at, "Cancel").click().run()
    assert not at.warning and (with_runs / rid).is_dir()
    button(at, "Delete run").click().run()
    button(at, "Yes, delete").click().run()
    no_exception(at)
    assert not (with_runs / rid).exists() and ids(with_runs) == [run_id(with_runs, "beta")]
    assert "Deleted alpha" in at.success[0].value


# --- Runs: rewind and branch ----------------------------------------------------------------------------------------
def test_branch_button_creates_a_child_run_that_compare_draws(with_runs):
    rid = run_id(with_runs, "alpha")
    at = page(RUNS, run_id=rid)
    at.selectbox(key=f"branch.{rid}.step").set_value(20)
    at.selectbox(key=f"branch.{rid}.loss").set_value("hinge")
    at.number_input(key=f"branch.{rid}.steps").set_value(30)
    button(at, "Branch from this checkpoint").click().run()
    no_exception(at)
    assert "continues alpha from step 20" in at.success[0].value
    (child_id,) = set(ids(with_runs)) - {rid, run_id(with_runs, "beta")}
    child = get_registry(with_runs).get(child_id)
    child.join(60)
    assert child.state == "finished" and child.cfg.loss == "hinge" and child.step == 30
    assert child.parent == {"run": rid, "name": "alpha", "step": 20}
    assert at.session_state["run_id"] == child_id               # the new branch is selected
    at = no_exception(page(COMPARE, run_id=child_id))
    assert sorted(at.multiselect(key="compare.ids").value) == sorted([rid, child_id])
    branch = [c for c in echarts(at) if "branched from alpha at step 20" in c["title"]["text"]]
    (i,) = [k for k, line in enumerate(branch[0]["series"]) if line["name"] == "alpha @20: G loss"]
    assert [x for x, _ in series_rows(branch[0], i)] == [20, 25, 30]     # drawn from the branch point on


def test_branch_refuses_too_few_steps(with_runs):
    rid = run_id(with_runs, "alpha")
    at = page(RUNS, run_id=rid)
    at.number_input(key=f"branch.{rid}.steps").set_value(40)   # the newest checkpoint is step 40
    button(at, "Branch from this checkpoint").click().run()
    assert "more steps" in at.error[0].value and len(ids(with_runs)) == 2


# --- Runs: uploads -----------------------------------------------------------------------------------------------
class _Payload:
    def __init__(self, marker: Path):
        self.code = f"open({str(marker)!r}, 'w').write('code ran')"

    def __reduce__(self):
        return (exec, (self.code,))


def test_bad_uploads_show_an_error_and_change_nothing(runs_dir, tmp_path):
    marker = tmp_path / "pwned"
    evil = io.BytesIO()
    torch.save({"config": get_preset("ring8").config().to_dict(), "G": _Payload(marker), "D": {}}, evil)
    for name, data, why in (("bad.pt", b"not a checkpoint at all", "not a ganlab checkpoint"),
                            ("evil.pt", evil.getvalue(), "refused")):
        at = page(RUNS)
        at.get("file_uploader")[0].upload(name, data).run()
        no_exception(at)
        assert at.error and f"Refused **{name}**" in at.error[0].value and why in at.error[0].value
        assert not [b for b in at.button if b.label in ("Continue training", "Explore (paused)")]
    assert not marker.exists() and ids(runs_dir) == []


def test_good_upload_continues_training(with_runs):
    src = with_runs / run_id(with_runs, "beta") / "checkpoints" / "step-000000020.pt"
    at = page(RUNS)
    at.get("file_uploader")[0].upload("beta-step20.pt", src.read_bytes()).run()
    no_exception(at)
    assert "step 20" in at.success[0].value
    button(at, "Continue training").click().run()
    no_exception(at)
    assert "Created" in at.success[0].value
    (new_id,) = set(ids(with_runs)) - {run_id(with_runs, "alpha"), run_id(with_runs, "beta")}
    run = get_registry(with_runs).get(new_id)
    run.join(60)
    assert run.state == "finished" and run.step == 40 and run.parent == {"checkpoint": "beta-step20.pt", "step": 20}


def test_resume_an_interrupted_run(with_runs):
    """A run whose training process died (status 'running', pid gone) shows as interrupted and resumes."""
    rid = run_id(with_runs, "alpha")
    dead = subprocess.Popen(["true"])
    dead.wait()
    status = json.loads((with_runs / rid / "status.json").read_text())
    (with_runs / rid / "status.json").write_text(json.dumps({**status, "state": "running", "pid": dead.pid}))
    cfg = json.loads((with_runs / rid / "config.json").read_text())
    (with_runs / rid / "config.json").write_text(json.dumps({**cfg, "steps": 60}))
    at = no_exception(page(RUNS, run_id=rid))
    assert dict(zip(at.dataframe[0].value["id"], at.dataframe[0].value["state"]))[rid] == "interrupted"
    button(at, "Resume from the last checkpoint").click().run()
    no_exception(at)
    assert "Resumed" in at.success[0].value
    run = get_registry(with_runs).get(rid)
    run.join(60)
    assert run.state == "finished" and run.step == 60


def test_compare_image_runs_show_grids_at_the_same_epoch(runs_dir):
    """Two image runs (written as files, no training) with snapshots at different steps of the same epochs:
    the grids side by side come from the chosen epoch, and the quality table lists both runs."""
    import numpy as np

    from ganlab.config import TrainConfig
    from ganlab.snapshots import Snapshot
    from ganlab.store import RunStore

    rng = np.random.default_rng(0)
    for name, per_epoch in (("small batch", 100), ("big batch", 25)):
        store = RunStore.create(runs_dir, name, TrainConfig(dataset="mnist5k", model="mlp", steps=3 * per_epoch))
        for epoch in range(3):
            step = epoch * per_epoch
            store.save_snapshot(Snapshot(step=step, epoch=epoch, time=0.0,
                                         fake=rng.uniform(-1, 1, (16, 1, 28, 28)).astype(np.float32)))
            store.append_rows("history", [{"step": step + 1, "epoch": epoch, "loss_d": 1.0, "loss_g": 2.0}])
            store.append_rows("quality", [{"step": step, "class_coverage": 0.5 + epoch / 10}])
        store.update_status(state="finished", step=3 * per_epoch)
    at = no_exception(page(COMPARE))
    assert len(at.get("image")) == 2
    slider = at.select_slider(key="compare.at.epoch")
    assert [str(o) for o in slider.options] == ["0", "1", "2"]
    slider.set_value(1).run()
    no_exception(at)
    captions = sorted(c for el in at.get("image") for c in el.captions)
    assert captions == ["big batch · step 25 (epoch 1)", "small batch · step 100 (epoch 1)"]
    table = at.dataframe[0].value
    assert sorted(table["run"]) == ["big batch", "small batch"] and list(table["class_coverage"]) == [0.7, 0.7]


def test_compare_keeps_its_selection_in_the_url_and_restores_it(with_runs):
    alpha, beta = run_id(with_runs, "alpha"), run_id(with_runs, "beta")
    at = AppTest.from_file(COMPARE, default_timeout=TIMEOUT)
    at.query_params.update({"runs": f"{beta},{alpha}", "by": "step", "at": "20"})   # a shared link
    no_exception(at.run())
    assert at.multiselect(key="compare.ids").value == [beta, alpha]
    assert at.radio(key="compare.by").value == "step"
    slider = at.select_slider(key="compare.at.step")
    assert slider.value == 20
    titles = [c["title"]["text"] for c in echarts(at) if c["title"]["text"].startswith(("alpha", "beta"))]
    assert len(titles) == 2 and all("step 20 " in t for t in titles), titles   # the grids show the slider's
    slider.set_value(40).run()
    no_exception(at)
    assert (at.query_params["runs"], at.query_params["by"], at.query_params["at"]) in (
        (f"{beta},{alpha}", "step", "40"), ([f"{beta},{alpha}"], ["step"], ["40"]))

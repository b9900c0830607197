"""As a student would, in a real browser: upload a CSV of points and a zip of images through the Train page and
start runs on them; upload a hostile checkpoint on the Runs page and get a refusal while another session keeps
being served."""
from __future__ import annotations

import io
import json
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from engine_util import wait_for

from browser_util import assert_no_exception, wait_connected, wait_script_finished
from ganlab import control
from ganlab.store import RunStore

pytestmark = pytest.mark.browser


def _points_csv(path: Path) -> Path:
    t = np.linspace(0, 2 * np.pi, 200, endpoint=False)
    path.write_text("x,y\n" + "".join(f"{np.cos(a):.4f},{np.sin(a):.4f}\n" for a in t))
    return path


def _images_zip(path: Path) -> Path:
    from PIL import Image
    with zipfile.ZipFile(path, "w") as z:
        for i in range(24):
            buf = io.BytesIO()
            Image.new("L", (28, 28), 10 * i).save(buf, "PNG")
            z.writestr(f"digits/{i}.png", buf.getvalue())
    return path


def _start_on_upload(page, base: str, upload: Path, runs_dir: Path, name: str) -> str:
    page.goto(f"{base}/Train")
    wait_connected(page)
    details = page.locator('[data-testid="stExpander"] details').filter(has_text="New run").first
    details.wait_for(timeout=60_000)
    if details.get_attribute("open") is None:   # collapsed while another run is selected
        details.locator("summary").first.click()
    page.locator('[data-testid="stFileUploader"]').first.wait_for(timeout=30_000)
    page.locator('[data-testid="stFileUploader"] input[type=file]').first.set_input_files(str(upload))
    page.get_by_text(re.compile(r"ready: press Start")).first.wait_for(state="attached", timeout=60_000)
    wait_script_finished(page)
    if details.get_attribute("open") is None:   # the upload's rerun may draw the expander collapsed again
        details.locator("summary").first.click()
    page.get_by_text(re.compile(r"ready: press Start")).first.wait_for(timeout=30_000)
    page.get_by_label("Run name").first.fill(name)
    page.get_by_role("button", name="Start new run").click()

    def trained() -> str | None:
        for d in runs_dir.iterdir():
            status = RunStore(d).read_status()
            if status.get("name") == name and status.get("state") in ("running", "finished") and \
                    (d / "history.jsonl").exists():
                return d.name
        return None
    return wait_for(trained, f"a run {name!r} to train", 90, every=0.3)


def test_student_uploads_data_and_a_hostile_checkpoint(streamlit_server: str, runs_dir: Path, chromium_browser,
                                                      tmp_path: Path) -> None:
    student = chromium_browser.new_context(viewport={"width": 1400, "height": 1000})
    other = chromium_browser.new_context(viewport={"width": 1400, "height": 900})
    try:
        page = student.new_page()
        csv_run = _start_on_upload(page, streamlit_server, _points_csv(tmp_path / "my points.csv"), runs_dir,
                                   "my points")
        cfg = json.loads((runs_dir / csv_run / "config.json").read_text())
        assert cfg["dataset"] == "csv" and "/.uploads/" in cfg["data_path"], cfg["data_path"]
        assert_no_exception(page)
        zip_run = _start_on_upload(page, streamlit_server, _images_zip(tmp_path / "my digits.zip"), runs_dir,
                                   "my digits")
        cfg = json.loads((runs_dir / zip_run / "config.json").read_text())
        assert cfg["dataset"] == "folder" and cfg["data_path"].endswith(".zip")
        assert_no_exception(page)
        for rid in (csv_run, zip_run):   # free the CPU for the other browser tests
            control.send(runs_dir / rid, "stop")

        # A checkpoint whose Adam state has the wrong shapes: before, "Continue training" crashed the server.
        from engine_util import tiny

        from ganlab.trainer import Trainer
        t = Trainer(tiny())
        t.train_step()
        state = t.state_dict()
        state["opt_d"]["state"] = {i: {**e, "exp_avg": torch.zeros(0)} for i, e in state["opt_d"]["state"].items()}
        hostile = tmp_path / "great-model.pt"
        torch.save(state, hostile)
        page.goto(f"{streamlit_server}/Runs")
        wait_connected(page)
        page.locator('[data-testid="stFileUploader"] input[type=file]').last.set_input_files(str(hostile))
        page.get_by_text(re.compile(r"exp_avg")).first.wait_for(timeout=60_000)
        assert_no_exception(page)

        watcher = other.new_page()
        watcher.goto(f"{streamlit_server}/Train?run={csv_run}")
        wait_connected(watcher)
        watcher.get_by_text("my points").first.wait_for(timeout=60_000)
        assert_no_exception(watcher)
    finally:
        student.close()
        other.close()

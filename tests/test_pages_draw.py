"""The two canvases through AppTest, with the canvas's picture put into its session state as the browser sends it
(a PNG data URL): "Train on my drawing" on Train starts a csv run on the drawn points (and an empty canvas only
says so); on Be the discriminator a drawn digit gets D's score and G's closest sample (an empty canvas: a hint)."""
from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
import pytest
from apptest_util import echarts, open_page
from streamlit.testing.v1 import AppTest
from test_be_d import TINY_DIGITS, finished_digits

from ganlab.config import get_preset
from ganlab.data import load_dataset
from ganlab.registry import RunRegistry
from ganlab.store import default_runs_dir

TRAIN, BE_D = "pages/1_Train.py", "pages/9_Be_D.py"


def drawing(rgba: np.ndarray) -> dict:
    """The canvas component's state after a stroke: Fabric's objects and the PNG of what is drawn."""
    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(rgba).save(buf, format="PNG")
    url = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
    return {"drawing": {"raw": {"objects": [{"type": "path"}], "background": ""}, "data": url},
            "backgroundFit": None}


def top_left_blob(size: int = 320) -> np.ndarray:
    img = np.zeros((size, size, 4), np.uint8)
    img[40:80, 40:120] = (79, 70, 229, 255)             # x -3..-1, y 2..3
    return img


def clean(at: AppTest) -> AppTest:
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_train_on_my_drawing_starts_a_csv_run_on_the_drawn_points(lab: RunRegistry) -> None:
    at = clean(open_page(TRAIN).run())
    assert at.button(key="cfg._extra").label == "Train on my drawing"      # beside Start, in the form
    at.button(key="cfg._extra").click().run()                 # nothing drawn yet
    clean(at)
    assert any("Nothing to train on yet" in w.value for w in at.warning) and lab.list() == []

    at.session_state["cfg._canvas"] = drawing(top_left_blob())
    at.text_input(key="cfg.g_layers").input("64,x")               # a bad form: its error, and no run
    at.button(key="cfg._extra").click().run()
    clean(at)
    assert any("g_layers" in e.value for e in at.error) and lab.list() == []

    at.text_input(key="cfg.g_layers").input("64,64")
    at.number_input(key="cfg.steps").set_value(1234)              # the form's own settings train the drawing
    at.button(key="cfg._extra").click().run()
    clean(at)
    runs = lab.list()
    try:
        assert len(runs) == 1 and at.session_state["run_id"] == runs[0].id and runs[0].cfg.steps == 1234
        run = runs[0]
        assert run.name == "my drawing" and run.cfg.dataset == "csv" and run.cfg.model == "mlp"
        assert run.cfg.g_layers == (64, 64)
        assert (default_runs_dir() / ".uploads").resolve() == Path(run.cfg.data_path).resolve().parent
        x = load_dataset(run.cfg).x.numpy()
        assert len(x) == 2000
        assert (x[:, 0] > -3.2).all() and (x[:, 0] < -0.8).all() and (x[:, 1] > 1.8).all() and (x[:, 1] < 3.2).all()
        assert at.session_state["cfg.dataset"] == "csv" and at.session_state["cfg.data_path"] == run.cfg.data_path
        assert at.title[0].value == "my drawing"                     # the page shows the new run
    finally:
        for r in runs:
            r.stop(wait=30)


def test_a_drawing_on_an_image_form_trains_with_ring8s_settings(lab: RunRegistry) -> None:
    at = clean(open_page(TRAIN).run())
    at.selectbox(key="cfg.preset").select("mnist-dcgan").run()
    at.session_state["cfg._canvas"] = drawing(top_left_blob())
    at.button(key="cfg._extra").click().run()
    clean(at)
    runs = lab.list()
    try:
        assert len(runs) == 1 and runs[0].cfg.dataset == "csv" and runs[0].cfg.model == "mlp"
        assert runs[0].cfg.is_2d and at.session_state["cfg.model"] == "mlp"
    finally:
        for r in runs:
            r.stop(wait=30)


def test_draw_a_digit_shows_ds_score_and_gs_closest_sample(lab: RunRegistry) -> None:
    run = finished_digits(lab)
    at = clean(open_page(BE_D, run.id).run())
    assert any(s.value == "Draw a digit, ask D" for s in at.subheader)
    assert any("Draw a digit on the black square" in i.value for i in at.info)
    assert len(at.get("image")) == 8                                # the round only

    digit = np.zeros((280, 280, 4), np.uint8)
    digit[60:220, 130:150] = 255                                    # a white "1"
    at.session_state[f"bed-draw-{run.id}"] = drawing(digit)
    clean(at.run())
    score = next(m for m in at.metric if m.label == "D's score")
    assert 0 <= float(score.value) <= 1
    distance = next(m for m in at.metric if m.label == "Distance to G's closest sample")
    assert float(distance.value) > 0
    assert len(at.get("image")) == 10                               # what D sees and G's closest sample
    assert not any("Draw a digit on the black square" in i.value for i in at.info)
    rnd = at.session_state[f"bed.{run.id}"]["round"]
    assert len(rnd.images) == 8, "drawing leaves the round as it was"


def test_a_conditional_run_shows_ds_score_for_each_class(lab: RunRegistry) -> None:
    run = lab.create(get_preset("mnist-mlp").config(**TINY_DIGITS, conditional=True), "digits by class")
    run.join(120)
    assert run.state == "finished", run.message
    at = clean(open_page(BE_D, run.id).run())
    digit = np.zeros((280, 280, 4), np.uint8)
    digit[60:220, 130:150] = 255
    at.session_state[f"bed-draw-{run.id}"] = drawing(digit)
    clean(at.run())
    best = next(m for m in at.metric if m.label == "D's highest score")
    chart = next(c for c in echarts(at) if c["title"]["text"] == "D's score as each class")
    scores = [b["value"] for b in chart["series"][0]["data"]]
    assert chart["xAxis"]["data"] == [str(i) for i in range(10)] and len(scores) == 10
    assert float(best.value) == pytest.approx(max(scores), abs=1e-3)
    assert f"as {int(np.argmax(scores))}" in best.delta
    assert any(c.startswith("G's closest sample, drawn as class ") for i in at.image for c in i.captions)

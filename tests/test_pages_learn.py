"""AppTest of the Learn page: every lesson renders with its math, the GNN note is there, and a lesson's Start
button creates its run, selects it and opens the page to watch."""
from __future__ import annotations

from pathlib import Path

import pytest
from apptest_util import echarts
from streamlit.testing.v1 import AppTest

from ganlab.config import PRESETS
from ganlab.lesson_book import LESSONS, get_lesson
from ganlab.registry import get_registry

APP = str(Path(__file__).resolve().parents[1] / "app.py")

TIMEOUT = 60   # the first run imports torch and the pages; a loaded 2-core machine needs the slack


@pytest.fixture
def runs_dir(tmp_path, monkeypatch, clean_cache):
    monkeypatch.setenv("GANLAB_RUNS_DIR", str(tmp_path))
    yield tmp_path
    get_registry(tmp_path).shutdown(timeout=10)   # stop the run a Start button began


def _learn(at: AppTest) -> AppTest:
    """The app opened on the Learn page (through app.py, so switch_page paths resolve as on a server)."""
    at.run()
    at.switch_page("pages/5_Learn.py")
    at.run()
    assert not at.exception, at.exception
    return at


def _text(at: AppTest) -> str:
    return "\n".join(m.value for m in at.markdown)


def test_learn_page_renders_every_lesson(runs_dir):
    at = _learn(AppTest.from_file(APP, default_timeout=TIMEOUT))
    assert at.title[0].value == "Learn"
    labels = [e.label for e in at.expander]
    for lesson in LESSONS:
        assert any(lesson.title in label for label in labels), lesson.title
        assert at.button(key=f"learn-{lesson.id}") is not None
    text = _text(at)
    assert "$$" in text and r"D^*(x) = \frac{p_{data}(x)}{p_{data}(x) + p_g(x)}" in text
    assert "generator network (GNN)" in text and "graph neural network" in text
    assert "BCELoss" in text


def test_a_lesson_with_a_figure_draws_it(runs_dir):
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params["lesson"] = "oscillation"
    at = _learn(at)
    figures = echarts(at)
    assert len(figures) == sum(1 for lesson in LESSONS if lesson.figure)
    names = [s["name"] for s in figures[0]["series"]]
    assert names[0].startswith("simultaneous steps (x2.7") and names[-1] == "equilibrium (0, 0)"


def test_start_button_creates_selects_and_opens_the_run(runs_dir):
    at = _learn(AppTest.from_file(APP, default_timeout=TIMEOUT))
    assert get_registry(runs_dir).list() == []
    at.button(key="learn-mode-collapse").click().run()
    assert not at.exception, at.exception
    runs = get_registry(runs_dir).list()
    assert len(runs) == 1
    run = runs[0]
    assert run.name == "lesson: mode-collapse"
    assert run.cfg == get_lesson("mode-collapse").config()      # the lesson's preset, ring8-collapse
    assert at.session_state["run_id"] == run.id
    # the page the lesson says to watch: Train, whose title is the watched run's name, with the run buttons
    assert at.title[0].value == run.name
    assert any(b.label == "Step both" for b in at.button)


def test_lesson_with_changes_starts_its_changed_config(runs_dir):
    at = _learn(AppTest.from_file(APP, default_timeout=TIMEOUT))
    at.button(key="learn-strong-d").click().run()
    assert not at.exception, at.exception
    (run,) = get_registry(runs_dir).list()
    assert run.cfg == get_lesson("strong-d").config() and run.cfg != get_lesson("strong-d").config(steps=1)
    assert run.cfg.d_layers != PRESETS["ring8"].config().d_layers   # the lesson's changes, not the bare preset
    assert at.title[0].value == "Discriminator"

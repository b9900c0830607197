"""The Be the discriminator page through AppTest: label a round, check it, see both accuracies and the tally, draw
a new round; a 2D run, no run, no checkpoint, a failed run and a damaged checkpoint each say so and change nothing."""
from __future__ import annotations

import numpy as np
import pytest
from apptest_util import echarts, open_page
from streamlit.testing.v1 import AppTest
from test_be_d import TINY_DIGITS, finished_digits

from ganlab.charts import series_rows
from ganlab.config import get_preset
from ganlab.registry import RunRegistry

PAGE = "pages/9_Be_D.py"


def show(run_id: str | None = None) -> AppTest:
    at = open_page(PAGE, run_id).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def labels(at: AppTest):
    return [w for w in at.segmented_control if w.key.startswith("bed-label-")]


def metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def warnings(at: AppTest) -> str:
    return " ".join(w.value for w in at.warning)


def test_label_check_and_new_round(lab: RunRegistry) -> None:
    run = finished_digits(lab)
    at = show(run.id)
    assert at.title[0].value == "Be the discriminator"
    assert len(at.get("image")) == 8 and len(labels(at)) == 8
    assert at.button(key="bed-check").disabled, "Check waits until every picture is marked"
    rnd = at.session_state[f"bed.{run.id}"]["round"]
    for w in labels(at):
        w.set_value("real")
    at.run()
    assert not at.button(key="bed-check").disabled
    at.button(key="bed-check").click().run()
    assert metric(at, "Your accuracy") == "50%"                     # all "real" on a half/half round
    d_right = (rnd.scores > 0.5) == rnd.real                        # D's answers from its own scores
    assert metric(at, "D's accuracy") == f"{d_right.mean():.0%}"
    assert metric(at, "G's step") == "20"
    assert all(w.disabled for w in labels(at)), "a checked round's answers stay as they were"
    assert any("above 0.5" in c.value for c in at.caption)
    chart = echarts(at)[0]
    assert series_rows(chart, 0) == [50] and series_rows(chart, 1) == [round(100 * d_right.mean())]
    assert len(at.table[0].value) == 1

    at.button(key="bed-new").click().run()
    fresh = at.session_state[f"bed.{run.id}"]["round"]
    assert fresh.seed != rnd.seed and not np.array_equal(fresh.images, rnd.images)
    assert at.button(key="bed-check").disabled and not at.metric, "a new round starts unchecked"
    assert all(w.value is None and not w.disabled for w in labels(at))
    assert len(at.table[0].value) == 1, "the tally keeps the checked round"


def test_no_run_and_a_2d_run(lab: RunRegistry) -> None:
    at = show()
    assert any("No run selected" in i.value for i in at.info)
    ring = lab.create(get_preset("ring8").config(), "ring", start=False)
    at = show(ring.id)
    assert any("works on image runs" in i.value for i in at.info)
    assert not at.get("image") and at.button(key="bed-start").label == "Start mnist-dcgan"
    at.button(key="bed-start").click().run()
    assert not at.exception
    started = at.session_state["run_id"]
    assert started != ring.id and lab.get(started).cfg.model == "dcgan"
    lab.get(started).stop(wait=30)


@pytest.mark.parametrize("state", ["created", "failed"])
def test_a_run_without_a_checkpoint_says_so(lab: RunRegistry, state: str) -> None:
    run = lab.create(get_preset("mnist-mlp").config(**TINY_DIGITS), "no weights", start=False)
    if state == "failed":
        run.store.update_status(state="failed", message="DataError: the digits file is gone")
    at = show(run.id)
    assert "no checkpoint yet" in warnings(at)
    assert not at.get("image") and at.button(key="bed-new").label == "Try again"
    if state == "failed":
        assert "the digits file is gone" in at.error[0].value


def test_a_damaged_checkpoint_keeps_the_round_and_the_tally(lab: RunRegistry) -> None:
    run = finished_digits(lab)
    at = show(run.id)
    for w in labels(at):
        w.set_value("fake")
    at.run()
    at.button(key="bed-check").click().run()
    before = at.session_state[f"bed.{run.id}"]["round"]
    run.store.checkpoint_path().write_bytes(b"garbage")
    at.button(key="bed-new").click().run()
    assert not at.exception
    assert "damaged" in warnings(at)
    assert at.session_state[f"bed.{run.id}"]["round"] is before and len(at.get("image")) == 8
    assert metric(at, "Your accuracy") == "50%" and len(at.table[0].value) == 1

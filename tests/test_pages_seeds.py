"""The Seeds side by side page through AppTest: the start form says how a preset's seeds train, Start makes a seed
group of one batched model, a finished group shows one panel per seed and the line comparing their outcomes."""
from __future__ import annotations

from apptest_util import echarts, open_page
from streamlit.testing.v1 import AppTest

from ganlab.registry import RunRegistry
from tests.engine_util import tiny, wait_for
from ui.seeds import summary_line

PAGE = "pages/10_Seeds.py"


def show(group_id: str | None = None) -> AppTest:
    at = open_page(PAGE)
    if group_id:
        at.query_params["group"] = group_id
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def panels(at: AppTest) -> list[str]:
    return [m.value for m in at.markdown if m.value.startswith("**seed ")]


def captions(at: AppTest) -> str:
    return " ".join(c.value for c in at.caption)


def test_summary_line_names_the_spread():
    assert summary_line([8, 8, 7, 5], 8, True) == \
        "Modes covered (of 8) per seed: 8, 8, 7, 5 — the same recipe, three different outcomes (5 to 8 modes)."
    assert summary_line([8, None, 8], 8, False) == \
        "Modes covered (of 8) per seed so far: 8, ?, 8 — so far the seeds agree."
    assert summary_line([0, 0, 0, 0], 8, True) == \
        "Modes covered (of 8) per seed: 0, 0, 0, 0 — every seed ended at 0 this time; " \
        "another group of seeds may not agree."
    assert summary_line([None, None], None, False) == "Modes covered per seed appear with the first snapshots."


def test_the_form_says_how_a_preset_trains_and_start_makes_a_group(lab: RunRegistry):
    at = show()
    assert at.title[0].value == "Seeds side by side"
    assert "No seed group yet" in at.info[0].value
    assert "**ring8** over seeds 0 to 3: one batched model for 4 seeds" in captions(at)
    at.selectbox(key="seeds.preset").select("mnist-fast").run()
    text = captions(at)
    assert "4 separate runs, each queued for a training slot" in text and "2D presets train as one batched" in text
    at.selectbox(key="seeds.preset").select("ring8").run()
    at.slider(key="seeds.k").set_value(5).run()
    at.button(key="seeds.start").click().run()
    assert not at.exception, [e.value for e in at.exception]
    (group,) = lab.groups()
    try:
        assert group.ensemble and group.seeds == [0, 1, 2, 3, 4] and len(group.runs) == 5
        assert len(panels(at)) == 5 and at.button(key="seeds.stop")
        assert at.query_params["group"] in (group.id, [group.id])
    finally:
        group.runs[0].stop(wait=30)
    wait_for(lambda: all(r.state == "stopped" for r in group.runs), "the group stopped")


def test_a_finished_group_shows_a_panel_per_seed_and_the_spread(lab: RunRegistry):
    group = lab.create_group(tiny(steps=60, snapshot_every=20), seeds=3, name="ring")
    wait_for(lambda: all(r.state == "finished" for r in group.runs), lambda: str([r.message for r in group.runs]))
    at = show(group.id)
    assert [p.split(" · ")[0] for p in panels(at)] == ["**seed 0**", "**seed 1**", "**seed 2**"]
    assert all(p.endswith("step 60") for p in panels(at))
    assert len(echarts(at)) == 3
    assert captions(at).count("modes covered ·") == 3
    line = next(m.value for m in at.markdown if m.value.startswith("Modes covered"))
    assert line.startswith("Modes covered (of 8) per seed: ") and "so far" not in line
    assert not [b for b in at.button if b.key == "seeds.stop"]

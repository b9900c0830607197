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


def _blocks(node) -> dict[str, object]:
    """Every keyed container of the page, by its key, as its Block proto."""
    found = {}
    for child in getattr(node, "children", {}).values():
        proto = getattr(child, "proto", None)
        if hasattr(child, "children") and getattr(proto, "id", ""):
            found[proto.id.split("-", 2)[-1]] = proto      # "$$ID-<hash>-<key>"
        found.update(_blocks(child))
    return found


def test_the_2d_panels_are_square_and_never_squeezed(lab: RunRegistry, monkeypatch):
    """A 2D view wider than its column is squeezed to the column's width at its full height: the ring of 8 drew
    as an ellipse. Each chart is a square plot area on equal axes, and each panel is wide enough to hold it (and
    wraps onto the next row rather than shrinking)."""
    import streamlit as st

    from ganlab.charts import MARGIN, square_size
    from ui import seeds

    sizes = []
    real = st.echarts_chart
    monkeypatch.setattr(st, "echarts_chart", lambda option, **kw: sizes.append((kw["width"], kw["height"]))
                        or real(option, **kw))
    group = lab.create_group(tiny(steps=20, snapshot_every=20), seeds=2, name="ring")
    wait_for(lambda: all(r.state == "finished" for r in group.runs), lambda: str([r.message for r in group.runs]))
    at = show(group.id)
    options = echarts(at)
    assert len(options) == 2 and sizes == [square_size(seeds.SIDE)] * 2
    for option in options:
        grid = option["grid"][1]
        assert grid["width"] == grid["height"] == seeds.SIDE
        x, y = option["xAxis"][1], option["yAxis"][1]
        assert (x["min"], x["max"]) == (y["min"], y["max"])
    width, height = sizes[0]
    assert width - MARGIN["left"] - MARGIN["right"] == height - MARGIN["top"] - MARGIN["bottom"]
    blocks = _blocks(at._tree)
    for i in range(2):
        panel = blocks[f"seed-panel-{i}"].width_config
        assert panel.WhichOneof("width_spec") == "pixel_width" and panel.pixel_width >= width + 34   # padding, border
    assert blocks["seeds-panels"].flex_container.wrap      # a narrow page wraps the panels instead

"""ganlab.compare: curves of several runs on one step axis, a child grafted onto its parent at the branch
point, snapshots matched by epoch, shared 2D axes, the quality table and the default selection."""
from __future__ import annotations

import json

import numpy as np
import pytest

from ganlab import charts, compare
from ganlab.snapshots import Snapshot


def hist(steps, loss_d, loss_g=None):
    steps = np.asarray(steps, dtype=float)
    return {"step": steps, "loss_d": np.asarray(loss_d, dtype=float),
            "loss_g": np.asarray(loss_g if loss_g is not None else loss_d, dtype=float),
            "d_real": np.full(len(steps), 0.5), "d_fake": np.full(len(steps), np.nan)}


def snap(step, epoch, two_d=False, half=2.0):
    if two_d:
        xs = np.linspace(-half, half, 4)
        return Snapshot(step=step, epoch=epoch, time=0.0, fake=np.zeros((5, 2)), real=np.ones((5, 2)),
                        field_xs=xs, field_ys=xs, field=np.zeros((4, 4)))
    return Snapshot(step=step, epoch=epoch, time=0.0, fake=np.zeros((4, 1, 8, 8)))


def test_graft_starts_the_child_at_the_parents_branch_row():
    parent = hist([10, 20, 30, 40], [1.0, 2.0, 3.0, 4.0])
    child = hist([25, 30], [7.0, 8.0])
    g = compare.graft(parent, child, branch_step=20)
    assert g["step"].tolist() == [20, 25, 30] and g["loss_d"].tolist() == [2.0, 7.0, 8.0]
    assert compare.graft(parent, child, branch_step=5)["step"].tolist() == [25, 30]   # nothing before it


def test_overlay_draws_each_run_in_its_colour_and_skips_empty_series():
    opt = compare.losses_overlay([("a", hist([1, 2], [1, 2])), ("b", hist([1, 2], [3, 4]))], marks=[(1, "x")])
    lines = opt["series"]
    assert [s["name"] for s in lines] == ["a: D loss", "a: G loss", "b: D loss", "b: G loss"]
    colours = [s["lineStyle"]["color"] for s in lines]
    assert colours[0] == colours[1] != colours[2] == colours[3]
    assert [s["lineStyle"]["type"] for s in lines[:2]] == ["solid", "dashed"]
    assert charts.series_rows(opt, 2) == [[1, 3.0], [2, 4.0]]
    assert len({s["datasetIndex"] for s in lines}) == 4          # each curve reads its own run's table
    assert lines[0]["markLine"]["data"] == [{"name": "x", "xAxis": 1}]
    json.loads(charts.wire(opt)[0])                                # valid JSON (NaN travels inside Arrow)
    scores = compare.scores_overlay([("a", hist([1, 2], [1, 2]))])
    assert [s["name"] for s in scores["series"]] == ["a: D(x) real"]   # d_fake is all NaN: no empty series


def test_score_axis_label_says_when_runs_score_differently():
    assert compare.score_axis_label(["critic score", "critic score"]) == "critic score"
    assert "or critic" in compare.score_axis_label(["D(x) = P(real)", "critic score"])
    assert compare.score_axis_label([]) == "mean D"
    assert compare.overlay_height(4) > compare.overlay_height(2)


def test_branch_chart_has_parent_and_grafted_child():
    opt = compare.branch_chart("p", hist([10, 20, 30], [1, 2, 3]), "c", hist([25], [9]), 20)
    (i,) = [k for k, s in enumerate(opt["series"]) if s["name"] == "c: D loss"]
    assert [x for x, _ in charts.series_rows(opt, i)] == [20, 25] and "step 20" in opt["title"]["text"]
    opt = compare.branch_chart("p", hist([10], [1]), "c", hist([25], [9]), 20, colors=("#111111", "#222222"))
    assert [s["lineStyle"]["color"] for s in opt["series"]] == ["#111111"] * 2 + ["#222222"] * 2


def test_snapshot_at_takes_the_newest_at_or_before():
    snaps = [snap(0, 0), snap(100, 2), snap(200, 4)]
    assert compare.snapshot_at(snaps, 3).step == 100
    assert compare.snapshot_at(snaps, 9).step == 200
    assert compare.snapshot_at(snaps, 150, by="step").step == 100
    # all later: nothing, so a grid never shows epoch 2 under a slider that reads 0
    assert compare.snapshot_at([snap(100, 2)], 0) is None
    assert compare.snapshot_at([], 1) is None
    assert compare.epoch_options([snaps, [snap(50, 1)]]) == [0, 1, 2, 4]
    with pytest.raises(ValueError, match="epoch or step"):
        compare.snapshot_at(snaps, 1, by="time")


def test_2d_views_share_one_square_extent():
    a, b = snap(0, 0, two_d=True, half=2.0), snap(0, 0, two_d=True, half=3.0)
    extent = compare.shared_extent([a, b, snap(0, 0), None])
    assert extent == charts.view_extent(b) == (-4.0, 4.0)   # b's 4 cells of width 2, edge cells whole
    views = [charts.layered_2d_chart(s, ("real", "fake"), side=compare.VIEW_SIDE, extent=extent) for s in (a, b)]
    for v in views:
        assert (v["xAxis"][1]["min"], v["xAxis"][1]["max"]) == (v["yAxis"][1]["min"], v["yAxis"][1]["max"]) == extent
    assert views[0]["grid"][1] == views[1]["grid"][1]                      # the same plot square...
    assert views[0]["grid"][0]["width"] < views[1]["grid"][0]["width"] == compare.VIEW_SIDE   # a's field is smaller
    assert compare.shared_extent([snap(0, 0)]) is None


def test_quality_table_has_the_same_columns_for_every_run():
    table = compare.quality_table([("a", [{"step": 5, "modes_covered": 8, "kl": 0.123456}]), ("b", [])])
    assert table == [{"run": "a", "step": 5, "modes_covered": 8.0, "kl": 0.1235},
                     {"run": "b", "step": None, "modes_covered": None, "kl": None}]


def test_default_selection_prefers_the_current_run_and_its_parent():
    ids = ["new", "mid", "old"]
    assert compare.default_selection(ids, "mid", {"mid": "old"}) == ["mid", "old"]
    assert compare.default_selection(ids, None, {}) == ["new", "mid"]
    assert compare.default_selection(ids, "old", {"old": "gone"}) == ["old", "new"]


def test_unique_labels_tell_same_named_runs_apart():
    assert compare.unique_labels(["a", "a", "b"], ["20260101-101010-a", "20260101-111111-a", "x"]) == \
        ["a (101010)", "a (111111)", "b"]

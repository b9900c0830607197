"""ganlab.charts: ECharts options for the live panels (JSON-safe, the right series, aligned 2D layers)."""
from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest

# the serialiser st.echarts_chart runs for every session (private in Streamlit 1.67, pinned)
from streamlit.elements.echarts_chart import _normalize_spec, _serialize_option

from ganlab import charts
from ganlab.snapshots import HISTORY_KEYS, Snapshot


def _json(option: dict) -> dict:
    """The option as the browser gets it, through Streamlit's own serialiser: Arrow tables become named
    datasets, and the rest must be strict JSON (allow_nan=False: a NaN anywhere would be invalid)."""
    normalized, datasets = _normalize_spec(option)
    for entry in option.get("dataset", []):
        assert isinstance(entry["source"], pa.Table)   # the big arrays travel as Arrow, not as JSON lists
    return json.loads(_serialize_option(normalized))


def _history(n: int) -> dict[str, np.ndarray]:
    h = {k: np.linspace(0.5, 1.5, n) for k in HISTORY_KEYS}
    h["step"] = np.arange(n, dtype=float)
    return h


def _snap(fake: np.ndarray | None = None, score_label: str = "D(x) = P(real)") -> Snapshot:
    rng = np.random.default_rng(1)
    axis = np.linspace(-2.0, 2.0, 5)   # cell width 1
    field = np.arange(25, dtype=float).reshape(5, 5) / 24
    return Snapshot(step=1234, epoch=0, time=0.0,
                    fake=rng.normal(size=(20, 2)).astype(np.float32) * 0.5 if fake is None else fake,
                    hist_real=np.array([1, 2, 3]), hist_fake=np.array([3, 2, 1]),
                    score_edges=np.array([0.0, 1 / 3, 2 / 3, 1.0]), score_label=score_label,
                    real=rng.normal(size=(10, 2)), field_xs=axis, field_ys=axis, field=field,
                    manifold=rng.normal(size=(2, 3, 2)) * 0.5, grads=rng.normal(size=(20, 2)))


def test_line_chart_gaps_for_nan_and_log_zero():
    h = _history(4)
    h["loss_g"] = np.array([1.0, np.nan, 2.0, 3.0])
    h["grad_d"] = np.array([1.0, 0.0, 1e-7, 2.0])
    loss_opt, grads_opt = charts.loss_chart(h), charts.grads_chart(h)
    loss = _json(loss_opt)
    assert [s["name"] for s in loss["series"]] == ["D loss", "G loss"]
    assert loss["series"][1]["encode"] == {"x": "step", "y": "loss_g"}
    assert charts.series_rows(loss_opt, 1)[1] == [1, None]      # NaN: a gap, not a crash
    grads = _json(grads_opt)
    assert grads["yAxis"]["type"] == "log"
    assert charts.series_rows(grads_opt, 0)[1][1] is None        # 0 cannot sit on a log axis
    assert charts.series_rows(grads_opt, 0)[2][1] == pytest.approx(1e-7)   # tiny gradients keep their digits
    assert loss["animation"] is False


def test_line_chart_thins_long_histories():
    opt = charts.scores_chart(_history(5000), "D(x) = P(real)")
    data = charts.series_rows(opt, 0)
    assert len(data) <= charts.LIVE_POINTS + 1 and data[-1][0] == 4999
    assert opt["yAxis"]["name"] == "D(x) = P(real)"
    assert [s["name"] for s in charts.wdist_chart(_history(3))["series"]] == ["W estimate"]


def test_hist_chart_counts_and_labels():
    opt = _json(charts.hist_chart(_snap()))
    assert opt["xAxis"]["data"] == ["0.17", "0.50", "0.83"]
    assert [s["data"] for s in opt["series"]] == [[1, 2, 3], [3, 2, 1]]
    assert opt["series"][0]["barGap"] == "-100%"   # overlaid, like two histograms on one axis


def test_layered_2d_chart_layers_and_alignment():
    snap = _snap()
    raw = charts.layered_2d_chart(snap, side=200)
    opt = _json(raw)
    names = [s["name"] for s in opt["series"]]
    assert names == ["D", "real", "G manifold", "fake", "G's gradient"]
    # heatmap on a hidden category grid under the value grid: both grids at the same place
    assert opt["grid"][0] == opt["grid"][1] == {"left": 45, "top": charts.MARGIN["top"], "width": 200, "height": 200}
    assert opt["xAxis"][1]["min"] == -2.5 and opt["xAxis"][1]["max"] == 2.5   # half a cell beyond the centres
    heat = charts.series_rows(raw, 0)
    assert len(heat) == 25 and opt["series"][0]["encode"] == {"x": "i", "y": "j", "value": "v"}
    assert heat[1][:2] == [1, 0] and heat[1][2] == pytest.approx(1 / 24)   # [column i, row j, field[j, i]]
    assert heat[5][:2] == [0, 1] and heat[5][2] == pytest.approx(5 / 24)
    assert len(charts.series_rows(raw, 1)) == 10 and len(charts.series_rows(raw, 3)) == 20   # real, fake
    assert opt["visualMap"]["min"] == 0.0 and opt["visualMap"]["max"] == 1.0
    manifold = opt["series"][2]["data"]
    assert len(manifold) == 2 + 3                                 # grid rows and columns as polylines
    only = _json(charts.layered_2d_chart(snap, {"fake"}))
    assert [s["name"] for s in only["series"]] == ["fake"] and "visualMap" not in only
    assert [s["name"] for s in _json(charts.scatter_2d_chart(snap))["series"]] == ["real", "fake"]
    with pytest.raises(ValueError, match="unknown 2D layer"):
        charts.layered_2d_chart(snap, {"heat"})


def test_layered_2d_chart_critic_scale_and_outside_points():
    fake = np.array([[0.0, 0.0], [30.0, 40.0], [np.nan, 1.0]], dtype=np.float32)
    raw = charts.layered_2d_chart(_snap(fake, "critic score"), {"field", "fake"})
    opt = _json(raw)
    assert opt["visualMap"]["min"] == 0.0 and opt["visualMap"]["max"] == 1.0   # the field's own range
    assert opt["visualMap"]["text"] == ["high", "low"]
    assert charts.series_rows(raw, 1) == [[0.0, 0.0], [30.0, 40.0]]           # NaN point dropped
    assert opt["title"]["subtext"] == "2 of 3 fake points outside the view"
    assert _json(charts.scatter_2d_chart(_snap()))["title"]["subtext"] == ""


def test_layered_2d_chart_on_given_axes_keeps_the_field_in_place():
    """Compare's views: one square for every run. The value axes show the given extent, and the heatmap's grid
    covers just the field's part of it, so each cell stays on its centre (5 cells of width 1 from -2.5 to 2.5
    inside a view from -5 to 5, 200 px: 20 px per unit)."""
    snap = _snap()
    assert charts.view_extent(snap) == (-2.5, 2.5)
    opt = _json(charts.layered_2d_chart(snap, side=200, extent=(-5.0, 5.0), title="alpha · step 1", legend=False))
    assert opt["xAxis"][1]["min"] == opt["yAxis"][1]["min"] == -5.0 and opt["xAxis"][1]["max"] == 5.0
    assert opt["grid"][1] == {"left": 45, "top": charts.MARGIN["top"], "width": 200, "height": 200}
    assert opt["grid"][0] == {"left": 45 + 50.0, "top": charts.MARGIN["top"] + 50.0, "width": 100.0, "height": 100.0}
    assert opt["title"]["text"] == "alpha · step 1" and opt["legend"]["show"] is False
    same = _json(charts.layered_2d_chart(snap, side=200, extent=charts.view_extent(snap)))
    assert same["grid"][0] == same["grid"][1]   # its own extent: the grids coincide, as without one


def test_square_size_and_latent_chart():
    assert charts.square_size(100) == (45 + 100 + 15, charts.MARGIN["top"] + 100 + 30)
    assert charts.square_size(100, colorbar=True)[0] == 160 + charts.COLORBAR_WIDTH
    opt = _json(charts.latent_2d_chart(np.zeros((4, 2)), np.array([1.0, 2.0]), (-3.0, 3.0),
                                       others=np.ones((2, 2)), path=np.zeros((3, 2)), path_name="slerp"))
    assert [s["name"] for s in opt["series"]] == ["real", "other z", "slerp", "your z"]
    assert opt["series"][-1]["data"] == [[1.0, 2.0]] and opt["xAxis"]["min"] == -3.0


def test_wire_matches_what_streamlit_sends():
    """charts.wire (the benchmark's model of serving a chart) sends what st.echarts_chart sends."""
    option = charts.layered_2d_chart(_snap())
    spec, tables = charts.wire(option)
    normalized, datasets = _normalize_spec(option)
    assert sorted(len(t) for t in tables) == sorted(len(b) for b in datasets.values())
    assert abs(len(spec) - len(_serialize_option(normalized))) < 200   # dataset names differ in length only
    assert json.loads(spec)["series"][0]["encode"] == {"x": "i", "y": "j", "value": "v"}


def test_mode_bars_colour_the_covered_modes_and_draw_the_threshold():
    from ganlab.charts import mode_bar_chart
    option = mode_bar_chart({"step": 500, "mode_counts": [300, 0, 19, 20, 0, 0, 0, 1], "min_count": 20})
    bars = option["series"][0]["data"]
    assert [b["value"] for b in bars] == [300, 0, 19, 20, 0, 0, 0, 1]
    covered = [b["itemStyle"]["color"] != "#c8c8c8" for b in bars]
    assert covered == [True, False, False, True, False, False, False, False]
    assert option["series"][0]["markLine"]["data"] == [{"yAxis": 20}]
    assert "500" in option["title"]["text"]


# --- the model overview and the noise view (ganlab.overview) ---------------------------------------------
ROW = {"step": 1234.0, "loss_d": 1.3862, "loss_g": 0.6931, "d_real": 0.5234, "d_fake": 0.4712,
       "grad_g": 0.01234, "grad_d": 0.4567, "time": 10.0}


def _labels(option: dict) -> dict[str, str]:
    """Each node's label text and each gradient edge's label text, by node name or 'source->target'."""
    series = option["series"][0]
    out = {n["name"]: n["label"]["formatter"] for n in series["data"]}
    out.update({f"{e['source']}->{e['target']}": e["label"]["formatter"] for e in series["links"] if "label" in e})
    return out


def test_overview_graph_nodes_edges_and_the_rows_numbers():
    from ganlab.config import TrainConfig
    from ganlab.overview import overview_chart, overview_text

    cfg = TrainConfig(dataset="ring8", loss="nonsaturating", noise_dim=2)
    option = _json(overview_chart(ROW, cfg))
    series = option["series"][0]
    assert series["type"] == "graph" and series["layout"] == "none" and option["animation"] is False
    names = [n["name"] for n in series["data"]]
    assert names == ["noise z", "G", "fake G(z)", "real x", "D", "D(G(z))", "D(x)", "loss_G", "loss_D"]
    edges = {(e["source"], e["target"]): e for e in series["links"]}
    for flow in [("noise z", "G"), ("G", "fake G(z)"), ("fake G(z)", "D"), ("real x", "D"), ("D", "D(x)"),
                 ("D", "D(G(z))"), ("D(x)", "loss_D"), ("D(G(z))", "loss_D"), ("D(G(z))", "loss_G")]:
        assert flow in edges and "lineStyle" not in edges[flow]           # forward edges: the series' one style
    for grad in [("loss_D", "D"), ("loss_G", "G")]:
        assert edges[grad]["lineStyle"]["type"] == "dashed"              # gradients flow back, dashed
    labels = _labels(option)
    assert labels["D(x)"].endswith("{v|0.52}") and labels["D(G(z))"].endswith("{v|0.47}")   # probabilities
    assert labels["loss_D"].endswith("{v|1.39}") and labels["loss_G"].endswith("{v|0.693}")
    assert labels["loss_D->D"] == "|∇D| 0.457" and labels["loss_G->G"] == "|∇G| 0.0123"
    assert labels["noise z"] == "{n|noise z}\n{v|N(0, I)}\n{v|2-d}"
    assert "step 1,234" in option["title"]["text"] and "P(real)" in option["title"]["subtext"]
    colours = {n["name"]: n["itemStyle"]["borderColor"] for n in series["data"]}
    assert colours["real x"] == colours["D(x)"] == charts.REAL_COLOR
    assert colours["fake G(z)"] == colours["D(G(z))"] == charts.FAKE_COLOR
    # a fixed layout: another row moves no node
    other = overview_chart({**ROW, "d_real": 0.9, "step": 2000.0}, cfg)["series"][0]["data"]
    assert [(n["x"], n["y"]) for n in other] == [(n["x"], n["y"]) for n in series["data"]]
    assert overview_text(ROW, cfg) == ("Step 1,234: D(x) 0.52 · D(G(z)) 0.47 · loss D 1.39 · loss G 0.693 · "
                                       "|∇D| 0.457 · |∇G| 0.0123 (D outputs P(real))")


def test_overview_shows_a_dash_for_a_diverged_row_and_critic_scores_as_scores():
    from ganlab.config import TrainConfig
    from ganlab.overview import overview_chart, overview_text

    cfg = TrainConfig(dataset="ring8", loss="wgan-gp", noise_dist="uniform")
    bad = {**ROW, "loss_d": float("nan"), "d_real": float("inf"), "grad_g": float("-inf"), "d_fake": -2.5}
    option = _json(overview_chart(bad, cfg))                 # strict JSON: no NaN or inf left anywhere
    labels = _labels(option)
    assert labels["loss_D"].endswith("{v|-}") and labels["D(x)"].endswith("{v|-}")
    assert labels["loss_G->G"] == "|∇G| -" and labels["D(G(z))"].endswith("{v|-2.5}")   # a critic's raw score
    assert "critic score" in option["title"]["subtext"] and "U(-1, 1)" in labels["noise z"]
    text = overview_text(bad, cfg)
    assert "D(x) - ·" in text and "loss D - ·" in text and "|∇G| -" in text and "critic" in text
    assert "step" not in _json(overview_chart({"loss_d": 1.0}, cfg))["title"]["text"]   # a row without a step


def test_noise_view_draws_the_prior_and_the_manifolds_grid():
    from ganlab.overview import noise_chart, noise_note, noise_size

    snap = _snap()   # its manifold is a 2 x 3 grid of z
    two = _json(noise_chart(snap, 2, "normal", seed=0))
    assert two["title"]["text"] == "Noise z ~ N(0, I)"
    grid = two["series"][0]
    assert grid["type"] == "lines" and len(grid["data"]) == 2 * 3            # 3 lines each way, as the manifold
    assert grid["data"][0]["coords"] == [[-3.0, -3.0], [3.0, -3.0]]          # latent.z_span: +-3 for N(0, I)
    assert grid["lineStyle"]["color"] == "#3c3c3c"                           # the 2D view's manifold lines
    points = charts.series_rows(noise_chart(snap, 2, "normal", seed=0), 1)
    assert 350 < len(points) <= 400 and all(abs(v) <= 3.45 for p in points for v in p)
    one = noise_chart(snap, 1, "uniform", seed=0)
    assert one["title"]["text"] == "Noise z ~ U(-1, 1)" and one["series"][0]["data"] == [
        {"coords": [[-1.0, 0.0], [1.0, 0.0]]}]
    assert all(-1 <= p[0] <= 1 and -0.6 <= p[1] <= 0.6 for p in charts.series_rows(one, 1))
    assert len(one["series"][2]["data"]) == 3                                # the grid's points along the line
    assert noise_size(1)[1] < noise_size(2)[1]                               # 1-d: a strip
    assert noise_note(2) is None and noise_note(8).startswith("Noise has 8 dimensions")
    with pytest.raises(ValueError, match="1-d or 2-d"):
        noise_chart(snap, 3, "normal", seed=0)

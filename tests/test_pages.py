"""Every page through Streamlit's AppTest: with no run, a live 2D run and a finished image run; the run
buttons, the config form, live settings, quick start and the shared run picker.

AppTest runs the real scripts in this process (real registry, real training threads on tiny configs).
Fragments' run_every timers never fire here, so a test calls run() again to see new data.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from apptest_util import echarts
from engine_util import settled, wait_for
from streamlit.testing.v1 import AppTest

from ganlab.charts import series_rows
from ganlab.config import TrainConfig, get_preset
from ganlab.data_specs import SPECS
from ganlab.registry import RunRegistry
from ganlab.runs import Run
from ui.common import picker_key
from ui.config_form import FORM_GROUPS, parse_config, widget_value

REPO = Path(__file__).resolve().parent.parent
PAGES = ["pages/1_Train.py", "pages/2_Samples.py", "pages/3_Latent.py", "pages/4_Discriminator.py"]
TIMEOUT = 60   # AppTest's default is 3 s; a page that builds a run or loads MNIST needs more on a busy CPU


def wait_view(run: Run, done, timeout: float = 60.0):
    """run.view() once `done(view)` holds; a timeout says where the run is (state, message, step)."""
    def ready():
        view = run.view()
        return view if done(view) else None

    def where() -> str:
        v = run.view(with_snapshots=False)
        return f"run {run.id}, which is {v.state} ({v.message}) at step {v.step}"
    return wait_for(ready, where, timeout, every=0.1)


@pytest.fixture
def ring_run(lab: RunRegistry) -> Run:
    """A 2D ring8 run that keeps training through the test (stopped by the lab fixture)."""
    cfg = get_preset("ring8").config(steps=100_000, snapshot_every=20, stats_every=5, batch_size=64)
    run = lab.create(cfg, "ring")
    wait_view(run, lambda v: len(v.snapshots) >= 2 and len(v.history["step"]) >= 2)
    return run


@pytest.fixture
def image_run(lab: RunRegistry) -> Run:
    """A tiny MNIST MLP run, finished (one snapshot at step 0, one at the end)."""
    cfg = get_preset("mnist-mlp").config(batch_size=16, steps=20, g_layers=(32,), d_layers=(32,))
    run = lab.create(cfg, "digits")
    wait_view(run, lambda v: v.state in ("finished", "failed"))
    assert run.view().state == "finished", run.view().message
    return run


def open_page(path: str = "app.py", run_id: str | None = None) -> AppTest:
    at = AppTest.from_file(str(REPO / path), default_timeout=TIMEOUT)
    if run_id is not None:
        at.query_params["run"] = run_id
    return at.run()


def assert_clean(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def image_urls(at: AppTest) -> list[str]:
    return [url for el in at.get("image") for url in el.value]


# --- rendering ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["app.py", *PAGES])
def test_pages_render_without_runs(lab: RunRegistry, path: str) -> None:
    at = open_page(path)
    assert_clean(at)
    if path != "app.py":
        assert any("No run selected" in i.value for i in at.info)
    else:
        labels = [b.label for b in at.button]   # 5 columns, filled row by row, read column by column
        assert labels[0] == "ring8" and {"ring8-collapse", "ring8-saturating", "ring8-hop"} <= set(labels)


def test_home_navigates_to_every_page_file(lab: RunRegistry) -> None:
    at = open_page()
    for path in sorted(p.relative_to(REPO).as_posix() for p in (REPO / "pages").glob("*.py")):
        at.switch_page(path).run()
        assert_clean(at)


@pytest.mark.parametrize("path", ["app.py", *PAGES])
def test_pages_render_with_a_live_2d_run(ring_run: Run, path: str) -> None:
    at = open_page(path, ring_run.id)
    assert_clean(at)
    assert at.session_state["run_id"] == ring_run.id
    specs = echarts(at)
    if path.endswith("Train.py"):
        titles = [s["title"]["text"] for s in specs[:4]]
        assert titles[0].startswith("Model overview at step")
        assert titles[1:] == ["Losses", "Discriminator scores", "Gradient norms (log scale)"]
        assert len(series_rows(specs[1], 0)) >= 2
        assert at.metric[0].value.endswith("/ 100,000")
    if path.endswith("Discriminator.py"):
        assert [s["name"] for s in specs[0]["series"]] == ["D", "real", "G manifold", "fake", "G's gradient"]
        at.checkbox(key="disc.layer.grads").uncheck().run()
        assert "G's gradient" not in [s["name"] for s in echarts(at)[0]["series"]]
    if path.endswith("Samples.py") or path.endswith("Latent.py"):
        assert specs, "the 2D view is missing"


@pytest.mark.parametrize("path", PAGES)
def test_pages_render_with_an_image_run(image_run: Run, path: str) -> None:
    at = open_page(path, image_run.id)
    assert_clean(at)
    if path.endswith(("Samples.py", "Latent.py")):
        assert image_urls(at), "no sample grid drawn"
    if path.endswith("Samples.py"):
        assert len(at.get("image")) == 2                        # generated beside real
        assert [b.label for b in at.get("download_button")][0].startswith("Download this grid")


# --- run controls ---------------------------------------------------------------------------------------
def test_buttons_change_the_run_state(lab: RunRegistry) -> None:
    cfg = get_preset("ring8").config(steps=100_000, stats_every=5, batch_size=64)
    run = lab.create(cfg, "buttons", start=True, paused=True)
    wait_view(run, lambda v: v.state == "paused")
    at = open_page("pages/1_Train.py", run.id)
    assert_clean(at)
    assert at.button(key="train-resume").disabled is False and at.button(key="train-pause").disabled is True

    at.button(key="train-resume").click().run()
    assert run.view().state in ("running", "finished")
    at.button(key="train-pause").click().run()
    assert run.view().state == "paused"

    # the worker may still finish the update it was in when Pause was pressed: wait until the step stays put
    settled(lambda: run.view(with_snapshots=False).step, "the paused run's step to settle")
    before = run.view()
    at.button(key="train-both").click().run()
    assert run.view().step == before.step + 1
    rows = len(run.view().history["step"])
    at.button(key="train-d").click().run()
    assert len(run.view().history["step"]) == rows + 1 and run.view().step == before.step + 1   # D only
    said = [s.value for s in at.success]   # a lone D step leaves the counter: the page says what it did
    assert any(t.startswith("One D update done: D's loss") and "counts G updates" in t for t in said), said
    at.button(key="train-g").click().run()
    assert run.view().step == before.step + 2

    at.button(key="train-stop").click().run()
    assert run.view().state == "stopped"
    assert_clean(at)
    assert at.button(key="train-start").disabled is False    # a stopped run can continue


def test_live_settings_apply_and_reject(ring_run: Run) -> None:
    at = open_page("pages/1_Train.py", ring_run.id)
    at.number_input(key=f"live.{ring_run.id}.g_lr").set_value(0.0005)
    at.button(key=f"FormSubmitter:live-form-{ring_run.id}-Apply to the running run").click().run()
    assert ring_run.cfg.g_lr == 0.0005
    at.number_input(key=f"live.{ring_run.id}.d_steps").set_value(0)
    at.button(key=f"FormSubmitter:live-form-{ring_run.id}-Apply to the running run").click().run()
    assert_clean(at)
    assert ring_run.cfg.d_steps == 1
    assert any("d_steps" in e.value for e in at.error)


# --- config form ----------------------------------------------------------------------------------------
def test_config_form_shows_errors_next_to_fields_and_starts_valid_runs(lab: RunRegistry) -> None:
    at = open_page("pages/1_Train.py")
    at.text_input(key="cfg.g_layers").input("64,x")
    at.button(key="FormSubmitter:cfg-form-Start new run").click().run()
    assert_clean(at)
    assert any("g_layers" in e.value for e in at.error) and lab.list() == []

    at.selectbox(key="cfg.preset").select("ring8-wgan-gp").run()     # the preset refills the form
    assert at.text_input(key="cfg.g_layers").value == "64,64,64"
    at.number_input(key="cfg.steps").set_value(30)
    at.text_input(key="cfg.name").input("my wgan")
    at.button(key="FormSubmitter:cfg-form-Start new run").click().run()
    assert_clean(at)
    runs = lab.list()
    assert len(runs) == 1 and runs[0].name == "my wgan" and runs[0].cfg.loss == "wgan-gp"
    assert at.session_state["run_id"] == runs[0].id


def test_a_start_press_survives_a_rerun_that_interrupts_its_script_run(lab: RunRegistry,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A rerun the browser sends preempts a script run at its next st call. One that came between the form and
    the start (the configuration link's button sits there) lost the press: the form had already handed its
    result over, and the rerun started nothing (a student's Start did nothing, under load). The interruption
    is made real here: st.rerun() at that st call, once."""
    import streamlit as st

    import ui.classroom
    real, interrupted = ui.classroom.copy_link, []

    def copy_link(page, params, key, **kw):
        if key == "cfg-link" and st.session_state.get("cfg._result") is not None and not interrupted:
            interrupted.append(True)
            st.rerun()
        return real(page, params, key, **kw)

    monkeypatch.setattr(ui.classroom, "copy_link", copy_link)
    at = open_page("pages/1_Train.py")
    at.selectbox(key="cfg.preset").select("ring8").run()
    at.number_input(key="cfg.steps").set_value(30)
    at.button(key="FormSubmitter:cfg-form-Start new run").click().run()
    assert_clean(at)
    assert interrupted, "the press's script run was not interrupted between the form and the start"
    runs = lab.list()
    assert len(runs) == 1 and runs[0].cfg.steps == 30, [r.id for r in runs]   # one run: never none, never two
    assert at.session_state["run_id"] == runs[0].id
    at.run()
    assert len(lab.list()) == 1   # the press was taken: a later rerun starts nothing more


def test_parse_config_is_pure_and_reports_each_bad_field() -> None:
    base = {f: widget_value(TrainConfig(), f) for _, names in FORM_GROUPS for f in names}
    cfg, errors = parse_config(base)
    assert errors == {} and cfg == TrainConfig()
    _, errors = parse_config({**base, "g_layers": "64,x", "seed": "abc"})
    assert set(errors) == {"g_layers", "seed"}
    _, errors = parse_config({**base, "dataset": "mnist5k", "model": "dcgan", "loss": "nope"})
    assert list(errors) == ["loss"] and "nonsaturating" in errors["loss"]
    _, errors = parse_config({**base, "dataset": "csv"})
    assert "data_path" in errors
    cfg, _ = parse_config({**base, "g_lr": 1, "steps": 50.0})
    assert cfg.g_lr == 1.0 and isinstance(cfg.g_lr, float) and cfg.steps == 50


def test_form_groups_cover_every_config_field() -> None:
    grouped = [f for _, names in FORM_GROUPS for f in names]
    assert sorted(grouped) == sorted(TrainConfig().to_dict()) and len(grouped) == len(set(grouped))


# --- home and run selection -----------------------------------------------------------------------------
def test_quick_start_creates_a_run_and_opens_train(lab: RunRegistry) -> None:
    at = open_page()
    at.button(key="quick-ring8").click().run()
    assert_clean(at)
    runs = lab.list()
    assert len(runs) == 1 and runs[0].name == "ring8"
    assert at.session_state["run_id"] == runs[0].id
    assert at.title[0].value == "ring8" and not at.button(key="train-stop").disabled   # the Train page
    runs[0].stop(wait=10)


def test_url_selects_the_run_and_the_picker_keeps_it_in_the_url(lab: RunRegistry) -> None:
    small = get_preset("ring8").config(steps=10)
    first = lab.create(small, "first", start=False)
    second = lab.create(small, "second", start=False)
    at = open_page("pages/4_Discriminator.py", first.id)
    assert at.session_state["run_id"] == first.id
    at.selectbox(key=picker_key(at.session_state["run_id"])).select(second.id).run()
    assert at.session_state["run_id"] == second.id and at.query_params["run"] == second.id


def test_latent_slider_changes_the_samples(image_run: Run) -> None:
    at = open_page("pages/3_Latent.py", image_run.id)
    assert_clean(at)
    before = image_urls(at)[0]
    assert any("generated 16 samples in" in c.value for c in at.caption)
    slider = at.slider(key=f"lat.{image_run.id}.z0")
    slider.set_value(2.5 if slider.value < 0 else -2.5).run()
    assert_clean(at)
    assert image_urls(at)[0] != before


def test_samples_play_walks_through_the_snapshots(image_run: Run) -> None:
    at = open_page("pages/2_Samples.py", image_run.id)
    assert at.image[0].captions[0].startswith("Generated, step 20")     # follows the newest snapshot
    at.button(key="samples-play").click().run()                         # from the end, play starts over
    assert_clean(at)
    assert at.image[0].captions[0].startswith("Generated, step 0") and at.session_state["samples.playing"]
    at.run()                                                            # one timer tick: the last frame
    assert_clean(at)
    assert at.image[0].captions[0].startswith("Generated, step 20") and not at.session_state["samples.playing"]


def test_latent_class_picker_for_a_conditional_run(lab: RunRegistry) -> None:
    run = lab.create(get_preset("ring8").config(conditional=True, steps=10), "cond")
    wait_view(run, lambda v: v.state == "finished", timeout=60)
    at = open_page("pages/3_Latent.py", run.id)
    assert_clean(at)
    picker = at.selectbox(key=f"lat.{run.id}.class")
    assert picker.options[:2] == ["mode 0", "mode 1"] and len(picker.options) == 8
    before = echarts(at)[0]["series"][-1]["data"]
    picker.select_index(5).run()
    assert_clean(at)
    assert echarts(at)[0]["series"][-1]["data"] != before               # another class: another point


def test_home_disables_a_preset_whose_dataset_is_missing(lab: RunRegistry, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(SPECS["fashion"].params, "folder", "/nowhere")   # as on a machine without the Debian package
    at = open_page()
    assert_clean(at)
    assert at.button(key="quick-fashion-dcgan").disabled and not at.button(key="quick-mnist-mlp").disabled
    assert any(c.value.startswith("Unavailable: Fashion-MNIST not found") for c in at.caption)


@pytest.mark.parametrize("path", ["pages/1_Train.py", "pages/4_Discriminator.py"])
def test_2d_pages_show_fakes_per_mode_with_the_covered_line(ring_run: Run, path: str) -> None:
    wait_view(ring_run, lambda v: any(q.get("mode_counts") for q in v.quality))
    at = open_page(path, ring_run.id)
    assert_clean(at)
    bars = [s for s in echarts(at) if s.get("title", {}).get("text", "").startswith("Fakes per mode")]
    assert len(bars) == 1, [s.get("title") for s in echarts(at)]
    counts = [b["value"] for b in bars[0]["series"][0]["data"]]
    assert len(counts) == 8 and sum(counts) > 0
    if path.endswith("Train.py"):
        labels = [r for t in at.table for r in t.value["measure"]]
        assert "modes with any sample" in labels and "modes covered" in labels


# --- the model overview and the noise view (issue 16) --------------------------------------------------
def test_train_shows_the_model_overview_with_the_latest_rows_numbers(ring_run: Run) -> None:
    at = open_page("pages/1_Train.py", ring_run.id)
    assert_clean(at)
    graphs = [s for s in echarts(at) if s["title"]["text"].startswith("Model overview at step")]
    assert len(graphs) == 1
    shown = int(graphs[0]["title"]["text"].rsplit(" ", 1)[-1].replace(",", ""))
    h = ring_run.view().history
    i = list(h["step"]).index(shown)                       # the row the page drew (the run has moved on since)
    row = {k: float(v[i]) for k, v in h.items()}
    labels = {n["name"]: n["label"]["formatter"] for n in graphs[0]["series"][0]["data"]}
    assert labels["D(x)"].endswith(f"{{v|{row['d_real']:.2f}}}")
    assert labels["D(G(z))"].endswith(f"{{v|{row['d_fake']:.2f}}}")
    assert labels["loss_D"].endswith(f"{{v|{row['loss_d']:.3g}}}")
    assert labels["loss_G"].endswith(f"{{v|{row['loss_g']:.3g}}}")
    grads = [e["label"]["formatter"] for e in graphs[0]["series"][0]["links"] if "label" in e]
    assert grads == [f"|∇G| {row['grad_g']:.3g}", f"|∇D| {row['grad_d']:.3g}"]
    caption = [c.value for c in at.caption if c.value.startswith(f"Step {shown:,}: D(x) ")]
    assert caption and f"loss D {row['loss_d']:.3g}" in caption[0]       # the same numbers, as text
    # ring8 has 8-d noise: no noise view, a line under the 2D view instead, whose manifold is a 2-d slice
    assert not [s for s in echarts(at) if s["title"]["text"].startswith("Noise z")]
    assert any("Noise has 8 dimensions: the manifold view shows a 2-d slice" in c.value for c in at.caption)
    view_2d = [s for s in echarts(at) if s["title"]["text"].startswith("Step ")]
    assert [s["name"] for s in view_2d[0]["series"]] == ["real", "G manifold", "fake"]


def test_train_shows_the_noise_beside_the_2d_view_for_1d_noise(lab: RunRegistry) -> None:
    cfg = get_preset("ring8-collapse").config(steps=40, snapshot_every=20, stats_every=5)
    run = lab.create(cfg, "one-d noise")
    wait_view(run, lambda v: v.state in ("finished", "failed"))
    at = open_page("pages/1_Train.py", run.id)
    assert_clean(at)
    noise = [s for s in echarts(at) if s["title"]["text"].startswith("Noise z")]
    assert len(noise) == 1 and noise[0]["title"]["text"] == "Noise z ~ N(0, I)"
    assert noise[0]["series"][0]["data"] == [{"coords": [[-3.0, 0.0], [3.0, 0.0]]}]   # 1-d: a line of z
    assert any(c.value.startswith("Noise at step 40:") for c in at.caption)


def test_a_rerun_carrying_the_url_this_session_just_replaced_keeps_the_new_run(lab: RunRegistry) -> None:
    """The browser sends its URL with every rerun: a fragment's tick sent before the new ?run= arrived carried the
    old one, it read as a link, and a student's Start showed another student's run."""
    small = get_preset("ring8").config(steps=10)
    first = lab.create(small, "first", start=False)
    second = lab.create(small, "second", start=False)
    at = open_page("pages/1_Train.py", first.id)
    at.selectbox(key=picker_key(first.id)).select(second.id).run()
    assert at.session_state["run_id"] == second.id and at.query_params["run"] == second.id
    at.query_params["run"] = first.id   # the browser's copy from before the pick
    at.run()
    assert_clean(at)
    assert at.session_state["run_id"] == second.id and at.query_params["run"] == second.id


def test_the_picker_of_a_run_selected_before_never_selects() -> None:
    """After a Start, the browser's copy of the old picker (keyed by the run selected before) comes back with any
    rerun it sends first; a label of it that changed since (the other run went from queued to running) read as a
    pick, and the student's Start opened another student's run (1 in 6 rehearsals)."""
    def script() -> None:
        import streamlit as st

        from ui.common import RUN_KEY, _picked, picker_key
        st.session_state["_picker_shown"] = {"old · running": "old", "new · queued": "new"}
        st.session_state[RUN_KEY] = "new"   # Start selected the new run
        st.session_state[picker_key("old")] = "old · running"   # the old picker's value, as the browser sends it
        _picked(picker_key("old"))
        st.session_state["after_stale"] = st.session_state[RUN_KEY]
        st.session_state[picker_key("new")] = "old · running"   # a pick on the picker drawn now still selects
        _picked(picker_key("new"))
        st.session_state["after_pick"] = st.session_state[RUN_KEY]

    at = AppTest.from_function(script, default_timeout=TIMEOUT).run()
    assert not at.exception
    assert at.session_state["after_stale"] == "new" and at.session_state["after_pick"] == "old"


def test_two_runs_with_one_name_started_in_one_second_have_distinct_picker_labels(lab: RunRegistry) -> None:
    """The browser picks by label: two ring8 runs started in the same second (a class pressing Start together)
    had one label, so picking the second selected the first."""
    small = get_preset("ring8").config(steps=10)
    for _ in range(5):
        a, b = lab.create(small, "ring8", start=False), lab.create(small, "ring8", start=False)
        if a.id[:15] == b.id[:15]:
            break
    assert a.id[:15] == b.id[:15], "could not create two runs in one second"
    at = open_page("pages/4_Discriminator.py", a.id)
    labels = at.selectbox(key=picker_key(at.session_state["run_id"])).options
    assert len(set(labels)) == len(labels), labels
    at.selectbox(key=picker_key(at.session_state["run_id"])).select(b.id).run()
    assert_clean(at)
    assert at.session_state["run_id"] == b.id

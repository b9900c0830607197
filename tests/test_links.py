"""Links (ganlab.links): every preset and generated configurations survive a round trip through a link; hostile
and mistyped query values get the form's messages and never raise; view values are read within their ranges."""
from __future__ import annotations

import random
from urllib.parse import parse_qsl, urlsplit

import pytest

from ganlab import links
from ganlab.config import PRESETS, TrainConfig, get_preset


def _round_trip(cfg: TrainConfig, preset: str | None = None) -> tuple[TrainConfig | None, dict]:
    link = links.url("http://lab:8501", "Train", links.config_params(cfg, preset))
    params = dict(parse_qsl(urlsplit(link).query))
    assert links.is_config_link(params)
    _, back, errors = links.config_from_params(params)
    return back, errors


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_round_trips(name: str) -> None:
    cfg = get_preset(name).config()
    params = links.config_params(cfg, name)
    assert params == {"preset": name}, "a preset's own link names only the preset"
    back, errors = _round_trip(cfg, name)
    assert errors == {} and back == cfg


CHANGES = {"loss": ["minimax", "hinge", "lsgan", "wgan-gp"], "g_lr": [1e-4, 3.5e-3, 0.02], "d_lr": [2e-4, 1e-2],
           "batch_size": [16, 100, 1024], "steps": [10, 12345], "noise_dim": [1, 2, 32], "seed": [0, 7, 2**31 - 1],
           "g_layers": [(16,), (32, 64, 128)], "d_layers": [(8, 8), (256,)], "label_smoothing": [0.0, 0.1],
           "instance_noise": [0.0, 0.05], "r1_gamma": [0.0, 1.0], "d_steps": [1, 3], "spectral_norm": [True, False],
           "lr_decay": ["none", "linear"], "beta1": [0.0, 0.5, 0.9], "noise_dist": ["normal", "uniform"]}


def test_generated_configurations_round_trip() -> None:
    rng = random.Random(0)
    tried = 0
    for _ in range(300):
        preset = rng.choice([p for p in PRESETS if get_preset(p).config().is_2d])
        picked = {k: rng.choice(v) for k, v in rng.sample(sorted(CHANGES.items()), rng.randint(1, 6))}
        try:
            cfg = get_preset(preset).config(**picked)
        except ValueError:
            continue   # an invalid combination is the form's business, not a link's
        for hint in (preset, None):   # None: the link picks the closest preset itself
            back, errors = _round_trip(cfg, hint)
            assert errors == {} and back == cfg, (preset, picked, errors)
        tried += 1
    assert tried > 200


HOSTILE = [
    ({"preset": "nope"}, "preset"), ({"loss": "bogus"}, "loss"), ({"g_lr": "abc"}, "g_lr"),
    ({"g_lr": "nan"}, "g_lr"), ({"g_lr": "1e308"}, "g_lr"), ({"g_lr": "-1"}, "g_lr"), ({"steps": "1.5"}, "steps"),
    ({"steps": "0"}, "steps"), ({"steps": "9" * 300}, "steps"), ({"batch_size": "-5"}, "batch_size"),
    ({"g_layers": "1,2,x"}, "g_layers"), ({"g_layers": ",".join(["64"] * 40)}, "g_layers"),
    ({"spectral_norm": "maybe"}, "spectral_norm"), ({"data_path": "/etc/passwd"}, "data_path"),
    ({"device": "cuda:7"}, "device"), ({"dataset": "../../etc"}, "dataset"), ({"model": "dcgan"}, "model"),
    ({"noise_dim": "100000"}, "noise_dim"), ({"dataset": "spiral", "conditional": "true"}, "conditional"),
    ({"seed": "0x10"}, "seed"),
    ({"preset": "mnist-dcgan", "conditional": "1", "dataset": "spiral"}, None),
]


@pytest.mark.parametrize("params,field", HOSTILE)
def test_hostile_values_get_a_message_on_their_field(params: dict, field: str | None) -> None:
    preset, cfg, errors = links.config_from_params(params)
    assert preset in PRESETS
    assert errors, "a bad value must be reported"
    if field is not None:
        assert field in errors and errors[field]
    assert cfg is None or isinstance(cfg, TrainConfig)
    if cfg is not None:   # what could be read is kept; the bad field stays at the preset's value
        assert all(getattr(cfg, f) == getattr(get_preset(preset).config(), f) for f in errors if f != "preset")


def test_the_good_fields_of_a_half_bad_link_are_kept() -> None:
    _, cfg, errors = links.config_from_params({"preset": "ring8", "loss": "hinge", "g_lr": "zzz", "steps": "500"})
    assert set(errors) == {"g_lr"}
    assert cfg.loss == "hinge" and cfg.steps == 500 and cfg.g_lr == get_preset("ring8").config().g_lr


def test_repeated_and_list_values_take_the_last() -> None:
    _, cfg, errors = links.config_from_params({"preset": ["grid25", "ring8"], "loss": ["hinge"]})
    assert not errors and cfg.loss == "hinge" and cfg == get_preset("ring8").config(loss="hinge")


def test_view_readers_keep_values_in_range() -> None:
    assert links.read_int("12", 0, 100) == 12
    for bad in (None, "", "x", "1e3", "-1", "101", "9" * 40, ["5", "x"]):
        assert links.read_int(bad, 0, 100) is None
    assert links.read_floats("0.5,-9,2", 3.0) == [0.5, -3.0, 2.0]
    for bad in ("", "a,b", "nan", "inf,1", ",".join(["1"] * 2000)):
        assert links.read_floats(bad, 3.0) is None
    assert links.read_names("field,fake", ["field", "fake", "real"]) == ["field", "fake"]
    assert links.read_names("field,<script>", ["field"]) is None


def test_url_encodes_every_value() -> None:
    link = links.url("http://h:1/", "Samples", {"run": "a b&c", "step": 5, "none": None})
    assert link == "http://h:1/Samples?run=a+b%26c&step=5"
    assert links.url("http://h:1", "", {}) == "http://h:1/"


# --- runs on data of their own (an upload, a drawing) --------------------------------------------------------
def _upload_run_config(runs_dir) -> TrainConfig:
    """What a drawn or uploaded-CSV run's config looks like: dataset csv, a path under runs/.uploads."""
    return get_preset("ring8").config(dataset="csv", data_path=str(runs_dir / ".uploads" / "0123abcd.csv"),
                                      g_lr=0.002, loss="hinge")


def test_a_link_to_an_upload_run_keeps_its_settings_and_says_to_bring_the_data(tmp_path) -> None:
    params = links.config_params(_upload_run_config(tmp_path))
    assert "data_path" not in params and str(tmp_path) not in str(params)
    preset, cfg, errors = links.config_from_params(params)
    assert cfg is not None and cfg.g_lr == 0.002 and cfg.loss == "hinge"   # the link's settings are kept
    assert set(errors) == {links.PRESET_KEY}, errors                          # a note, no field is blamed
    assert "upload" in errors[links.PRESET_KEY] and "drawing" in errors[links.PRESET_KEY].lower()
    zipped = get_preset("mnist-dcgan").config(dataset="folder", data_path=str(tmp_path / "x.zip"), image_size=32)
    _, cfg, errors = links.config_from_params(links.config_params(zipped))
    assert cfg is not None and cfg.image_size == 32 and set(errors) == {links.PRESET_KEY}
    assert "zip" in errors[links.PRESET_KEY]


def test_the_train_form_opens_an_upload_runs_link_with_an_info_not_an_error(lab) -> None:
    from apptest_util import open_page
    at = open_page("pages/1_Train.py")
    for k, v in links.config_params(_upload_run_config(lab.runs_dir)).items():
        at.query_params[k] = v
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert not [e.value for e in at.error], [e.value for e in at.error]
    info = " ".join(e.value for e in at.info)
    assert "A link filled this form" in info and "upload the CSV" in info, info
    assert at.session_state["cfg.loss"] == "hinge" and at.session_state["cfg.dataset"] == "ring8"

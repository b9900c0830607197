"""Tests for ganlab.config: defaults and presets validate, every bad value raises ConfigError naming its field and
what is allowed, and the round trips (dict, JSON, CLI key=value) keep values and types."""
from __future__ import annotations

import json

import pytest

from ganlab.config import (
    DATASETS,
    LIVE_FIELDS,
    LOSSES,
    MODELS,
    PRESETS,
    ConfigError,
    TrainConfig,
    get_preset,
    parse_value,
)


def test_defaults_are_valid_and_2d():
    cfg = TrainConfig()
    assert cfg.dataset == "ring8" and cfg.is_2d and cfg.model == "mlp"
    assert isinstance(cfg.g_layers, tuple) and all(isinstance(w, int) for w in cfg.g_layers)


@pytest.mark.parametrize("field_name, value, allowed", [
    ("dataset", "cifar100", DATASETS),
    ("model", "resnet", MODELS),
    ("loss", "kl", LOSSES),
    ("g_opt", "lbfgs", ("adam", "sgd", "rmsprop")),
    ("noise_dist", "cauchy", ("normal", "uniform")),
    ("device", "tpu", ("auto", "cpu", "cuda", "mps")),
    ("lr_decay", "cosine", ("none", "linear")),
])
def test_bad_choice_names_field_and_every_allowed_value(field_name, value, allowed):
    with pytest.raises(ConfigError) as info:
        TrainConfig(**{field_name: value})
    assert info.value.field == field_name
    assert repr(value) in info.value.message
    for name in allowed:
        assert name in info.value.message
    assert str(info.value).startswith(f"{field_name}: ")


@pytest.mark.parametrize("changes, field_name, fragment", [
    ({"g_lr": 0.0}, "g_lr", "above 0"),
    ({"d_lr": 1.5}, "d_lr", "at most 1"),
    ({"g_lr": float("nan")}, "g_lr", "must be a number"),
    ({"dropout": 0.99}, "dropout", "at most 0.95"),
    ({"label_smoothing": -0.1}, "label_smoothing", "at least 0"),
    ({"batch_size": 0}, "batch_size", "between 1 and 8192"),
    ({"batch_size": 8.0}, "batch_size", "whole number"),
    ({"steps": True}, "steps", "whole number"),
    ({"d_steps": 21}, "d_steps", "between 1 and 20"),
    ({"noise_dim": 0}, "noise_dim", "between 1 and 1024"),
    ({"channels": 2}, "channels", "between 4 and 512"),
    ({"image_size": 200}, "image_size", "between 8 and 128"),
    ({"conditional": "yes"}, "conditional", "true or false"),
    ({"spectral_norm": 1}, "spectral_norm", "true or false"),
    ({"g_layers": ()}, "g_layers", "1 to 8"),
    ({"d_layers": (64, 0)}, "d_layers", "between 1 and 4096"),
    ({"g_layers": "64,x"}, "g_layers", "comma-separated"),
    ({"g_layers": [64.5]}, "g_layers", "whole numbers"),
    ({"g_layers": 64}, "g_layers", "list of widths"),
    ({"data_path": 3}, "data_path", "path"),
    ({"dataset": "csv"}, "data_path", "needs a path"),
    ({"dataset": "ring8", "model": "dcgan"}, "model", "2D datasets need model 'mlp'"),
    ({"dataset": "spiral", "conditional": True}, "conditional", "no labels"),
    ({"dataset": "folder", "data_path": "x", "model": "dcgan", "image_size": 48}, "image_size", "28, 32 or 64"),
])
def test_bad_values_raise_config_error_naming_the_field(changes, field_name, fragment):
    with pytest.raises(ConfigError) as info:
        TrainConfig(**changes)
    assert info.value.field == field_name
    assert fragment in info.value.message


def test_layers_accept_text_and_lists():
    assert TrainConfig(g_layers="32, 16").g_layers == (32, 16)
    assert TrainConfig(d_layers=[8, 4, 2]).d_layers == (8, 4, 2)


def test_dict_and_json_round_trip():
    cfg = TrainConfig(dataset="mnist5k", model="dcgan", conditional=True, g_layers=(7, 9), g_lr=3e-4,
                      label_smoothing=0.1, steps=123)
    d = cfg.to_dict()
    assert d["g_layers"] == [7, 9]
    assert TrainConfig.from_dict(d) == cfg
    assert TrainConfig.from_dict(json.loads(cfg.to_json())) == cfg


def test_from_dict_rejects_unknown_fields_and_non_mappings():
    with pytest.raises(ConfigError) as info:
        TrainConfig.from_dict({"learning_rate": 0.1})
    assert info.value.field == "learning_rate" and "g_lr" in info.value.message
    with pytest.raises(ConfigError):
        TrainConfig.from_dict(["ring8"])


def test_replace_validates_and_leaves_the_original_untouched():
    cfg = TrainConfig()
    new = cfg.replace(g_lr=0.01)
    assert new.g_lr == 0.01 and cfg.g_lr == 1e-3
    with pytest.raises(ConfigError):
        cfg.replace(g_lr=-1.0)
    assert cfg == TrainConfig()


def test_with_overrides_parses_each_field_type():
    cfg = TrainConfig().with_overrides(["g_lr=0.002", "batch_size = 32", "spectral_norm=yes",
                                        "g_layers=16,8", "loss=hinge"])
    assert cfg.g_lr == 0.002 and cfg.batch_size == 32 and cfg.spectral_norm is True
    assert cfg.g_layers == (16, 8) and cfg.loss == "hinge"
    assert TrainConfig().with_overrides(["spectral_norm=off"]).spectral_norm is False


@pytest.mark.parametrize("pair, field_name", [
    ("g_lr", "g_lr"),                  # no '='
    ("nope=1", "nope"),
    ("batch_size=lots", "batch_size"),
    ("spectral_norm=maybe", "spectral_norm"),
    ("g_lr=fast", "g_lr"),
    ("g_layers=a,b", "g_layers"),
    ("loss=bogus", "loss"),
])
def test_with_overrides_errors_name_the_field(pair, field_name):
    with pytest.raises(ConfigError) as info:
        TrainConfig().with_overrides([pair])
    assert info.value.field == field_name


def test_parse_value_unknown_field_lists_valid_ones():
    with pytest.raises(ConfigError) as info:
        parse_value("lr", "1")
    assert "g_lr" in info.value.message and "d_lr" in info.value.message


def test_every_preset_is_valid_and_get_preset_lists_names():
    assert {"ring8", "mnist-dcgan", "mnist-cgan", "ring8-wgan-gp"} <= set(PRESETS)
    for name, preset in PRESETS.items():
        cfg = preset.config()
        assert isinstance(cfg, TrainConfig) and preset.summary, name
        assert preset.config(steps=7).steps == 7
    with pytest.raises(ConfigError) as info:
        get_preset("ring9")
    assert info.value.field == "preset"
    for name in PRESETS:
        assert name in info.value.message


def test_live_fields_are_config_fields():
    names = set(TrainConfig().to_dict())
    assert set(LIVE_FIELDS) <= names
    assert "model" not in LIVE_FIELDS and "g_layers" not in LIVE_FIELDS

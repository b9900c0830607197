"""Bad input never becomes a traceback: property tests of the config boundary, and the Train form driven with
invalid values through AppTest.

For any field and any value (numbers of every size and sign, nan/inf, text, None, lists, bools), building a
config either gives a valid TrainConfig or raises ConfigError whose `.field` names the offending field; the
same holds for CLI-style `key=value` text and for whole dicts (a run directory's config.json, an uploaded
checkpoint's config). The form test checks the user's view: an error message, no exception element, no run.
"""
from __future__ import annotations

import math
from dataclasses import fields
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from streamlit.testing.v1 import AppTest

from ganlab.config import ConfigError, TrainConfig, parse_value
from ganlab.registry import RunRegistry

REPO = Path(__file__).resolve().parent.parent
FIELDS = [f.name for f in fields(TrainConfig)]
# A change to one field may break a rule that another field states (dataset "csv" needs data_path; a 2D
# dataset needs model "mlp"); the error then names that other field, which is where the user must look.
RELATED = {"dataset": {"data_path", "model", "conditional", "image_size"},
           "model": {"image_size"}, "conditional": {"dataset"}}
HUGE = 10 ** 5000        # past Python's 4,300-digit int-to-text limit: even formatting it in a message fails

# Every kind of value a form, a CLI or a hand-edited JSON file can produce, and some no one should.
values = st.one_of(
    st.integers(),
    st.integers(min_value=-(10 ** 400), max_value=10 ** 400),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=-2.0, max_value=2.0),
    st.text(max_size=30),
    st.sampled_from(["ring8", "csv", "mnist5k", "dcgan", "wgan-gp", "adam", "cuda", "linear", "64,64", "0",
                     "nan", "inf", "-1", "1e999", "", " ", "\x00", "../../etc/passwd", "64,x", "🙂"]),
    st.none(),
    st.booleans(),
    st.lists(st.integers(min_value=-10, max_value=5000), max_size=10),
    st.lists(st.one_of(st.floats(), st.text(max_size=3), st.booleans()), min_size=1, max_size=3),
    st.tuples(st.integers(1, 64)),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.just(HUGE), st.just(-HUGE), st.just(float(2 ** 1023)),
)
LIGHT = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def check_result(build, allowed_fields: set[str]) -> TrainConfig | None:
    """Call build(); it must return a valid TrainConfig or raise ConfigError naming one of allowed_fields."""
    try:
        cfg = build()
    except ConfigError as e:
        assert e.field in allowed_fields, f"error names {e.field!r}, expected one of {sorted(allowed_fields)}: {e}"
        assert isinstance(e.message, str) and e.message and len(str(e)) < 2000, "the message must be short"
        return None
    assert isinstance(cfg, TrainConfig)
    cfg.validate()                                   # what was accepted really is valid
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg, "an accepted config survives its JSON round trip"
    return cfg


@LIGHT
@given(name=st.sampled_from(FIELDS), value=values)
@example(name="g_lr", value=HUGE)
@example(name="g_lr", value=10 ** 400)
@example(name="seed", value=HUGE)
@example(name="g_layers", value=[HUGE])
@example(name="batch_size", value=0)
@example(name="dataset", value="csv")
@example(name="dropout", value=float("nan"))
def test_replace_any_field_any_value(name: str, value) -> None:
    check_result(lambda: TrainConfig().replace(**{name: value}), {name} | RELATED.get(name, set()))


@LIGHT
@given(name=st.sampled_from(FIELDS), raw=st.one_of(st.text(max_size=40), st.sampled_from(
    ["1e999", "-0", "nan", "1_000", "0x10", "64,,64", ",", "9" * 5000, "true", "TRUE", "١٢", " 7 "])))
def test_parse_value_and_with_overrides_with_any_text(name: str, raw: str) -> None:
    try:
        value = parse_value(name, raw)
    except ConfigError as e:
        assert e.field == name, e
    else:
        check_result(lambda: TrainConfig().replace(**{name: value}), {name} | RELATED.get(name, set()))
    # with_overrides: a pair is split on the first "="; a key that is no field is named as the error's field
    check_result(lambda: TrainConfig().with_overrides([f"{name}={raw}"]), {name} | RELATED.get(name, set()))


@LIGHT
@given(pairs=st.lists(st.text(max_size=25), max_size=4))
def test_with_overrides_with_any_pairs(pairs: list[str]) -> None:
    keys = {p.split("=", 1)[0].strip() for p in pairs}
    allowed = keys | set(pairs) | {f for k in keys for f in RELATED.get(k, ())}
    check_result(lambda: TrainConfig().with_overrides(pairs), allowed)


@LIGHT
@given(d=st.dictionaries(st.one_of(st.sampled_from(FIELDS), st.text(max_size=8), st.integers(), st.none(),
                                   st.floats(allow_nan=False)), values, max_size=6))
@example(d={1: 2, "a": 3})
@example(d={None: 1})
def test_from_dict_with_any_dict(d: dict) -> None:
    # Rules between fields may name a field the dict left at its default (dataset=csv -> data_path).
    check_result(lambda: TrainConfig.from_dict(d), {str(k) for k in d} | set(FIELDS))


@pytest.mark.parametrize("obj", [None, [], "ring8", 5, [("dataset", "ring8")]])
def test_from_dict_refuses_non_mappings(obj) -> None:
    with pytest.raises(ConfigError) as info:
        TrainConfig.from_dict(obj)
    assert info.value.field == "config"


def test_huge_numbers_give_a_short_message() -> None:
    for name in ("g_lr", "seed", "g_layers"):
        with pytest.raises(ConfigError) as info:
            TrainConfig().replace(**{name: [HUGE] if name == "g_layers" else HUGE})
        assert info.value.field == name and len(str(info.value)) < 300
    assert math.isinf(parse_value("g_lr", "1e999"))           # parsed as inf, then refused by validation
    with pytest.raises(ConfigError, match="g_lr"):
        TrainConfig().with_overrides(["g_lr=1e999"])


# --- the Train form, driven with bad values -------------------------------------------------------------------
SUBMIT = "FormSubmitter:cfg-form-Start new run"


@pytest.mark.parametrize("field_name, widget, value, needle", [
    ("g_layers", "text_input", "abc", "g_layers"),
    ("d_layers", "text_input", "", "d_layers"),
    ("g_layers", "text_input", "64," * 20, "1 to 8"),
    ("g_layers", "text_input", "9" * 5000, "g_layers"),
    ("g_layers", "text_input", "-5", "between 1 and 4096"),
    ("batch_size", "number_input", 0, "batch_size"),
    ("steps", "number_input", -3, "steps"),
    ("g_lr", "number_input", 0.0, "g_lr"),
    ("g_lr", "number_input", 5.0, "g_lr"),
    ("label_smoothing", "number_input", 0.9, "label_smoothing"),
    ("data_path", "text_input", "{missing}", "data_path"),
])
def test_train_form_refuses_bad_values_without_a_run(lab: RunRegistry, tmp_path: Path, field_name: str,
                                                      widget: str, value, needle: str) -> None:
    at = AppTest.from_file(str(REPO / "pages/1_Train.py"), default_timeout=60).run()
    assert not at.exception
    if field_name == "data_path":        # a CSV dataset whose file is not there: caught before any run exists
        at.selectbox(key="cfg.dataset").select("csv")
        value = str(tmp_path / "missing.csv")
    getattr(at, widget)(key=f"cfg.{field_name}").set_value(value)
    at.button(key=SUBMIT).click().run()
    assert not at.exception, [e.value for e in at.exception]
    errors = " ".join(e.value for e in at.error)
    assert needle in errors, errors
    assert lab.list() == [], "an invalid form created a run"
    assert not any(Path(lab.runs_dir).iterdir()), "an invalid form wrote a run directory"


def test_train_form_with_an_unusable_run_name_shows_an_error(lab: RunRegistry) -> None:
    at = AppTest.from_file(str(REPO / "pages/1_Train.py"), default_timeout=60).run()
    at.text_input(key="cfg.name").input("\x00\x01\x02")   # nothing printable is left: no name at all
    at.number_input(key="cfg.steps").set_value(5)
    at.button(key=SUBMIT).click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("Could not start the run" in e.value and "name" in e.value for e in at.error), \
        [e.value for e in at.error]
    assert lab.list() == [] and not any(Path(lab.runs_dir).iterdir())

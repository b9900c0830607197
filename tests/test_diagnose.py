"""Tests for ganlab.diagnose: synthetic histories that trigger each diagnosis, and healthy ones that do not."""
from __future__ import annotations

import math
import re

import numpy as np
import pytest

from ganlab.config import TrainConfig, get_preset
from ganlab.diagnose import Diagnosis, diagnose
from ganlab.lesson_book import LESSONS
from ganlab.snapshots import HISTORY_KEYS

EVERY = 10                         # stats_every of the synthetic runs


def history(rows: int = 300, seed: int = 0, **columns) -> dict[str, np.ndarray]:
    """A healthy BCE run (D(x) ~ 0.6, D(G(z)) ~ 0.4, steady losses and gradients) with `columns` replaced."""
    rng = np.random.default_rng(seed)
    noise = lambda scale: rng.normal(0.0, scale, rows)   # noqa: E731
    h = {
        "step": np.arange(rows, dtype=np.float64) * EVERY,
        "epoch": np.zeros(rows),
        "time": np.arange(rows) * 0.04,
        "loss_d": 1.3 + noise(0.08),
        "loss_g": 0.8 + noise(0.08),
        "d_real": 0.6 + noise(0.03),
        "d_fake": 0.4 + noise(0.03),
        "grad_g": 0.5 * np.exp(noise(0.2)),
        "grad_d": 1.0 * np.exp(noise(0.2)),
        "wdist": np.full(rows, np.nan),                  # the trainer's "not measured" outside WGAN-GP
        "images_per_s": 30000 + noise(500),
        "lr_g": np.full(rows, 1e-3),
        "lr_d": np.full(rows, 1e-3),
        "single": np.full(rows, np.nan),                 # not a row of the step buttons
    }
    h.update({k: np.asarray(v, dtype=np.float64) for k, v in columns.items()})
    assert set(h) == set(HISTORY_KEYS)
    return h


def kinds(found: list[Diagnosis]) -> list[str]:
    return [d.kind for d in found]


def ring_metrics(*covered: int, start: int = 500, every: int = 500, diversity: float = 0.9) -> list[dict]:
    return [{"step": start + i * every, "modes_covered": c, "n_modes": 8, "high_quality_frac": 0.7,
             "reverse_kl": 0.1, "diversity": diversity} for i, c in enumerate(covered)]


# --- healthy and degenerate inputs -------------------------------------------------------------------------------
@pytest.mark.parametrize("loss", ["minimax", "nonsaturating", "lsgan", "hinge", "wgan-gp"])
def test_healthy_runs_get_no_diagnosis(loss):
    for seed in range(5):
        assert diagnose(history(600, seed=seed), ring_metrics(8, 8, 8, 8, 7, 8), loss, True) == []


def test_healthy_wgan_scores_near_zero_are_not_oscillation():
    rng = np.random.default_rng(3)
    h = history(600, loss_d=-0.3 + rng.normal(0, 0.25, 600), loss_g=0.2 + rng.normal(0, 0.3, 600),
                d_real=0.5 + rng.normal(0, 0.3, 600), d_fake=0.2 + rng.normal(0, 0.3, 600))
    assert diagnose(h, [], "wgan-gp", True) == []


def test_empty_short_and_ragged_inputs():
    assert diagnose({}, [], "minimax", True) == []
    assert diagnose(history(3), [], "minimax", True) == []
    assert diagnose({k: np.zeros(0) for k in HISTORY_KEYS}, [], "nonsaturating", False) == []
    ragged = history(300)
    ragged["loss_g"] = ragged["loss_g"][:-1]          # a writer appended one column before the other
    assert diagnose(ragged, [], "nonsaturating", True) == []
    assert diagnose(history(300), [{"no_step": 1}], "nonsaturating", False) == []


def test_noisy_single_batch_losses_are_not_oscillation():
    # Per-batch values straight from a run: large noise, no slow swing.
    for seed in range(5):
        rng = np.random.default_rng(seed)
        h = history(600, loss_g=np.abs(0.8 + rng.normal(0, 0.8, 600)), loss_d=1.3 + rng.normal(0, 0.5, 600),
                    d_fake=np.clip(0.4 + rng.normal(0, 0.3, 600), 0, 1))
        assert diagnose(h, [], "nonsaturating", True) == []
        coarse = history(80, seed=seed, step=np.arange(80) * 50.0, loss_g=np.abs(0.8 + rng.normal(0, 0.8, 80)))
        assert diagnose(coarse, [], "nonsaturating", True) == []


def test_a_steady_trend_is_not_oscillation():
    h = history(600, loss_g=np.linspace(0.7, 3.0, 600), loss_d=np.linspace(1.4, 0.6, 600))
    assert diagnose(h, [], "nonsaturating", True) == []


# --- divergence ----------------------------------------------------------------------------------------------
def test_nan_is_divergence_with_the_step_it_appeared():
    h = history(300)
    h["loss_g"][150:] = np.nan
    h["grad_d"][200] = np.inf
    found = diagnose(h, [], "nonsaturating", True)
    assert kinds(found) == ["divergence"]
    d = found[0]
    assert d.severity == "error" and d.step == 150 * EVERY
    assert "loss_g" in d.message and "1500" in d.message and d.fix


def test_nan_in_a_measured_statistic_is_divergence_but_unmeasured_is_not():
    h = history(300, wdist=np.full(300, 0.5))
    h["wdist"][280:] = np.nan
    found = diagnose(h, [], "wgan-gp", True)
    assert kinds(found) == ["divergence"] and found[0].step == 2800 and "wdist" in found[0].message
    assert diagnose(history(300, grad_d=np.full(300, np.nan)), [], "hinge", True) == []


def test_lone_d_and_g_steps_are_not_divergence():
    """Step D records NaN for G's half (and Step G for D's): the rows of a real trainer say so."""
    from engine_util import tiny

    from ganlab.snapshots import SINGLE_CODES
    from ganlab.trainer import Trainer
    t = Trainer(tiny())
    rows = []
    for _ in range(60):
        t.train_step()
        rows.append(t.collect())
    for kind in ("d", "g", "d", "both"):
        t.single_step(kind)
        rows.append({**t.collect(), "single": SINGLE_CODES[kind]})
    h = {k: np.array([r.get(k, np.nan) for r in rows], dtype=float) for k in HISTORY_KEYS}
    assert np.isnan(h["loss_g"][-4]) and np.isnan(h["loss_d"][-3]), "each lone step leaves its other half NaN"
    assert "divergence" not in kinds(diagnose(h, [], "nonsaturating", True))
    h["loss_g"][-1] = np.nan                       # a NaN where the half did run still is divergence
    assert "divergence" in kinds(diagnose(h, [], "nonsaturating", True))


def test_exploding_losses_are_divergence():
    h = history(300, loss_d=np.where(np.arange(300) < 200, 1.0, np.exp(np.arange(300) / 20.0)))
    found = diagnose(h, [], "wgan-gp", True)
    assert kinds(found) == ["divergence"]
    assert 2000 <= found[0].step <= 2999
    # Below the absolute limit, a 100x rise from the early level also counts.
    grow = history(300, loss_g=np.concatenate([np.full(250, 0.8), np.linspace(0.8, 400.0, 50)]))
    found = diagnose(grow, [], "nonsaturating", True)
    assert kinds(found) == ["divergence"] and "loss_g" in found[0].message
    assert diagnose(history(300, loss_g=np.full(300, 50.0)), [], "nonsaturating", True) == []   # high, steady


# --- vanishing gradients and an overpowering D -------------------------------------------------------------------
def _d_wins(rows: int, after: int, grad_floor: float) -> dict[str, np.ndarray]:
    late = np.arange(rows) >= after
    return history(rows, d_real=np.where(late, 0.99, 0.6), d_fake=np.where(late, 0.01, 0.4),
                   grad_g=np.where(late, grad_floor, 0.5))


def test_minimax_with_a_winning_d_is_vanishing_gradients():
    h = _d_wins(200, after=100, grad_floor=1e-4)
    h["d_fake"][150] = 0.3                           # one noisy row does not break the stretch
    found = diagnose(h, [], "minimax", True)
    assert kinds(found) == ["vanishing_gradients"]   # the overpowering card is folded into this one
    d = found[0]
    assert d.severity == "error" and d.step == 100 * EVERY
    assert "1000 steps" in d.message and "nonsaturating" in d.fix


def test_vanishing_needs_a_sustained_window_and_a_tiny_gradient():
    assert diagnose(_d_wins(200, after=170, grad_floor=1e-4), [], "minimax", True) == []   # 300 steps only
    # D wins but G still gets a healthy gradient: D overpowers, gradients do not vanish.
    assert kinds(diagnose(_d_wins(300, after=100, grad_floor=0.3), [], "minimax", True)) == ["d_overpowering"]


def test_d_overpowering_with_nonsaturating_loss():
    found = diagnose(_d_wins(300, after=100, grad_floor=1e-4), [], "nonsaturating", True)
    assert kinds(found) == ["d_overpowering"]
    assert found[0].severity == "warning" and found[0].step == 1000
    assert "0.99" in found[0].message


def test_raw_scores_of_other_losses_are_not_read_as_probabilities():
    h = _d_wins(300, after=100, grad_floor=1e-4)
    assert diagnose(h, [], "lsgan", True) == []
    assert diagnose(h, [], "wgan-gp", True) == []


# --- oscillation ---------------------------------------------------------------------------------------------
def test_swinging_losses_are_oscillation():
    step = np.arange(400) * EVERY
    wave = np.sin(2 * np.pi * step / 500.0)
    h = history(400, loss_g=1.5 + 1.5 * wave, loss_d=1.0 - 0.5 * wave)
    found = diagnose(h, [], "lsgan", False)
    assert kinds(found) == ["oscillation"]
    assert found[0].step == step[-1] - 2000 and "loss_g" in found[0].message


def test_oscillation_with_coarse_stats():
    rows = 80                                          # stats every 50 steps: 40 rows in the window
    h = history(rows, step=np.arange(rows) * 50.0,
                loss_g=1.5 + 1.5 * np.sin(2 * np.pi * np.arange(rows) * 50.0 / 600.0))
    assert kinds(diagnose(h, [], "hinge", False)) == ["oscillation"]


def test_d_fake_taking_turns_is_oscillation_for_bce():
    step = np.arange(400) * EVERY
    d_fake = 0.5 + 0.42 * np.sign(np.sin(2 * np.pi * step / 600.0))
    found = diagnose(history(400, d_fake=d_fake), [], "nonsaturating", True)
    assert kinds(found) == ["oscillation"] and "D(G(z))" in found[0].message


# --- mode collapse -------------------------------------------------------------------------------------------
def test_2d_collapse_after_covering_all_modes():
    found = diagnose(history(300), ring_metrics(4, 8, 8, 3, 2), "nonsaturating", True)
    assert kinds(found) == ["mode_collapse"]
    d = found[0]
    assert d.step == 2000 and d.severity == "warning"
    assert "2 of the 8" in d.message and "covered 8" in d.message
    one = diagnose(history(300), ring_metrics(8, 8, 1, 1), "nonsaturating", True)
    assert one[0].severity == "error"


def test_2d_collapse_needs_time_and_two_checks():
    assert diagnose(history(300), ring_metrics(1, 2, start=250, every=250), "nonsaturating", True) == []
    assert diagnose(history(300), ring_metrics(8, 8, 8, 3), "nonsaturating", True) == []      # one check
    assert diagnose(history(300), ring_metrics(8, 8, 0, 0), "nonsaturating", True) == []      # nothing on a mode


def test_2d_collapse_onto_one_point_between_modes():
    # What the ring8-collapse preset does: every sample lands near one point that is not a mode.
    found = diagnose(history(300), ring_metrics(0, 0, 0, diversity=0.03), "nonsaturating", True)
    assert kinds(found) == ["mode_collapse"] and found[0].severity == "error"
    assert "0.03x" in found[0].message


def test_image_collapse_from_classes_kl_or_diversity():
    good = {"classifier_confidence": 0.9, "classes_present": 10, "class_kl": 0.02, "frechet": 5.0,
            "class_score": 8.0, "diversity": 0.95, "n_classes": 10}
    collapsed = {**good, "classes_present": 1, "class_kl": math.log(10), "diversity": 0.1}
    rows = [{"step": s, **good} for s in (500, 1000)] + [{"step": s, **collapsed} for s in (1500, 2000)]
    found = diagnose(history(300), rows, "nonsaturating", False)
    assert kinds(found) == ["mode_collapse"] and found[0].severity == "error" and found[0].step == 1500
    assert "1 of 10 classes" in found[0].message
    same_classes = [{"step": s, **good, "diversity": 0.2} for s in (1000, 1500)]
    assert kinds(diagnose(history(300), same_classes, "nonsaturating", False)) == ["mode_collapse"]
    assert diagnose(history(300), [{"step": s, **good} for s in (1000, 1500)], "nonsaturating", False) == []


def test_errors_come_first():
    h = history(300)
    h["loss_d"][250] = np.nan
    found = diagnose(h, ring_metrics(8, 8, 2, 2), "nonsaturating", True)
    assert kinds(found) == ["divergence", "mode_collapse"]


# --- what the fixes suggest ----------------------------------------------------------------------------------
def _all_findings(cfg) -> list[Diagnosis]:
    """Every diagnosis the synthetic histories raise for `cfg`'s loss, with `cfg` given (so fixes can read it)."""
    step = np.arange(400) * EVERY
    nan = history(300)
    nan["loss_g"][150] = np.nan
    cases = [(nan, []),
             (_d_wins(200, after=100, grad_floor=1e-4), []),
             (_d_wins(300, after=100, grad_floor=0.3), []),
             (history(400, loss_g=1.5 + 1.5 * np.sin(2 * np.pi * step / 500.0)), []),
             (history(400, d_fake=0.5 + 0.42 * np.sign(np.sin(2 * np.pi * step / 600.0))), []),
             (history(300), ring_metrics(4, 8, 8, 3, 2))]
    return [d for h, m in cases for d in diagnose(h, m, cfg.loss, cfg.is_2d, cfg=cfg)]


_CONFIGS = [
    TrainConfig(),                                              # nonsaturating, beta1 0.5, linear decay, d_steps 1
    get_preset("ring8-hop").config(),
    TrainConfig(loss="minimax", spectral_norm=True, label_smoothing=0.1, instance_noise=0.5, r1_gamma=0.1),
    TrainConfig(loss="wgan-gp", d_steps=5, lr_decay="none", beta1=0.9, gp_lambda=10.0),
    TrainConfig(loss="lsgan", d_steps=2, lr_decay="none"),
    TrainConfig(loss="hinge"),
]


@pytest.mark.parametrize("cfg", _CONFIGS, ids=lambda c: c.loss)
def test_a_fix_never_names_what_the_run_already_uses(cfg):
    found = _all_findings(cfg)
    assert len({d.kind for d in found}) >= 3                # the cases do raise diagnoses for this loss
    for d in found:
        fix = d.fix.lower()
        assert cfg.loss not in fix, (d.kind, d.fix)         # "switch to 'nonsaturating'" on a nonsaturating run
        if cfg.d_steps == 1:
            assert "d_steps" not in fix, (d.kind, d.fix)
        if cfg.beta1 == 0.5:
            assert "beta1" not in fix, (d.kind, d.fix)
        if cfg.lr_decay != "none":
            assert "decay" not in fix, (d.kind, d.fix)
        if cfg.spectral_norm:
            assert "spectral" not in fix, (d.kind, d.fix)
        if cfg.label_smoothing > 0:
            assert "smoothing" not in fix, (d.kind, d.fix)
        if cfg.instance_noise > 0:
            assert "instance noise" not in fix and "instance_noise" not in fix, (d.kind, d.fix)
        if cfg.r1_gamma > 0:
            assert "r1" not in fix, (d.kind, d.fix)
        if not cfg.bf16:
            assert "bf16" not in fix, (d.kind, d.fix)
        if cfg.loss == "wgan-gp" and cfg.gp_lambda == 10:
            assert "gp_lambda" not in fix, (d.kind, d.fix)


# A lesson's check kind -> the diagnosis it is about, with a history that raises it.
_LESSON_DIAGNOSES = {"collapse": ("mode_collapse", lambda: (history(300), ring_metrics(4, 8, 8, 3, 2))),
                     "overpowering": ("d_overpowering", lambda: (_d_wins(300, after=100, grad_floor=0.3), [])),
                     "vanishing": ("vanishing_gradients",
                                   lambda: (_d_wins(200, after=100, grad_floor=1e-4), []))}


def test_d_lr_advice_agrees_with_the_lessons():
    checked = 0
    for lesson in LESSONS:
        if lesson.check is None or lesson.check.kind not in _LESSON_DIAGNOSES:
            continue
        said = re.search(r"`d_lr`\s+(?:to\s+)?([0-9.]+e-?[0-9]+|[0-9.]+)", lesson.try_next)
        if not said:
            continue
        cfg = lesson.config()
        way = "lower" if float(said.group(1)) < cfg.d_lr else "raise"
        other = {"lower": "raise", "raise": "lower"}[way]
        kind, case = _LESSON_DIAGNOSES[lesson.check.kind]
        h, m = case()
        for with_cfg in (cfg, None):                         # with and without the run's config at hand
            found = [d for d in diagnose(h, m, cfg.loss, cfg.is_2d, cfg=with_cfg) if d.kind == kind]
            assert found, (lesson.id, kind)
            fix = found[0].fix
            assert f"{way} d_lr" in fix and f"{other} d_lr" not in fix, (lesson.id, fix)
        checked += 1
    assert checked >= 2                                       # mode-collapse and strong-d name a d_lr

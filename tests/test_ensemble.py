"""Seed ensembles (ganlab.ensemble): each member trains as its solo Trainer would, a diverged member is frozen
without stopping the others, and configs the batched model cannot train are refused by field name."""
from __future__ import annotations

import math

import pytest
import torch

from ganlab.config import TrainConfig, get_preset
from ganlab.ensemble import EnsembleTrainer, measure_speedup
from ganlab.trainer import STAT_NAMES, Trainer

SEEDS = (0, 1, 2)
STEPS = 5
RTOL, ATOL = 1e-4, 1e-5   # observed: statistics agree to ~2e-6 relative, parameters to ~3e-6 absolute
# (case, preset, changes): the 2D presets' features, each at least once. steps=20 makes linear decay visible.
CASES = [
    ("ring8 nonsaturating + r1", "ring8", dict(steps=20)),
    ("wgan-gp, d_steps 2", "ring8-wgan-gp", dict(d_steps=2, steps=20)),
    ("minimax, noise + smoothing", "ring8-saturating", dict(instance_noise=0.2, label_smoothing=0.1, steps=20)),
    ("lsgan, rmsprop, uniform z", "ring8", dict(loss="lsgan", r1_gamma=0.0, d_opt="rmsprop", noise_dist="uniform")),
    ("hinge, sgd G, d_steps 3", "ring8", dict(loss="hinge", g_opt="sgd", d_steps=3, g_layers=(32, 48))),
]


def _cfg(preset: str, **changes) -> TrainConfig:
    return get_preset(preset).config(device="cpu").replace(batch_size=64, stats_every=1, **changes)


def _close(got: float, want: float) -> bool:
    return math.isclose(got, want, rel_tol=RTOL, abs_tol=ATOL) or (math.isnan(got) and math.isnan(want))


def _check_member(ens: EnsembleTrainer, k: int, solo: Trainer) -> None:
    state = ens.member_state_dict(k)
    for net, module in (("G", solo.G), ("D", solo.D)):
        want = module.state_dict()
        assert state[net].keys() == want.keys()
        for name, value in want.items():
            torch.testing.assert_close(state[net][name], value, rtol=RTOL, atol=ATOL, msg=f"member {k} {net} {name}")


def _run_side_by_side(ens: EnsembleTrainer, solos: dict[int, Trainer], steps: int) -> None:
    for _ in range(steps):
        ens.train_step()
        got = ens.collect()
        for k, solo in solos.items():
            solo.train_step()
            want = solo.collect()
            for name in STAT_NAMES:
                g, w = float(got[name][k]), want[name]
                assert _close(g, w), f"step {solo.step} member {k} {name}: ensemble {g} vs solo {w}"


@pytest.mark.parametrize("preset,changes", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_members_match_solo_runs(preset, changes):
    cfg = _cfg(preset, **changes)
    ens = EnsembleTrainer(cfg, SEEDS, "cpu")
    solos = {k: Trainer(cfg.replace(seed=s), device="cpu") for k, s in enumerate(SEEDS)}
    _run_side_by_side(ens, solos, STEPS)
    assert ens.step == STEPS and ens.d_updates == STEPS * cfg.d_steps
    for k, solo in solos.items():
        _check_member(ens, k, solo)
    assert ens.diverged_at == [None] * len(SEEDS)


def test_diverged_member_is_frozen_and_the_others_go_on():
    cfg = _cfg("ring8")
    ens = EnsembleTrainer(cfg, SEEDS, "cpu")
    solos = {k: Trainer(cfg.replace(seed=s), device="cpu") for k, s in enumerate(SEEDS)}
    _run_side_by_side(ens, solos, 2)
    with torch.no_grad():
        ens.g_layers[0][0][1].fill_(float("inf"))   # member 1's first G layer: its fakes, D's loss turn NaN
    frozen = [t[1].clone() for t in ens.g_params + ens.d_params]
    moments = {id(p): {n: v[1].clone() for n, v in opt.state[p].items() if v.shape == p.shape}
               for opt, ps in ((ens.opt_g, ens.g_params), (ens.opt_d, ens.d_params)) for p in ps}
    del solos[1]
    _run_side_by_side(ens, solos, 3)   # members 0 and 2 still equal their solo runs, statistic by statistic
    assert ens.diverged_at == [None, 2, None]
    assert ens.alive.tolist() == [True, False, True]
    for t, before in zip(ens.g_params + ens.d_params, frozen):
        assert torch.equal(t[1], before)
    for opt, ps in ((ens.opt_g, ens.g_params), (ens.opt_d, ens.d_params)):
        for p in ps:
            for n, v in moments[id(p)].items():
                assert torch.equal(opt.state[p][n][1], v), f"member 1's {n} changed"
    stats = ens.collect()
    assert all(math.isnan(float(stats[name][1])) for name in STAT_NAMES)
    for k, solo in solos.items():
        _check_member(ens, k, solo)


def test_zero_gradient_still_moves_adam():
    """Why a frozen member's slices are put back: masking its gradient to 0 is not enough for Adam."""
    p = torch.nn.Parameter(torch.ones(4))
    opt = torch.optim.Adam([p], lr=0.1, fused=True)
    p.grad = torch.ones(4)
    opt.step()
    before = p.detach().clone()
    p.grad = torch.zeros(4)
    opt.step()
    assert not torch.equal(p.detach(), before)


@pytest.mark.parametrize("field,changes", [
    ("dataset", dict(dataset="digits8x8")), ("conditional", dict(conditional=True)),
    ("spectral_norm", dict(spectral_norm=True)), ("d_dropout", dict(d_dropout=0.3)), ("bf16", dict(bf16=True)),
])
def test_refused_configs_name_the_field(field, changes):
    with pytest.raises(ValueError, match=field) as err:
        EnsembleTrainer(TrainConfig(device="cpu", **changes), SEEDS, "cpu")
    assert err.value.field == field
    with pytest.raises(ValueError, match="seeds"):
        EnsembleTrainer(TrainConfig(device="cpu"), [], "cpu")


def test_measure_speedup_reports_both_rates():
    out = measure_speedup(k=2, window_s=0.05, rounds=1)
    assert out["ensemble_speedup_2"] > 0 and out["ensemble_2_steps_s"] > 0 and out["solo_2_steps_s"] > 0


def test_a_member_continues_alone_exactly_with_its_optimiser_state():
    cfg = _cfg("ring8", steps=40)
    ens = EnsembleTrainer(cfg, SEEDS, "cpu")
    solo = Trainer(cfg.replace(seed=SEEDS[1]), device="cpu")
    for _ in range(4):
        ens.train_step()
        solo.train_step()
    clone = Trainer(cfg.replace(seed=SEEDS[1]), device="cpu")      # member 1 handed over to a solo Trainer
    state = {**solo.state_dict(), **ens.member_state_dict(1), **ens.member_optimizer_state(1)}
    state["rng"] = ens.gens[1].get_state()
    clone.load_state_dict(state)
    for _ in range(3):
        solo.train_step()
        clone.train_step()
    for net in ("G", "D"):
        for name, value in getattr(solo, net).state_dict().items():
            torch.testing.assert_close(getattr(clone, net).state_dict()[name], value, rtol=RTOL, atol=ATOL)

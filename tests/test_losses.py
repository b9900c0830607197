"""Tests for ganlab.losses against numbers worked out by hand with math.log/exp on a few logits, plus the
penalties on critics whose input gradient we know exactly, and the registry."""
from __future__ import annotations

import math

import pytest
import torch

from ganlab.config import LOSSES as CONFIG_LOSSES
from ganlab.loss_specs import LOSS_SPECS, loss_has
from ganlab.losses import (
    LOSSES,
    bce_d_loss,
    critic_g_loss,
    get_loss,
    gradient_penalty,
    hinge_d_loss,
    lsgan_d_loss,
    lsgan_g_loss,
    nonsaturating_g_loss,
    r1_penalty,
    saturating_g_loss,
    wgan_d_loss,
)

torch.set_num_threads(1)

REAL = [0.5, -1.0, 2.0]
FAKE = [-0.3, 1.2]


def t(values: list[float]) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)


def sig(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def mean(values) -> float:
    values = list(values)
    return sum(values) / len(values)


def close(tensor: torch.Tensor, expected: float) -> None:
    assert tensor.dim() == 0, "losses return scalars"
    assert float(tensor) == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_minimax_d_loss_by_hand():
    # D maximises log D(x) + log(1 - D(G(z))); the loss is its negative, each term averaged over its batch.
    expected = -mean(math.log(sig(r)) for r in REAL) - mean(math.log(1 - sig(f)) for f in FAKE)
    close(bce_d_loss(t(REAL), t(FAKE)), expected)
    assert get_loss("minimax").d_loss is bce_d_loss and get_loss("nonsaturating").d_loss is bce_d_loss


def test_label_smoothing_moves_only_the_real_target():
    s = 0.1
    real_term = -mean((1 - s) * math.log(sig(r)) + s * math.log(1 - sig(r)) for r in REAL)
    fake_term = -mean(math.log(1 - sig(f)) for f in FAKE)
    close(bce_d_loss(t(REAL), t(FAKE), smoothing=s), real_term + fake_term)
    ls = 0.5 * mean((r - (1 - s)) ** 2 for r in REAL) + 0.5 * mean(f ** 2 for f in FAKE)
    close(lsgan_d_loss(t(REAL), t(FAKE), smoothing=s), ls)


def test_saturating_g_loss_is_mean_log_one_minus_d():
    expected = mean(math.log(1 - sig(f)) for f in FAKE)
    close(saturating_g_loss(t(FAKE)), expected)
    assert get_loss("minimax").g_loss is saturating_g_loss
    # large logits must not overflow: log(1 - sigmoid(50)) = -50 - log(1 + e^-50)
    close(saturating_g_loss(t([50.0])), -50.0 - math.log1p(math.exp(-50.0)))


def test_saturating_gradient_vanishes_where_nonsaturating_does_not():
    # When D rejects a fake confidently (logit -8), minimax gives G almost no gradient; nonsaturating gives ~1.
    for fn, lo, hi in ((saturating_g_loss, 0.0, 1e-3), (nonsaturating_g_loss, 0.99, 1.0)):
        x = t([-8.0]).requires_grad_(True)
        fn(x).backward()
        assert lo <= abs(float(x.grad)) <= hi, fn.__name__


def test_nonsaturating_g_loss_by_hand():
    close(nonsaturating_g_loss(t(FAKE)), -mean(math.log(sig(f)) for f in FAKE))


def test_lsgan_by_hand():
    close(lsgan_d_loss(t(REAL), t(FAKE)), 0.5 * mean((r - 1) ** 2 for r in REAL) + 0.5 * mean(f ** 2 for f in FAKE))
    close(lsgan_g_loss(t(FAKE)), 0.5 * mean((f - 1) ** 2 for f in FAKE))


def test_hinge_by_hand():
    expected = mean(max(0.0, 1 - r) for r in REAL) + mean(max(0.0, 1 + f) for f in FAKE)
    # 0.5 -> 0.5, -1 -> 2, 2 -> 0 ; -0.3 -> 0.7, 1.2 -> 2.2
    assert expected == pytest.approx(2.5 / 3 + 2.9 / 2)
    close(hinge_d_loss(t(REAL), t(FAKE)), expected)
    close(critic_g_loss(t(FAKE)), -mean(FAKE))


def test_wgan_critic_by_hand():
    close(wgan_d_loss(t(REAL), t(FAKE)), mean(FAKE) - mean(REAL))
    assert get_loss("wgan-gp").g_loss is critic_g_loss and get_loss("wgan-gp").gradient_penalty


def linear_critic(u: torch.Tensor):
    """D(x) = <x, u>: its input gradient is u everywhere, so ||grad|| = |u| at every interpolate."""
    return lambda x: x.flatten(1) @ u


@pytest.mark.parametrize("shape", [(6, 2), (5, 1, 2, 2)])
def test_gradient_penalty_of_linear_critics(shape):
    gen = torch.Generator().manual_seed(0)
    real, fake = torch.randn(shape, generator=gen), torch.randn(shape, generator=gen)
    dim = math.prod(shape[1:])
    unit = torch.zeros(dim)
    unit[0] = 0.6
    unit[-1] = 0.8                                          # |u| = 1
    assert float(gradient_penalty(linear_critic(unit), real, fake, gen)) == pytest.approx(0.0, abs=1e-10)
    u = torch.zeros(dim)
    u[0], u[-1] = 3.0, 4.0                                  # |u| = 5 -> (5 - 1)^2 = 16
    assert float(gradient_penalty(linear_critic(u), real, fake, gen)) == pytest.approx(16.0, rel=1e-6)
    half = unit * 0.5                                       # (0.5 - 1)^2 = 0.25
    assert float(gradient_penalty(linear_critic(half), real, fake, gen)) == pytest.approx(0.25, rel=1e-6)


def test_gradient_penalty_is_differentiable_wrt_critic_weights():
    w = torch.tensor([3.0, 4.0], requires_grad=True)
    real, fake = torch.randn(4, 2), torch.randn(4, 2)
    gp = gradient_penalty(lambda x: x @ w, real, fake)
    gp.backward()
    # d/dw (|w| - 1)^2 = 2 (|w| - 1) w / |w| = 2 * 4 * (0.6, 0.8)
    assert torch.allclose(w.grad, torch.tensor([4.8, 6.4]))


def test_r1_penalty_by_hand():
    real = torch.tensor([[1.0, 2.0], [0.0, -1.0], [3.0, 0.5]])
    u = torch.tensor([3.0, 4.0])
    assert float(r1_penalty(linear_critic(u), real).detach()) == pytest.approx(0.5 * 25.0)
    # D(x) = sum x^2 -> grad 2x -> 0.5 * mean(4 |x|^2) = 2 * mean(|x|^2)
    expected = 2 * mean(sum(v * v for v in row) for row in real.tolist())
    assert float(r1_penalty(lambda x: (x ** 2).sum(dim=1), real).detach()) == pytest.approx(expected)
    assert not real.requires_grad, "r1 must not mark the caller's batch as requiring grad"


def test_registry_matches_config_and_fails_listing_valid_names():
    assert tuple(LOSSES) == CONFIG_LOSSES
    for name, loss in LOSSES.items():
        assert loss.name == name and loss.summary
    with pytest.raises(KeyError) as info:
        get_loss("wasserstein")
    text = str(info.value)
    assert "wasserstein" in text
    for name in CONFIG_LOSSES:
        assert name in text


def test_score_is_a_probability_only_for_bce_losses():
    logits = torch.tensor([-2.0, 0.0, 3.0])
    for name in ("minimax", "nonsaturating"):
        assert get_loss(name).uses_sigmoid
        assert torch.allclose(get_loss(name).score(logits), torch.sigmoid(logits))
    for name in ("lsgan", "hinge", "wgan-gp"):
        assert not get_loss(name).uses_sigmoid
        assert torch.equal(get_loss(name).score(logits), logits)



@pytest.mark.parametrize("name", CONFIG_LOSSES)
def test_each_losss_registry_facts_match_what_its_functions_do(name):
    spec, loss = LOSS_SPECS[name], get_loss(name)
    real, fake = torch.tensor([0.5, 2.0, -1.0]), torch.tensor([-0.5, 1.0, 0.3])
    # smooths_labels: one-sided smoothing moves D's loss exactly when the registry says it does
    moved = not torch.allclose(loss.d_loss(real, fake, 0.2), loss.d_loss(real, fake, 0.0))
    assert moved == spec.smooths_labels
    # saturates: where D rejects a fake with logit -10, G's gradient is about 0 only for the saturating loss
    logit = torch.tensor([-10.0], requires_grad=True)
    loss.g_loss(logit).backward()
    assert (abs(float(logit.grad)) < 1e-3) == spec.saturates
    assert loss.gradient_penalty == spec.gradient_penalty and loss.uses_sigmoid == spec.uses_sigmoid
    assert loss_has(name, "uses_sigmoid") == spec.uses_sigmoid and not loss_has("no-such-loss", "uses_sigmoid")

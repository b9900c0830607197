"""GAN losses as small pure functions on D's raw outputs (logits), plus a registry.

Every function takes logits (N,) and returns a scalar tensor; none steps an optimiser. BCE-type losses use
`binary_cross_entropy_with_logits` (numerically safe, and safe under autocast, unlike BCELoss on sigmoid outputs).

Notation: D(x) = sigmoid(logit) for the BCE losses.
- minimax: D maximises log D(x) + log(1 - D(G(z))); G minimises log(1 - D(G(z))) (the saturating loss of the
  original paper and of the tutorial articles). When D rejects fakes confidently, d/dlogit log(1 - sigmoid) ~ 0:
  G's gradient vanishes.
- nonsaturating: same D; G maximises log D(G(z)) instead (same fixed point, strong gradient when D wins).
- lsgan: least squares to targets 1 (real) and 0 (fake) (Mao et al. 2017).
- hinge: D: relu(1 - D(x)) + relu(1 + D(G(z))); G: -D(G(z)) (Miyato et al., Lim & Ye).
- wgan-gp: critic: D(G(z)) - D(x) (+ gradient penalty, see `gradient_penalty`); G: -D(G(z)).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from .loss_specs import LOSS_SPECS

Tensor = torch.Tensor


def _bce(logits: Tensor, target: float) -> Tensor:
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


# --- discriminator losses (minimised by D) -------------------------------------------------------------
def bce_d_loss(real: Tensor, fake: Tensor, smoothing: float = 0.0) -> Tensor:
    """-[log D(x) + log(1 - D(G(z)))], averaged; one-sided label smoothing puts the real target at 1 - s."""
    return _bce(real, 1.0 - smoothing) + _bce(fake, 0.0)


def lsgan_d_loss(real: Tensor, fake: Tensor, smoothing: float = 0.0) -> Tensor:
    return 0.5 * ((real - (1.0 - smoothing)) ** 2).mean() + 0.5 * (fake ** 2).mean()


def hinge_d_loss(real: Tensor, fake: Tensor, smoothing: float = 0.0) -> Tensor:
    return F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()


def wgan_d_loss(real: Tensor, fake: Tensor, smoothing: float = 0.0) -> Tensor:
    return fake.mean() - real.mean()


# --- generator losses (minimised by G) ---------------------------------------------------------------
def saturating_g_loss(fake: Tensor) -> Tensor:
    """E[log(1 - D(G(z)))], exactly the minimax objective's G term; log(1 - sigmoid(l)) = -softplus(l)."""
    return -F.softplus(fake).mean()


def nonsaturating_g_loss(fake: Tensor) -> Tensor:
    """-E[log D(G(z))]."""
    return _bce(fake, 1.0)


def lsgan_g_loss(fake: Tensor) -> Tensor:
    return 0.5 * ((fake - 1.0) ** 2).mean()


def critic_g_loss(fake: Tensor) -> Tensor:
    """-E[D(G(z))]: used by hinge and WGAN-GP."""
    return -fake.mean()


# --- penalties ---------------------------------------------------------------------------------------
def gradient_penalty(d: Callable[[Tensor], Tensor], real: Tensor, fake: Tensor,
                     generator: torch.Generator | None = None) -> Tensor:
    """WGAN-GP: E[(||grad_x D(x_hat)||_2 - 1)^2] at random interpolates x_hat of real and fake."""
    alpha = torch.rand((real.shape[0],) + (1,) * (real.dim() - 1), device=real.device, dtype=real.dtype,
                       generator=generator)
    x_hat = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    out = d(x_hat)
    (grad,) = torch.autograd.grad(out.sum(), x_hat, create_graph=True)
    return ((grad.flatten(1).norm(2, dim=1) - 1.0) ** 2).mean()


def r1_penalty(d: Callable[[Tensor], Tensor], real: Tensor) -> Tensor:
    """R1 (Mescheder et al. 2018): 0.5 * E[||grad_x D(x)||^2] on real data; the caller scales by gamma."""
    x = real.detach().requires_grad_(True)
    out = d(x)
    (grad,) = torch.autograd.grad(out.sum(), x, create_graph=True)
    return 0.5 * grad.flatten(1).pow(2).sum(dim=1).mean()


# --- registry ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Loss:
    name: str
    d_loss: Callable[..., Tensor]
    g_loss: Callable[[Tensor], Tensor]
    uses_sigmoid: bool        # D's output is a probability after sigmoid (for display and histograms)
    gradient_penalty: bool    # add `gradient_penalty` to D's loss
    summary: str

    def score(self, logits: Tensor) -> Tensor:
        """What the pages call D's score: a probability for BCE losses, the raw value otherwise."""
        return torch.sigmoid(logits) if self.uses_sigmoid else logits


# The two functions of each loss; its name, sigmoid and penalty facts come from the registry (ganlab.loss_specs).
_FUNCTIONS = {"minimax": (bce_d_loss, saturating_g_loss), "nonsaturating": (bce_d_loss, nonsaturating_g_loss),
              "lsgan": (lsgan_d_loss, lsgan_g_loss), "hinge": (hinge_d_loss, critic_g_loss),
              "wgan-gp": (wgan_d_loss, critic_g_loss)}
LOSSES: dict[str, Loss] = {name: Loss(name, *_FUNCTIONS[name], spec.uses_sigmoid, spec.gradient_penalty, spec.summary)
                           for name, spec in LOSS_SPECS.items()}


def get_loss(name: str) -> Loss:
    try:
        return LOSSES[name]
    except KeyError:
        raise KeyError(f"unknown loss {name!r}; valid losses: {', '.join(LOSSES)}") from None

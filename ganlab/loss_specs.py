"""The loss registry's names and facts: one `LossSpec` per loss, without torch.

Config's choices, the diagnoses (does D's output mean a probability?) and the form read these; ganlab.losses pairs
each name with its two pure functions and fails loudly at import when a spec has none. A leaf module, so config and
the diagnoses stay free of torch.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LossSpec:
    name: str
    uses_sigmoid: bool        # D's output is a probability after sigmoid (its scores, histograms and diagnoses)
    gradient_penalty: bool    # D's loss adds the WGAN-GP gradient penalty
    summary: str


LOSS_SPECS: dict[str, LossSpec] = {spec.name: spec for spec in [
    LossSpec("minimax", True, False,
             "Original minimax game; G minimises log(1 - D(G(z))) and its gradient vanishes when D wins."),
    LossSpec("nonsaturating", True, False,
             "Same game, G maximises log D(G(z)): strong gradients early on. The usual choice."),
    LossSpec("lsgan", False, False, "Least squares to targets 1/0: penalises fakes far from the boundary."),
    LossSpec("hinge", False, False, "Hinge loss on D (margin 1), -D(G(z)) for G; common with spectral norm."),
    LossSpec("wgan-gp", False, True,
             "Wasserstein critic with gradient penalty; D's gap estimates the Earth Mover's distance."),
]}


def uses_sigmoid(loss: str) -> bool:
    """Whether D's scores under `loss` are probabilities (False for a name that is not a loss)."""
    spec = LOSS_SPECS.get(loss) if isinstance(loss, str) else None
    return bool(spec and spec.uses_sigmoid)

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
    gradient_penalty: bool    # D's loss adds the WGAN-GP gradient penalty (its critic gets no batch norm)
    smooths_labels: bool      # one-sided label smoothing moves its real target (BCE and least squares)
    saturates: bool           # G's loss goes flat when D wins (the minimax game's log(1 - D(G(z))))
    summary: str
    # D's score between "real" and "fake": its best constant answer when it cannot tell them apart (the middle of
    # them when several are as good). None: every constant is as good, a critic's scores shift freely (WGAN).
    boundary: float | None = 0.5


LOSS_SPECS: dict[str, LossSpec] = {spec.name: spec for spec in [
    LossSpec("minimax", True, False, True, True,
             "Original minimax game; G minimises log(1 - D(G(z))) and its gradient vanishes when D wins."),
    LossSpec("nonsaturating", True, False, True, False,
             "Same game, G maximises log D(G(z)): strong gradients early on. The usual choice."),
    LossSpec("lsgan", False, False, True, False,
             "Least squares to targets 1/0: penalises fakes far from the boundary."),
    LossSpec("hinge", False, False, False, False,
             "Hinge loss on D (margin 1), -D(G(z)) for G; common with spectral norm.", boundary=0.0),
    LossSpec("wgan-gp", False, True, False, False,
             "Wasserstein critic with gradient penalty; D's gap estimates the Earth Mover's distance.",
             boundary=None),
]}


def loss_has(loss: str, fact: str) -> bool:
    """Whether loss `loss` has `fact` (a LossSpec flag such as "uses_sigmoid"); False for a name that is no loss,
    as a damaged run directory may hold."""
    spec = LOSS_SPECS.get(loss) if isinstance(loss, str) else None
    return bool(spec and getattr(spec, fact))

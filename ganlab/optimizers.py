"""The trainer's optimisers: building them, their learning rates, and their state in checkpoints.

`make_optimizer` picks the fastest kernel the device offers (fused Adam; on CUDA fused and capturable, with the lr a
device tensor so that a captured CUDA graph of the step reads lr changes, ganlab.cuda_graph). `set_lr` and
`lr_value` write and read a param group's lr whichever form it has. `portable_state` and `load_optimizer_state` are
the optimiser half of a checkpoint: saved with plain float learning rates, loaded keeping the kernel choice and lr
form of the device the run continues on. Used by ganlab.trainer and ganlab.ensemble.
"""
from __future__ import annotations

from typing import Any

import torch


def make_optimizer(name: str, params, lr: float, betas: tuple[float, float], device: torch.device):
    if name == "adam":
        # fused Adam runs one kernel for all parameters (CPU and CUDA in recent torch): fewer ops per step
        if device.type == "cuda":
            # capturable, with the lr a device tensor: a CUDA graph of the step reads lr changes (ganlab.cuda_graph)
            try:
                opt = torch.optim.Adam(params, lr=torch.tensor(float(lr), device=device), betas=betas,
                                       fused=True, capturable=True)
                for group in opt.param_groups:
                    group["_lr_value"] = float(lr)
                return opt
            except (RuntimeError, TypeError, ValueError):
                pass   # an older torch: fused non-capturable below, and the step runs eagerly
        try:
            return torch.optim.Adam(params, lr=lr, betas=betas, fused=True)
        except (RuntimeError, TypeError):
            return torch.optim.Adam(params, lr=lr, betas=betas, foreach=True)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, foreach=True)
    return torch.optim.SGD(params, lr=lr, foreach=True)


def set_lr(group: dict[str, Any], value: float) -> None:
    """Set a param group's lr in place: a device tensor (read by a captured step) is filled, not replaced."""
    lr = group["lr"]
    if isinstance(lr, torch.Tensor):
        if float(value) != group.get("_lr_value"):   # one small kernel, only when the value changes
            lr.fill_(value)
            group["_lr_value"] = float(value)
    else:
        group["lr"] = value


def lr_value(group: dict[str, Any]) -> float:
    lr = group["lr"]
    return group.get("_lr_value", float(lr)) if isinstance(lr, torch.Tensor) else float(lr)


# --- optimiser state that travels between devices ---------------------------------------------------------------
_OWN_KEYS = ("lr", "_lr_value", "capturable", "fused", "foreach", "differentiable")


def portable_state(state: dict[str, Any]) -> dict[str, Any]:
    """An optimiser state_dict with plain float learning rates (a CUDA lr tensor would not load on a laptop)."""
    groups = []
    for g in state["param_groups"]:
        g = dict(g)
        g["lr"] = lr_value(g)
        g.pop("_lr_value", None)
        groups.append(g)
    return {**state, "param_groups": groups}


def load_optimizer_state(opt: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    """Load `state` but keep this optimiser's own lr representation and kernel choice (fused, capturable),
    which depend on the device the run continues on, not on the one that saved it."""
    own = [{k: g[k] for k in _OWN_KEYS if k in g} for g in opt.param_groups]
    opt.load_state_dict(state)
    for group, keep in zip(opt.param_groups, own):
        value = lr_value(group)
        group.update(keep)
        set_lr(group, value)
        for p in group["params"]:   # capturable Adam keeps its step count on the parameters' device
            st = opt.state.get(p, {})
            if "step" in st and isinstance(st["step"], torch.Tensor) and group.get("capturable"):
                st["step"] = st["step"].to(device=p.device, dtype=torch.float32)

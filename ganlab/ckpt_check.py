"""Checking an untrusted checkpoint field by field before anything loads it.

An uploaded file is checked against the networks and optimisers it will be loaded into: every tensor's name,
shape and dtype, the optimiser state of every parameter, the step counters' type and range, the RNG state,
the fixed noise. The networks are built on torch's meta device (no memory), and the file's unpacked size is
read from its zip directory before torch unpacks anything, so refusing a hostile file costs milliseconds and
no memory. A wrong-shaped optimiser state loaded into fused Adam corrupts memory and kills the process
(SIGSEGV / SIGABRT), which is why nothing short of this check may reach `Trainer.load_state_dict`. So does a
tensor of the right shape over too little memory (`zeros(1).expand(shape)`: stride 0) or over memory another
tensor shares (`as_strided`): `check_tensors` accepts only dense tensors (contiguous in some order of their
dimensions) that fill exactly their own storage, and text (config values, names, keys) that is valid UTF-8 (a
lone surrogate broke every message that quoted it).

Every checkpoint that is loaded outside its worker comes here through `ganlab.ckpt_load`, in a sandbox process
(`ganlab.sandbox`): an upload, a CLI --from-checkpoint file, and a run's own files (a file in a run directory can
be damaged, or put there by hand).
"""
from __future__ import annotations

import io
import math
import zipfile
from typing import Any

import torch

from .store import StoreError
from .trainer import HIST_BINS

MAX_UNPACKED = 200 * 2**20     # bytes a checkpoint may unpack to (the largest preset's is about 40 MB)
MAX_STEP = 10_000_000          # TrainConfig.steps' upper bound
_FLOAT = (torch.float32,)
_OPT_TENSORS = {"adam": ("exp_avg", "exp_avg_sq"), "rmsprop": ("square_avg",), "sgd": ("momentum_buffer",)}


def check_archive(data: bytes) -> None:
    """Refuse what is not a torch zip archive, or unpacks to more than MAX_UNPACKED, before unpacking it."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, ValueError, OSError):
        raise StoreError("not a ganlab checkpoint (not a file that torch.save wrote)") from None
    if len(infos) > 10_000:
        raise StoreError(f"refused: the checkpoint holds {len(infos):,} entries")
    total = sum(max(0, i.file_size) for i in infos)
    if total > MAX_UNPACKED:
        raise StoreError(f"refused: the checkpoint unpacks to {total / 2**20:,.0f} MB "
                         f"(the limit is {MAX_UNPACKED // 2**20} MB)")


def check_tensors(value: Any, where: str = "checkpoint", depth: int = 0) -> None:
    """Every tensor in `value` dense (see the module docstring) and every string valid UTF-8, else StoreError."""
    if depth > 12:
        raise StoreError(f"its {where} is nested too deep")
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise StoreError(f"its {where} holds text that is not valid UTF-8") from None
    elif isinstance(value, torch.Tensor):
        check_dense(value, where)
    elif isinstance(value, dict):
        for key, v in value.items():
            check_tensors(key, f"{where} (a key)", depth + 1)
            check_tensors(v, f"{where}'s {key}" if isinstance(key, str) and depth < 3 else where, depth + 1)
    elif isinstance(value, (list, tuple)):
        for v in value:
            check_tensors(v, where, depth + 1)


def check_dense(t: torch.Tensor, what: str) -> None:
    """StoreError unless `t` is a plain strided tensor whose elements exactly fill its own storage: contiguous in
    some order of its dimensions (channels_last conv weights are), no stride 0, no overlap, no offset."""
    if t.layout != torch.strided or t.is_sparse or t.is_quantized or t.is_nested or t.device.type != "cpu":
        raise StoreError(f"its {what} is a {t.layout} tensor, not a dense one")
    storage, expected, dense = t.untyped_storage(), 1, True
    for size, stride in sorted(zip(t.shape, t.stride()), key=lambda d: d[1]):
        if size != 1:   # a dimension of one element may have any stride
            dense = dense and stride == expected
            expected *= size
    if not dense or t.storage_offset() != 0 or storage.nbytes() != t.numel() * t.element_size():
        raise StoreError(f"its {what} is a tensor whose memory layout does not match its shape (strides "
                         f"{tuple(t.stride())} over {storage.nbytes():,} bytes): it could corrupt memory")


def expected_models(cfg, sample_shape: tuple[int, ...], classes: int):
    """G and D as `cfg` builds them, on the meta device: shapes and dtypes without allocating memory."""
    from .models import build_models
    with torch.device("meta"):
        return build_models(cfg, sample_shape, classes)


def _limit_size(g: torch.nn.Module, d: torch.nn.Module) -> None:
    n = sum(p.numel() for m in (g, d) for p in m.parameters())
    if n * 4 > MAX_UNPACKED:   # float32 weights alone past the unpack limit: a checkpoint could not hold them
        raise StoreError(f"refused: its config describes networks of {n / 1e6:,.0f}M parameters, "
                         "too large to train here")


def check_weights(name: str, got: Any, model: torch.nn.Module) -> None:
    if not isinstance(got, dict):
        raise StoreError(f"its {name} weights are not a mapping of tensors")
    want = model.state_dict()
    missing, extra = sorted(set(want) - set(got)), sorted(set(got) - set(want))
    if missing or extra:
        what = f"missing {missing[0]!r}" if missing else f"unexpected {extra[0]!r}"
        raise StoreError(f"its {name} weights do not fit the networks its config describes ({what})")
    for key, ref in want.items():
        t = got[key]
        if not isinstance(t, torch.Tensor):
            raise StoreError(f"its {name} weight {key!r} is not a tensor")
        if tuple(t.shape) != tuple(ref.shape) or t.dtype != ref.dtype or t.layout != torch.strided:
            raise StoreError(f"its {name} weight {key!r} is {t.dtype} {tuple(t.shape)}, "
                             f"the network needs {ref.dtype} {tuple(ref.shape)}")


def _scalar(value: Any, what: str, lo: float, hi: float, integer: bool = False) -> float:
    if isinstance(value, torch.Tensor):
        if value.numel() != 1 or value.dtype == torch.bool or value.is_complex():
            raise StoreError(f"its {what} is a tensor of shape {tuple(value.shape)}, not one number")
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise StoreError(f"its {what} is not a number")
    if not math.isfinite(value) or not lo <= value <= hi or integer and value != int(value):
        raise StoreError(f"its {what} ({value!r:.40}) is out of range ({lo:g} to {hi:g})")
    return value


def check_optimizer(name: str, got: Any, model: torch.nn.Module, kind: str) -> None:
    """The state torch's optimiser would load: one group over the model's parameters, per-parameter
    tensors of exactly the parameter's shape, a finite non-negative step."""
    params = list(model.parameters())
    if not isinstance(got, dict) or not isinstance(got.get("state"), dict) or \
            not isinstance(got.get("param_groups"), list):
        raise StoreError(f"its {name} optimiser state is not what torch saves")
    groups = got["param_groups"]
    if len(groups) != 1 or not isinstance(groups[0], dict) or \
            list(groups[0].get("params", [])) != list(range(len(params))):
        raise StoreError(f"its {name} optimiser state covers other parameters than the network has")
    for key in ("lr", "weight_decay", "eps", "momentum"):
        if key in groups[0]:
            _scalar(groups[0][key], f"{name} optimiser's {key}", 0.0, 1e3)
    if "betas" in groups[0]:
        betas = groups[0]["betas"]
        if not isinstance(betas, (list, tuple)) or len(betas) != 2:
            raise StoreError(f"its {name} optimiser's betas are not two numbers")
        for b in betas:
            _scalar(b, f"{name} optimiser's beta", 0.0, 1.0)
    for idx, entry in got["state"].items():
        if not isinstance(idx, int) or isinstance(idx, bool) or not 0 <= idx < len(params):
            raise StoreError(f"its {name} optimiser state names parameter {idx!r}, which the network lacks")
        if not isinstance(entry, dict):
            raise StoreError(f"its {name} optimiser state for parameter {idx} is not a mapping")
        shape = tuple(params[idx].shape)
        needed = set(_OPT_TENSORS.get(kind, ()))
        for key, value in entry.items():
            if key == "step":
                _scalar(value, f"{name} optimiser step", 0, MAX_STEP * 100, integer=True)
                continue
            if not isinstance(value, torch.Tensor):
                raise StoreError(f"its {name} optimiser's {key} for parameter {idx} is not a tensor")
            if tuple(value.shape) != shape or value.dtype not in _FLOAT or value.layout != torch.strided:
                raise StoreError(f"its {name} optimiser's {key} for parameter {idx} is {value.dtype} "
                                 f"{tuple(value.shape)}, the parameter is float32 {shape}")
            needed.discard(key)
        if needed:
            raise StoreError(f"its {name} optimiser state for parameter {idx} lacks {sorted(needed)[0]}")


def check_state(state: dict[str, Any], cfg, sample_shape: tuple[int, ...], classes: int, full: bool) -> None:
    """Every field of `state` against what `cfg` builds; StoreError naming the first field that does not fit."""
    check_tensors(state)
    g, d = expected_models(cfg, sample_shape, classes)
    _limit_size(g, d)
    check_weights("generator", state.get("G"), g)
    check_weights("discriminator", state.get("D"), d)
    if not full:
        return
    check_optimizer("generator", state.get("opt_g"), g, cfg.g_opt)
    check_optimizer("discriminator", state.get("opt_d"), d, cfg.d_opt)
    _scalar(state.get("step"), "step", 0, MAX_STEP, integer=True)
    _scalar(state.get("d_updates"), "D update count", 0, MAX_STEP * 100, integer=True)
    rng = state.get("rng")
    if not isinstance(rng, torch.Tensor) or rng.dtype != torch.uint8 or rng.dim() != 1 or rng.numel() > 1 << 16:
        raise StoreError("its random number generator state is not a byte tensor")
    try:
        torch.Generator().set_state(rng.clone())
    except (RuntimeError, TypeError, ValueError):
        if rng.numel() != 16:   # a CUDA generator's state (seed + offset) is 16 bytes; CPU ones are checked here
            raise StoreError("its random number generator state is damaged") from None
    n_fixed = cfg.grid_size * (16 if len(sample_shape) == 1 else 1)
    z = state.get("fixed_z")
    if not isinstance(z, torch.Tensor) or tuple(z.shape) != (n_fixed, cfg.noise_dim) or z.dtype not in _FLOAT:
        got = tuple(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__
        raise StoreError(f"its fixed noise is {got}, the config needs float32 {(n_fixed, cfg.noise_dim)}")
    y = state.get("fixed_y")
    if y is not None:
        if not isinstance(y, torch.Tensor) or tuple(y.shape) != (n_fixed,) or y.dtype != torch.int64 or \
                (y.numel() and (int(y.min()) < 0 or int(y.max()) >= max(classes, 1))):
            raise StoreError("its fixed labels do not fit the data set's classes")
    edges = state.get("score_edges")
    if edges is not None:
        if not isinstance(edges, torch.Tensor) or tuple(edges.shape) != (HIST_BINS + 1,) or \
                not edges.is_floating_point() or not bool(torch.isfinite(edges).all()):
            raise StoreError("its histogram edges are damaged")

"""One validated configuration for a training run, plus the named presets.

`TrainConfig` is the single boundary where user input (form widgets, CLI `--set key=value`, JSON files from a
run directory) becomes trusted values. Every check raises `ConfigError` naming the field and what is allowed,
so pages can show the message next to the field and the CLI can exit with code 2.
"""
from __future__ import annotations

import dataclasses
import json
import math
import reprlib
from dataclasses import dataclass, field, fields
from typing import Any

from .data_specs import DATASETS_2D, SPECS
from .loss_specs import LOSS_SPECS

DATASETS = tuple(SPECS)               # the data-set registry (ganlab.data_specs) says which exist
MODELS = ("mlp", "dense-dropout", "dcgan")
LOSSES = tuple(LOSS_SPECS)            # the loss registry (ganlab.loss_specs)
OPTIMIZERS = ("adam", "sgd", "rmsprop")
NOISE_DISTS = ("normal", "uniform")
DEVICES = ("auto", "cpu", "cuda", "mps")
LR_DECAYS = ("none", "linear")
# DCGAN G upsampling: transposed conv k4 s2 (DCGAN), k3 s2 (uneven overlap), nearest resize + 3x3 conv
UPSAMPLES = ("transposed", "transposed-k3", "resize")

# Fields a running or paused run accepts on its next step; everything else needs a new run.
LIVE_FIELDS = ("g_lr", "d_lr", "d_steps", "label_smoothing", "instance_noise", "r1_gamma", "gp_lambda",
               "lr_decay", "cuda_graph")


class ConfigError(ValueError):
    """A config value is invalid. `field` names it; the message says what is allowed."""

    def __init__(self, field_name: str, message: str):
        super().__init__(f"{field_name}: {message}")
        self.field = field_name
        self.message = message


@dataclass
class TrainConfig:
    # --- data -----------------------------------------------------------------------------------------
    dataset: str = "ring8"          # a name in DATASETS; 2D toys train in seconds on a laptop
    data_path: str = ""             # csv file, IDX directory, image folder or zip (datasets that need one)
    image_size: int = 28            # folder/zip images are resized to this (DCGAN supports 28, 32, 64)
    # --- model ----------------------------------------------------------------------------------------
    model: str = "mlp"              # mlp (tutorials), dense-dropout (Keras tutorial G), dcgan
    conditional: bool = False       # feed the label to G and D (label embedding); needs a labelled dataset
    g_layers: tuple[int, ...] = (64, 64, 64)   # hidden widths of MLP G (dense-dropout uses the first only)
    d_layers: tuple[int, ...] = (64, 64, 64)   # hidden widths of MLP D
    channels: int = 64              # DCGAN base width (G's last / D's first conv layer)
    upsample: str = "transposed"    # DCGAN G's x2 steps: a name in UPSAMPLES (the checkerboard lesson)
    dropout: float = 0.3            # dense-dropout G's dropout (the Keras tutorial's 0.3); also MLP D if d_dropout
    d_dropout: float = 0.0          # dropout in MLP D (0 = none); the PyTorch tutorials use none
    spectral_norm: bool = False     # spectral normalisation on D's layers (stabilises, slows D)
    noise_dim: int = 8              # size of z; small for 2D (more dims raised quality but dropped modes)
    noise_dist: str = "normal"      # normal N(0, I) or uniform U(-1, 1)
    # --- loss and switches ----------------------------------------------------------------------------
    loss: str = "nonsaturating"     # minimax keeps the saturating G loss log(1 - D(G(z))) of the tutorials
    gp_lambda: float = 10.0         # WGAN-GP gradient penalty weight (Gulrajani et al. use 10)
    label_smoothing: float = 0.0    # one-sided: real target 1 - s for BCE losses (Salimans et al. use 0.1)
    instance_noise: float = 0.0     # std of Gaussian noise added to D's inputs, annealed linearly to 0
    r1_gamma: float = 0.0           # R1 penalty weight on real data (0 = off)
    d_steps: int = 1                # D updates per G update (WGAN-GP uses 5)
    # --- optimisation ---------------------------------------------------------------------------------
    g_opt: str = "adam"
    d_opt: str = "adam"
    g_lr: float = 1e-3
    d_lr: float = 1e-3
    beta1: float = 0.5              # Adam beta1 0.5: the DCGAN paper's choice, kept by the tutorials
    beta2: float = 0.999
    lr_decay: str = "linear"        # linear decay to 0 at `steps` helps 2D runs settle on the modes
    batch_size: int = 256
    steps: int = 6000               # generator steps; the run finishes there (the CLI can override)
    seed: int = 0
    device: str = "auto"            # auto: cuda, then mps, then cpu
    bf16: bool = False              # bf16 autocast on CUDA only, opt-in (fp16 GANs diverge)
    cuda_graph: bool = True         # on CUDA, replay each step as one CUDA graph after a few eager steps
    # --- what gets recorded ---------------------------------------------------------------------------
    stats_every: int = 10           # collect scalars every N steps (one host sync per collection)
    snapshot_every: int = 0         # steps between snapshots; 0 = once per epoch (images) / 250 steps (2D)
    checkpoint_every: int = 0       # steps between checkpoints; 0 = once per epoch (images) / 1000 steps (2D)
    keep_checkpoints: int = 5       # last N checkpoints kept on disk, plus milestones (every 10th)
    grid_size: int = 64             # samples in the fixed-noise grid (images) / fake points (2D: x16)

    # ------------------------------------------------------------------------------------------------
    def __post_init__(self) -> None:
        self.g_layers = _as_int_tuple("g_layers", self.g_layers)
        self.d_layers = _as_int_tuple("d_layers", self.d_layers)
        self.validate()

    @property
    def is_2d(self) -> bool:
        return self.dataset in DATASETS_2D

    def validate(self) -> None:
        _choice("dataset", self.dataset, DATASETS)
        _choice("model", self.model, MODELS)
        _choice("loss", self.loss, LOSSES)
        _choice("g_opt", self.g_opt, OPTIMIZERS)
        _choice("d_opt", self.d_opt, OPTIMIZERS)
        _choice("noise_dist", self.noise_dist, NOISE_DISTS)
        _choice("device", self.device, DEVICES)
        _choice("lr_decay", self.lr_decay, LR_DECAYS)
        _choice("upsample", self.upsample, UPSAMPLES)
        for name in ("conditional", "spectral_norm", "bf16", "cuda_graph"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(name, f"must be true or false, got {_show(getattr(self, name))}")
        if not isinstance(self.data_path, str):
            raise ConfigError("data_path", "must be a path (text)")
        spec = SPECS[self.dataset]
        if spec.needs_path and not self.data_path.strip():
            raise ConfigError("data_path", f"dataset {self.dataset!r} needs a path to its {spec.path_kind}")
        if self.is_2d and self.model != "mlp":
            raise ConfigError("model", f"2D datasets need model 'mlp' (got {self.model!r}); "
                                       "dcgan and dense-dropout are for images")
        if self.conditional and not spec.labelled:
            raise ConfigError("conditional", f"dataset {self.dataset!r} has no labels to condition on")
        _int("image_size", self.image_size, 8, 128)
        if self.model == "dcgan" and self.image_size not in (28, 32, 64) and spec.resizes:
            raise ConfigError("image_size", "DCGAN supports 28, 32 or 64")
        for name in ("g_layers", "d_layers"):
            widths = getattr(self, name)
            if not 1 <= len(widths) <= 8:
                raise ConfigError(name, "needs 1 to 8 hidden layer widths, e.g. 64,64,64")
            for w in widths:
                if not 1 <= w <= 4096:
                    raise ConfigError(name, f"each width must be between 1 and 4096, got {_show(w)}")
        _int("channels", self.channels, 4, 512)
        _float("dropout", self.dropout, 0.0, 0.95)
        _float("d_dropout", self.d_dropout, 0.0, 0.95)
        _int("noise_dim", self.noise_dim, 1, 1024)
        _float("gp_lambda", self.gp_lambda, 0.0, 1e4)
        _float("label_smoothing", self.label_smoothing, 0.0, 0.5)
        _float("instance_noise", self.instance_noise, 0.0, 10.0)
        _float("r1_gamma", self.r1_gamma, 0.0, 1e4)
        _int("d_steps", self.d_steps, 1, 20)
        _float("g_lr", self.g_lr, 0.0, 1.0, open_low=True)
        _float("d_lr", self.d_lr, 0.0, 1.0, open_low=True)
        _float("beta1", self.beta1, 0.0, 0.999)
        _float("beta2", self.beta2, 0.0, 0.9999)
        _int("batch_size", self.batch_size, 1, 8192)
        _int("steps", self.steps, 1, 10_000_000)
        _int("seed", self.seed, 0, 2**31 - 1)
        _int("stats_every", self.stats_every, 1, 10_000)
        _int("snapshot_every", self.snapshot_every, 0, 1_000_000)
        _int("checkpoint_every", self.checkpoint_every, 0, 1_000_000)
        _int("keep_checkpoints", self.keep_checkpoints, 1, 1000)
        _int("grid_size", self.grid_size, 1, 256)

    # ------------------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["g_layers"] = list(self.g_layers)
        d["d_layers"] = list(self.d_layers)
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        if not isinstance(d, dict):
            raise ConfigError("config", "must be a mapping of field names to values")
        known = {f.name for f in fields(cls)}
        unknown = sorted(str(k)[:80] for k in d if k not in known)   # keys of a crafted file: any type or size
        if unknown:
            raise ConfigError(unknown[0], f"unknown field; valid fields: {', '.join(sorted(known))}")
        return cls(**d)

    def replace(self, **changes: Any) -> "TrainConfig":
        """A validated copy with `changes` applied (raises ConfigError, leaves self untouched)."""
        return TrainConfig.from_dict({**self.to_dict(), **changes})

    def with_overrides(self, pairs: list[str]) -> "TrainConfig":
        """Apply CLI-style `key=value` strings, parsing each value to its field's type."""
        changes: dict[str, Any] = {}
        for pair in pairs:
            if "=" not in pair:
                raise ConfigError(pair, "expected key=value")
            key, raw = pair.split("=", 1)
            changes[key.strip()] = parse_value(key.strip(), raw.strip())
        return self.replace(**changes)


def parse_value(name: str, raw: str) -> Any:
    """Parse text (a CLI value or a form's text box) to the type of field `name`."""
    types = {f.name: f.type for f in fields(TrainConfig)}
    if name not in types:
        raise ConfigError(name, f"unknown field; valid fields: {', '.join(sorted(types))}")
    kind = str(types[name])
    try:
        if kind == "bool":
            low = raw.lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
        if kind.startswith("tuple"):
            return tuple(int(p) for p in raw.replace(" ", "").split(",") if p)
    except ValueError:
        raise ConfigError(name, f"cannot read {_show(raw)} as {kind}") from None
    return raw


# --- checks --------------------------------------------------------------------------------------------
_REPR = reprlib.Repr()   # bounded repr: a crafted config may nest lists 40 deep, sharing each level (2**40 leaves)
_REPR.maxlevel, _REPR.maxlist, _REPR.maxtuple, _REPR.maxdict, _REPR.maxstring, _REPR.maxother = 2, 6, 6, 4, 60, 60


def _show(value: Any, limit: int = 80) -> str:
    """A bad value as message text: cut short (a pasted 10k-character string), never exploding (a shared-
    reference "billion laughs" list), and never itself failing (Python refuses to turn an int of over 4,300
    digits into text; float() of one overflows)."""
    try:
        text = _REPR.repr(value)
    except ValueError:
        return f"a {value.bit_length()}-bit number" if isinstance(value, int) else f"a huge {type(value).__name__}"
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _finite(value: int | float) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:   # an int too large for a float
        return False


def _choice(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(name, f"{_show(value)} is not one of: {', '.join(allowed)}")


def _int(name: str, value: Any, lo: int, hi: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(name, f"must be a whole number between {lo} and {hi}, got {_show(value)}")
    if not lo <= value <= hi:
        raise ConfigError(name, f"must be between {lo} and {hi}, got {_show(value)}")


def _float(name: str, value: Any, lo: float, hi: float, open_low: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not _finite(value):
        raise ConfigError(name, f"must be a number between {lo} and {hi}, got {_show(value)}")
    if value > hi or value < lo or (open_low and value <= lo):
        low = f"above {lo}" if open_low else f"at least {lo}"
        raise ConfigError(name, f"must be {low} and at most {hi}, got {_show(value)}")


def _as_int_tuple(name: str, value: Any) -> tuple[int, ...]:
    if isinstance(value, str):
        try:
            return tuple(int(p) for p in value.replace(" ", "").split(",") if p)
        except ValueError:
            raise ConfigError(name, f"expected comma-separated whole numbers, got {_show(value)}") from None
    if isinstance(value, (list, tuple)):
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            raise ConfigError(name, f"expected whole numbers, got {_show(list(value))}")
        return tuple(value)
    raise ConfigError(name, f"expected a list of widths, got {_show(value)}")


# --- presets -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Preset:
    name: str
    summary: str
    overrides: dict[str, Any] = field(default_factory=dict)

    def config(self, **extra: Any) -> TrainConfig:
        return TrainConfig().replace(**{**self.overrides, **extra})


_MNIST_MLP = dict(dataset="mnist5k", model="mlp", g_layers=(256, 512, 1024), d_layers=(1024, 512, 256),
                  noise_dim=100, loss="nonsaturating", g_lr=2e-4, d_lr=2e-4, beta1=0.5, lr_decay="none",
                  batch_size=64, steps=4000)
_DCGAN = dict(dataset="mnist5k", model="dcgan", channels=32, noise_dim=64, loss="nonsaturating",
              g_lr=2e-4, d_lr=2e-4, beta1=0.5, lr_decay="none", batch_size=64, steps=3000)

PRESETS: dict[str, Preset] = {p.name: p for p in [
    # Tuned with `lessons --check` (10 seeds): 8/8 modes and 81-87% high-quality samples in 10/10. Without R1
    # (batch 256, lr 1e-3) seeds ended with 6-7 modes and ~74%; R1 covers all modes by step ~3000, and the
    # higher lr with linear decay tightens the modes (lr 1e-3: ~74%, 2e-3: ~82%, 4e-3: ~85% at 6000 steps).
    Preset("ring8", "Ring of 8 Gaussians, tuned MLP GAN that covers all 8 modes in under a minute on a laptop.",
           dict(dataset="ring8", g_layers=(64, 64, 64), d_layers=(64, 64, 64), noise_dim=8, batch_size=512,
                g_lr=4e-3, d_lr=4e-3, r1_gamma=0.1, lr_decay="linear", steps=6000)),
    # 1-d noise, a G twice as fast as a sharp D, small batches, no decay (the one-d-noise lesson): G draws one
    # curve that must join the modes it reaches. Seeds 0-9 at 3000 steps: the fakes reach 4-8 modes with only
    # 3-54% high quality (1-5 modes covered). A weak, slow D (16 units, lr 1e-4) finds no mode at all.
    Preset("ring8-collapse", "Ring of 8 with 1-d noise: G draws one curve, which must join the modes it reaches.",
           dict(dataset="ring8", g_layers=(64, 64, 64), d_layers=(128, 128, 128), noise_dim=1, batch_size=64,
                g_lr=2e-3, d_lr=1e-3, beta1=0.5, lr_decay="none", steps=3000)),
    # A wider D learning 10x faster than G wins early, as D does in most GANs' first steps; with equal rates
    # D(G(z)) stayed near 0.25 and the gradient gap to the non-saturating loss was only ~4x (lessons --check).
    Preset("ring8-saturating", "Ring of 8 with the tutorials' minimax loss: G's gradient vanishes when D wins.",
           dict(dataset="ring8", loss="minimax", g_layers=(64, 64, 64), d_layers=(128, 128, 128), noise_dim=8,
                batch_size=256, g_lr=1e-4, d_lr=1e-3, lr_decay="none", steps=4000)),
    Preset("ring8-wgan-gp", "Ring of 8 with WGAN-GP: a critic with gradient penalty, 5 critic steps per G step.",
           dict(dataset="ring8", loss="wgan-gp", gp_lambda=0.1, d_steps=5, g_layers=(64, 64, 64),
                d_layers=(64, 64, 64), noise_dim=8, batch_size=256, g_lr=1e-3, d_lr=1e-3, beta1=0.5,
                beta2=0.9, lr_decay="linear", steps=4000)),
    # The textbook collapse (Goodfellow 2016, Unrolled GAN Fig. 1, VEEGAN Table 1): a deep D (3 x 128) learning
    # 4x faster than G, no R1. For the first ~2000 steps G's loose cloud of fakes hops round the ring as D catches
    # up; as the lrs decay G locks onto 1-3 modes, where fakes and real points overlap and D gives no gradient.
    # lessons --check, seeds 0-9 (one ensemble, ~175 CPU s): 1-3 modes with 73-100% HQ in 9/10 (seed 0: 3 modes,
    # 62%); G had covered, then left, 1-5 modes in 10/10. g_lr 5e-4 locked at once (8/10 on one mode from step
    # ~250, no hops); a D of 1-2 layers, or instance noise 0.3, spread G over 5-8 modes at 10-40% HQ instead.
    Preset("ring8-hop", "Ring of 8 with a deep D 4x faster than G: G's fakes hop from mode to mode, then lock "
           "onto one to three.",
           dict(dataset="ring8", g_layers=(64, 64, 64), d_layers=(128, 128, 128), noise_dim=8, batch_size=256,
                g_lr=1e-3, d_lr=4e-3, beta1=0.5, r1_gamma=0.0, lr_decay="linear", steps=6000)),
    Preset("grid25", "5x5 grid of Gaussians: 25 modes, a harder coverage test.",
           dict(dataset="grid25", g_layers=(128, 128, 128), d_layers=(128, 128, 128), noise_dim=8,
                batch_size=256, g_lr=1e-3, d_lr=1e-3, lr_decay="linear", steps=8000)),
    Preset("mnist-mlp", "The tutorials' MLP GAN on the bundled 5,000 MNIST digits (256-512-1024, Adam 2e-4, b1 0.5).",
           dict(_MNIST_MLP)),
    Preset("mnist-keras", "The Keras tutorial's generator: Dense 128 + Dropout 0.3 + Dense 784 tanh, 100-d noise.",
           {**_MNIST_MLP, "model": "dense-dropout", "g_layers": (128,), "dropout": 0.3}),
    Preset("mnist-dcgan", "DCGAN on the bundled MNIST digits: strided convolutions with batch norm.",
           dict(_DCGAN)),
    Preset("mnist-fast", "DCGAN for laptops: 16 base channels and batch 32 at lr 4e-4; readable digits in well "
           "under two minutes on 2 CPU cores.",
           {**_DCGAN, "channels": 16, "batch_size": 32, "g_lr": 4e-4, "d_lr": 4e-4, "steps": 1500}),
    Preset("mnist-cgan", "Conditional DCGAN on MNIST: pick the digit to draw.",
           {**_DCGAN, "conditional": True}),
    Preset("fashion-dcgan", "DCGAN on Fashion-MNIST (Debian's dataset-fashion-mnist, or an IDX folder).",
           {**_DCGAN, "dataset": "fashion", "steps": 4000}),
]}


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError("preset", f"{name!r} is not one of: {', '.join(PRESETS)}") from None

"""Generators and discriminators: the tutorials' MLP, the Keras tutorial's Dense+Dropout G, and DCGAN.

Every generator maps (z (N, noise_dim), y (N,) or None) -> x (N, *sample_shape); every discriminator maps
(x, y) -> logits (N,). Conditional models embed the label: G concatenates it to z, D uses a projection term
<embed(y), features> (Miyato & Koyama 2018), which works the same for the MLP and the convolutional D.
D's embedding starts at the scale of its other weights (`label_embedding`), not at nn.Embedding's N(0, 1).
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm as _sn

from .config import TrainConfig
from .latent import from_prior
from .loss_specs import LOSS_SPECS

Tensor = torch.Tensor
LABEL_EMBED = 16   # size of G's label embedding; small nets need few dims to tell 10 classes apart


class SeededDropout(nn.Dropout):
    """nn.Dropout that draws its mask from `generator` (the run's own, set by `use_generator`), not from torch's
    global RNG: runs training side by side would consume each other's draws, and a resumed run or a branch
    would not continue exactly, since checkpoints hold the run's generator state but not the global one."""

    generator: torch.Generator | None = None

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0 or self.generator is None:
            return super().forward(x)
        keep = torch.empty_like(x).bernoulli_(1.0 - self.p, generator=self.generator)
        return x * keep / (1.0 - self.p)


def use_generator(module: nn.Module, generator: torch.Generator) -> None:
    """Make every dropout layer in `module` draw from `generator`."""
    for m in module.modules():
        if isinstance(m, SeededDropout):
            m.generator = generator


class Generator(nn.Module):
    """Base: holds the label embedding, draws noise from its prior and checks the noise shape at the public
    entry point."""

    noise_dist = "normal"          # the prior of z: "normal" N(0, I) or "uniform" U(-1, 1); build_models sets it

    def __init__(self, noise_dim: int, num_classes: int, sample_shape: tuple[int, ...]):
        super().__init__()
        self.noise_dim = noise_dim
        self.num_classes = num_classes
        self.sample_shape = tuple(sample_shape)
        self.embed = nn.Embedding(num_classes, LABEL_EMBED) if num_classes else None
        self.in_dim = noise_dim + (LABEL_EMBED if num_classes else 0)

    def noise(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n noise vectors (n, noise_dim) from this G's prior, on the generator's device (else on G's). Every
        sampler uses this, so quality measures and checks see the z that training saw; the prior itself is
        defined once, in latent.from_prior."""
        dev = generator.device if generator is not None else next(self.parameters()).device
        shape = (n, self.noise_dim)
        return from_prior(self.noise_dist, lambda: torch.randn(shape, generator=generator, device=dev),
                          lambda: torch.rand(shape, generator=generator, device=dev))

    def _input(self, z: Tensor, y: Tensor | None) -> Tensor:
        assert z.dim() == 2 and z.shape[1] == self.noise_dim, f"z must be (N, {self.noise_dim}), got {tuple(z.shape)}"
        if self.embed is None:
            return z
        if y is None:
            raise ValueError("this generator is conditional: pass class labels y")
        return torch.cat([z, self.embed(y)], dim=1)


def label_embedding(num_classes: int, dim: int) -> nn.Embedding:
    """D's class vectors for the projection <embed(y), h>: N(0, 1/dim), like the head's weights (the projection
    D's reference code draws them Xavier-uniform). nn.Embedding's N(0, 1) made the projection ~280x the head's
    logit at init in the DCGAN D (dim 3,136): a fixed random per-class, per-position filter that Adam at lr 2e-4
    barely moves, and G satisfied it with salt-and-pepper specks (mnist-cgan at 1,500 steps: 2.1 isolated dots
    per image, 0.3 with this scale; label accuracy 0.77 -> 0.96). Rescaling draws nothing more from the RNG."""
    embed = nn.Embedding(num_classes, dim)
    with torch.no_grad():
        embed.weight.mul_(dim ** -0.5)
    return embed


class Discriminator(nn.Module):
    """Base: features(x) -> (N, F); logits = head(features) + projection of the label when conditional."""

    def __init__(self, feat_dim: int, num_classes: int, sn: bool):
        super().__init__()
        wrap = _sn if sn else (lambda m: m)
        self.head = wrap(nn.Linear(feat_dim, 1))
        self.embed = wrap(label_embedding(num_classes, feat_dim)) if num_classes else None

    def features(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        h = self.features(x)
        out = self.head(h).squeeze(1)
        if self.embed is not None:
            if y is None:
                raise ValueError("this discriminator is conditional: pass class labels y")
            out = out + (self.embed(y) * h).sum(dim=1)
        return out


# --- MLP (tutorial articles 000-002) ---------------------------------------------------------------
class MLPGenerator(Generator):
    def __init__(self, noise_dim: int, widths: tuple[int, ...], sample_shape: tuple[int, ...], num_classes: int = 0,
                 image: bool = True):
        super().__init__(noise_dim, num_classes, sample_shape)
        layers: list[nn.Module] = []
        prev = self.in_dim
        for w in widths:
            layers += [nn.Linear(prev, w), nn.LeakyReLU(0.2)]
            prev = w
        layers.append(nn.Linear(prev, math.prod(sample_shape)))
        if image:
            layers.append(nn.Tanh())   # images live in [-1, 1]; 2D points are unbounded
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        return self.net(self._input(z, y)).view(-1, *self.sample_shape)


class DenseDropoutGenerator(Generator):
    """Keras tutorial (003): Dense(128, relu) -> Dropout(0.3) -> Dense(784, tanh)."""

    def __init__(self, noise_dim: int, width: int, dropout: float, sample_shape: tuple[int, ...],
                 num_classes: int = 0):
        super().__init__(noise_dim, num_classes, sample_shape)
        self.net = nn.Sequential(nn.Linear(self.in_dim, width), nn.ReLU(), SeededDropout(dropout),
                                 nn.Linear(width, math.prod(sample_shape)), nn.Tanh())

    def forward(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        return self.net(self._input(z, y)).view(-1, *self.sample_shape)


class MLPDiscriminator(Discriminator):
    def __init__(self, widths: tuple[int, ...], sample_shape: tuple[int, ...], num_classes: int = 0,
                 dropout: float = 0.0, sn: bool = False):
        super().__init__(widths[-1], num_classes, sn)
        wrap = _sn if sn else (lambda m: m)
        layers: list[nn.Module] = [nn.Flatten()]
        prev = math.prod(sample_shape)
        for w in widths:
            layers += [wrap(nn.Linear(prev, w)), nn.LeakyReLU(0.2)]
            if dropout:
                layers.append(SeededDropout(dropout))
            prev = w
        self.net = nn.Sequential(*layers)

    def features(self, x: Tensor) -> Tensor:
        return self.net(x)


# --- DCGAN (Radford et al. 2016), sized for 28, 32 and 64 pixels ----------------------------------------
def _dcgan_plan(size: int) -> tuple[int, int]:
    """(start resolution, number of x2 upsamplings): 28 = 7*2*2, 32 = 4*2^3, 64 = 4*2^4."""
    plans = {28: (7, 2), 32: (4, 3), 64: (4, 4)}
    if size not in plans:
        raise ValueError(f"DCGAN supports 28, 32 or 64 pixel images, got {size}")
    return plans[size]


def upsample_layer(upsample: str, c_in: int, c_out: int) -> list[nn.Module]:
    """One x2 upsampling of DCGAN's G (config.UPSAMPLES): transposed conv kernel 4 stride 2 (DCGAN's; even
    overlap), kernel 3 stride 2 (uneven overlap: Odena et al. 2016's checkerboard case), or nearest-neighbour
    resize then a 3x3 convolution (their remedy)."""
    if upsample == "transposed":
        return [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False)]
    if upsample == "transposed-k3":
        return [nn.ConvTranspose2d(c_in, c_out, 3, 2, 1, output_padding=1, bias=False)]
    if upsample == "resize":
        return [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c_in, c_out, 3, 1, 1, bias=False)]
    raise ValueError(f"unknown upsample {upsample!r}")


class DCGANGenerator(Generator):
    def __init__(self, noise_dim: int, channels: int, sample_shape: tuple[int, ...], num_classes: int = 0,
                 upsample: str = "transposed"):
        super().__init__(noise_dim, num_classes, sample_shape)
        out_ch, size = sample_shape[0], sample_shape[1]
        start, ups = _dcgan_plan(size)
        ch = channels * 2 ** ups                       # e.g. 28px, C=32: 128 -> 64 -> 32
        self.start, self.ch0 = start, ch
        self.project = nn.Sequential(nn.Linear(self.in_dim, ch * start * start, bias=False),
                                     nn.BatchNorm1d(ch * start * start), nn.ReLU(True))
        blocks: list[nn.Module] = []
        for _ in range(ups):                           # each: (N, ch, s, s) -> (N, ch/2, 2s, 2s)
            blocks += [*upsample_layer(upsample, ch, ch // 2), nn.BatchNorm2d(ch // 2), nn.ReLU(True)]
            ch //= 2
        blocks += [nn.Conv2d(ch, out_ch, 3, 1, 1), nn.Tanh()]   # (N, C_out, size, size)
        self.net = nn.Sequential(*blocks)
        _dcgan_init(self)

    def forward(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        h = self.project(self._input(z, y)).view(-1, self.ch0, self.start, self.start)
        return self.net(h)


class DCGANDiscriminator(Discriminator):
    def __init__(self, channels: int, sample_shape: tuple[int, ...], num_classes: int = 0, sn: bool = False,
                 batch_norm: bool = True):
        in_ch, size = sample_shape[0], sample_shape[1]
        start, downs = _dcgan_plan(size)
        feat = channels * 2 ** (downs - 1) * start * start
        super().__init__(feat, num_classes, sn)
        wrap = _sn if sn else (lambda m: m)
        layers: list[nn.Module] = []
        ch_in, ch = in_ch, channels
        for i in range(downs):                         # each: (N, c, s, s) -> (N, 2c, s/2, s/2)
            layers.append(wrap(nn.Conv2d(ch_in, ch, 4, 2, 1, bias=not batch_norm or i == 0)))
            if batch_norm and i > 0:                   # no BN on the first layer (DCGAN paper)
                layers.append(nn.BatchNorm2d(ch))
            layers.append(nn.LeakyReLU(0.2, True))
            ch_in, ch = ch, ch * 2
        layers.append(nn.Flatten())                    # (N, C*2^(downs-1) * start^2)
        self.net = nn.Sequential(*layers)
        _dcgan_init(self)

    def features(self, x: Tensor) -> Tensor:
        return self.net(x)


def _dcgan_init(module: nn.Module) -> None:
    """DCGAN paper: conv weights N(0, 0.02), batch-norm scale N(1, 0.02)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)) and hasattr(m, "weight") and m.weight is not None:
            nn.init.normal_(m.weight, 0.0, 0.02)
        elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


def build_models(cfg: TrainConfig, sample_shape: tuple[int, ...], num_classes: int = 0) -> tuple[Generator,
                                                                                                    Discriminator]:
    """G and D for `cfg` on data of `sample_shape`; `num_classes` > 0 only for conditional runs."""
    classes = num_classes if cfg.conditional else 0
    if cfg.conditional and not num_classes:
        raise ValueError("conditional: this dataset has no labels")
    image = len(sample_shape) == 3
    if cfg.model == "dcgan":
        if not image or sample_shape[1] != sample_shape[2]:
            raise ValueError(f"dcgan needs square images, got samples of shape {sample_shape}")
        g: Generator = DCGANGenerator(cfg.noise_dim, cfg.channels, sample_shape, classes, cfg.upsample)
        # Batch norm mixes samples, which breaks the per-sample gradient penalty of WGAN-GP; SN replaces it.
        # Only fields fixed for a run's life decide this: r1_gamma is a live field (live edits, branches), and a
        # checkpoint's D must load into the D that a changed r1_gamma builds. R1 through BN still regularises.
        bn = not (cfg.spectral_norm or LOSS_SPECS[cfg.loss].gradient_penalty)   # a critic: no batch norm
        d: Discriminator = DCGANDiscriminator(cfg.channels, sample_shape, classes, cfg.spectral_norm, bn)
    else:
        if cfg.model == "dense-dropout":
            g = DenseDropoutGenerator(cfg.noise_dim, cfg.g_layers[0], cfg.dropout, sample_shape, classes)
        else:
            g = MLPGenerator(cfg.noise_dim, cfg.g_layers, sample_shape, classes, image=image)
        d = MLPDiscriminator(cfg.d_layers, sample_shape, classes, cfg.d_dropout, cfg.spectral_norm)
    g.noise_dist = cfg.noise_dist
    return g, d

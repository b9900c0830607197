"""Tests for ganlab.models: output shapes of every generator/discriminator for 2D points, 8x8 and 28x28 images,
DCGAN at 28/32/64 in gray and RGB, conditional variants, the spectral-norm and batch-norm switches, and the
shape asserts at the public entry points."""
from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from ganlab.config import TrainConfig
from ganlab.models import (
    DCGANDiscriminator,
    DCGANGenerator,
    DenseDropoutGenerator,
    MLPDiscriminator,
    MLPGenerator,
    build_models,
)

torch.set_num_threads(1)
N = 3


def z(dim: int, n: int = N) -> torch.Tensor:
    return torch.randn(n, dim)


def labels(n: int = N, classes: int = 10) -> torch.Tensor:
    return torch.arange(n) % classes


@pytest.mark.parametrize("shape", [(2,), (1, 28, 28), (1, 8, 8)])
def test_mlp_shapes(shape):
    image = len(shape) == 3
    g = MLPGenerator(5, (16, 8), shape, image=image)
    d = MLPDiscriminator((16, 8), shape)
    x = g(z(5))
    assert tuple(x.shape) == (N, *shape)
    if image:
        assert x.abs().max() <= 1.0 and isinstance(g.net[-1], nn.Tanh)
    else:
        assert not any(isinstance(m, nn.Tanh) for m in g.modules()), "2D points are unbounded"
    assert tuple(d(x).shape) == (N,)


@pytest.mark.parametrize("shape", [(1, 28, 28), (1, 8, 8)])
def test_dense_dropout_shapes(shape):
    g = DenseDropoutGenerator(6, 12, 0.3, shape)
    assert any(isinstance(m, nn.Dropout) for m in g.modules())
    x = g(z(6))
    assert tuple(x.shape) == (N, *shape) and x.abs().max() <= 1.0


@pytest.mark.parametrize("size", [28, 32, 64])
@pytest.mark.parametrize("channels", [1, 3])
def test_dcgan_shapes(size, channels):
    shape = (channels, size, size)
    g = DCGANGenerator(4, 4, shape)
    d = DCGANDiscriminator(4, shape)
    x = g(z(4))
    assert tuple(x.shape) == (N, *shape)
    assert x.abs().max() <= 1.0
    assert tuple(d(x).shape) == (N,)


def test_dcgan_rejects_unsupported_sizes():
    with pytest.raises(ValueError, match="28, 32 or 64"):
        DCGANGenerator(4, 4, (1, 48, 48))
    with pytest.raises(ValueError, match="28, 32 or 64"):
        DCGANDiscriminator(4, (1, 16, 16))
    cfg = TrainConfig(dataset="digits8x8", model="dcgan", channels=4)
    with pytest.raises(ValueError, match="28, 32 or 64"):
        build_models(cfg, (1, 8, 8))
    with pytest.raises(ValueError, match="square"):
        build_models(cfg, (1, 28, 32))


@pytest.mark.parametrize("model, shape", [("mlp", (2,)), ("mlp", (1, 8, 8)), ("dense-dropout", (1, 28, 28)),
                                          ("dcgan", (1, 28, 28)), ("dcgan", (3, 32, 32))])
def test_conditional_variants_use_labels(model, shape):
    dataset = "moons" if shape == (2,) else "mnist5k"
    cfg = TrainConfig(dataset=dataset, model=model, conditional=True, noise_dim=4, g_layers=(8,), d_layers=(8,),
                      channels=4)
    torch.manual_seed(0)
    g, d = build_models(cfg, shape, num_classes=10)
    g.eval()
    d.eval()
    zz = z(4, 2).repeat(2, 1)                                    # same noise, two different labels
    y = torch.tensor([0, 0, 7, 7])
    x = g(zz, y)
    assert tuple(x.shape) == (4, *shape)
    assert not torch.allclose(x[0], x[2]), "the label must change G's output"
    out = d(x, y)
    assert tuple(out.shape) == (4,)
    assert not torch.allclose(d(x, torch.zeros(4, dtype=torch.long)), d(x, torch.full((4,), 9))), \
        "the label must change D's output"
    with pytest.raises(ValueError, match="conditional"):
        g(zz)
    with pytest.raises(ValueError, match="conditional"):
        d(x)


def test_conditional_build_needs_classes():
    cfg = TrainConfig(dataset="mnist5k", conditional=True)
    with pytest.raises(ValueError, match="no labels"):
        build_models(cfg, (1, 28, 28), num_classes=0)
    g, d = build_models(TrainConfig(dataset="mnist5k"), (1, 28, 28), num_classes=10)
    assert g.embed is None and d.embed is None, "unconditional runs ignore the dataset's classes"


@pytest.mark.parametrize("model", ["mlp", "dcgan"])
def test_conditional_d_starts_with_its_label_term_on_the_heads_scale(model):
    """nn.Embedding's N(0, 1) made <embed(y), h> ~280x the head's logit in mnist-cgan's D (3,136 features): a fixed
    random per-class filter that G answered with salt-and-pepper specks. Now N(0, 1/F), as the head's weights."""
    torch.manual_seed(0)
    cfg = TrainConfig(dataset="mnist5k", model=model, channels=32, conditional=True)
    _, d = build_models(cfg, (1, 28, 28), num_classes=10)
    h = d.features(torch.rand(64, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1)
    assert float(d.embed.weight.std()) == pytest.approx(h.shape[1] ** -0.5, rel=0.1)
    label_term = (d.embed(labels(64)) * h).sum(1)
    assert float(label_term.std()) < 5 * float(d.head(h).std())


def _sn_layers(module: nn.Module) -> list[nn.Module]:
    return [m for m in module.modules() if isinstance(m, (nn.Linear, nn.Conv2d, nn.Embedding))]


@pytest.mark.parametrize("model, dataset, shape", [("mlp", "ring8", (2,)), ("dcgan", "mnist5k", (1, 28, 28))])
def test_spectral_norm_switch(model, dataset, shape):
    base = dict(dataset=dataset, model=model, g_layers=(8,), d_layers=(8, 8), channels=4, noise_dim=4)
    _, d_plain = build_models(TrainConfig(**base), shape)
    _, d_sn = build_models(TrainConfig(**base, spectral_norm=True), shape)
    assert not any(parametrize.is_parametrized(m) for m in _sn_layers(d_plain))
    layers = _sn_layers(d_sn)
    assert layers and all(parametrize.is_parametrized(m, "weight") for m in layers)
    assert tuple(d_sn(torch.randn(N, *shape)).shape) == (N,)


def test_dcgan_discriminator_drops_batch_norm_for_per_sample_penalties():
    def has_bn(cfg: TrainConfig) -> bool:
        return any(isinstance(m, nn.BatchNorm2d) for m in build_models(cfg, (1, 28, 28))[1].modules())
    base = dict(dataset="mnist5k", model="dcgan", channels=4)
    assert has_bn(TrainConfig(**base))
    assert not has_bn(TrainConfig(**base, loss="wgan-gp"))
    assert not has_bn(TrainConfig(**base, spectral_norm=True))


def test_live_fields_never_change_the_architecture():
    # A live edit (or a branch) may change any LIVE_FIELD; the checkpoint's weights must still load.
    base = TrainConfig(dataset="mnist5k", model="dcgan", channels=4)
    ref_g, ref_d = build_models(base, (1, 28, 28))
    for change in (dict(r1_gamma=1.0), dict(d_steps=3), dict(label_smoothing=0.1), dict(instance_noise=0.5),
                   dict(gp_lambda=1.0)):
        g, d = build_models(base.replace(**change), (1, 28, 28))
        g.load_state_dict(ref_g.state_dict())
        d.load_state_dict(ref_d.state_dict())


@pytest.mark.parametrize("make", [
    lambda: MLPGenerator(5, (8,), (2,), image=False),
    lambda: DenseDropoutGenerator(5, 8, 0.3, (1, 8, 8)),
    lambda: DCGANGenerator(5, 4, (1, 28, 28)),
])
def test_wrong_noise_shape_asserts(make):
    g = make()
    for bad in (torch.randn(N, 4), torch.randn(N, 6), torch.randn(5), torch.randn(N, 5, 1)):
        with pytest.raises(AssertionError, match=r"z must be \(N, 5\)"):
            g(bad)


def test_build_models_picks_the_configured_classes():
    g, d = build_models(TrainConfig(), (2,))
    assert isinstance(g, MLPGenerator) and isinstance(d, MLPDiscriminator)
    g, _ = build_models(TrainConfig(dataset="mnist5k", model="dense-dropout", g_layers=(16,), dropout=0.2), (1, 28, 28))
    assert isinstance(g, DenseDropoutGenerator)
    assert [m.p for m in g.modules() if isinstance(m, nn.Dropout)] == [0.2]
    _, d = build_models(TrainConfig(dataset="digits8x8", d_dropout=0.25), (1, 8, 8))
    assert [m.p for m in d.modules() if isinstance(m, nn.Dropout)] == [0.25] * 3
    g, d = build_models(TrainConfig(dataset="mnist5k", model="dcgan", channels=4), (1, 28, 28))
    assert isinstance(g, DCGANGenerator) and isinstance(d, DCGANDiscriminator)


@pytest.mark.parametrize("model", ["mlp", "dense-dropout", "dcgan"])
def test_noise_follows_the_configured_prior(model):
    shape = (1, 28, 28)
    gen = torch.Generator().manual_seed(0)
    g_uniform, _ = build_models(TrainConfig(dataset="mnist5k", model=model, noise_dist="uniform"), shape)
    u = g_uniform.noise(2000, gen)
    assert tuple(u.shape) == (2000, g_uniform.noise_dim)
    assert u.min() >= -1 and u.max() <= 1 and u.min() < -0.99 and u.max() > 0.99
    g_normal, _ = build_models(TrainConfig(dataset="mnist5k", model=model), shape)
    n = g_normal.noise(2000, gen)
    assert n.abs().max() > 3 and abs(float(n.std()) - 1) < 0.05
    assert g_normal.noise(5).device == next(g_normal.parameters()).device   # no generator: G's device

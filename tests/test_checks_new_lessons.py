"""The two lessons of issue 16 part 5: label smoothing / instance noise against a strong D (check kind `remedy`),
and checkerboard artifacts of transposed convolutions vs resize-convolution (kind `checkerboard`, the
`upsample` option of DCGAN's G). Fast: measures on constructed inputs, models at initialisation, tiny runs."""
from __future__ import annotations

import math
import sys

import numpy as np
import pytest
import torch
from torch import nn

from ganlab.checks import CHECKS, nyquist_share
from ganlab.config import UPSAMPLES, ConfigError, TrainConfig, get_preset
from ganlab.export_code import _nets
from ganlab.lesson_book import get_lesson
from ganlab.models import DCGANGenerator, build_models, upsample_layer


# --- the checkerboard measure -------------------------------------------------------------------------
def test_nyquist_share_scores_a_checkerboard_high_and_smooth_images_low():
    i, j = torch.meshgrid(torch.arange(28), torch.arange(28), indexing="ij")
    board = ((i + j) % 2).float()[None, None] * 2 - 1
    stripes = (i % 2).float()[None, None]
    smooth = torch.sin(i / 5.0 + j / 7.0)[None, None].float()
    assert nyquist_share(board).item() == pytest.approx(1.0, abs=1e-6)
    assert nyquist_share(stripes).item() == pytest.approx(1.0, abs=1e-6)
    assert nyquist_share(smooth).item() < 0.01
    noise = nyquist_share(torch.randn(200, 1, 28, 28, generator=torch.Generator().manual_seed(0))).mean().item()
    assert noise == pytest.approx((28 + 28 - 1) / (28 * 28 - 1), rel=0.15)    # white noise: ~0.07
    assert nyquist_share(torch.zeros(2, 3, 8, 8)).tolist() == [0.0, 0.0]      # flat: no power, no NaN
    mixed = smooth + 0.1 * board                                                # a faint checkerboard shows
    assert 0.005 < nyquist_share(mixed).item() < 0.5


def _flat_through(upsample: str) -> torch.Tensor:
    """A constant image through one x2 step of `upsample` with every weight 1 (interior pixels only)."""
    layers = nn.Sequential(*upsample_layer(upsample, 1, 1))
    for m in layers.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.ones_(m.weight)
    with torch.no_grad():
        return layers(torch.ones(1, 1, 8, 8))[0, 0, 2:-2, 2:-2]


def test_uneven_overlap_draws_a_checkerboard_from_a_constant_kernel():
    """The lesson's math: kernel 3 stride 2 gives odd and even outputs 1 and 2 taps (stripes even for a constant
    kernel); kernel 4 stride 2 and nearest resize + conv are flat for a constant kernel."""
    k3 = _flat_through("transposed-k3")
    assert k3.max() == 4 and k3.min() == 1 and nyquist_share(k3[None, None]).item() > 0.5
    for flat in ("transposed", "resize"):
        out = _flat_through(flat)
        assert torch.all(out == out[0, 0]), flat


def test_a_stride_2_transposed_conv_puts_the_input_mean_on_the_nyquist_frequency():
    """Y(pi) = K(pi) X(0) with K(pi) the kernel's alternating sum, on a circular 1D signal."""
    gen = torch.Generator().manual_seed(3)
    x, k = torch.randn(16, generator=gen, dtype=torch.float64), torch.randn(4, generator=gen, dtype=torch.float64)
    u = torch.zeros(32, dtype=torch.float64)
    u[::2] = x                                                                  # zero insertion
    y = torch.stack([sum(k[j] * u[(n - j) % 32] for j in range(4)) for n in range(32)])
    alt = lambda v: (v * (-1.0) ** torch.arange(len(v))).sum()                  # noqa: E731 (the DFT at pi)
    assert alt(y).item() == pytest.approx((alt(k) * x.sum()).item())
    assert alt(torch.tensor([1.0, 1.0])).item() == 0                           # nearest resize: box (1, 1)


# --- the upsample option ----------------------------------------------------------------------------------
@pytest.mark.parametrize("upsample", UPSAMPLES)
@pytest.mark.parametrize("size", [28, 32])
def test_dcgan_generator_upsamples_to_the_image_size(upsample, size):
    g = DCGANGenerator(8, 4, (1, size, size), upsample=upsample)
    with torch.no_grad():
        assert g(torch.randn(3, 8)).shape == (3, 1, size, size)
    kinds = {type(m) for m in g.net}
    assert (nn.Upsample in kinds) == (upsample == "resize") and (nn.ConvTranspose2d in kinds) != (upsample == "resize")


def test_config_upsample_default_choices_and_refusal():
    assert TrainConfig().upsample == "transposed" and get_preset("mnist-dcgan").config().upsample == "transposed"
    cfg = get_preset("mnist-fast").config(upsample="resize")
    g, _ = build_models(cfg, (1, 28, 28))
    assert any(isinstance(m, nn.Upsample) for m in g.modules())
    with pytest.raises(ConfigError, match="upsample: 'bilinear' is not one of: transposed, transposed-k3, resize"):
        TrainConfig(upsample="bilinear")
    assert TrainConfig.from_dict({k: v for k, v in TrainConfig().to_dict().items() if k != "upsample"}).upsample \
        == "transposed"                                                         # configs written before the field
    assert TrainConfig().with_overrides(["upsample=resize"]).upsample == "resize"


def test_exported_script_builds_the_same_upsampling():
    for upsample, text in [("transposed", "nn.ConvTranspose2d(64, 32, 4, 2, 1, bias=False)"),
                           ("transposed-k3", "nn.ConvTranspose2d(64, 32, 3, 2, 1, output_padding=1, bias=False)"),
                           ("resize", "nn.Upsample(scale_factor=2), nn.Conv2d(64, 32, 3, 1, 1, bias=False)")]:
        cfg = get_preset("mnist-fast").config(upsample=upsample)
        code = _nets(cfg, (1, 28, 28), {"g_drop": False, "d_drop": False, "dcgan": True, "cond": False}, {})
        assert text in code, upsample


# --- the lessons and their checks --------------------------------------------------------------------------
def test_smoothed_optimal_discriminator_is_capped_at_one_minus_eps():
    """D* = (1 - eps) p / (p + q) maximises (1 - eps) p log D + eps p log(1 - D) + q log(1 - D) pointwise."""
    eps, grid = 0.1, np.linspace(1e-4, 1 - 1e-4, 20001)
    for p, q in [(0.5, 0.1), (0.3, 0.3), (0.9, 0.0), (0.0, 0.4)]:
        best = grid[np.argmax((1 - eps) * p * np.log(grid) + (eps * p + q) * np.log(1 - grid))]
        assert abs(best - (1 - eps) * p / (p + q)) < 1e-3
    text = get_lesson("smoothing-noise").explanation
    assert r"D^*(x) = \frac{(1 - \epsilon)\, p_{data}(x)}{p_{data}(x) + p_g(x)}" in text
    assert r"\mathcal N(0, \sigma^2 I)" in text and "Sønderby" in text
    assert r"K(\pi) = \sum_j (-1)^j k_j" in get_lesson("checkerboard").explanation


def test_remedy_check_compares_the_run_with_its_base_on_a_tiny_budget():
    lesson = get_lesson("smoothing-noise")
    cfg = lesson.config(steps=40, stats_every=2)
    assert cfg.loss == "minimax" and cfg.label_smoothing > 0 and cfg.instance_noise > 0
    appeared, value, m = CHECKS["remedy"](lesson.check, cfg, "cpu")
    assert isinstance(appeared, bool) and "D(G(z)) x" in value and m["window"][1] == 40
    assert m["d_fake_remedy"] > m["d_fake_base"]          # noise of std 1 blurs the fakes into the data at once
    for key in ("grad_g_base", "grad_g_remedy", "d_fake_ratio", "grad_ratio"):
        assert math.isfinite(m[key]) and m[key] >= 0
    assert m["diagnoses_base"] == [] and m["diagnoses_remedy"] == []   # 40 steps: too short for either


def test_checkerboard_check_at_initialisation():
    lesson = get_lesson("checkerboard")
    check = lesson.check
    appeared, value, m = CHECKS["checkerboard"](check, lesson.config(seed=0), "cpu")
    assert appeared and m["share_transposed"] >= check.params["min_share"] and m["ratio"] >= check.params["ratio"]
    _, _, m_resize = CHECKS["checkerboard"](check, lesson.config(seed=0, upsample="resize"), "cpu")
    assert list(m_resize) == ["share_resize", "ratio"] and m_resize["ratio"] == 1.0


@pytest.mark.parametrize("upsample", ["resize", "transposed-k3"])
def test_exported_script_reproduces_a_run_with_the_upsample_option(tmp_path, upsample):
    """The script of a DCGAN run with another upsampling trains the same losses as the lab (as test_export_code
    checks for the default)."""
    from ganlab import export_code
    from ganlab.registry import RunRegistry
    from tests.test_export_code import SMALL_IMG, assert_matches, lab_run, run_code

    reg = RunRegistry(tmp_path / "runs", executor="thread", quality_fn=None)
    store = lab_run(reg, get_preset("mnist-dcgan").config(**SMALL_IMG, upsample=upsample, steps=8), upsample)
    (tmp_path / "train.py").write_bytes(export_code.script_py(store.path))
    assert_matches(store, run_code([sys.executable, "train.py"], tmp_path, 8), 8, exact=False)

"""Tests for ganlab.metrics: 2D mode coverage, the bundled digit classifier and the image scores.

The classifier is trained once per test session into a temp cache (a few seconds to ~30 s on a busy CPU);
every other test here is milliseconds.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
import torch

from ganlab import metrics
from ganlab.config import TrainConfig
from ganlab.data import load_dataset
from ganlab.data_specs import SPECS
from ganlab.dataset import DataError
from ganlab.metrics import (
    DigitClassifier,
    classifier_split,
    frechet_distance,
    get_classifier,
    image_metrics,
    mode_stats,
    sample_diversity,
    speckle_count,
    texture_ratio,
)


# --- mode_stats --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ring8():
    return load_dataset(TrainConfig(dataset="ring8"))


def test_real_ring8_samples_cover_all_modes(ring8):
    s = mode_stats(ring8.x[:2500].numpy(), ring8.modes, ring8.mode_std)
    assert s["modes_covered"] == 8 and s["n_modes"] == 8
    # 3 std in 2D holds 1 - exp(-4.5) = 98.9% of a Gaussian's mass.
    assert 0.97 < s["high_quality_frac"] <= 1.0
    assert s["reverse_kl"] < 0.02
    assert s["diversity"] == pytest.approx(1.0, abs=0.05)


def test_samples_on_three_modes_count_three(ring8):
    x, y = ring8.x.numpy(), ring8.y.numpy()
    on3 = x[np.isin(y, [0, 3, 5])][:2000]
    s = mode_stats(on3, ring8.modes, ring8.mode_std)
    assert s["modes_covered"] == 3
    assert s["high_quality_frac"] > 0.97
    assert s["reverse_kl"] == pytest.approx(math.log(8 / 3), abs=0.02)   # uniform over 3 of 8 modes


def test_far_away_points_are_not_high_quality(ring8):
    far = np.random.default_rng(0).normal(10.0, 0.5, (1000, 2))
    s = mode_stats(far, ring8.modes, ring8.mode_std)
    assert s["high_quality_frac"] == 0.0 and s["modes_covered"] == 0
    assert s["reverse_kl"] == pytest.approx(math.log(8))   # no better than a total collapse
    one_point = mode_stats(np.full((500, 2), 0.3), ring8.modes, ring8.mode_std)
    assert one_point["diversity"] == 0.0 and one_point["modes_covered"] == 0


def test_grid25_covers_25():
    ds = load_dataset(TrainConfig(dataset="grid25"))
    s = mode_stats(ds.x[:5000].numpy(), ds.modes, ds.mode_std)
    assert s["modes_covered"] == 25 and s["n_modes"] == 25
    assert s["high_quality_frac"] > 0.97


def test_a_mode_needs_the_pacgan_share_of_samples(ring8):
    # 2,500 samples -> 20 needed (PacGAN's rule); 19 on mode 7 do not cover it, 20 do.
    x, y = ring8.x.numpy(), ring8.y.numpy()
    main = x[y == 0][:2481]
    few = x[y == 7]
    assert mode_stats(np.concatenate([main, few[:19]]), ring8.modes, ring8.mode_std)["modes_covered"] == 1
    assert mode_stats(np.concatenate([main[:-1], few[:20]]), ring8.modes, ring8.mode_std)["modes_covered"] == 2
    assert mode_stats(few[:5], ring8.modes, ring8.mode_std, min_count=5)["modes_covered"] == 1


def test_mode_stats_tolerates_nan_and_rejects_bad_shapes(ring8):
    pts = ring8.x[:100].numpy().copy()
    pts[:50] = np.nan
    s = mode_stats(pts, ring8.modes, ring8.mode_std)
    assert s["high_quality_frac"] == pytest.approx(0.5, abs=0.02)
    assert mode_stats(np.zeros((0, 2)), ring8.modes, 0.02)["modes_covered"] == 0
    with pytest.raises(ValueError, match="points"):
        mode_stats(np.zeros((10, 3)), ring8.modes, 0.02)
    with pytest.raises(ValueError, match="std"):
        mode_stats(pts, ring8.modes, 0.0)


# --- Fréchet distance and diversity ---------------------------------------------------------------------------
def test_frechet_matches_scipy_sqrtm_formula():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(400, 6)) @ rng.normal(size=(6, 6))
    b = rng.normal(0.5, 1.0, size=(300, 6)) @ rng.normal(size=(6, 6))
    mu_a, mu_b = a.mean(0), b.mean(0)
    ca, cb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    ref = ((mu_a - mu_b) ** 2).sum() + np.trace(ca + cb - 2 * scipy.linalg.sqrtm(ca @ cb).real)
    assert frechet_distance(a, b) == pytest.approx(ref, rel=1e-6)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)
    with pytest.raises(ValueError):
        frechet_distance(a, b[:, :5])


def test_sample_diversity():
    assert sample_diversity(np.zeros((10, 4))) == 0.0
    assert sample_diversity(np.array([[0.0, 0.0], [3.0, 4.0]])) == pytest.approx(5.0)
    assert sample_diversity(torch.ones(1, 1, 28, 28)) == 0.0


# --- classifier and image metrics -------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def classifier_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("classifier-cache")


@pytest.fixture(scope="session")
def mnist_classifier(classifier_cache) -> DigitClassifier:
    return get_classifier("mnist", classifier_cache)


@pytest.fixture(scope="module")
def split():
    return classifier_split("mnist")


def test_classifier_is_accurate_cached_and_frozen(mnist_classifier, classifier_cache, split):
    assert mnist_classifier.accuracy > 0.9
    assert not mnist_classifier.training
    assert not any(p.requires_grad for p in mnist_classifier.parameters())
    assert get_classifier("mnist", classifier_cache) is mnist_classifier      # process cache
    files = sorted(p.name for p in classifier_cache.iterdir())
    v = metrics.CLASSIFIER_VERSION
    assert files == [f"mnist-classifier-v{v}.json", f"mnist-classifier-v{v}.safetensors"]
    # A new process (simulated by clearing the memory cache) loads the same weights from disk.
    key = next(k for k, v in metrics._CACHE.items() if v is mnist_classifier)
    del metrics._CACHE[key]
    try:
        reloaded = get_classifier("mnist", classifier_cache)
        assert reloaded is not mnist_classifier
        assert reloaded.accuracy == mnist_classifier.accuracy
        x = split[2][:50]
        assert torch.equal(reloaded(x), mnist_classifier(x))
    finally:
        metrics._CACHE[key] = mnist_classifier


def test_held_out_split_is_disjoint_and_fixed(split):
    train_x, train_y, held_x, held_y = split
    assert held_x.shape == (500, 1, 28, 28) and len(train_x) == 4500
    assert set(held_y.tolist()) == set(range(10))
    seen = {img.numpy().tobytes() for img in train_x}
    assert not any(img.numpy().tobytes() in seen for img in held_x)
    assert torch.equal(classifier_split("mnist")[2], held_x)


def test_real_digits_score_near_perfect(mnist_classifier, split):
    train_x, _, held_x, _ = split
    m = image_metrics(held_x, train_x[:500], mnist_classifier)
    assert m["classifier_confidence"] > 0.9
    assert m["classes_present"] == 10 and m["n_classes"] == 10
    assert m["class_kl"] < 0.05
    assert m["class_score"] > 7.0
    assert 0.8 < m["diversity"] < 1.25
    noise = torch.rand(500, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1
    m_noise = image_metrics(noise, train_x[:500], mnist_classifier)
    assert m["frechet"] < 0.1 * m_noise["frechet"]
    assert m_noise["classifier_confidence"] < m["classifier_confidence"]


def test_one_repeated_sample_is_collapsed(mnist_classifier, split):
    train_x, _, held_x, _ = split
    same = held_x[:1].repeat(400, 1, 1, 1).numpy()           # numpy input works too
    m = image_metrics(same, train_x[:500], mnist_classifier)
    assert m["classes_present"] == 1
    assert m["class_kl"] > 2.0                                # log(10) = 2.30 is one class only
    assert m["class_score"] == pytest.approx(1.0, abs=0.01)
    assert m["diversity"] < 1e-3


def test_image_metrics_rejects_wrong_shapes(mnist_classifier, split):
    with pytest.raises(ValueError, match="fake"):
        image_metrics(torch.zeros(10, 3, 32, 32), split[0][:10], mnist_classifier)


def test_fashion_without_data_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setitem(SPECS["fashion"].params, "folder", str(tmp_path / "nowhere"))
    with pytest.raises(DataError, match="Fashion-MNIST"):
        get_classifier("fashion", tmp_path)
    with pytest.raises(ValueError, match="not one of"):
        get_classifier("cifar", tmp_path)


def test_image_quality_samples_from_the_runs_prior(split):
    """A run trained on uniform noise is scored on uniform noise too (it was scored on N(0, I) before)."""
    from ganlab.models import build_models
    from ganlab.quality import QUALITY_SAMPLES, evaluate_images

    g, _ = build_models(TrainConfig(dataset="mnist5k", model="mlp", noise_dist="uniform"), (1, 28, 28))
    seen: list[torch.Tensor] = []
    g.register_forward_pre_hook(lambda _module, args: seen.append(args[0]))

    class Sink:
        rows: list[dict] = []

        def add_quality(self, row):
            self.rows.append(row)

    evaluate_images(Sink(), 7, g.eval(), "mnist", split[2][:100], 0)
    assert len(seen) == 1 and tuple(seen[0].shape) == (QUALITY_SAMPLES, g.noise_dim)
    assert float(seen[0].abs().max()) <= 1.0
    assert Sink.rows[0]["step"] == 7 and 0 < Sink.rows[0]["classifier_confidence"] <= 1


def _salt_and_pepper(x: torch.Tensor, share: float, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    hit = torch.rand(x.shape, generator=gen) < share
    return torch.where(hit, torch.where(torch.rand(x.shape, generator=gen) < 0.5, -1.0, 1.0), x)


def _blur(x: torch.Tensor) -> torch.Tensor:
    k = torch.tensor([1.0, 2.0, 1.0])
    return torch.nn.functional.conv2d(torch.nn.functional.pad(x, (1, 1, 1, 1), mode="replicate"),
                                      (k[:, None] * k[None, :] / 16).view(1, 1, 3, 3))


def test_texture_sees_speckle_and_blur_that_real_digits_do_not_have(split):
    """Real vs real is ~1; salt-and-pepper on 3% of the pixels is clearly rougher; a 3x3 blur smoother."""
    train_x = split[0]
    a, b = train_x[:1000], train_x[1000:2000]
    assert texture_ratio(b, a) == pytest.approx(1.0, abs=0.05)
    assert texture_ratio(_salt_and_pepper(b, 0.01), a) > 1.1
    assert texture_ratio(_salt_and_pepper(b, 0.03), a) > 1.3
    assert texture_ratio(_blur(b), a) < 0.9
    real = float(speckle_count(a).mean())
    assert real < 0.5                                        # stroke ends: ~0.2 per digit
    assert float(speckle_count(b).mean()) == pytest.approx(real, abs=0.1)
    assert float(speckle_count(_salt_and_pepper(b, 0.01)).mean()) > 2.0 > 5 * real
    assert float(speckle_count(_blur(b)).mean()) < real / 3


def test_speckle_counts_isolated_dots_only():
    x = torch.full((3, 1, 28, 28), -1.0)
    x[0, 0, 5, 5] = 1.0                                      # one bright dot
    x[0, 0, 0, 27] = 1.0                                     # one in a corner: 3 neighbours
    x[1, 0, 10:12, 10:12] = 1.0                              # a 2x2 blob is a stroke, not a speck
    x[2] = 1.0
    x[2, 0, 14, 14] = -1.0                                   # one dark dot in white
    assert speckle_count(x).tolist() == [2.0, 0.0, 1.0]
    assert texture_ratio(x, torch.full((2, 1, 28, 28), 0.5)) != texture_ratio(x, x) == 1.0
    assert math.isnan(texture_ratio(x, torch.zeros(2, 1, 28, 28)))   # flat real images: no scale


def test_image_metrics_report_texture_and_speckle(mnist_classifier, split):
    train_x, _, held_x, _ = split
    m = image_metrics(_salt_and_pepper(held_x, 0.03), train_x[:500], mnist_classifier)
    assert m["texture"] > 1.3 and m["speckle"] > 5 and m["speckle_real"] < 0.5


def test_quality_rows_state_the_texture_rules_and_render_old_rows():
    from ganlab.metrics import quality_rows
    row = {"step": 9, "classifier_confidence": 0.86, "texture": 1.13, "speckle": 2.13, "speckle_real": 0.18}
    rows = {label: (value, meaning) for label, value, meaning in quality_rows(row)}
    assert rows["texture vs data"][0] == "1.13" and "total variation" in rows["texture vs data"][1]
    assert rows["speckle"][0] == "2.1 per image (data 0.2)"
    assert not any("speckle_real" in label for label in rows)
    old = {label for label, _, _ in quality_rows({"step": 9, "classifier_confidence": 0.86, "frechet": 5.0})}
    assert old == {"classifier confidence", "Fréchet distance"}


def test_per_mode_counts_the_threshold_and_veegans_literal_count(ring8):
    # 2,481 on mode 0, 19 on mode 7: one mode covered by the 0.8% rule, two by VEEGAN's "at least one sample".
    x, y = ring8.x.numpy(), ring8.y.numpy()
    s = mode_stats(np.concatenate([x[y == 0][:2481], x[y == 7][:19]]), ring8.modes, ring8.mode_std)
    assert s["min_count"] == 20 and len(s["mode_counts"]) == 8
    assert s["mode_counts"][7] <= 19 and s["mode_counts"][0] > 2400 and sum(s["mode_counts"][1:7]) == 0
    assert s["modes_covered"] == 1 and s["modes_any"] == 2
    assert mode_stats(np.zeros((0, 2)), ring8.modes, ring8.mode_std)["mode_counts"] == [0] * 8


def test_quality_rows_show_the_strict_smoothed_and_literal_counts_side_by_side():
    from ganlab.metrics import quality_rows
    recent = [{"step": s, "modes_covered": c, "n_modes": 8, "modes_any": 8} for s, c in
              [(250, 3), (500, 5), (750, 2), (1000, 6), (1250, 2)]]
    rows = {label: value for label, value, _ in quality_rows(recent[-1], recent)}
    assert rows["modes covered"] == "2 / 8"
    assert rows["modes covered, smoothed"] == "3 / 8"      # median of 3, 5, 2, 6, 2
    assert rows["modes with any sample"] == "8 / 8"
    assert "modes covered, smoothed" not in {r[0] for r in quality_rows(recent[-1])}   # one row: nothing to smooth

"""ganlab.latent: the noise prior (one definition for numpy and torch, one span) and the explorer's helpers."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from ganlab.config import NOISE_DISTS, TrainConfig
from ganlab.latent import Z_SPAN, from_prior, interpolate, pca_directions, sample_z, sweep, z_span
from ganlab.models import build_models


def test_one_prior_for_numpy_and_torch():
    """sample_z and Generator.noise draw from the same definition: U(-1, 1) is 2u - 1 for both."""
    assert set(Z_SPAN) == set(NOISE_DISTS) and z_span("normal") == 3.0 and z_span("uniform") == 1.0
    assert from_prior("uniform", lambda: None, lambda: np.array([0.0, 0.5])).tolist() == [-1.0, 0.0]
    with pytest.raises(ValueError, match="noise prior"):
        from_prior("cauchy", lambda: 0, lambda: 0)
    with pytest.raises(ValueError, match="noise prior"):
        z_span("cauchy")
    g, _ = build_models(TrainConfig(noise_dist="uniform", noise_dim=3), (2,))
    z = g.noise(2000, torch.Generator().manual_seed(0))
    assert z.shape == (2000, 3) and z.min() >= -1 and z.max() <= 1 and z.min() < -0.99 and z.max() > 0.99
    ref = torch.rand((5, 3), generator=torch.Generator().manual_seed(1)) * 2 - 1
    assert torch.equal(g.noise(5, torch.Generator().manual_seed(1)), ref)


def test_sample_z_reproducible_and_uniform_range():
    assert np.array_equal(sample_z(4, 3, 7), sample_z(4, 3, 7))
    assert not np.array_equal(sample_z(4, 3, 7), sample_z(4, 3, 8))
    u = sample_z(1000, 2, 0, "uniform")
    assert u.dtype == np.float32 and u.min() >= -1 and u.max() <= 1


def test_interpolate_linear_and_slerp():
    a, b = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    lin = interpolate(a, b, 3, "linear")
    assert np.allclose(lin, [[1, 0], [0.5, 0.5], [0, 1]])
    sl = interpolate(a, b, 3, "slerp")
    assert np.allclose(sl[0], a) and np.allclose(sl[-1], b)
    assert np.allclose(np.linalg.norm(sl, axis=1), 1.0)       # stays on the unit circle
    assert np.allclose(sl[1], [np.sqrt(0.5), np.sqrt(0.5)], atol=1e-6)
    assert np.allclose(interpolate(a, 2 * a, 3, "slerp"), [[1, 0], [1.5, 0], [2, 0]])   # parallel: lerp
    with pytest.raises(ValueError, match="mode"):
        interpolate(a, b, 3, "cubic")
    with pytest.raises(ValueError, match="shape"):
        interpolate(a, np.zeros(3), 3)


def test_sweep():
    out = sweep(np.array([1.0, 2.0, 3.0]), 1, np.array([-1.0, 0.0, 1.0]))
    assert out.shape == (3, 3) and list(out[:, 1]) == [-1, 0, 1] and (out[:, 0] == 1).all()
    with pytest.raises(ValueError, match="dim"):
        sweep(np.zeros(3), 3, np.zeros(2))


def test_pca_directions_recovers_the_dominant_latent_direction():
    # A linear "generator" whose outputs vary mostly with z[2]: the first direction must be +-e2.
    rng = np.random.default_rng(0)
    z = rng.standard_normal((512, 4))
    w = np.zeros((4, 10))
    w[2, :] = 5.0
    w[0, 0] = 0.5
    out = z @ w + 0.01 * rng.standard_normal((512, 10))
    dirs, explained = pca_directions(z, out, k=2)
    assert dirs.shape == (2, 4) and np.allclose(np.linalg.norm(dirs, axis=1), 1.0, atol=1e-5)
    assert abs(dirs[0, 2]) > 0.99
    assert explained[0] > 0.9 and explained[0] >= explained[1]
    assert pca_directions(z[:, :2], z[:, :2] @ np.eye(2), k=5)[0].shape == (2, 2)   # k capped

"""The latent space z: the noise prior p(z) G is trained on, and the latent explorer's helpers.

`from_prior` is the one definition of how z is drawn: N(0, I), or U(-1, 1) as 2u - 1 with u ~ U[0, 1).
Generator.noise (torch, ganlab.models) and `sample_z` (numpy, the Latent page) both call it with their own
random source, so a change of prior is made here once. `z_span` is how far each coordinate of z reaches in
every view of the prior: the explorer's sliders, sweeps and directions, and G's noise-grid manifold in the
2D snapshots (ganlab.trainer). The helpers (`interpolate`, `sweep`, `pca_directions`) are plain numpy, so
the explorer page stays thin; nothing here imports streamlit or torch.
"""
from __future__ import annotations

from typing import Callable, TypeVar

import numpy as np

T = TypeVar("T")
Z_SPAN = {"normal": 3.0, "uniform": 1.0}   # ±3 holds 99.7% of a N(0, 1) coordinate; U(-1, 1) ends at ±1


def from_prior(dist: str, normal: Callable[[], T], unit: Callable[[], T]) -> T:
    """A draw of z from the prior `dist`, given the random source's N(0, 1) draw and its U[0, 1) draw."""
    if dist == "uniform":
        return unit() * 2 - 1
    if dist != "normal":
        raise ValueError(f"unknown noise prior {dist!r}; choose from {', '.join(Z_SPAN)}")
    return normal()


def z_span(dist: str) -> float:
    """How far a coordinate of z reaches in the views of the prior `dist`: values from -span to +span."""
    if dist not in Z_SPAN:
        raise ValueError(f"unknown noise prior {dist!r}; choose from {', '.join(Z_SPAN)}")
    return Z_SPAN[dist]


def sample_z(n: int, dim: int, seed: int, dist: str = "normal") -> np.ndarray:
    """n noise vectors from `seed` (reproducible: the same seed gives the same z on every page)."""
    rng = np.random.default_rng(seed)
    z = from_prior(dist, lambda: rng.standard_normal((n, dim)), lambda: rng.random((n, dim)))
    return z.astype(np.float32)


def interpolate(z0: np.ndarray, z1: np.ndarray, n: int, mode: str = "linear") -> np.ndarray:
    """n points from z0 to z1 (both included): 'linear' (lerp) or 'slerp' (along the great circle, which
    keeps the norm typical of Gaussian z; the straight line passes through unlikely short vectors)."""
    a, b = np.asarray(z0, dtype=np.float64).ravel(), np.asarray(z1, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"interpolate: z0 and z1 differ in shape, {a.shape} vs {b.shape}")
    if n < 2:
        raise ValueError(f"interpolate: n must be at least 2, got {n}")
    t = np.linspace(0.0, 1.0, n)[:, None]
    if mode in ("linear", "lerp"):
        return ((1 - t) * a + t * b).astype(np.float32)
    if mode != "slerp":
        raise ValueError(f"interpolate: mode must be 'linear' or 'slerp', got {mode!r}")
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 or nb == 0:
        return ((1 - t) * a + t * b).astype(np.float32)
    omega = np.arccos(np.clip(np.dot(a / na, b / nb), -1.0, 1.0))
    if np.sin(omega) < 1e-6:   # (anti)parallel: the great circle is undefined, the line is as good
        return ((1 - t) * a + t * b).astype(np.float32)
    out = (np.sin((1 - t) * omega) * a + np.sin(t * omega) * b) / np.sin(omega)
    return out.astype(np.float32)


def sweep(z: np.ndarray, dim: int, values: np.ndarray) -> np.ndarray:
    """Copies of z (D,) with z[dim] set to each of `values`: (len(values), D)."""
    z = np.asarray(z, dtype=np.float32).ravel()
    if not 0 <= dim < len(z):
        raise ValueError(f"sweep: dim must be in 0..{len(z) - 1}, got {dim}")
    out = np.repeat(z[None], len(values), axis=0)
    out[:, dim] = values
    return out


def pca_directions(z: np.ndarray, outputs: np.ndarray, k: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """GANSpace-style directions in z space: PCA of G's outputs, regressed back onto z.

    GANSpace (Härkönen et al. 2020) runs PCA on an early layer's activations for many random z, then finds
    latent directions U by least squares, z ~ U x, where x are the PCA coordinates. We use G's *outputs*
    (pixels, or 2D points) instead of hidden activations: the model code stays untouched and, for these
    small generators, output PCA already separates stroke width, slant and class-like changes.
    Returns (directions (k, D) of unit length, explained variance ratio (k,) of the output PCs).
    """
    zs = np.asarray(z, dtype=np.float64)
    x = np.asarray(outputs, dtype=np.float64).reshape(len(zs), -1)
    if zs.ndim != 2 or len(zs) < 2:
        raise ValueError(f"pca_directions: need z of shape (N >= 2, D), got {zs.shape}")
    k = max(1, min(k, x.shape[1], len(zs) - 1))
    xc = x - x.mean(axis=0)
    _, s, vt = np.linalg.svd(xc, full_matrices=False)
    coords = xc @ vt[:k].T                                              # (N, k) PCA coordinates
    u, *_ = np.linalg.lstsq(coords, zs - zs.mean(axis=0), rcond=None)  # (k, D): z ~ coords @ u
    norms = np.linalg.norm(u, axis=1, keepdims=True)
    directions = u / np.where(norms > 0, norms, 1.0)
    total = float((s ** 2).sum())
    explained = (s[:k] ** 2) / total if total > 0 else np.zeros(k)
    return directions.astype(np.float32), explained

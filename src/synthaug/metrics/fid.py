"""FID, KID and k-NN precision/recall between two sets of features, as pytorch-fid and the KID paper compute them.

A Fréchet distance is comparable to published FID only when each side has more images than feature
dimensions (full-rank covariances) and the dims match; results say both. KID is unbiased at any size.
"""

from __future__ import annotations

import numpy as np

FID_DIMS = (64, 192, 768, 2048)  # pytorch-fid's InceptionV3.BLOCK_INDEX_BY_DIM: the blocks `--dims` may pick


def feature_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    features = np.asarray(features, dtype=np.float64)
    return features.mean(axis=0), np.cov(features, rowvar=False)


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    """Square root of a symmetric positive semi-definite matrix; rounding's tiny negative eigenvalues count as 0."""
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2.0)
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def frechet_from_statistics(mu_a: np.ndarray, sigma_a: np.ndarray, mu_b: np.ndarray, sigma_b: np.ndarray) -> float:
    """d^2 = |mu_a - mu_b|^2 + Tr(S_a) + Tr(S_b) - 2 Tr((S_a^1/2 S_b S_a^1/2)^1/2).

    The quantity pytorch-fid's calculate_frechet_distance computes (Tr sqrt(S_a S_b) equals the symmetric
    form's trace), taken from symmetric eigendecompositions: real and finite for rank-deficient covariances
    too, where scipy's sqrtm of the non-symmetric product can return a complex matrix (pytorch-fid's
    "Imaginary component" error).
    """
    root_a = _psd_sqrt(sigma_a)
    cross = np.linalg.eigvalsh(root_a @ sigma_b @ root_a)
    trace_cross = float(np.sqrt(np.clip(cross, 0.0, None)).sum())
    distance = float(np.sum((mu_a - mu_b) ** 2) + np.trace(sigma_a) + np.trace(sigma_b) - 2.0 * trace_cross)
    return max(distance, 0.0)


def frechet_distance(real: np.ndarray, fake: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (NaN with fewer than 2 of either)."""
    if len(real) < 2 or len(fake) < 2:
        return float("nan")
    return frechet_from_statistics(*feature_statistics(real), *feature_statistics(fake))


def full_rank(samples: int, dims: int) -> bool:
    """A covariance of `samples` points in `dims` dimensions has full rank only when samples > dims."""
    return samples > dims


def _polynomial_kernel(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a @ b.T / a.shape[1] + 1.0) ** 3


def polynomial_mmd(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 between two equal-size sets with the cubic polynomial kernel (x.y / d + 1)^3."""
    size = len(x)
    k_xx, k_yy, k_xy = _polynomial_kernel(x, x), _polynomial_kernel(y, y), _polynomial_kernel(x, y)
    within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (size * (size - 1))
    return float(within - 2.0 * k_xy.mean())


def kernel_inception_distance(
    real: np.ndarray, fake: np.ndarray, subsets: int, subset_size: int, seed: int = 0
) -> tuple[float, float]:
    """KID (Binkowski et al. 2018): mean and std of the unbiased polynomial MMD^2 over random subsets.

    Subsets are at most half the smaller set, so they differ and the std says how much the estimate moves.
    """
    size = min(subset_size, len(real) // 2, len(fake) // 2)
    if size < 2:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    values = [
        polynomial_mmd(
            real[rng.choice(len(real), size, replace=False)], fake[rng.choice(len(fake), size, replace=False)]
        )
        for _ in range(subsets)
    ]
    return float(np.mean(values)), float(np.std(values))


def kth_neighbour_radii(features: np.ndarray, k: int, chunk: int = 1024) -> np.ndarray:
    radii = np.empty(len(features))
    for start in range(0, len(features), chunk):
        distances = pairwise_distances(features[start : start + chunk], features)
        radii[start : start + chunk] = np.partition(distances, k, axis=1)[:, k]  # index 0 is the point itself
    return radii


def pairwise_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    squared = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return np.sqrt(np.maximum(squared, 0.0))


def _coverage(points: np.ndarray, centres: np.ndarray, radii: np.ndarray, chunk: int = 1024) -> float:
    inside = [
        (pairwise_distances(points[s : s + chunk], centres) <= radii[None, :]).any(axis=1)
        for s in range(0, len(points), chunk)
    ]
    return float(np.concatenate(inside).mean())


def precision_recall(real: np.ndarray, fake: np.ndarray, k: int) -> tuple[float, float]:
    """k-NN manifold precision/recall (Kynkaanniemi et al. 2019): fake inside real balls, real inside fake balls."""
    if min(len(real), len(fake)) <= k:
        return float("nan"), float("nan")
    real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    precision = _coverage(fake, real, kth_neighbour_radii(real, k))
    recall = _coverage(real, fake, kth_neighbour_radii(fake, k))
    return precision, recall

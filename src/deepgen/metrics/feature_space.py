"""Sample-quality metrics in a feature space, on plain tensors.

Every function takes features (N, D) (or class probabilities (N, C)) of real and
generated images, computed by the same network; numbers are only comparable under the
same network (record its hash beside them). Computation is in float64.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch
from scipy import linalg

from ..errors import ConfigError


def _as64(x: torch.Tensor, name: str) -> torch.Tensor:
    if x.dim() != 2 or x.shape[0] < 2:
        raise ConfigError(f"{name} must be (N, D) with N >= 2, got shape {tuple(x.shape)}")
    return x.detach().double().cpu()


def frechet_distance(mu1: np.ndarray, cov1: np.ndarray, mu2: np.ndarray, cov2: np.ndarray) -> float:
    """||mu1 - mu2||^2 + tr(cov1 + cov2 - 2 (cov1 cov2)^(1/2)) between two Gaussians.

    SciPy's ``sqrtm`` can return a complex result with a tiny imaginary residue from
    round-off; the residue is dropped when it is small and the product is regularised
    with a small diagonal when it is singular.
    """
    diff = mu1 - mu2
    with warnings.catch_warnings():
        warnings.simplefilter("error", linalg.LinAlgWarning)
        try:
            covmean = linalg.sqrtm(cov1 @ cov2)
            singular = not np.isfinite(covmean).all()
        except linalg.LinAlgWarning:
            singular = True
    if singular:  # e.g. a feature that never varies: regularise both covariances a little
        eps = 1e-6 * max(np.trace(cov1), np.trace(cov2)) / len(cov1) * np.eye(len(cov1))
        covmean = linalg.sqrtm((cov1 + eps) @ (cov2 + eps))
    if np.iscomplexobj(covmean):
        if np.abs(covmean.imag).max() > 1e-3 * max(1.0, np.abs(covmean.real).max()):
            raise ArithmeticError("matrix square root has a large imaginary part; too few samples?")
        covmean = covmean.real
    return float(diff @ diff + np.trace(cov1) + np.trace(cov2) - 2 * np.trace(covmean))


def fid(real: torch.Tensor, fake: torch.Tensor) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (Heusel et al. 2017, eq. 6).

    Args: real (N, D), fake (M, D) features. Returns: squared feature units, >= 0.
    """
    a, b = _as64(real, "real").numpy(), _as64(fake, "fake").numpy()
    return max(
        0.0,
        frechet_distance(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False)),
    )


def _polynomial_kernel(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def kid(
    real: torch.Tensor,
    fake: torch.Tensor,
    subsets: int = 100,
    subset_size: int = 1000,
    generator: torch.Generator | None = None,
) -> tuple[float, float]:
    """Kernel Inception Distance (Bińkowski et al. 2018, sec. 3): the unbiased MMD^2 with
    the kernel k(x, y) = (x.y / D + 1)^3, averaged over random subsets.

    Returns: (mean, standard deviation over subsets); about 0 for two sets from one distribution.
    """
    a, b = _as64(real, "real"), _as64(fake, "fake")
    m = min(subset_size, len(a), len(b))
    values = []
    for _ in range(subsets):
        x = a[torch.randperm(len(a), generator=generator)[:m]]
        y = b[torch.randperm(len(b), generator=generator)[:m]]
        kxx, kyy, kxy = _polynomial_kernel(x, x), _polynomial_kernel(y, y), _polynomial_kernel(x, y)
        off = m * (m - 1)
        mmd = (
            (kxx.sum() - kxx.diagonal().sum()) / off
            + (kyy.sum() - kyy.diagonal().sum()) / off
            - 2 * kxy.mean()
        )
        values.append(float(mmd))
    return float(np.mean(values)), float(np.std(values))


def inception_score(probs: torch.Tensor, splits: int = 10) -> tuple[float, float]:
    """exp(E_x KL(p(y|x) || p(y))) (Salimans et al. 2016, sec. 4), mean and std over splits.

    Args: probs (N, C) class probabilities of generated images. Ranges from 1 to C.
    """
    p = _as64(probs, "probs").clamp_min(1e-12)
    scores = []
    for part in torch.chunk(p, splits):
        marginal = part.mean(0, keepdim=True)
        scores.append(math.exp(float((part * (part.log() - marginal.log())).sum(1).mean())))
    return float(np.mean(scores)), float(np.std(scores))


def _kth_neighbour_radii(x: torch.Tensor, k: int) -> torch.Tensor:
    d = torch.cdist(x, x)
    return d.kthvalue(k + 1, dim=1).values  # +1: the point itself is at distance 0


def precision_recall(real: torch.Tensor, fake: torch.Tensor, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019, eqs. 1-2): the share of
    generated samples inside the real manifold (balls to each real point's k-th nearest
    real neighbour), and of real samples inside the generated manifold. Both in [0, 1]."""
    a, b = _as64(real, "real"), _as64(fake, "fake")
    ra, rb = _kth_neighbour_radii(a, k), _kth_neighbour_radii(b, k)
    d = torch.cdist(b, a)  # (fake, real)
    precision = (d <= ra.unsqueeze(0)).any(1).double().mean()
    recall = (d.T <= rb.unsqueeze(0)).any(1).double().mean()
    return float(precision), float(recall)


def density_coverage(real: torch.Tensor, fake: torch.Tensor, k: int = 5) -> tuple[float, float]:
    """Density and coverage (Naeem et al. 2020, eqs. 3-4). Density counts, per generated
    sample, the real k-NN balls holding it, / k (about 1 for matching distributions, can
    exceed 1); coverage is the share of real balls holding any generated sample, in [0, 1]."""
    a, b = _as64(real, "real"), _as64(fake, "fake")
    ra = _kth_neighbour_radii(a, k)
    inside = torch.cdist(b, a) <= ra.unsqueeze(0)  # (fake, real)
    return float(inside.double().sum(1).mean() / k), float(inside.any(0).double().mean())

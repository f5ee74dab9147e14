"""Parzen-window log-likelihood: the approximate likelihood used for GANs.

A Gaussian kernel density of generated samples s_1..s_N, evaluated at test images:
log p(x) = log (1/N) sum_i N(x; s_i, sigma^2 I), in nats per image (pixels in [0, 1]).
Protocol of Goodfellow et al. 2014 (sec. 5, after Breuleux et al. 2009): 10,000 samples;
sigma chosen from logspace(-1, 0, 10) on 1,000 validation images; the mean over the
10,000 test images reported +- std / sqrt(N). Computed with log-sum-exp and distance
matrices in chunks, so no (images x samples x pixels) tensor is ever built.
"""

from __future__ import annotations

import math

import torch

from .. import distributed
from ..errors import ConfigError
from ..stats import mean_stderr

SIGMAS = tuple(float(s) for s in torch.logspace(-1, 0, 10, dtype=torch.float64))


def parzen_log_likelihood(
    samples: torch.Tensor, x: torch.Tensor, sigma: float, chunk: int = 500
) -> torch.Tensor:
    """log of the Gaussian-kernel density of ``samples`` at each row of ``x``.

    Args:
        samples: (N, ...) kernel centres; x: (M, ...) same trailing shape, same units.
        sigma: kernel standard deviation (> 0), in those units.
        chunk: rows of ``x`` per distance matrix; chunks are split over ranks under torchrun.
    Returns: (M,) nats, float64.
    """
    if sigma <= 0:
        raise ConfigError(f"sigma must be positive, not {sigma}")
    s = samples.reshape(len(samples), -1).double()
    q = x.reshape(len(x), -1).double()
    if s.shape[1] != q.shape[1]:
        raise ConfigError(f"samples have {s.shape[1]} dimensions, x has {q.shape[1]}")
    d = s.shape[1]
    s_sq = (s * s).sum(1)
    const = math.log(len(s)) + 0.5 * d * math.log(2 * math.pi * sigma**2)

    def one_chunk(index: int, start: int, stop: int) -> torch.Tensor:
        part = q[start:stop]
        sq = (part * part).sum(1, keepdim=True) - 2 * part @ s.T + s_sq  # squared distances
        return torch.logsumexp(-sq.clamp_min(0) / (2 * sigma**2), dim=1) - const

    return distributed.map_batches(one_chunk, len(q), chunk)


def select_sigma(
    samples: torch.Tensor, valid: torch.Tensor, sigmas=SIGMAS
) -> tuple[float, dict[float, float]]:
    """The sigma with the highest mean validation log-likelihood, and every sigma's mean."""
    scores = {s: float(parzen_log_likelihood(samples, valid, s).mean()) for s in sigmas}
    return max(scores, key=scores.get), scores


def parzen_protocol(
    samples: torch.Tensor, valid: torch.Tensor, test: torch.Tensor, sigmas=SIGMAS
) -> dict:
    """Goodfellow et al.'s protocol on given tensors (pixels in [0, 1]): sigma chosen on
    ``valid``, reported on ``test`` as mean +- std / sqrt(N) nats."""
    sigma, scores = select_sigma(samples, valid, sigmas)
    ll = parzen_log_likelihood(samples, test, sigma)
    return {
        **mean_stderr(ll),
        "sigma": sigma,
        "validation_scores": {f"{k:.4g}": v for k, v in scores.items()},
        "n_samples": len(samples),
        "n_valid": len(valid),
        "unit": "nats",
    }

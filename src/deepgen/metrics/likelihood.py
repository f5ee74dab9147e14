"""Importance-sampled log-likelihood of models with an encoder (Burda et al. 2015).

log p(x) >= IWAE_k = E[log (1/k) sum_i p(x, z_i) / q(z_i | x)], rising with k towards
log p(x) (Theorem 1); with k = 5000 it is the standard estimate of the test
log-likelihood of a VAE (Burda et al. 2015, sec. 5.2). Batched over images and samples,
and chunked over samples so memory stays bounded.
"""

from __future__ import annotations

import math

import torch

from .. import distributed, losses
from ..errors import ConfigError
from ..models.capabilities import ExactDensity, ImportanceWeighted, Likelihood, require, supports
from ..seeds import batch_generator
from ..stats import mean_stderr

# Samples decoded per image per call. chunk * batch_size ~ 2,000 rows keeps the decoder's
# output in cache: for the 784-400-20 MLP, 3.2 min for k = 5000 over 10k MNIST test images
# on 2 cores, against 6.3 min with 25,000 rows per call (measured 2026-11-21).
CHUNK, BATCH = 20, 100

# The dtypes the decoder may run in (under autocast) while the likelihood is estimated.
DECODER_DTYPES = {"float32": None, "bfloat16": torch.bfloat16}


def importance_variance(log_w: torch.Tensor) -> torch.Tensor:
    """The Monte-Carlo variance of log((1/k) sum_i w_i) per column of ``log_w`` (k, B), by
    the delta method: Var(w) / (k E[w]^2), estimated from the k weights themselves as
    (k sum w^2 / (sum w)^2 - 1) / (k - 1) = (k / ESS - 1) / (k - 1), ESS the effective
    sample size (Owen 2013, Monte Carlo theory, methods and examples, sec. 9.3). nats^2,
    (B,); NaN for k = 1. Heavy-tailed weights make it an underestimate: the variance of
    the weights is itself poorly estimated when a few dominate."""
    k = log_w.shape[0]
    if k < 2:
        return torch.full(log_w.shape[1:], math.nan, dtype=torch.float64)
    log_w = log_w.double()
    ratio = torch.exp(torch.logsumexp(2 * log_w, 0) - 2 * torch.logsumexp(log_w, 0))
    return (k * ratio - 1).clamp_min(0) / (k - 1)


def iwae_log_likelihood(
    model,
    x: torch.Tensor,
    k: int = 5000,
    chunk: int = CHUNK,
    generator: torch.Generator | None = None,
    decoder_dtype: torch.dtype | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """IWAE_k estimate of log p(x) per image, the k-sample mean ELBO per image, and the
    estimate's Monte-Carlo variance per image (:func:`importance_variance`).

    Args:
        model: an :class:`ImportanceWeighted` model (``log_importance_weights(x, n,
            generator) -> (n, B)`` nats).
        x: (B, C, H, W) model inputs (already preprocessed, e.g. binarised).
        k: importance samples per image (1 gives a one-sample ELBO estimate).
        chunk: samples decoded at once per image (memory ~ chunk * B * pixels floats).
        decoder_dtype: the dtype the decoder runs in under autocast (``torch.bfloat16``:
            the conv decoder at 2.4 times its float32 speed on an AVX-512 core); None: the
            model's own. The encoder and every log-density stay in float32.
    Returns: (log_px (B,), elbo (B,), mc_variance (B,)), nats and nats^2, float64.
    Raises: MissingCapability if the model has no importance weights; ConfigError if k < 1.
    """
    require(model, ImportanceWeighted, "the importance-sampled likelihood")
    if k < 1:
        raise ConfigError(f"k must be at least 1, not {k}")
    parts, done = [], 0
    with torch.no_grad():
        while done < k:
            n = min(chunk, k - done)
            log_w = model.log_importance_weights(x, n, generator, decoder_dtype=decoder_dtype)
            parts.append(log_w.double())
            done += n
    log_w = torch.cat(parts)
    return losses.iwae_bound(log_w), log_w.mean(0), importance_variance(log_w)


def evaluate_nll(
    model,
    images: torch.Tensor,
    k: int = 5000,
    batch_size: int = BATCH,
    chunk: int = CHUNK,
    seed: int = 0,
    precision: str = "float32",
) -> dict:
    """Negative log-likelihood of uint8 ``images`` (N, C, H, W) under ``model``.

    An :class:`ExactDensity` model (e.g. the GMM) is evaluated exactly; an
    :class:`ImportanceWeighted` one (e.g. a VAE) by the IWAE_k bound, with the k-sample
    ELBO beside it. Images are
    preprocessed as the model was trained (dynamic binarisation is drawn once). Batches are
    split over ranks under torchrun; each batch draws from its own generator
    (:func:`deepgen.seeds.batch_generator` of ``seed``), so the result does not
    depend on the number of processes. ``precision``: the decoder's, one of
    :data:`DECODER_DTYPES` (bfloat16 is faster and not the paper's protocol; its error
    against float32 is stated in docs/benchmarks.md). Returns nats per image and bits per
    dimension, each with its standard error over images.

    Raises: MissingCapability if the model has no :class:`Likelihood`; ConfigError for an
    unknown precision.
    """
    require(model, Likelihood, "deepgen eval --metrics nll")
    if precision not in DECODER_DTYPES:
        raise ConfigError(
            f"precision must be one of {', '.join(DECODER_DTYPES)}, not {precision!r}"
        )
    model.eval()
    device = model.device
    exact = supports(model, ExactDensity)

    def one_batch(index: int, start: int, stop: int) -> tuple[torch.Tensor, torch.Tensor]:
        gen = batch_generator(seed, index, device)
        x = model.preprocess(images[start:stop].to(device), gen)
        if exact:
            lp = model.log_density(x).double()
            return lp, lp, torch.zeros_like(lp)
        return iwae_log_likelihood(model, x, k, chunk, gen, DECODER_DTYPES[precision])

    with torch.no_grad():
        log_px, elbo, mc_var = distributed.map_batches(one_batch, len(images), batch_size)
    dims = images[0].numel()
    out = {
        "nll": {**_with_monte_carlo(mean_stderr(-log_px), mc_var), "unit": "nats"},
        "bits_per_dim": {
            **_with_monte_carlo(
                mean_stderr(losses.bits_per_dim(-log_px, dims)),
                mc_var / (dims * math.log(2)) ** 2,
            ),
            "unit": "bits/dim",
        },
    }
    if exact:
        out["protocol"] = "exact log-density of the test images (continuous pixels in [0, 1])"
        return out
    decoder = "" if precision == "float32" else f"decoder in {precision} under autocast; "
    out.update(
        neg_elbo={**mean_stderr(-elbo), "unit": "nats"},
        k=k,
        seed=seed,
        precision=precision,
        protocol=f"IWAE bound with k = {k} (Burda et al. 2015); inputs preprocessed as in training "
        f"({model.config.preprocess}), drawn once per batch of {batch_size} from seed {seed}; "
        f"{decoder}"
        "stderr: the spread over images and the importance sampler's Monte-Carlo error "
        "(delta method from each image's effective sample size; an underestimate when the "
        "weights are heavy-tailed) in quadrature",
    )
    return out


def _with_monte_carlo(over_images: dict, mc_variance: torch.Tensor) -> dict:
    """{mean, stderr} over images -> with ``stderr_images``, ``stderr_monte_carlo`` (the
    error of the mean from each image's own Monte-Carlo variance, sqrt(sum v_i) / N) and
    ``stderr``, both in quadrature: what the number would move by on other images and on
    another draw of the importance samples."""
    n = len(mc_variance)
    mc = float(mc_variance.nan_to_num(0.0).sum().sqrt()) / n
    images = over_images["stderr"]
    return over_images | {
        "stderr": math.sqrt(images**2 + mc**2),
        "stderr_images": images,
        "stderr_monte_carlo": mc,
    }

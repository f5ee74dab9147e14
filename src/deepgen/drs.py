"""Discriminator rejection sampling (DRS; Azadi et al. 2019, "Discriminator Rejection
Sampling", ICLR, Algorithm 1 and eq. 8).

A GAN discriminator trained with the cross-entropy loss approximates D*(x) = p_data /
(p_data + p_g), so its logit D~(x) estimates log p_data(x)/p_g(x). Accepting a sample of G
with probability exp(D~(x) - M), M = max over x of D~(x), is rejection sampling from p_data
as far as D is right. In practice M is the largest logit seen (a burn-in estimate, raised
as larger ones appear) and the acceptance probability is sigma(F(x)) with

    F(x) = D~(x) - M - log(1 - exp(D~(x) - M - eps)) - gamma,

which is exactly exp(D~(x) - M) when gamma = 0. Azadi et al. set gamma to a quantile q of F
over each batch, so about 1 - q of the candidates are accepted with probability above 1/2:
this raises the acceptance rate when D is overconfident (F very negative everywhere, as
with image GANs) and makes sampling more selective when D is well calibrated. Samples in low-density
regions between modes get small logits and are rejected: DRS raises sample quality, it
cannot add modes G never draws.

A PacGAN discriminator (Lin et al. 2018) judges packs of m samples, all real or all fake;
its optimal logit is log p_data^m / p_g^m = the sum of the m samples' log ratios. Rejection
sampling whole packs with that logit draws packs from p_data^m, so every member of an
accepted pack is a sample of p_data. The acceptance rate is about the unpacked one to the
power m.
"""

from __future__ import annotations

import torch

from .errors import ConfigError
from .models.capabilities import DensityRatio, Sampler, require
from .models.contract import GenerativeModel

EPS = 1e-6


@torch.no_grad()
def rejection_sample(
    model: GenerativeModel,
    n: int,
    generator: torch.Generator | None = None,
    shift_quantile: float | None = 0.95,
    burn_in: int = 10_000,
    batch_size: int = 10_000,
    max_draws: int | None = None,
) -> tuple[torch.Tensor, float]:
    """``n`` samples of ``model`` kept by DRS, and the acceptance rate in (0, 1].

    Args:
        model: a :class:`Sampler` with a :class:`DensityRatio` (a ``gan`` with loss
            nonsaturating or minimax). With PacGAN packing (``model.pack`` m), whole packs
            of m candidates are kept or rejected together.
        n: samples wanted (>= 1). Returned in G's output space: points (n, D), or images
            (n, C, H, W) in [0, 1].
        shift_quantile: gamma is this quantile of F over each batch of candidates (0.95, a
            common choice with Azadi et al.'s algorithm); None: gamma = 0, exact rejection
            sampling from G reweighted by exp(D~), i.e. from p_data where D is optimal.
        burn_in: candidates drawn first only to estimate M.
        batch_size: candidates drawn at a time. With packing, ``burn_in`` and
            ``batch_size`` are rounded up to whole packs.
        max_draws: candidates (samples, not packs) drawn at most after the burn-in
            (default 1,000 n).

    Raises:
        MissingCapability: the model has no density-ratio estimate (a WGAN critic, LSGAN,
            a cGAN). ConfigError: fewer than ``n`` samples were accepted within
            ``max_draws`` candidates.
    """
    require(model, Sampler, "rejection sampling")
    require(model, DensityRatio, "rejection sampling")
    if n < 1:
        raise ConfigError(f"the number of samples must be at least 1, not {n}")
    max_draws = 1000 * n if max_draws is None else max_draws
    was_training = model.training
    model.eval()

    pack = model.pack
    burn_in, batch_size = (-(-size // pack) * pack for size in (burn_in, batch_size))  # whole packs

    def candidates(m: int) -> tuple[torch.Tensor, torch.Tensor]:
        """m samples and the logits of their m / pack packs."""
        x = model.sample(m, generator)
        return x, model.log_density_ratio(x).double()

    top = (
        candidates(burn_in)[1].max()
        if burn_in > 0
        else torch.tensor(-torch.inf, dtype=torch.float64)
    )
    kept, drawn = [], 0
    while sum(len(k) for k in kept) < n and drawn < max_draws:
        x, logit = candidates(batch_size)
        drawn += batch_size
        top = torch.maximum(top, logit.max())
        delta = logit - top  # <= 0
        f = delta - torch.log1p(-torch.exp(delta - EPS))
        if shift_quantile is not None:
            f = f - torch.quantile(f, shift_quantile)
        u = torch.rand(len(f), generator=generator, device=f.device, dtype=f.dtype)
        kept.append(x[(u < torch.sigmoid(f)).repeat_interleave(pack)])
    model.train(was_training)
    accepted = torch.cat(kept)
    if len(accepted) < n:
        raise ConfigError(
            f"rejection sampling accepted {len(accepted)} of {drawn} candidates, fewer than "
            f"the {n} asked for; ask for fewer, or raise the acceptance with a lower "
            f"shift quantile"
        )
    return accepted[:n], len(accepted) / drawn

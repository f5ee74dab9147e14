"""Variational autoencoder (Kingma & Welling 2013, "Auto-Encoding Variational Bayes"),
with beta and KL warm-up, and the importance-weighted autoencoder (Burda et al. 2015).

q(z|x) = N(mu(x), diag sigma^2(x)), prior p(z) = N(0, I), and p(x|z) Bernoulli (logits) or
Gaussian (mean and one learned scale). Trained by maximising the ELBO (eq. 10) with the
reparameterisation z = mu + sigma * eps (sec. 2.4) and the closed-form KL (appendix B).
``beta`` weights the KL term (beta-VAE, Higgins et al. 2017, eq. 4); ``kl_warmup`` raises
that weight linearly from 0 over the first iterations (Bowman et al. 2016; Sønderby et al.
2016). The logged and evaluated ``elbo`` is always the true ELBO (weight 1).
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field, model_validator
from torch import nn

from .. import losses
from ..nets import ConvDecoder, ConvEncoder, MLPDecoder, MLPEncoder
from .base import ModelConfig, adam, in_dtype
from .capabilities import Encoder, ImportanceWeighted, LatentSpace
from .contract import Batch, GenerativeModel, Player, register_model

NETS = {"mlp": (MLPEncoder, MLPDecoder), "conv": (ConvEncoder, ConvDecoder)}
DEFAULTS = {
    "mlp": {"latent_dim": 20, "hidden_dim": 400},
    "conv": {"latent_dim": 32, "hidden_dim": 256},
}


def apply_net_defaults(config):
    """Fill ``latent_dim`` and ``hidden_dim`` left None with the defaults of ``config.net``."""
    for key, value in DEFAULTS[config.net].items():
        if getattr(config, key) is None:
            object.__setattr__(config, key, value)
    return config


class VAEConfig(ModelConfig):
    """Networks, latent size, likelihood and Adam learning rate of a VAE; ``latent_dim`` and
    ``hidden_dim`` default by network (conv: 32, 256; mlp: 20, 400)."""

    net: Literal["conv", "mlp"] = Field("conv", description="encoder/decoder networks")
    latent_dim: int | None = Field(
        None, ge=1, le=4096, description="size of z; default 32 (conv), 20 (mlp)"
    )
    hidden_dim: int | None = Field(
        None, ge=1, le=65536, description="hidden units; default 256 (conv), 400 (mlp)"
    )
    hidden_layers: int = Field(
        1, ge=1, le=8, description="hidden layers of the mlp encoder and of the mlp decoder"
    )
    likelihood: Literal["bernoulli", "gaussian"] = Field("bernoulli", description="p(x|z)")
    beta: float = Field(
        1.0,
        ge=0,
        description="beta-VAE's weight of the KL term in the training loss (not Adam's beta1)",
    )
    kl_warmup: int = Field(
        0, ge=0, description="iterations over which the KL weight rises from 0 to beta"
    )
    preprocess: str = Field(
        "binarize", description="binarize (dynamic), unit ([0, 1]) or symmetric"
    )
    lr: float = Field(1e-3, gt=0, description="Adam learning rate")

    @model_validator(mode="after")
    def _net_defaults(self) -> VAEConfig:
        if self.net != "mlp" and self.hidden_layers != 1:
            raise ValueError("hidden_layers applies to net mlp; the conv networks are fixed")
        return apply_net_defaults(self)


@register_model
class VAE(LatentSpace, Encoder, ImportanceWeighted, GenerativeModel):
    """A VAE on images (B, C, H, W) in [0, 1].

    Per-example terms, shape (B,), in nats: ``elbo`` = -``recon`` - ``kl`` where ``recon``
    = -E_q[log p(x|z)] (one sample of z) and ``kl`` = KL(q(z|x) || p(z)).
    """

    family = "vae"
    title = "variational autoencoder (Kingma & Welling 2013), with beta and KL warm-up"
    Config = VAEConfig
    summary = ("neg_elbo", "nats")
    units = {
        "elbo": "nats",
        "recon": "nats",
        "kl": "nats",
        "neg_elbo": "nats",
        "bits_per_dim": "bits/dim",
    }
    evaluate_protocol = (
        "single-sample ELBO per image; inputs preprocessed as configured "
        "(dynamic binarisation is drawn once with the evaluation seed)"
    )
    report_curves = [
        (
            "Negative ELBO",
            "nats per image",
            [
                ("vae/loss", "-ELBO (training batches)"),
                ("valid:neg_elbo", "-ELBO (validation split)"),
            ],
        ),
        (
            "ELBO terms (training)",
            "nats per image",
            [("recon", "reconstruction -E[log p(x|z)]"), ("kl", "KL(q(z|x) || p(z))")],
        ),
    ]

    def __init__(self, config: VAEConfig):
        super().__init__(config)
        enc, dec = NETS[config.net]
        depth = {"layers": config.hidden_layers} if config.net == "mlp" else {}
        self.encoder = enc(self.data_shape, 2 * config.latent_dim, config.hidden_dim, **depth)
        self.decoder = dec(self.data_shape, config.latent_dim, config.hidden_dim, **depth)
        # Gaussian p(x|z): one learned log standard deviation shared by all pixels.
        self.log_scale = nn.Parameter(torch.zeros(1)) if config.likelihood == "gaussian" else None

    @property
    def latent_dim(self) -> int:
        return self.config.latent_dim

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """q(z|x): x (B, C, H, W) -> (mu, logvar), each (B, latent_dim)."""
        mu, logvar = self.encoder(x).chunk(2, dim=1)
        return mu, logvar

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, C, H, W) -> the posterior mean mu(x) (B, latent_dim)."""
        return self.posterior(x)[0]

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """z (B, latent_dim) -> decoder output (B, C, H, W): logits or Gaussian means."""
        return self.decoder(z)

    def log_px_given_z(self, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """log p(x|z) per example: x (B, C, H, W) and decoder outputs (B, C, H, W) -> (B,),
        or outputs (n, B, C, H, W) of n latents per example -> (n, B); nats."""
        event = x.dim() - 1
        if self.log_scale is None:
            return losses.bernoulli_log_likelihood(out, x, event)
        return losses.gaussian_log_likelihood(x, out, self.log_scale, event)

    def mean_image(self, out: torch.Tensor) -> torch.Tensor:
        """E[x|z] in [0, 1] from the decoder output."""
        return torch.sigmoid(out) if self.log_scale is None else out.clamp(0.0, 1.0)

    def elbo_terms(
        self,
        x: torch.Tensor,
        generator: torch.Generator | None = None,
        eps: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """{"elbo", "recon", "kl"}, each (B,) nats, from one reparameterised sample of z
        (``eps`` (B, latent_dim): the standard normal draw to use, else drawn here)."""
        mu, logvar = self.posterior(x)
        log_px = lambda z: self.log_px_given_z(x, self.decode(z))
        return losses.gaussian_elbo_terms(mu, logvar, log_px, generator, eps)

    def _loss(self, batch: Batch, generator: torch.Generator) -> dict[str, torch.Tensor]:
        terms = self.elbo_terms(
            batch.x, generator, batch.randn(self.config.latent_dim, generator=generator)
        )
        weight = self.kl_weight(batch.iteration)
        return {
            "loss": terms["recon"] + weight * terms["kl"],
            **terms,
            "kl_weight": torch.tensor(weight, device=batch.x.device),
        }

    def kl_weight(self, iteration: int) -> float:
        """The KL term's weight at a training iteration: beta, reached linearly over the first
        ``kl_warmup`` iterations (beta throughout when kl_warmup is 0)."""
        return losses.kl_weight(self.config.beta, self.config.kl_warmup, iteration)

    def players(self) -> list[Player]:
        lr = self.config.lr
        return [Player("vae", self, self._loss, lambda p: adam(p, lr))]

    def evaluate(self, batch: Batch, generator: torch.Generator) -> dict[str, torch.Tensor]:
        terms = self.elbo_terms(batch.x, generator)
        terms["neg_elbo"] = -terms["elbo"]
        terms["bits_per_dim"] = losses.bits_per_dim(terms["neg_elbo"], batch.x[0].numel())
        return terms

    def log_importance_weights(
        self,
        x: torch.Tensor,
        n: int,
        generator: torch.Generator | None = None,
        eps: torch.Tensor | None = None,
        decoder_dtype: torch.dtype | None = None,
    ) -> torch.Tensor:
        """log p(x, z_i) - log q(z_i | x) for n draws z_i ~ q(z|x): (n, B) nats.

        The input to the IWAE bound (Burda et al. 2015, eq. 8). The decoder runs on all
        n * B latents at once; x is broadcast, never copied n times. ``eps`` (n, B,
        latent_dim): the standard normal draws to use, else drawn here. ``decoder_dtype``:
        the decoder alone runs in it under autocast (None: the model's dtype).
        """
        mu, logvar = self.posterior(x)
        if eps is None:
            eps = torch.randn((n, *mu.shape), generator=generator, device=mu.device, dtype=mu.dtype)
        z = losses.reparameterize(mu, logvar, eps=eps)  # (n, B, L)
        out = in_dtype(self.decode, z.reshape(-1, z.shape[-1]), decoder_dtype).view(n, *x.shape)
        log_pz = losses.log_normal(z, torch.zeros_like(z), torch.zeros_like(z))
        return self.log_px_given_z(x, out) + log_pz - losses.log_normal(z, mu, logvar)

    def generate(self, z: torch.Tensor) -> torch.Tensor:
        """z (n, latent_dim) -> E[x|z] (n, C, H, W) in [0, 1]."""
        return self.mean_image(self.decode(z))

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, C, H, W) model inputs -> E[x|z = mu(x)] in [0, 1]."""
        return self.mean_image(self.decode(self.encode(x)))


class IWAEConfig(VAEConfig):
    """A VAE's settings plus the number of importance samples per training example."""

    k: int = Field(
        5, ge=1, le=5000, description="importance samples per example in the training bound"
    )


@register_model
class IWAE(VAE):
    """Importance-weighted autoencoder (Burda et al. 2015): the VAE's networks trained on
    the k-sample bound IWAE_k = log (1/k) sum_i p(x, z_i) / q(z_i|x) (eq. 8), which is
    tighter than the ELBO and equals it at k = 1. Evaluated like a VAE, plus ``neg_iwae``
    (-IWAE_k with the training k), in nats."""

    family = "iwae"
    title = "importance-weighted autoencoder (Burda et al. 2015)"
    Config = IWAEConfig
    units = VAE.units | {"neg_iwae": "nats", "iwae": "nats"}
    report_curves = [
        (
            "Bounds",
            "nats per image",
            [
                ("vae/loss", "-IWAE_k (training batches)"),
                ("valid:neg_elbo", "-ELBO (validation)"),
                ("valid:neg_iwae", "-IWAE_k (validation)"),
            ],
        ),
    ]

    def _loss(self, batch: Batch, generator: torch.Generator) -> dict[str, torch.Tensor]:
        k = self.config.k
        eps = batch.randn(k, self.latent_dim, generator=generator).transpose(0, 1)  # (k, B, L)
        log_w = self.log_importance_weights(batch.x, k, eps=eps)
        bound = losses.iwae_bound(log_w)
        return {"loss": -bound, "iwae": bound.detach(), "elbo": log_w.detach().mean(0)}

    def evaluate(self, batch: Batch, generator: torch.Generator) -> dict[str, torch.Tensor]:
        terms = super().evaluate(batch, generator)
        terms["neg_iwae"] = -losses.iwae_bound(
            self.log_importance_weights(batch.x, self.config.k, generator)
        )
        return terms

"""Deterministic autoencoder: x -> z = f(x) -> x_hat = g(z), trained on squared error.

The lectures' starting point before the VAE. An autoencoder has no prior over z, so it
cannot sample by itself; ``sample`` decodes z ~ N(m, diag s^2) where m and s^2 are running
moments of the training codes (kept like batch norm's statistics). That is a crude
density, and its pictures show why the VAE puts a prior into the objective.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field, model_validator

from .base import ModelConfig, adam
from .capabilities import Encoder, LatentSpace
from .contract import Batch, GenerativeModel, Player, register_model
from .vae import NETS, apply_net_defaults


class AEConfig(ModelConfig):
    """Networks, code size and Adam learning rate; ``latent_dim`` and ``hidden_dim`` default
    by network (conv: 32, 256; mlp: 20, 400)."""

    net: Literal["conv", "mlp"] = Field("conv", description="encoder/decoder networks")
    latent_dim: int | None = Field(
        None, ge=1, le=4096, description="size of z; default 32 (conv), 20 (mlp)"
    )
    hidden_dim: int | None = Field(
        None, ge=1, le=65536, description="hidden units; default 256 (conv), 400 (mlp)"
    )
    preprocess: str = Field("unit", description="unit ([0, 1]) or symmetric")
    lr: float = Field(1e-3, gt=0, description="Adam learning rate")
    code_momentum: float = Field(
        0.01, gt=0, le=1, description="momentum of the running code moments"
    )

    @model_validator(mode="after")
    def _net_defaults(self) -> AEConfig:
        return apply_net_defaults(self)


@register_model
class AE(LatentSpace, Encoder, GenerativeModel):
    """Autoencoder on images (B, C, H, W) in [0, 1]; decoder outputs pass through a
    sigmoid. ``recon`` = sum over pixels of (x - x_hat)^2 per image (squared pixel units)."""

    family = "ae"
    title = "deterministic autoencoder, MLP or conv"
    Config = AEConfig
    summary = ("recon", "squared error per image")
    units = {"recon": "squared pixel units per image", "mse": "squared pixel units per pixel"}
    evaluate_protocol = "sum over pixels of (x - decode(encode(x)))^2, pixels in [0, 1]"
    report_curves = [
        (
            "Reconstruction error",
            "squared error per image",
            [("recon", "training batches"), ("valid:recon", "validation split")],
        ),
    ]

    def __init__(self, config: AEConfig):
        super().__init__(config)
        enc, dec = NETS[config.net]
        self.encoder = enc(self.data_shape, config.latent_dim, config.hidden_dim)
        self.decoder = dec(self.data_shape, config.latent_dim, config.hidden_dim)
        self.register_buffer("code_mean", torch.zeros(config.latent_dim))
        self.register_buffer("code_var", torch.ones(config.latent_dim))

    @property
    def latent_dim(self) -> int:
        return self.config.latent_dim

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, C, H, W) -> codes (B, latent_dim)."""
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """codes (B, latent_dim) -> images (B, C, H, W) in [0, 1]."""
        return torch.sigmoid(self.decoder(z))

    def _loss(self, batch: Batch, generator: torch.Generator) -> dict[str, torch.Tensor]:
        z = self.encode(batch.x)
        recon = (self.decode(z) - batch.x).pow(2).flatten(1).sum(1)
        with torch.no_grad():  # running moments of the codes, for sampling
            m = self.config.code_momentum
            self.code_mean.mul_(1 - m).add_(z.mean(0), alpha=m)
            self.code_var.mul_(1 - m).add_(z.var(0, unbiased=False), alpha=m)
        return {"loss": recon, "recon": recon.detach()}

    def players(self) -> list[Player]:
        lr = self.config.lr
        return [Player("ae", self, self._loss, lambda p: adam(p, lr))]

    @torch.no_grad()
    def evaluate(self, batch: Batch, generator: torch.Generator) -> dict[str, torch.Tensor]:
        recon = (self.decode(self.encode(batch.x)) - batch.x).pow(2).flatten(1).sum(1)
        return {"recon": recon, "mse": recon / batch.x[0].numel()}

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, C, H, W) model inputs -> decode(encode(x)) in [0, 1]."""
        return self.decode(self.encode(x))

    def from_standard(self, u: torch.Tensor) -> torch.Tensor:
        """Standard coordinates u (n, latent_dim) -> codes code_mean + sqrt(code_var) u: the
        prior is N(code_mean, diag code_var), the running moments of the training codes."""
        return self.code_mean + self.code_var.sqrt() * u

    def to_standard(self, z: torch.Tensor) -> torch.Tensor:
        """Codes (n, latent_dim) -> (z - code_mean) / sqrt(code_var)."""
        return (z - self.code_mean) / self.code_var.sqrt()

    def generate(self, z: torch.Tensor) -> torch.Tensor:
        """codes (n, latent_dim) -> images (n, C, H, W) in [0, 1]."""
        return self.decode(z)

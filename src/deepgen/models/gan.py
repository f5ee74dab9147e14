"""Generative adversarial network (Goodfellow et al. 2014) with DCGAN networks
(Radford et al. 2015).

Algorithm 1: each iteration takes ``d_steps`` (k) discriminator steps, each on a new data
minibatch and a fresh noise minibatch, then one generator step on fresh noise. The
generator loss is the non-saturating -log D(G(z)) by default, or the minimax
log(1 - D(G(z))).
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field

from .. import losses
from ..nets import DCGANDiscriminator, DCGANGenerator, dcgan_init_
from .base import Batch, GenerativeModel, ModelConfig, Player, register_model

GENERATOR_LOSSES = {
    "nonsaturating": losses.generator_loss_nonsaturating,
    "minimax": losses.generator_loss_minimax,
}


class GANConfig(ModelConfig):
    """DCGAN size, generator loss, discriminator steps per generator step (k) and Adam
    settings (Radford et al. 2015: 2e-4, beta1 0.5)."""

    latent_dim: int = Field(100, ge=1, le=4096, description="size of the noise z ~ N(0, I)")
    channels: int = Field(64, ge=1, le=1024, description="base channel count of G and D")
    loss: Literal["nonsaturating", "minimax"] = Field("nonsaturating", description="generator loss")
    d_steps: int = Field(1, ge=1, le=100, description="discriminator steps per generator step (k)")
    preprocess: str = Field("symmetric", description="symmetric ([-1, 1], for the tanh output)")
    lr: float = Field(2e-4, gt=0, description="Adam learning rate of G and D")
    beta1: float = Field(0.5, ge=0, lt=1, description="Adam beta1")
    beta2: float = Field(0.999, ge=0, lt=1, description="Adam beta2")


@register_model
class GAN(GenerativeModel):
    """A GAN on images in [-1, 1]. ``D`` returns logits; D(x) = sigmoid(logit).

    Logged per step: ``d_real`` = D(x) and ``d_fake`` = D(G(z)) (means, in [0, 1]).
    """

    family = "gan"
    Config = GANConfig
    units = {"d_real": "probability", "d_fake": "probability", "value": "nats"}
    evaluate_protocol = "D(x) on the split's images, D(G(z)) on as many samples, V(D, G) per pair"
    report_curves = [
        ("Discriminator outputs", "mean probability", [("discriminator/d_real", "D(x)"),
                                                       ("discriminator/d_fake", "D(G(z))")]),
        ("Losses", "nats per example", [("discriminator/loss", "discriminator -V(D, G)"),
                                        ("generator/loss", "generator")]),
    ]

    def __init__(self, config: GANConfig):
        super().__init__(config)
        self.generator = DCGANGenerator(config.image_shape, config.latent_dim, config.channels)
        self.discriminator = DCGANDiscriminator(config.image_shape, config.channels)
        dcgan_init_(self)

    @property
    def latent_dim(self) -> int:
        return self.config.latent_dim

    def noise(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """z ~ N(0, I), shape (n, latent_dim), on the model's device."""
        return torch.randn(n, self.latent_dim, generator=generator, device=self.device)

    def _d_loss(self, batch: Batch, generator: torch.Generator) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            fake = self.generator(batch.randn(self.latent_dim, generator=generator))
        real_logits, fake_logits = self.discriminator(batch.x), self.discriminator(fake)
        return {
            "loss": losses.discriminator_loss(real_logits, fake_logits),
            "d_real": torch.sigmoid(real_logits.detach()),
            "d_fake": torch.sigmoid(fake_logits.detach()),
        }

    def _g_loss(self, batch: Batch, generator: torch.Generator) -> dict[str, torch.Tensor]:
        fake_logits = self.discriminator(self.generator(batch.randn(self.latent_dim, generator=generator)))
        return {"loss": GENERATOR_LOSSES[self.config.loss](fake_logits),
                "d_fake": torch.sigmoid(fake_logits.detach())}

    def players(self) -> list[Player]:
        c = self.config

        def adam(params):
            return torch.optim.Adam(params, lr=c.lr, betas=(c.beta1, c.beta2))

        return [
            Player("discriminator", self.discriminator, self._d_loss, adam, steps=c.d_steps),
            Player("generator", self.generator, self._g_loss, adam, uses_data=False),
        ]

    @torch.no_grad()
    def evaluate(self, batch: Batch, generator: torch.Generator) -> dict[str, torch.Tensor]:
        real_logits = self.discriminator(batch.x)
        fake_logits = self.discriminator(self.generator(self.noise(len(batch), generator)))
        return {"d_real": torch.sigmoid(real_logits), "d_fake": torch.sigmoid(fake_logits),
                "value": losses.gan_value(real_logits, fake_logits)}

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n images (n, C, H, W) in [0, 1] from G(z), z ~ N(0, I) (batch norm in eval mode
        when the model is in eval mode)."""
        return (self.generator(self.noise(n, generator)) + 1.0) / 2.0

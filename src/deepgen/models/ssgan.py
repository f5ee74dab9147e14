"""The semi-supervised GAN of Salimans, Goodfellow, Zaremba, Cheung, Radford & Chen 2016
("Improved Techniques for Training GANs", sec. 5), as their permutation-invariant MNIST
experiment runs it (openai/improved-gan, train_mnist_feature_matching.py).

The discriminator is a classifier with K + 1 classes: the K real classes' logits l_k(x),
and "generated" with its logit fixed at 0, so p(real | x) = Z(x) / (Z(x) + 1) with
Z(x) = sum_k exp l_k(x). It is trained on two streams of one dataset, ``labelled`` (N
labels per class, chosen by seed) and ``unlabelled`` (the rest of the training split), and
on as many generated images, by minimising per example

    L_supervised   = -log p(y | x, real)                            labelled
    L_unsupervised = 0.5 softplus(-log Z(x)) + 0.5 softplus(log Z(G(z)))   unlabelled, fake
    (:func:`deepgen.losses.k_plus_one_supervised_loss`, :func:`~deepgen.losses.k_plus_one_unsupervised_loss`)

The generator matches the mean of the discriminator's last hidden layer on the unlabelled
batch (feature matching, sec. 3.1). Networks as in their code: D is 784-1000-500-250-250-
250-K with weight normalisation (fixed scales in the hidden layers, learned at the output),
data-dependent initialisation on the first training batch, Gaussian noise (sd 0.3 on the
input, 0.5 after each hidden layer) in training; G is 100-500-500-784 with batch norm,
softplus and a sigmoid output; z ~ U(0, 1)^100; Adam 0.003, beta1 0.5, with its eps inside
the square root as their code has it (:class:`~deepgen.models.base.RootEpsAdam`). The classifier is
tested with an exponential moving average of D's weights (rate 1e-4).

Differences from their code, each small: the generator's step reuses the discriminator's
unlabelled batch (theirs draws a second permutation); the unlabelled stream leaves out the
labelled examples (theirs holds all 60,000); initialisation uses the first batch (theirs 500
images); the average is bias-corrected for its start at zero.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from typing import Annotated

import torch
from pydantic import Field
from torch import nn
from torch.nn import functional as F

from .. import losses
from ..distributed import SyncBatchNorm1d
from ..errors import ConfigError
from ..improved_gan import ParameterAverage, WeightNormLinear
from .base import ModelConfig, RootEpsAdam
from .capabilities import LatentSpace
from .contract import Batch, GenerativeModel, Player, register_model
from .few_labels import FewLabels

Noise = Callable[[int], torch.Tensor]  # width -> (B, width) standard normal draws


class SSGANConfig(ModelConfig):
    """Sizes, noise, weights and optimiser of the semi-supervised GAN (defaults: Salimans
    et al.'s MNIST code)."""

    latent_dim: int = Field(100, ge=1, le=4096, description="size of z ~ U(0, 1)")
    hidden: tuple[Annotated[int, Field(ge=1, le=65536)], ...] = Field(
        (1000, 500, 250, 250, 250),
        min_length=1,
        max_length=64,
        description="D's hidden layer widths",
    )
    generator_hidden: int = Field(500, ge=1, le=65536, description="units of G's two layers")
    input_noise: float = Field(0.3, ge=0, description="sd of the noise added to D's input")
    hidden_noise: float = Field(0.5, ge=0, description="sd of the noise after D's hidden layers")
    unlabelled_weight: float = Field(1.0, ge=0, description="weight of L_unsupervised")
    average_rate: float = Field(
        1e-4, gt=0, le=1, description="rate of the moving average of D's weights used to test"
    )
    num_classes: int | None = Field(
        None, ge=2, le=10000, description="classes; default: the data's"
    )
    lr: float = Field(0.003, gt=0, description="Adam learning rate of G and D")
    beta1: float = Field(
        0.5, ge=0, lt=1, description="Adam's first-moment decay beta1 (not the beta-VAE's --beta)"
    )
    preprocess: str = Field("unit", description="unit: pixels in [0, 1], like G's sigmoid")


class SSGANDiscriminator(nn.Module):
    """x (B, C, H, W) in [0, 1] -> (logits (B, K), features (B, hidden[-1])): weight-
    normalised ReLU layers; ``noise`` (width -> (B, width) standard normal) adds the
    training noise, None is the deterministic network used to test."""

    def __init__(
        self,
        in_dim: int,
        hidden: tuple[int, ...],
        classes: int,
        input_noise: float,
        hidden_noise: float,
    ):
        super().__init__()
        dims = [in_dim, *hidden]
        self.hidden = nn.ModuleList(WeightNormLinear(a, b) for a, b in itertools.pairwise(dims))
        self.out = WeightNormLinear(dims[-1], classes, train_scale=True)
        self.input_noise, self.hidden_noise = input_noise, hidden_noise
        self.register_buffer("initialised", torch.zeros((), dtype=torch.bool))

    def forward(
        self, x: torch.Tensor, noise: Noise | None = None, initialise: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        h = self._noisy(x.flatten(1), self.input_noise, noise)
        features = h
        for layer in self.hidden:
            features = F.relu(layer.initialise(h) if initialise else layer(h))
            h = self._noisy(features, self.hidden_noise, noise)
        logits = self.out.initialise(h) if initialise else self.out(h)
        return logits, features

    @staticmethod
    def _noisy(h: torch.Tensor, sd: float, noise: Noise | None) -> torch.Tensor:
        return h if noise is None or sd == 0 else h + sd * noise(h.shape[1])

    @torch.no_grad()
    def initialise_once(self, x: torch.Tensor, noise: Noise | None) -> None:
        """Data-dependent initialisation on ``x``, layer by layer, the first time only."""
        if not bool(self.initialised):
            self.forward(x, noise, initialise=True)
            self.initialised.fill_(True)


class SSGANGenerator(nn.Module):
    """z (B, latent_dim) in [0, 1] -> images (B, C, H, W) in [0, 1]: two layers of batch
    norm (with a shift, no scale) and softplus, then a weight-normalised sigmoid layer."""

    def __init__(self, latent_dim: int, hidden: int, shape: tuple[int, ...]):
        super().__init__()
        self.shape = shape
        layers: list[nn.Module] = []
        for a in (latent_dim, hidden):
            layers += [nn.Linear(a, hidden, bias=False), SyncBatchNorm1d(hidden, affine=False)]
            layers += [_Shift(hidden), nn.Softplus()]
        self.body = nn.Sequential(*layers)
        self.out = WeightNormLinear(hidden, math.prod(shape), train_scale=True)
        nn.init.xavier_uniform_(self.out.direction)  # Lasagne's default (Glorot uniform)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.out(self.body(z))).view(len(z), *self.shape)


class _Shift(nn.Module):
    """x + b, the learned shift after a scale-free batch norm."""

    def __init__(self, n: int):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(n))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.bias


@register_model
class SSGAN(FewLabels, LatentSpace, GenerativeModel):
    """The semi-supervised GAN on images (B, C, H, W) in [0, 1]; see the module docstring.
    Logged per step: the discriminator's ``supervised`` and ``unsupervised`` losses (nats)
    and ``p_real``/``p_fake`` (mean p(real | x)); the generator's ``feature_matching``
    (squared feature units). Evaluated on the labelled stream's splits with the averaged
    weights: ``error`` (0 or 1) and ``cross_entropy`` (nats)."""

    family = "ssgan"
    title = "semi-supervised GAN with a K+1-class discriminator (Salimans et al. 2016)"
    Config = SSGANConfig
    units = {"error": "fraction", "cross_entropy": "nats"}
    evaluate_protocol = (
        "argmax over the K real classes' logits of the discriminator with its averaged "
        "weights and no noise"
    )
    report_curves = [
        (
            "Discriminator losses (training)",
            "nats per example",
            [
                ("supervised", "L_supervised, labelled"),
                ("unsupervised", "L_unsupervised, unlabelled and generated"),
            ],
        ),
        ("Feature matching", "squared feature units", [("feature_matching", "G")]),
        ("Classification error", "fraction", [("valid:labelled/error", "validation split")]),
    ]

    def __init__(self, config: SSGANConfig):
        super().__init__(config)
        if config.num_classes is None:
            raise ConfigError(
                "an ssgan needs num_classes (taken from the data when it is built from a dataset)"
            )
        c = config
        self.discriminator = SSGANDiscriminator(
            math.prod(self.data_shape), c.hidden, c.num_classes, c.input_noise, c.hidden_noise
        )
        self.generator = SSGANGenerator(c.latent_dim, c.generator_hidden, self.data_shape)
        self.average = ParameterAverage(self.discriminator, c.average_rate)

    @property
    def latent_dim(self) -> int:
        return self.config.latent_dim

    def from_standard(self, u: torch.Tensor) -> torch.Tensor:
        """Standard normal coordinates u (n, latent_dim) -> codes z = Phi(u) in (0, 1), the
        quantiles of G's prior z ~ U(0, 1)."""
        return 0.5 * (1.0 + torch.erf(u / math.sqrt(2.0)))

    def to_standard(self, z: torch.Tensor) -> torch.Tensor:
        """Codes z (n, latent_dim) in (0, 1) -> u = Phi^-1(z), z clamped 1e-6 from the ends."""
        return math.sqrt(2.0) * torch.erfinv((2.0 * z - 1.0).clamp(-1 + 1e-6, 1 - 1e-6))

    def generate(self, z: torch.Tensor) -> torch.Tensor:
        """z (n, latent_dim) in [0, 1] -> G(z), images (n, C, H, W) in [0, 1]."""
        return self.generator(z)

    def class_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, C, H, W) in [0, 1] -> the K real classes' logits (B, K) of the
        discriminator with its averaged weights (its own before the first step), no noise."""
        return self.average.forward_averaged(self.discriminator, x)[0]

    # --- training ----------------------------------------------------------------------
    def _d_loss(self, batch: Batch, generator: torch.Generator) -> dict[str, torch.Tensor]:
        lab, unl = batch["labelled"], batch["unlabelled"]
        both = torch.cat([lab.x, unl.x])
        self.discriminator.initialise_once(
            both,
            lambda width: torch.randn(len(both), width, generator=generator, device=both.device),
        )
        with torch.no_grad():
            fake = self.generator(unl.rand(self.latent_dim, generator=generator))
        # One pass over the labelled, unlabelled and generated rows (one matrix product per
        # layer instead of three); each row gets its own stream's noise.
        noise = lambda width: torch.cat(
            [
                lab.randn(width, generator=generator),
                unl.randn(width, generator=generator),
                unl.randn(width, generator=generator),
            ]
        )
        logits, _ = self.discriminator(torch.cat([both, fake]), noise)
        logits_lab, logits_unl, logits_fake = logits.split([len(lab), len(unl), len(fake)])
        supervised = losses.k_plus_one_supervised_loss(logits_lab, lab.y)
        unsupervised = losses.k_plus_one_unsupervised_loss(logits_unl, logits_fake)
        p_real = lambda logits: torch.sigmoid(torch.logsumexp(logits.detach(), 1))
        return {
            "loss": supervised + self.config.unlabelled_weight * unsupervised,
            "supervised": supervised.detach(),
            "unsupervised": unsupervised.detach(),
            "p_real": p_real(logits_unl),
            "p_fake": p_real(logits_fake),
        }

    def _g_loss(self, batch: Batch, generator: torch.Generator) -> dict[str, torch.Tensor]:
        unl = batch["unlabelled"]
        noise = lambda width: unl.randn(width, generator=generator)
        with torch.no_grad():
            _, real_features = self.discriminator(unl.x, noise)
        fake = self.generator(unl.rand(self.latent_dim, generator=generator))
        _, fake_features = self.discriminator(fake, noise)
        loss = losses.feature_matching_loss(real_features, fake_features)
        return {"loss": loss, "feature_matching": loss.detach()}

    def players(self) -> list[Player]:
        c = self.config
        optimizer = lambda params: RootEpsAdam(params, c.lr, (c.beta1, 0.999))
        return [
            Player(
                "discriminator",
                self.discriminator,
                self._d_loss,
                optimizer,
                after_step=lambda: self.average.update(self.discriminator),
            ),
            Player("generator", self.generator, self._g_loss, optimizer, uses_data=False),
        ]

    @torch.no_grad()
    def evaluate(self, batch: Batch, generator: torch.Generator) -> dict[str, torch.Tensor]:
        if "labelled" not in batch.streams:  # the unlabelled stream's valid/test: same images
            return {}
        return self.classification(batch.x, batch.y)

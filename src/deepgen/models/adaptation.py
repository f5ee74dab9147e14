"""Unsupervised domain adaptation: a classifier trained with the labels of a ``source``
stream, used on a ``target`` stream whose training labels it never reads.

Families (streams ``source`` and ``target``, images of the same height and width; a grey
stream is read as three equal channels beside a colour one):

- ``source-only``: the classifier trained on source labels alone (the lower anchor);
- ``target-only``: trained on the target's own labels (the oracle, the upper anchor);
- ``dann``: domain-adversarial training through a gradient reversal layer (Ganin &
  Lempitsky 2015; Ganin et al. 2016, JMLR, sec. 4-5);
- ``adda``: adversarial discriminative adaptation (Tzeng et al. 2017, sec. 4): a source
  encoder and classifier, then a target encoder initialised from it and trained against a
  domain discriminator with the inverted-label GAN loss, the source model frozen.

All share Ganin et al.'s MNIST networks (JMLR 2016, fig. 4 and sec. 5.2.2): features
conv 5x5 32 - ReLU - max-pool 2 - conv 5x5 48 - ReLU - max-pool 2 (768 values for 28x28
input); label predictor FC 100 - ReLU - FC 100 - ReLU - FC K; so every row of a table
differs in its training only. Test error is measured on both streams' test splits; the
headline is the target's. Nothing selects on target validation labels.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from pydantic import Field
from torch import nn
from torch.nn import functional as F

from .. import losses
from ..errors import ConfigError
from .base import ModelConfig, adam
from .capabilities import Classifier
from .contract import Batch, GenerativeModel, Player, register_model


class GradientReversal(torch.autograd.Function):
    """Identity forward; the gradient times ``-lambda`` backward (Ganin & Lempitsky 2015,
    eq. 6-7: the "gradient reversal layer")."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, lam: float) -> torch.Tensor:
        ctx.lam = lam
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return -ctx.lam * grad, None


def reverse_gradient(x: torch.Tensor, lam: float) -> torch.Tensor:
    """``x`` unchanged, with its gradient multiplied by ``-lam`` (lam >= 0) on the way back."""
    return GradientReversal.apply(x, lam)


class DigitFeatures(nn.Module):
    """Ganin et al.'s MNIST feature extractor: (B, C, H, W) -> (B, 48 * (H//4 - 2) *
    (W//4 - 2)), 768 for 28x28."""

    def __init__(self, channels: int, height: int, width: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(channels, 32, 5),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 48, 5),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
        )
        self.out_dim = 48 * (((height - 4) // 2 - 4) // 2) * (((width - 4) // 2 - 4) // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def mlp(in_dim: int, hidden: tuple[int, ...], out_dim: int) -> nn.Sequential:
    """Linear - ReLU layers of sizes ``hidden``, then a linear output of ``out_dim``."""
    layers: list[nn.Module] = []
    for width in hidden:
        layers += [nn.Linear(in_dim, width), nn.ReLU()]
        in_dim = width
    return nn.Sequential(*layers, nn.Linear(in_dim, out_dim))


def common_channels(shapes: Mapping[str, tuple[int, ...]]) -> int:
    """The channels every stream is read with: their common count, or 3 when grey and
    colour streams meet (a grey image becomes three equal channels).

    Raises:
        ConfigError: a stream is not images, or streams differ in height and width or in
            channels other than 1 against C; the message names the shapes.
    """
    described = ", ".join(f"{name} {tuple(shape)}" for name, shape in shapes.items())
    if any(len(shape) != 3 for shape in shapes.values()):
        raise ConfigError(f"domain adaptation reads images (C, H, W); the streams are {described}")
    if len({tuple(shape[1:]) for shape in shapes.values()}) > 1:
        raise ConfigError(
            f"the streams' images differ in size ({described}); resize one to the other's"
        )
    counts = {shape[0] for shape in shapes.values()}
    if len(counts - {1}) > 1:
        raise ConfigError(
            f"the streams' images have channel counts no image can share: {described}"
        )
    return max(counts)


def with_channels(x: torch.Tensor, channels: int) -> torch.Tensor:
    """Images (B, C, H, W) with ``channels`` channels: a grey image repeated."""
    return x if x.shape[1] == channels else x.expand(-1, channels, -1, -1)


class AdaptationConfig(ModelConfig):
    """Fields every adaptation family has."""

    num_classes: int | None = Field(
        None, ge=2, le=10000, description="classes; default: the source's"
    )
    lr: float = Field(1e-3, gt=0, description="Adam learning rate of the classifier")


class DomainClassifier(Classifier, GenerativeModel):
    """A classifier of two domains (see the module docstring); subclasses set ``players``.
    Evaluated per stream: ``error`` (0 or 1) and ``cross_entropy`` (nats), each (B,)."""

    streams = ("source", "target")
    reads = ("images",)
    accuracy_stream = "target"
    summary = ("target/error", "fraction of target test images misclassified")
    units = {"error": "fraction", "cross_entropy": "nats"}
    evaluate_protocol = "argmax of the classifier's logits on each test image of the stream"
    report_curves = [
        (
            "Classification error",
            "fraction",
            [
                ("valid:target/error", "target validation"),
                ("valid:source/error", "source validation"),
            ],
        ),
    ]

    def __init__(self, config: AdaptationConfig):
        super().__init__(config)
        if config.num_classes is None:
            raise ConfigError(
                f"a {self.family} needs num_classes (taken from the data when built from one)"
            )
        self.channels = common_channels(config.shapes)
        _, height, width = self.shape("source")
        self.features = DigitFeatures(self.channels, height, width)
        self.classifier = mlp(self.features.out_dim, (100, 100), config.num_classes)

    @classmethod
    def configure(cls, values: dict[str, Any], streams) -> dict[str, Any]:
        """Checks that the streams' images can be read together; the number of classes
        from the source's data."""
        common_channels({name: dataset.data_shape for name, dataset in streams.items()})
        source, target = streams["source"], streams["target"]
        if source.num_classes and target.num_classes and source.num_classes != target.num_classes:
            raise ConfigError(
                f"the source has {source.num_classes} classes and the target "
                f"{target.num_classes}; adaptation needs the same classes"
            )
        if values.get("num_classes") is None:
            values = dict(values) | {"num_classes": source.num_classes}
        return values

    @property
    def num_classes(self) -> int:
        return self.config.num_classes

    def encode_stream(self, x: torch.Tensor, stream: str) -> torch.Tensor:
        """Features (B, F) of images (B, C, H, W) of ``stream``."""
        return self.features(with_channels(x, self.channels))

    def stream_logits(self, x: torch.Tensor, stream: str) -> torch.Tensor:
        """Logits (B, num_classes) of images (B, C, H, W) of ``stream``."""
        return self.classifier(self.encode_stream(x, stream))

    def class_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Target images (B, C, H, W) -> logits (B, num_classes)."""
        return self.stream_logits(x, "target")

    def _classification(self, x, y, stream: str) -> dict[str, torch.Tensor]:
        return losses.classification_terms(self.stream_logits(x, stream), y)

    def evaluate(self, batch: Batch, generator: torch.Generator) -> dict[str, torch.Tensor]:
        ((stream, rows),) = batch.streams.items()
        if rows.y is None:
            return {}
        return self._classification(rows.x, rows.y, stream)

    def selection(self) -> dict[str, str]:
        return {}  # selecting on target validation labels would use labels the setting lacks

    def _supervised(self, stream: str):
        def loss(batch: Batch, generator: torch.Generator) -> dict[str, torch.Tensor]:
            rows = batch[stream]
            out = self._classification(rows.x, rows.y, stream)
            return {"loss": out["cross_entropy"], "error": out["error"]}

        return loss


class LabelledStreamConfig(AdaptationConfig):
    """A classifier trained on one stream's labels."""


class _OneStream(DomainClassifier):
    trained_on = "source"

    @classmethod
    def configure(cls, values: dict[str, Any], streams) -> dict[str, Any]:
        if streams[cls.trained_on]["train"].labels is None:
            raise ConfigError(
                f"a {cls.family} trains on the {cls.trained_on} stream's labels, and it has none"
            )
        return super().configure(values, streams)

    def players(self) -> list[Player]:
        lr = self.config.lr
        return [
            Player(
                "classifier",
                nn.ModuleList([self.features, self.classifier]),
                self._supervised(self.trained_on),
                lambda p: adam(p, lr),
                streams=(self.trained_on,),
            )
        ]


@register_model
class SourceOnly(_OneStream):
    """The source-only baseline: the classifier trained on source labels, tested on the target."""

    family = "source-only"
    title = (
        "a classifier trained on source labels, tested on the target (domain adaptation's "
        "lower anchor)"
    )
    Config = LabelledStreamConfig
    trained_on = "source"


@register_model
class TargetOnly(_OneStream):
    """The target oracle: the classifier trained on the target's own labels. Its runs still
    name a source stream, which is only evaluated; epochs count passes over the target."""

    family = "target-only"
    title = "a classifier trained on the target's own labels (domain adaptation's oracle)"
    Config = LabelledStreamConfig
    trained_on = "target"

    @property
    def epoch_stream(self) -> str:
        return "target"


class DANNConfig(AdaptationConfig):
    """DANN's schedules (Ganin et al. 2016, sec. 5.2.2): SGD with momentum 0.9 at
    lr_p = lr / (1 + 10 p)^0.75 and lambda_p = 2 / (1 + exp(-gamma p)) - 1, p the fraction
    of training done."""

    lr: float = Field(0.01, gt=0, description="initial SGD learning rate mu_0 (the paper: 0.01)")
    gamma: float = Field(
        10.0, gt=0, description="speed of lambda's rise from 0 to 1 (the paper: 10)"
    )
    domain_weight: float = Field(
        1.0, gt=0, description="final lambda, the domain loss's weight on the features"
    )


@register_model
class DANN(DomainClassifier):
    """Domain-adversarial neural network: one network, trained to classify source images
    while a domain classifier (FC 100 - ReLU - FC 1) on its features, behind a gradient
    reversal layer, learns to tell source from target. Per-example training terms (B,):
    ``cross_entropy`` (nats, source) and ``domain`` (nats: the mean of a source and a
    target example's logistic losses, the domain loss averaged over a batch of both
    domains as the common implementations have it; the JMLR paper's eq. 18 sums the two
    domains' means, twice this: 10 epochs on MNIST -> MNIST-M ended at 52.6% target test
    accuracy with the sum and 64.4% with the mean, and 30 epochs with the mean at 73.9%, one
    run each)."""

    family = "dann"
    title = "domain-adversarial training through gradient reversal (Ganin et al. 2016)"
    Config = DANNConfig

    def __init__(self, config: DANNConfig):
        super().__init__(config)
        self.domain = mlp(self.features.out_dim, (100,), 1)

    def adaptation_weight(self, progress: float) -> float:
        """lambda_p in [0, domain_weight) at ``progress`` p in [0, 1)."""
        return self.config.domain_weight * (2 / (1 + math.exp(-self.config.gamma * progress)) - 1)

    def _loss(self, batch: Batch, generator: torch.Generator) -> dict[str, torch.Tensor]:
        source, target = batch["source"], batch["target"]
        f_source = self.encode_stream(source.x, "source")
        f_target = self.encode_stream(target.x, "target")
        ce = F.cross_entropy(self.classifier(f_source), source.y, reduction="none")
        lam = self.adaptation_weight(batch.progress)
        d_source = self.domain(reverse_gradient(f_source, lam)).squeeze(1)
        d_target = self.domain(reverse_gradient(f_target, lam)).squeeze(1)
        domain = 0.5 * F.binary_cross_entropy_with_logits(
            d_source, torch.zeros_like(d_source), reduction="none"
        ) + 0.5 * F.binary_cross_entropy_with_logits(
            d_target, torch.ones_like(d_target), reduction="none"
        )
        return {"loss": ce + domain, "cross_entropy": ce.detach(), "domain": domain.detach()}

    def players(self) -> list[Player]:
        lr = self.config.lr
        return [
            Player(
                "dann",
                self,
                self._loss,
                lambda p: torch.optim.SGD(p, lr=lr, momentum=0.9),
                lr_scale=lambda progress: (1 + 10 * progress) ** -0.75,
            )
        ]


class ADDAConfig(AdaptationConfig):
    """ADDA's stages and optimisers (Tzeng et al. 2017, sec. 4.1; their code: Adam 1e-3
    for the source model, Adam 2e-4 with beta1 0.5 for adaptation, a discriminator of two
    500-unit ReLU layers)."""

    source_fraction: float = Field(
        0.5, gt=0, lt=1, description="fraction of the run's iterations that train the source model"
    )
    adapt_lr: float = Field(2e-4, gt=0, description="Adam learning rate of the adaptation stage")
    discriminator_hidden: tuple[int, ...] = Field(
        (500, 500),
        description="hidden ReLU layers of the domain discriminator (the paper: 500, 500)",
    )


@register_model
class ADDA(DomainClassifier):
    """Adversarial discriminative domain adaptation (see the module docstring). As in the
    authors' code, the mapping M is the whole network up to the class logits and the
    discriminator reads those logits. Players: ``classifier`` (the source network, first
    ``source_fraction`` of the run), then ``discriminator`` (logistic loss, source logits
    labelled 1, target 0, nats) and ``target_network`` (the inverted label,
    -log D(M_t(x_t)), nats). The target network is copied from the source network at the
    first adaptation step (a buffer records it, so a resumed run does not copy again)."""

    family = "adda"
    title = "adversarial discriminative domain adaptation (Tzeng et al. 2017)"
    Config = ADDAConfig

    def __init__(self, config: ADDAConfig):
        super().__init__(config)
        _, height, width = self.shape("source")
        self.target_features = DigitFeatures(self.channels, height, width)
        self.target_classifier = mlp(self.features.out_dim, (100, 100), config.num_classes)
        self.discriminator = mlp(config.num_classes, config.discriminator_hidden, 1)
        self.register_buffer("adapted", torch.zeros((), dtype=torch.bool))

    def stream_logits(self, x: torch.Tensor, stream: str) -> torch.Tensor:
        x = with_channels(x, self.channels)
        if stream == "target" and self.adapted:
            return self.target_classifier(self.target_features(x))
        return self.classifier(self.features(x))

    def _start_adaptation(self) -> None:
        if not self.adapted:
            target = nn.ModuleList([self.target_features, self.target_classifier])
            source = nn.ModuleList([self.features, self.classifier])
            with torch.no_grad():
                for mine, theirs in zip(target.parameters(), source.parameters(), strict=True):
                    mine.copy_(theirs)
                self.adapted.fill_(True)

    def _discriminator_loss(
        self, batch: Batch, generator: torch.Generator
    ) -> dict[str, torch.Tensor]:
        self._start_adaptation()
        with torch.no_grad():
            m_source = self.stream_logits(batch["source"].x, "source")
            m_target = self.stream_logits(batch["target"].x, "target")
        d_source = self.discriminator(m_source).squeeze(1)
        d_target = self.discriminator(m_target).squeeze(1)
        loss = 0.5 * (
            F.binary_cross_entropy_with_logits(
                d_source, torch.ones_like(d_source), reduction="none"
            )
            + F.binary_cross_entropy_with_logits(
                d_target, torch.zeros_like(d_target), reduction="none"
            )
        )
        accuracy = 0.5 * ((d_source > 0).float() + (d_target < 0).float())
        return {"loss": loss, "accuracy": accuracy}

    def _target_loss(self, batch: Batch, generator: torch.Generator) -> dict[str, torch.Tensor]:
        d_target = self.discriminator(self.stream_logits(batch["target"].x, "target")).squeeze(1)
        loss = F.binary_cross_entropy_with_logits(
            d_target, torch.ones_like(d_target), reduction="none"
        )
        return {"loss": loss}

    def players(self) -> list[Player]:
        cfg = self.config
        source_stage = lambda progress: progress < cfg.source_fraction
        adaptation = lambda progress: progress >= cfg.source_fraction
        adapt = lambda p: adam(p, cfg.adapt_lr, betas=(0.5, 0.999))
        return [
            Player(
                "classifier",
                nn.ModuleList([self.features, self.classifier]),
                self._supervised("source"),
                lambda p: adam(p, cfg.lr),
                streams=("source",),
                active=source_stage,
            ),
            Player(
                "discriminator",
                self.discriminator,
                self._discriminator_loss,
                adapt,
                active=adaptation,
            ),
            Player(
                "target_network",
                nn.ModuleList([self.target_features, self.target_classifier]),
                self._target_loss,
                adapt,
                uses_data=False,
                active=adaptation,
            ),
        ]

"""M1 of Kingma, Rezende, Mohamed & Welling 2014 ("Semi-Supervised Learning with Deep
Generative Models", sec. 2.1): a VAE learns features from every unlabelled image, and a
classifier learns the labels from the latent means of the few labelled ones.

The paper classified with a transductive SVM on samples of q(z|x); here the classifier is
a multinomial logistic regression (one linear layer and a softmax, with an L2 penalty) on
the posterior means mu(x), trained by its own player on the ``labelled`` stream while the
VAE trains on the ``unlabelled`` one. The features are detached: the labels never shape
the VAE, as in the paper's two-stage method. The VAE is deepgen's MLP VAE with the paper's
sizes where it has them (50 latents, 600 hidden units; the paper used two softplus layers,
this one ReLU layer), Bernoulli p(x|z) on dynamically binarised pixels.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from pydantic import Field
from torch import nn
from torch.nn import functional as F

from ..config import DataConfig
from ..errors import ConfigError
from .capabilities import Classifier
from .contract import Batch, Player, register_model
from .semi_supervised import streams_of_parts
from .vae import VAE, VAEConfig


class M1Config(VAEConfig):
    """The VAE's settings (defaults: MLP, 50 latents, 600 hidden units) and the classifier's."""

    net: Literal["conv", "mlp"] = Field("mlp", description="encoder/decoder networks")
    latent_dim: int | None = Field(50, ge=1, le=4096, description="size of z")
    hidden_dim: int | None = Field(600, ge=1, le=65536, description="hidden units")
    likelihood: Literal["bernoulli"] = Field("bernoulli", description="p(x|z) (binarised images)")
    num_classes: int | None = Field(
        None, ge=2, le=10000, description="classes; default: the data's"
    )
    classifier_lr: float = Field(1e-3, gt=0, description="Adam learning rate of the classifier")
    classifier_l2: float = Field(
        1e-3, ge=0, description="weight of the classifier's L2 penalty 0.5 ||W||^2 per example"
    )


@register_model
class M1(Classifier, VAE):
    """A VAE on the unlabelled stream and a logistic regression on its latent means for the
    labelled stream; see the module docstring. Evaluated on the labelled stream's splits:
    ``error`` (0 or 1) and ``cross_entropy`` (nats); on the unlabelled stream's (the same
    images): the VAE's ``neg_elbo``, ``recon``, ``kl`` (nats)."""

    family = "m1"
    Config = M1Config
    streams = ("unlabelled", "labelled")
    reads = ("images",)
    accuracy_stream = "labelled"
    summary = ("labelled/error", "fraction of test images misclassified")
    units = VAE.units | {"error": "fraction", "cross_entropy": "nats"}
    evaluate_protocol = (
        "argmax of the logistic regression on mu(x); the VAE's single-sample ELBO on the "
        "same images (dynamic binarisation drawn with the evaluation seed)"
    )
    report_curves = [
        (
            "Negative ELBO",
            "nats per image",
            [
                ("vae/loss", "-ELBO (training batches)"),
                ("valid:unlabelled/neg_elbo", "validation split"),
            ],
        ),
        ("Classification error", "fraction", [("valid:labelled/error", "validation split")]),
    ]

    def __init__(self, config: M1Config):
        super().__init__(config)
        if config.num_classes is None:
            raise ConfigError(
                "an m1 needs num_classes (taken from the data when it is built from a dataset)"
            )
        self.classifier = nn.Linear(config.latent_dim, config.num_classes)

    @classmethod
    def default_streams(cls, data: DataConfig) -> dict[str, DataConfig]:
        """The labelled and unlabelled parts of the dataset asked for (raises ConfigError
        without ``--labels-per-class``)."""
        return streams_of_parts(data, cls.family)

    @classmethod
    def configure(cls, values: dict[str, Any], streams) -> dict[str, Any]:
        """Classes from the labelled stream's data."""
        if values.get("num_classes") is None:
            values = dict(values) | {"num_classes": streams["labelled"].num_classes}
        return values

    @property
    def num_classes(self) -> int:
        return self.config.num_classes

    def class_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, C, H, W) -> logits (B, num_classes) of the classifier on mu(x)."""
        return self.classifier(self.encode(x))

    def _classifier_loss(self, batch: Batch, generator: torch.Generator) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            features = self.encode(batch.x)
        ce = F.cross_entropy(self.classifier(features), batch.y, reduction="none")
        l2 = 0.5 * self.classifier.weight.pow(2).sum()
        return {"loss": ce + self.config.classifier_l2 * l2, "cross_entropy": ce.detach()}

    def players(self) -> list[Player]:
        (vae,) = super().players()
        vae.module = nn.ModuleList([self.encoder, self.decoder])  # not the classifier
        lr = self.config.classifier_lr
        vae.streams = ("unlabelled",)
        classifier = Player(
            "classifier",
            self.classifier,
            self._classifier_loss,
            lambda p: torch.optim.Adam(p, lr=lr),
            streams=("labelled",),
        )
        return [vae, classifier]

    def evaluate(self, batch: Batch, generator: torch.Generator) -> dict[str, torch.Tensor]:
        if "labelled" not in batch.streams:
            return super().evaluate(batch, generator)
        logits = self.class_logits(batch.x)
        return {
            "error": (logits.argmax(1) != batch.y).to(logits.dtype),
            "cross_entropy": F.cross_entropy(logits, batch.y, reduction="none"),
        }

    def selection(self) -> dict[str, str]:
        return {}  # choosing by validation labels would use more labels than the setting has

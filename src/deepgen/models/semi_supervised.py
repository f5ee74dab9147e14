"""Semi-supervised learning with a generative model: the VAE "M2" of Kingma, Rezende,
Mohamed & Welling 2014 ("Semi-Supervised Learning with Deep Generative Models", sec. 2.2
and 3.1), and the supervised-only baseline of their Table 1 (M2's classifier trained on the
labelled examples alone).

Generative model: p(y) uniform over K classes, p(z) = N(0, I), p(x|y, z) Bernoulli.
Inference: q(y|x) a classifier, q(z|x, y) = N(mu(x, y), diag sigma^2(x, y)). Trained on two
streams of one dataset: ``labelled`` (N labels per class, chosen by seed) and
``unlabelled`` (the rest of the training split, labels dropped), by minimising, per
example, (eq. 6, 7, 9)

    -L(x, y) = -E_q(z|x,y)[log p(x|y, z) + log p(y) + log p(z) - log q(z|x, y)]   labelled
    -U(x)    = sum_y q(y|x) (-L(x, y)) - H(q(y|x))                                unlabelled
    alpha * (-log q(y|x))                                                          labelled

The classification term gives q(y|x) labelled data to learn from (the bound alone trains it
only through the unlabelled term). The paper sets alpha = 0.1 N for a sum over the data
set and an expectation over the labelled examples; with the three terms as means over equal
batches of each stream, as here, that is a weight of ``alpha`` = 0.1 N / N_labelled per
labelled example's cross-entropy (Pyro's SS-VAE example uses the same scaling), the default.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
from pydantic import Field
from torch import nn
from torch.nn import functional as F

from .. import losses
from ..errors import ConfigError
from .base import ModelConfig, adam, one_hot_labels
from .capabilities import Conditional, Encoder, LatentSpace
from .contract import Batch, GenerativeModel, Player, register_model
from .few_labels import FewLabels


class M2Config(ModelConfig):
    """Sizes, classification weight and learning rate of M2 (the paper: 50 latents, one
    hidden layer of 500 softplus units per network)."""

    latent_dim: int = Field(50, ge=1, le=4096, description="size of z")
    hidden_dim: int = Field(500, ge=1, le=65536, description="units of each network's hidden layer")
    num_classes: int | None = Field(
        None, ge=2, le=10000, description="classes; default: the data's"
    )
    alpha: float | None = Field(
        None,
        ge=0,
        description="weight of a labelled example's cross-entropy "
        "-log q(y|x); default 0.1 N / N_labelled (the paper's alpha = 0.1 N)",
    )
    lr: float = Field(3e-4, gt=0, description="Adam learning rate (the paper: 3e-4)")
    likelihood: Literal["bernoulli", "gaussian"] = Field(
        "bernoulli",
        description="p(x|y, z): Bernoulli pixels, or a diagonal Gaussian with a learned "
        "scale per dimension (M2 over M1's continuous features)",
    )
    preprocess: str = Field("binarize", description="binarize (dynamic): Bernoulli p(x|y, z)")


def _softplus_mlp(in_dim: int, out_dim: int, hidden: int) -> nn.Module:
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.Softplus(), nn.Linear(hidden, out_dim))


@register_model
class M2(FewLabels, Conditional, LatentSpace, Encoder, GenerativeModel):
    """M2 on images (B, C, H, W) in [0, 1]; see the module docstring. Per-example training
    terms (B,), in nats: ``labelled_bound`` (-L), ``unlabelled_bound`` (-U) and
    ``cross_entropy``; evaluated on the labelled stream's splits: ``error`` (0 or 1),
    ``neg_elbo`` (-L with the true label), ``cross_entropy``."""

    family = "m2"
    title = "semi-supervised VAE with a class variable (Kingma et al. 2014, M2)"
    Config = M2Config
    units = {"error": "fraction", "neg_elbo": "nats", "cross_entropy": "nats"}
    evaluate_protocol = (
        "q(y|x) classifies each image (argmax); -L(x, y) is the one-sample bound given the "
        "true label (dynamic binarisation drawn with the evaluation seed)"
    )
    report_curves = [
        (
            "Bounds (training)",
            "nats per image",
            [
                ("unlabelled_bound", "-U(x), unlabelled"),
                ("labelled_bound", "-L(x, y), labelled"),
            ],
        ),
        ("Classification error", "fraction", [("valid:labelled/error", "validation split")]),
    ]

    def __init__(self, config: M2Config):
        super().__init__(config)
        if config.num_classes is None or config.alpha is None:
            raise ConfigError(
                "an m2 needs num_classes and alpha (taken from the data when it is built from a dataset)"
            )
        d, k, z, h = (
            math.prod(self.data_shape),
            config.num_classes,
            config.latent_dim,
            config.hidden_dim,
        )
        self.classifier = nn.Sequential(nn.Flatten(), _softplus_mlp(d, k, h))  # q(y|x): logits
        self.recognition = _softplus_mlp(d + k, 2 * z, h)  # q(z|x, y)
        # p(x|y, z): logits, or Gaussian means and log standard deviations
        self.generation = _softplus_mlp(z + k, d if config.likelihood == "bernoulli" else 2 * d, h)

    @classmethod
    def configure(cls, values: dict[str, Any], streams) -> dict[str, Any]:
        """Classes from the data; alpha = 0.1 (N_labelled + N_unlabelled) / N_labelled."""
        values = dict(super().configure(values, streams))
        labelled, unlabelled = (
            len(streams["labelled"]["train"]),
            len(streams["unlabelled"]["train"]),
        )
        if values.get("alpha") is None:
            values["alpha"] = 0.1 * (labelled + unlabelled) / labelled
        return values

    @property
    def latent_dim(self) -> int:
        return self.config.latent_dim

    def _one_hot(self, y: torch.Tensor, n: int) -> torch.Tensor:
        return one_hot_labels(y, n, self.num_classes, self.generation[0].weight.dtype, "m2")

    def class_logits(self, x: torch.Tensor) -> torch.Tensor:
        """q(y|x): images (B, C, H, W) -> logits (B, num_classes)."""
        return self.classifier(x)

    def labelled_bound(self, x: torch.Tensor, y: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """-L(x, y) (B,) nats (the paper's eq. 6, negated): the one-sample ELBO of x given
        its label y (B,), with z = mu + sigma * eps, eps (B, latent_dim), plus -log p(y)."""
        flat, onehot = x.flatten(1), self._one_hot(y, len(x))
        mu, logvar = self.recognition(torch.cat([flat, onehot], 1)).chunk(2, dim=1)
        decode = lambda z: self.log_px(self.generation(torch.cat([z, onehot], 1)), flat)
        terms = losses.gaussian_elbo_terms(mu, logvar, decode, eps=eps)
        return -terms["elbo"] + math.log(self.num_classes)

    def log_px(self, out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """log p(x|y, z) (B,) nats of flattened x (B, D) given the generation network's
        output (B, D) logits (Bernoulli) or (B, 2D) means and log standard deviations."""
        if self.config.likelihood == "bernoulli":
            return losses.bernoulli_log_likelihood(out, x)
        mean, log_scale = out.chunk(2, dim=1)
        return losses.gaussian_log_likelihood(x, mean, log_scale)

    def unlabelled_bound(
        self, x: torch.Tensor, eps: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(-U(x) (B,) nats, q(y|x) logits (B, K)): -L(x, y) for every class y, each with the
        same eps (B, latent_dim), summed under q(y|x), minus its entropy (eq. 7)."""
        b, k = len(x), self.num_classes
        every = torch.arange(k, device=x.device).repeat_interleave(b)  # (K*B,): class-major
        neg_l = (
            self.labelled_bound(x.repeat(k, *[1] * (x.dim() - 1)), every, eps.repeat(k, 1))
            .view(k, b)
            .T
        )
        logits = self.class_logits(x)
        return losses.expected_over_classes(neg_l, F.log_softmax(logits, 1)), logits

    def _loss(self, batch: Batch, generator: torch.Generator) -> dict[str, torch.Tensor]:
        lab, unl = batch["labelled"], batch["unlabelled"]
        neg_u, _ = self.unlabelled_bound(unl.x, unl.randn(self.latent_dim, generator=generator))
        neg_l = self.labelled_bound(lab.x, lab.y, lab.randn(self.latent_dim, generator=generator))
        ce = F.cross_entropy(self.class_logits(lab.x), lab.y, reduction="none")
        loss = neg_u + neg_l + self.config.alpha * ce
        return {
            "loss": loss,
            "unlabelled_bound": neg_u.detach(),
            "labelled_bound": neg_l.detach(),
            "cross_entropy": ce.detach(),
        }

    def players(self) -> list[Player]:
        lr = self.config.lr
        return [Player("m2", self, self._loss, lambda p: adam(p, lr))]

    def evaluate(self, batch: Batch, generator: torch.Generator) -> dict[str, torch.Tensor]:
        if (
            "labelled" not in batch.streams
        ):  # the unlabelled stream's valid/test splits are the same images
            return {}
        x, y = batch.x, batch.y
        eps = torch.randn(
            len(x), self.latent_dim, generator=generator, device=x.device, dtype=x.dtype
        )
        return self.classification(x, y) | {"neg_elbo": self.labelled_bound(x, y, eps)}

    # --- generation -------------------------------------------------------------------
    def generate(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """z (n, latent_dim) and labels (n,) (default :meth:`default_labels`) -> E[x|y, z]
        (n, *data_shape): images in [0, 1] (Bernoulli), or the Gaussian means."""
        labels = self.default_labels(len(z)) if labels is None else labels.to(self.device)
        out = self.generation(torch.cat([z, self._one_hot(labels, len(z))], 1))
        if self.config.likelihood == "gaussian":
            return out.chunk(2, dim=1)[0].view(len(z), *self.data_shape)
        return torch.sigmoid(out).view(len(z), *self.data_shape)

    @torch.no_grad()
    def sample(
        self, n: int, generator: torch.Generator | None = None, labels: torch.Tensor | None = None
    ) -> torch.Tensor:
        """n images (n, C, H, W) in [0, 1] of classes ``labels`` (default: cycling)."""
        return self.generate(self.latent_prior(n, generator), labels)

    def encode(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, C, H, W) -> mu(x, y) (B, latent_dim), the style code, given labels (B,)
        (default: the classifier's argmax)."""
        if labels is None:
            labels = self.class_logits(x).argmax(1)
        mu, _ = self.recognition(torch.cat([x.flatten(1), self._one_hot(labels, len(x))], 1)).chunk(
            2, dim=1
        )
        return mu

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, C, H, W) -> E[x | y, z = mu(x, y)] with y the given or predicted labels."""
        if labels is None:
            labels = self.class_logits(x).argmax(1)
        return self.generate(self.encode(x, labels), labels)

    def preview(self, held_out, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """8 samples of every class (one class per column)."""
        return self.sample(8 * self.num_classes, generator)


class SupervisedConfig(ModelConfig):
    """The classifier of M2 alone: its hidden layer and learning rate."""

    hidden_dim: int = Field(500, ge=1, le=65536, description="units of the hidden layer")
    num_classes: int | None = Field(
        None, ge=2, le=10000, description="classes; default: the data's"
    )
    lr: float = Field(3e-4, gt=0, description="Adam learning rate")
    preprocess: str = Field("binarize", description="binarize (dynamic), as M2 sees its inputs")


@register_model
class SupervisedBaseline(FewLabels, GenerativeModel):
    """The supervised-only row of a semi-supervised table: M2's classifier q(y|x) (one
    hidden layer of softplus units) trained by cross-entropy on the labelled stream alone,
    the same N labels per class. Not generative; it measures what the unlabelled data add."""

    family = "supervised"
    title = "classifier on the few labels alone: the semi-supervised baseline"
    Config = SupervisedConfig
    streams = ("labelled",)
    accuracy_stream = None
    summary = ("error", "fraction of test images misclassified")
    units = {"error": "fraction", "cross_entropy": "nats"}
    evaluate_protocol = (
        "argmax of the classifier's logits on each image (dynamic binarisation as in training)"
    )
    report_curves = [
        ("Classification error", "fraction", [("valid:error", "validation split")]),
    ]

    def __init__(self, config: SupervisedConfig):
        super().__init__(config)
        if config.num_classes is None:
            raise ConfigError(
                "a supervised baseline needs num_classes (taken from the data when built from one)"
            )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            _softplus_mlp(math.prod(self.data_shape), config.num_classes, config.hidden_dim),
        )

    def class_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, C, H, W) -> logits (B, num_classes)."""
        return self.classifier(x)

    def _loss(self, batch: Batch, generator: torch.Generator) -> dict[str, torch.Tensor]:
        ce = F.cross_entropy(self.class_logits(batch.x), batch.y, reduction="none")
        return {"loss": ce, "cross_entropy": ce.detach()}

    def players(self) -> list[Player]:
        lr = self.config.lr
        return [Player("classifier", self, self._loss, lambda p: adam(p, lr))]

    def evaluate(self, batch: Batch, generator: torch.Generator) -> dict[str, torch.Tensor]:
        return self.classification(batch.x, batch.y)

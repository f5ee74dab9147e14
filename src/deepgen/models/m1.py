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

from .. import losses
from ..errors import ConfigError
from ..nets import MLPDecoder, MLPEncoder
from .base import ModelConfig, adam
from .capabilities import Conditional, LatentSpace
from .contract import Batch, GenerativeModel, Player, StreamBatch, register_model
from .few_labels import FewLabels
from .semi_supervised import M2, M2Config
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
class M1(FewLabels, VAE):
    """A VAE on the unlabelled stream and a logistic regression on its latent means for the
    labelled stream; see the module docstring. Evaluated on the labelled stream's splits:
    ``error`` (0 or 1) and ``cross_entropy`` (nats); on the unlabelled stream's (the same
    images): the VAE's ``neg_elbo``, ``recon``, ``kl`` (nats)."""

    family = "m1"
    title = "VAE features and a classifier from a few labels (Kingma et al. 2014, M1)"
    Config = M1Config
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
        return self.classification(batch.x, batch.y)


class M1M2Config(ModelConfig):
    """M1's VAE (z1) and M2 over its codes (z2), each with the paper's sizes where it has
    them: 50 latents each, 600 hidden units in M1, 500 in M2."""

    latent_dim: int = Field(50, ge=1, le=4096, description="size of M1's z1 (M2's data)")
    hidden_dim: int = Field(600, ge=1, le=65536, description="hidden units of M1's networks")
    m2_latent_dim: int = Field(50, ge=1, le=4096, description="size of M2's z2")
    m2_hidden_dim: int = Field(500, ge=1, le=65536, description="hidden units of M2's networks")
    num_classes: int | None = Field(
        None, ge=2, le=10000, description="classes; default: the data's"
    )
    alpha: float | None = Field(
        None, ge=0, description="M2's weight of -log q(y|z1); default 0.1 N / N_labelled"
    )
    lr: float = Field(3e-4, gt=0, description="Adam learning rate of both")
    preprocess: str = Field("binarize", description="binarize (dynamic): Bernoulli p(x|z1)")


@register_model
class M1M2(FewLabels, Conditional, LatentSpace, GenerativeModel):
    """Kingma et al. 2014's stacked model M1+M2 (sec. 2.3, their best row): M1, a VAE over
    images x with codes z1, trained on the unlabelled stream; and M2 (:class:`M2`, with a
    diagonal Gaussian p(z1|y, z2)) trained on z1 ~ q(z1|x) of both streams, the codes
    detached, so the two learn at once as the paper's two stages would, one after the
    other. Classifies with M2's q(y|z1) at z1 = mu(x); generates x from (y, z2) through
    both decoders. Evaluated: ``error``, ``cross_entropy`` on the labelled stream's splits;
    M1's ``neg_elbo`` (nats) on the unlabelled stream's."""

    family = "m1+m2"
    title = "M2 on M1's latent features, trained at once (Kingma et al. 2014)"
    Config = M1M2Config
    units = {"error": "fraction", "cross_entropy": "nats", "neg_elbo": "nats"}
    evaluate_protocol = (
        "argmax of q(y|z1) at z1 = mu(x); M1's single-sample ELBO (dynamic binarisation "
        "drawn with the evaluation seed)"
    )
    report_curves = [
        (
            "M1: negative ELBO",
            "nats per image",
            [("neg_elbo", "training batches"), ("valid:unlabelled/neg_elbo", "validation")],
        ),
        (
            "M2 bounds over z1 (training)",
            "nats per code",
            [
                ("unlabelled_bound", "-U(z1), unlabelled"),
                ("labelled_bound", "-L(z1, y), labelled"),
            ],
        ),
        ("Classification error", "fraction", [("valid:labelled/error", "validation split")]),
    ]

    def __init__(self, config: M1M2Config):
        super().__init__(config)
        c = config
        if c.num_classes is None or c.alpha is None:
            raise ConfigError(
                "an m1+m2 needs num_classes and alpha (taken from the data when it is built from one)"
            )
        self.encoder = MLPEncoder(self.data_shape, 2 * c.latent_dim, c.hidden_dim)
        self.decoder = MLPDecoder(self.data_shape, c.latent_dim, c.hidden_dim)
        codes = {name: (c.latent_dim,) for name in self.streams}
        self.m2 = M2(
            M2Config(
                shapes=codes,
                latent_dim=c.m2_latent_dim,
                hidden_dim=c.m2_hidden_dim,
                num_classes=c.num_classes,
                alpha=c.alpha,
                lr=c.lr,
                likelihood="gaussian",
                preprocess="unit",
            )
        )

    @classmethod
    def configure(cls, values: dict[str, Any], streams) -> dict[str, Any]:
        """Classes and M2's alpha from the data, as for :class:`M2`."""
        return M2.configure(values, streams)

    @property
    def latent_dim(self) -> int:
        return self.config.m2_latent_dim  # the style z2 that samples are drawn from

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """q(z1|x): images (B, C, H, W) -> (mu, logvar), each (B, latent_dim)."""
        mu, logvar = self.encoder(x).chunk(2, dim=1)
        return mu, logvar

    def class_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, C, H, W) -> logits (B, num_classes) of q(y|z1) at z1 = mu(x)."""
        return self.m2.class_logits(self.posterior(x)[0])

    def m1_elbo_terms(
        self,
        x: torch.Tensor,
        generator: torch.Generator | None = None,
        eps: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """M1's {"elbo", "recon", "kl"}, each (B,) nats, of binarised images x (B, C, H, W)
        from one reparameterised z1 (``eps`` (B, latent_dim), else drawn here)."""
        mu, logvar = self.posterior(x)
        log_px = lambda z: losses.bernoulli_log_likelihood(self.decoder(z), x)
        return losses.gaussian_elbo_terms(mu, logvar, log_px, generator, eps)

    def _m1_loss(self, batch: Batch, generator: torch.Generator) -> dict[str, torch.Tensor]:
        eps = batch.randn(self.config.latent_dim, generator=generator)
        terms = self.m1_elbo_terms(batch.x, eps=eps)
        return {
            "loss": -terms["elbo"],
            "neg_elbo": -terms["elbo"].detach(),
            "kl": terms["kl"].detach(),
        }

    def _m2_loss(self, batch: Batch, generator: torch.Generator) -> dict[str, torch.Tensor]:
        codes = {}
        with torch.no_grad():  # z1 ~ q(z1|x): M2's data, fixed for M2's step
            for name, part in batch.streams.items():
                mu, logvar = self.posterior(part.x)
                eps = part.randn(self.config.latent_dim, generator=generator)
                codes[name] = StreamBatch(mu + (0.5 * logvar).exp() * eps, part.y, None, part.shard)
        return self.m2.players()[0].loss(Batch(codes, batch.iteration), generator)

    def players(self) -> list[Player]:
        lr = self.config.lr
        m1 = nn.ModuleList([self.encoder, self.decoder])
        return [
            Player("m1", m1, self._m1_loss, lambda p: adam(p, lr), streams=("unlabelled",)),
            Player("m2", self.m2, self._m2_loss, lambda p: adam(p, lr)),
        ]

    @torch.no_grad()
    def evaluate(self, batch: Batch, generator: torch.Generator) -> dict[str, torch.Tensor]:
        x = batch.x
        if "labelled" in batch.streams:
            return self.classification(x, batch.y)
        return {"neg_elbo": -self.m1_elbo_terms(x, generator)["elbo"]}

    def generate(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Styles z2 (n, m2_latent_dim) and labels (n,) (default :meth:`default_labels`) ->
        images (n, C, H, W) in [0, 1]: E[x | z1 = E[z1 | y, z2]]."""
        return torch.sigmoid(self.decoder(self.m2.generate(z, labels)))

    @torch.no_grad()
    def sample(
        self, n: int, generator: torch.Generator | None = None, labels: torch.Tensor | None = None
    ) -> torch.Tensor:
        """n images (n, C, H, W) in [0, 1] of classes ``labels`` (default: cycling)."""
        return self.generate(self.latent_prior(n, generator), labels)

    def preview(self, held_out, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """8 samples of every class (one class per column)."""
        return self.sample(8 * self.num_classes, generator)

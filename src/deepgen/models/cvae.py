"""Conditional variational autoencoder (Sohn, Lee & Yan 2015, "Learning Structured Output
Representation using Deep Conditional Generative Models").

A CVAE models an output t given a condition c through a latent z:
p(t|c) = E_{p(z|c)} p(t|c, z), trained on the conditional ELBO (eq. 4)

    log p(t|c) >= E_{q(z|c,t)} [log p(t|c, z)] - KL(q(z|c,t) || p(z|c)).

Two conditions, chosen by ``condition``:

- ``label``: t is the image, c its class (one-hot); p(z|c) = N(0, I). Samples come class by
  class, and every latent tool works with the class held fixed.
- ``quadrants``: the MNIST completion task of sec. 5.1. c is the image with only
  ``quadrants`` (1, 2 or 3) quadrants given, t the pixels of the others. Masks as in Pyro's
  reproduction: 1 = bottom-left, 2 = left half, 3 = all but the bottom-right. The prior
  p(z|c) is a network fed c with its missing pixels filled by a deterministic *baseline*
  network's guess (the paper's "recurrent connection"); the baseline is trained alongside,
  as its own player, on the same masked cross-entropy, and is the comparison the paper
  makes. Pixels are grey levels in [0, 1] scored with Bernoulli cross-entropy, as there.

Networks are MLPs with ``layers`` hidden ReLU layers of ``hidden_dim`` (the paper: 2 x 1000;
Pyro: 2 x 500). Reported in nats per image: ``neg_elbo``; for quadrants also ``ncll``, the
negative conditional log-likelihood -log p(t|c) by importance sampling with ``k`` draws
from q (eq. 9-10 of the paper, like IWAE), and ``baseline_ncll`` of the baseline network.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from .. import losses
from ..errors import ConfigError
from ..nets import MLP
from .base import (Batch, GenerativeModel, ModelConfig, Player, adam, cycling_labels, one_hot_labels,
                   register_model)


def quadrant_mask(given: int, height: int, width: int) -> torch.Tensor:
    """(H, W) bool, True on the ``given`` quadrants (1: bottom-left; 2: left half; 3: all but
    the bottom-right). Raises ConfigError for other counts."""
    if given not in (1, 2, 3):
        raise ConfigError(f"the number of given quadrants must be 1, 2 or 3, not {given}")
    known = torch.zeros(height, width, dtype=torch.bool)
    h, w = height // 2, width // 2
    known[h:, :w] = True
    if given >= 2:
        known[:, :w] = True
    if given == 3:
        known[:h, :] = True
    return known


class CVAEConfig(ModelConfig):
    """Condition, networks and training settings of a CVAE (Sohn et al. 2015)."""

    condition: Literal["label", "quadrants"] = Field(
        "label", description="label: class-conditional images; quadrants: complete images from given quadrants")
    quadrants: int = Field(1, ge=1, le=3, description="quadrants: how many quadrants are given (1, 2 or 3)")
    num_classes: int = Field(10, ge=2, le=10000, description="label: number of classes")
    latent_dim: int = Field(20, ge=1, le=4096, description="size of z")
    hidden_dim: int = Field(500, ge=1, le=65536, description="units per hidden layer")
    layers: int = Field(2, ge=1, le=8, description="hidden layers per network")
    k: int = Field(100, ge=1, le=5000, description="quadrants: importance samples for the evaluated ncll")
    lr: float = Field(1e-3, gt=0, description="Adam learning rate")
    preprocess: str = Field("unit", description="unit: grey levels in [0, 1], scored by Bernoulli cross-entropy")


@register_model
class CVAE(GenerativeModel):
    """A CVAE on images (B, C, H, W) in [0, 1]; see the module docstring for the two
    conditions. Per-example terms, (B,) nats: ``elbo`` = -``recon`` - ``kl``."""

    family = "cvae"
    Config = CVAEConfig
    has_encoder = True
    summary = ("neg_elbo", "nats")
    units = {"elbo": "nats", "recon": "nats", "kl": "nats", "neg_elbo": "nats", "ncll": "nats",
             "baseline_ncll": "nats", "loss": "nats"}
    evaluate_protocol = ("single-sample conditional ELBO per image; quadrants: also -log p(t|c) by "
                         "importance sampling with k draws from q(z|c,t), and the baseline's cross-entropy, "
                         "both over the missing pixels only")
    report_curves = [
        ("Negative conditional ELBO", "nats per image", [("cvae/loss", "-ELBO (training batches)"),
                                                         ("valid:neg_elbo", "-ELBO (validation split)")]),
    ]

    def __init__(self, config: CVAEConfig):
        super().__init__(config)
        if len(config.image_shape) != 3:
            raise ConfigError("a cvae models images (C, H, W), not points")
        d, L, h, n = math.prod(config.image_shape), config.latent_dim, config.hidden_dim, config.layers
        if config.condition == "label":
            c = config.num_classes
            self.recognition = MLP(d + c, 2 * L, h, n)  # q(z | x, y)
            self.generation = MLP(L + c, d, h, n)  # p(x | z, y)
        else:
            if config.image_shape[1] < 2 or config.image_shape[2] < 2:
                raise ConfigError(f"images of shape {config.image_shape} have no quadrants")
            self.baseline = MLP(d, d, h, n)  # deterministic guess of the missing pixels
            self.prior = MLP(d, 2 * L, h, n)  # p(z | c)
            self.recognition = MLP(d, 2 * L, h, n)  # q(z | c, t), from the whole image
            self.generation = MLP(L + d, d, h, n)  # p(t | c, z)
            self.summary = ("ncll", "nats")
            known = quadrant_mask(config.quadrants, *config.image_shape[1:]).expand(config.image_shape)
            self.register_buffer("known", known.flatten(), persistent=False)

    @property
    def latent_dim(self) -> int:
        return self.config.latent_dim

    @property
    def grid_nrow(self) -> int:
        return self.config.num_classes if self.by_label else 8

    @property
    def by_label(self) -> bool:
        return self.config.condition == "label"

    # --- label condition -------------------------------------------------------------

    def _one_hot(self, y: torch.Tensor | None, n: int) -> torch.Tensor:
        dtype = self.generation.net[0].weight.dtype
        return one_hot_labels(y, n, self.config.num_classes, dtype, "label-conditional cvae")

    def default_labels(self, n: int) -> torch.Tensor:
        """The classes samples cycle through: :func:`cycling_labels` (n,)."""
        return cycling_labels(n, self.config.num_classes, self.device)

    # --- quadrant condition ----------------------------------------------------------

    def condition_input(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, C, H, W) -> c (B, C*H*W): the given pixels, -1 at the missing ones."""
        flat = x.flatten(1)
        return torch.where(self.known, flat, torch.full_like(flat, -1.0))

    def _prior_params(self, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():  # the prior reads the baseline's guess but does not train it
            guess = torch.sigmoid(self.baseline(c))
        return self.prior(torch.where(self.known, c, guess)).chunk(2, dim=1)

    def _log_p_missing(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Bernoulli log-likelihood of the missing pixels: (..., D) -> (...) nats."""
        bce = F.binary_cross_entropy_with_logits(logits, target.expand_as(logits), reduction="none")
        return -(bce * ~self.known).sum(-1)

    def _baseline_loss(self, batch: Batch, generator: torch.Generator) -> dict[str, torch.Tensor]:
        x = batch.x.flatten(1)
        loss = -self._log_p_missing(self.baseline(self.condition_input(batch.x)), x)
        return {"loss": loss}

    # --- both ------------------------------------------------------------------------

    def elbo_terms(self, batch: Batch, eps: torch.Tensor | None = None,
                   generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """{"elbo", "recon", "kl"}, each (B,) nats, from one reparameterised z ~ q(z|c, t)
        (``eps`` (B, latent_dim): the standard normal draw to use)."""
        x = batch.x.flatten(1)
        if self.by_label:
            y = self._one_hot(batch.y, len(x))
            mu, logvar = self.recognition(torch.cat([x, y], 1)).chunk(2, dim=1)
            z = losses.reparameterize(mu, logvar, generator, eps)
            log_p = losses.bernoulli_log_likelihood(self.generation(torch.cat([z, y], 1)), x)
            kl = losses.kl_normal_std_normal(mu, logvar)
        else:
            c = self.condition_input(batch.x)
            mu, logvar = self.recognition(x).chunk(2, dim=1)
            mu_p, logvar_p = self._prior_params(c)
            z = losses.reparameterize(mu, logvar, generator, eps)
            log_p = self._log_p_missing(self.generation(torch.cat([z, c], 1)), x)
            kl = losses.kl_normal_normal(mu, logvar, mu_p, logvar_p)
        return {"elbo": losses.elbo(log_p, kl), "recon": -log_p, "kl": kl}

    def _loss(self, batch: Batch, generator: torch.Generator) -> dict[str, torch.Tensor]:
        terms = self.elbo_terms(batch, batch.randn(self.latent_dim, generator=generator))
        return {"loss": -terms["elbo"], **{k: v.detach() for k, v in terms.items()}}

    def players(self) -> list[Player]:
        lr = self.config.lr
        if self.by_label:
            return [Player("cvae", self, self._loss, lambda p: adam(p, lr))]
        cvae = nn.ModuleList([self.prior, self.recognition, self.generation])
        return [Player("baseline", self.baseline, self._baseline_loss, lambda p: adam(p, lr)),
                Player("cvae", cvae, self._loss, lambda p: adam(p, lr))]

    def selection(self) -> dict[str, str]:
        """Quadrants: the baseline is selected on its own NCLL and the CVAE on its NCLL, each
        at its best epoch, as Pyro's example early-stops them separately (the test figures
        are then measured on that pair)."""
        if self.by_label:
            return super().selection()
        return {"baseline": "baseline_ncll", "cvae": "ncll"}

    def conditional_log_likelihood(self, x: torch.Tensor, k: int,
                                   generator: torch.Generator | None = None) -> torch.Tensor:
        """Quadrants: log p(t|c) estimated with ``k`` importance samples z_i ~ q(z|c, t),
        log (1/k) sum_i p(t|c, z_i) p(z_i|c) / q(z_i|c, t) (Sohn et al. 2015, sec. 4.2):
        (B,) nats, a stochastic lower bound that tightens as k grows. x: (B, C, H, W)."""
        flat, c = x.flatten(1), self.condition_input(x)
        mu, logvar = self.recognition(flat).chunk(2, dim=1)
        mu_p, logvar_p = self._prior_params(c)
        log_w = []
        for start in range(0, k, 10):  # 10 draws at a time bounds the memory
            m = min(10, k - start)
            eps = torch.randn((m, *mu.shape), generator=generator, device=mu.device, dtype=mu.dtype)
            z = mu + torch.exp(0.5 * logvar) * eps  # (m, B, L)
            logits = self.generation(torch.cat([z, c.expand(m, *c.shape)], 2))
            log_w.append(self._log_p_missing(logits, flat) + losses.log_normal(z, mu_p, logvar_p)
                         - losses.log_normal(z, mu, logvar))
        return losses.iwae_bound(torch.cat(log_w))

    def evaluate(self, batch: Batch, generator: torch.Generator) -> dict[str, torch.Tensor]:
        terms = self.elbo_terms(batch, generator=generator)
        terms["neg_elbo"] = -terms["elbo"]
        if not self.by_label:
            terms["ncll"] = -self.conditional_log_likelihood(batch.x, self.config.k, generator)
            terms["baseline_ncll"] = self._baseline_loss(batch, generator)["loss"]
        return terms

    # --- sampling --------------------------------------------------------------------

    def latent_prior(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Label: z ~ N(0, I), (n, latent_dim). Quadrants: raises ConfigError (the prior
        depends on the given pixels; see :meth:`complete`)."""
        self._need_label("draw z without given pixels")
        return torch.randn(n, self.latent_dim, generator=generator, device=self.device)

    def generate(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Label: z (n, latent_dim) and labels (n,) (default :meth:`default_labels`) ->
        E[x|z, y] (n, C, H, W) in [0, 1]."""
        self._need_label("generate from z alone")
        labels = self.default_labels(len(z)) if labels is None else labels.to(self.device)
        out = self.generation(torch.cat([z, self._one_hot(labels, len(z))], 1))
        return torch.sigmoid(out).view(len(z), *self.image_shape)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None,
               labels: torch.Tensor | None = None) -> torch.Tensor:
        """Label: n images (n, C, H, W) in [0, 1], classes ``labels`` (n,) or cycling
        0, 1, ..., so a grid with ``num_classes`` columns has one class per column."""
        return self.generate(self.latent_prior(n, generator), labels)

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Label: x (B, C, H, W) and its labels -> E[x | z = mu(x, y), y]; quadrants: the
        completion from z = mu of the prior given x's known quadrants."""
        if not self.by_label:
            return self.complete(x)[0]
        labels = self.default_labels(len(x)) if labels is None else labels.to(self.device)
        mu, _ = self.recognition(torch.cat([x.flatten(1), self._one_hot(labels, len(x))], 1)).chunk(2, dim=1)
        return self.generate(mu, labels)

    @torch.no_grad()
    def complete(self, x: torch.Tensor, samples: int = 1, generator: torch.Generator | None = None,
                 baseline: bool = False) -> torch.Tensor:
        """Quadrants: fill the missing pixels of x (B, C, H, W) in [0, 1] (their values are
        ignored). Returns (samples, B, C, H, W): the given pixels kept, the missing ones
        E[t|c, z] for z ~ p(z|c) (``samples`` draws; with generator None and samples 1, z is
        the prior mean), or the baseline's guess when ``baseline``."""
        if self.by_label:
            raise ConfigError("completion needs a cvae trained with condition=quadrants")
        c = self.condition_input(x)
        if baseline:
            guesses = torch.sigmoid(self.baseline(c)).unsqueeze(0)
        else:
            mu_p, logvar_p = self._prior_params(c)
            if generator is None and samples == 1:
                z = mu_p.unsqueeze(0)
            else:
                eps = torch.randn((samples, *mu_p.shape), generator=generator, device=c.device, dtype=c.dtype)
                z = mu_p + torch.exp(0.5 * logvar_p) * eps
            guesses = torch.sigmoid(self.generation(torch.cat([z, c.expand(len(z), *c.shape)], 2)))
        filled = torch.where(self.known, c, guesses)
        return filled.view(len(filled), len(x), *self.image_shape)

    def preview(self, images: torch.Tensor, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Label: 8 samples of every class (one class per column). Quadrants: rows of 8
        held-out images, their given quadrants only (missing pixels grey), then completions."""
        if self.by_label:
            return self.sample(8 * self.config.num_classes, generator)
        x = self.preprocess(images[: n // 2].to(self.device), generator)
        given = torch.where(self.known, x.flatten(1), torch.full_like(x.flatten(1), 0.5)).view_as(x)
        filled = self.complete(x, 1, generator)[0]
        rows = [t for i in range(0, len(x), 8) for t in (given[i:i + 8], filled[i:i + 8])]
        return torch.cat(rows)

    def _need_label(self, what: str) -> None:
        if not self.by_label:
            raise ConfigError(f"a quadrant-completion cvae cannot {what}: it completes given images; "
                              "use `deepgen latent RUN complete` or CVAE.complete(x)")

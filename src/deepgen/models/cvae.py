"""Conditional variational autoencoders (Sohn, Lee & Yan 2015, "Learning Structured Output
Representation using Deep Conditional Generative Models").

A CVAE models an output t given a condition c through a latent z:
p(t|c) = E_{p(z|c)} p(t|c, z), trained on the conditional ELBO (eq. 4)

    log p(t|c) >= E_{q(z|c,t)} [log p(t|c, z)] - KL(q(z|c,t) || p(z|c)).

Two families, one per condition:

- ``cvae``: t is the image, c its class (one-hot); p(z|c) = N(0, I). Samples come class by
  class, and every latent tool works with the class held fixed.
- ``cvae-quadrants``: the MNIST completion task of sec. 5.1. c is the image with only
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

import torch
from pydantic import Field
from torch import nn

from .. import losses
from ..errors import ConfigError
from ..nets import MLP
from .base import ModelConfig, adam, one_hot_labels
from .capabilities import Completer, Conditional, Encoder, LatentSpace
from .contract import Batch, GenerativeModel, Player, register_model


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
    """Networks and training settings every CVAE has (Sohn et al. 2015)."""

    latent_dim: int = Field(20, ge=1, le=4096, description="size of z")
    hidden_dim: int = Field(500, ge=1, le=65536, description="units per hidden layer")
    layers: int = Field(2, ge=1, le=8, description="hidden layers per network")
    lr: float = Field(1e-3, gt=0, description="Adam learning rate")
    preprocess: str = Field(
        "unit", description="unit: grey levels in [0, 1], scored by Bernoulli cross-entropy"
    )


class LabelCVAEConfig(CVAEConfig):
    """A CVAE's settings plus the number of classes it is conditioned on."""

    num_classes: int = Field(
        10, ge=2, le=10000, description="number of classes (labels 0 .. num_classes-1)"
    )


class QuadrantCVAEConfig(CVAEConfig):
    """A CVAE's settings plus how many quadrants are given and the evaluation's k."""

    quadrants: int = Field(1, ge=1, le=3, description="how many quadrants are given (1, 2 or 3)")
    k: int = Field(100, ge=1, le=5000, description="importance samples for the evaluated ncll")


class _CVAE(GenerativeModel):
    """What both CVAEs share: images only, the terms they report and their units."""

    summary = ("neg_elbo", "nats")
    units = {
        "elbo": "nats",
        "recon": "nats",
        "kl": "nats",
        "neg_elbo": "nats",
        "ncll": "nats",
        "baseline_ncll": "nats",
        "loss": "nats",
    }
    report_curves = [
        (
            "Negative conditional ELBO",
            "nats per image",
            [
                ("cvae/loss", "-ELBO (training batches)"),
                ("valid:neg_elbo", "-ELBO (validation split)"),
            ],
        ),
    ]

    def __init__(self, config: CVAEConfig):
        super().__init__(config)
        if len(self.data_shape) != 3:
            raise ConfigError(
                f"a {self.family} models images (C, H, W), not data of shape {self.data_shape}"
            )

    @property
    def latent_dim(self) -> int:
        return self.config.latent_dim

    def _loss(self, batch: Batch, generator: torch.Generator) -> dict[str, torch.Tensor]:
        terms = self.elbo_terms(batch, batch.randn(self.latent_dim, generator=generator))
        return {"loss": -terms["elbo"], **{k: v.detach() for k, v in terms.items()}}

    def elbo_terms(
        self,
        batch: Batch,
        eps: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> dict[str, torch.Tensor]:
        raise NotImplementedError


@register_model
class CVAE(LatentSpace, Encoder, Conditional, _CVAE):
    """The label-conditional CVAE on images (B, C, H, W) in [0, 1]: q(z|x, y), p(x|z, y),
    p(z) = N(0, I). Per-example terms, (B,) nats: ``elbo`` = -``recon`` - ``kl``."""

    family = "cvae"
    title = "label-conditional VAE (Sohn et al. 2015)"
    Config = LabelCVAEConfig
    evaluate_protocol = "single-sample conditional ELBO per image, given its label"

    def __init__(self, config: LabelCVAEConfig):
        super().__init__(config)
        d, L, h, n, c = (
            math.prod(self.data_shape),
            config.latent_dim,
            config.hidden_dim,
            config.layers,
            config.num_classes,
        )
        self.recognition = MLP(d + c, 2 * L, h, n)  # q(z | x, y)
        self.generation = MLP(L + c, d, h, n)  # p(x | z, y)

    @property
    def num_classes(self) -> int:
        return self.config.num_classes

    def _one_hot(self, y: torch.Tensor | None, n: int) -> torch.Tensor:
        dtype = self.generation.net[0].weight.dtype
        return one_hot_labels(y, n, self.config.num_classes, dtype, "label-conditional cvae")

    def posterior(
        self, x: torch.Tensor, labels: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """q(z|x, y): images (B, C, H, W) and labels (B,) -> (mu, logvar), each (B, latent_dim)."""
        mu, logvar = self.recognition(
            torch.cat([x.flatten(1), self._one_hot(labels, len(x))], 1)
        ).chunk(2, dim=1)
        return mu, logvar

    def elbo_terms(
        self,
        batch: Batch,
        eps: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> dict[str, torch.Tensor]:
        """{"elbo", "recon", "kl"}, each (B,) nats, from one reparameterised z ~ q(z|x, y)
        (``eps`` (B, latent_dim): the standard normal draw to use)."""
        x = batch.x.flatten(1)
        mu, logvar = self.posterior(batch.x, batch.y)
        z = losses.reparameterize(mu, logvar, generator, eps)
        log_p = losses.bernoulli_log_likelihood(
            self.generation(torch.cat([z, self._one_hot(batch.y, len(x))], 1)), x
        )
        kl = losses.kl_normal_std_normal(mu, logvar)
        return {"elbo": losses.elbo(log_p, kl), "recon": -log_p, "kl": kl}

    def players(self) -> list[Player]:
        lr = self.config.lr
        return [Player("cvae", self, self._loss, lambda p: adam(p, lr))]

    def evaluate(self, batch: Batch, generator: torch.Generator) -> dict[str, torch.Tensor]:
        terms = self.elbo_terms(batch, generator=generator)
        terms["neg_elbo"] = -terms["elbo"]
        return terms

    def generate(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """z (n, latent_dim) and labels (n,) (default :meth:`default_labels`) -> E[x|z, y]
        (n, C, H, W) in [0, 1]."""
        labels = self.default_labels(len(z)) if labels is None else labels.to(self.device)
        out = self.generation(torch.cat([z, self._one_hot(labels, len(z))], 1))
        return torch.sigmoid(out).view(len(z), *self.data_shape)

    @torch.no_grad()
    def sample(
        self, n: int, generator: torch.Generator | None = None, labels: torch.Tensor | None = None
    ) -> torch.Tensor:
        """n images (n, C, H, W) in [0, 1], classes ``labels`` (n,) or cycling 0, 1, ..., so
        a grid with ``num_classes`` columns has one class per column."""
        return self.generate(self.latent_prior(n, generator), labels)

    def encode(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, C, H, W) and labels (B,) (default :meth:`default_labels`) -> mu(x, y)."""
        labels = self.default_labels(len(x)) if labels is None else labels.to(self.device)
        return self.posterior(x, labels)[0]

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, C, H, W) and its labels -> E[x | z = mu(x, y), y] in [0, 1]."""
        labels = self.default_labels(len(x)) if labels is None else labels.to(self.device)
        return self.generate(self.encode(x, labels), labels)

    def preview(self, held_out, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """8 samples of every class (one class per column)."""
        return self.sample(8 * self.config.num_classes, generator)


@register_model
class QuadrantCVAE(Completer, _CVAE):
    """Sohn et al.'s quadrant completion on images (B, C, H, W) in [0, 1]: a baseline network
    and a CVAE with a conditional prior, two players; see the module docstring."""

    family = "cvae-quadrants"
    title = "CVAE completing MNIST from given quadrants (Sohn et al. 2015, sec. 5.1)"
    Config = QuadrantCVAEConfig
    summary = ("ncll", "nats")
    evaluate_protocol = (
        "single-sample conditional ELBO per image; -log p(t|c) by importance sampling "
        "with k draws from q(z|c,t), and the baseline's cross-entropy, both over the "
        "missing pixels only"
    )

    def __init__(self, config: QuadrantCVAEConfig):
        super().__init__(config)
        if self.data_shape[1] < 2 or self.data_shape[2] < 2:
            raise ConfigError(f"images of shape {self.data_shape} have no quadrants")
        d, L, h, n = math.prod(self.data_shape), config.latent_dim, config.hidden_dim, config.layers
        self.baseline = MLP(d, d, h, n)  # deterministic guess of the missing pixels
        self.prior = MLP(d, 2 * L, h, n)  # p(z | c)
        self.recognition = MLP(d, 2 * L, h, n)  # q(z | c, t), from the whole image
        self.generation = MLP(L + d, d, h, n)  # p(t | c, z)
        known = quadrant_mask(config.quadrants, *self.data_shape[1:]).expand(self.data_shape)
        self.register_buffer("known", known.flatten(), persistent=False)

    def known_mask(self) -> torch.Tensor:
        return self.known.view(self.data_shape)

    def condition_input(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, C, H, W) -> c (B, C*H*W): the given pixels, -1 at the missing ones."""
        flat = x.flatten(1)
        return torch.where(self.known, flat, torch.full_like(flat, -1.0))

    def _prior_params(self, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():  # the prior reads the baseline's guess but does not train it
            guess = torch.sigmoid(self.baseline(c))
        return self.prior(torch.where(self.known, c, guess)).chunk(2, dim=1)

    def _log_p_missing(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Bernoulli log-likelihood of the missing pixels: logits (..., D), target (B, D) ->
        (...) nats."""
        return (losses.bernoulli_log_prob(logits, target) * ~self.known).sum(-1)

    def _baseline_loss(self, batch: Batch, generator: torch.Generator) -> dict[str, torch.Tensor]:
        loss = -self._log_p_missing(
            self.baseline(self.condition_input(batch.x)), batch.x.flatten(1)
        )
        return {"loss": loss}

    def elbo_terms(
        self,
        batch: Batch,
        eps: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> dict[str, torch.Tensor]:
        """{"elbo", "recon", "kl"}, each (B,) nats, from one reparameterised z ~ q(z|c, t)
        (``eps`` (B, latent_dim): the standard normal draw to use)."""
        x, c = batch.x.flatten(1), self.condition_input(batch.x)
        mu, logvar = self.recognition(x).chunk(2, dim=1)
        mu_p, logvar_p = self._prior_params(c)
        z = losses.reparameterize(mu, logvar, generator, eps)
        log_p = self._log_p_missing(self.generation(torch.cat([z, c], 1)), x)
        kl = losses.kl_normal_normal(mu, logvar, mu_p, logvar_p)
        return {"elbo": losses.elbo(log_p, kl), "recon": -log_p, "kl": kl}

    def players(self) -> list[Player]:
        lr = self.config.lr
        cvae = nn.ModuleList([self.prior, self.recognition, self.generation])
        return [
            Player("baseline", self.baseline, self._baseline_loss, lambda p: adam(p, lr)),
            Player("cvae", cvae, self._loss, lambda p: adam(p, lr)),
        ]

    def selection(self) -> dict[str, str]:
        """The baseline is selected on its own NCLL and the CVAE on its NCLL, each at its best
        epoch, as Pyro's example early-stops them separately (the test figures are then
        measured on that pair)."""
        return {"baseline": "baseline_ncll", "cvae": "ncll"}

    def conditional_log_likelihood(
        self, x: torch.Tensor, k: int, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """log p(t|c) estimated with ``k`` importance samples z_i ~ q(z|c, t),
        log (1/k) sum_i p(t|c, z_i) p(z_i|c) / q(z_i|c, t) (Sohn et al. 2015, sec. 4.2):
        (B,) nats, a stochastic lower bound that tightens as k grows. x: (B, C, H, W)."""
        flat, c = x.flatten(1), self.condition_input(x)
        mu, logvar = self.recognition(flat).chunk(2, dim=1)
        mu_p, logvar_p = self._prior_params(c)
        log_w = []
        for start in range(0, k, 10):  # 10 draws at a time bounds the memory
            m = min(10, k - start)
            eps = torch.randn((m, *mu.shape), generator=generator, device=mu.device, dtype=mu.dtype)
            z = losses.reparameterize(mu, logvar, eps=eps)  # (m, B, L)
            logits = self.generation(torch.cat([z, c.expand(m, *c.shape)], 2))
            log_w.append(
                self._log_p_missing(logits, flat)
                + losses.log_normal(z, mu_p, logvar_p)
                - losses.log_normal(z, mu, logvar)
            )
        return losses.iwae_bound(torch.cat(log_w))

    def evaluate(self, batch: Batch, generator: torch.Generator) -> dict[str, torch.Tensor]:
        terms = self.elbo_terms(batch, generator=generator)
        terms["neg_elbo"] = -terms["elbo"]
        terms["ncll"] = -self.conditional_log_likelihood(batch.x, self.config.k, generator)
        terms["baseline_ncll"] = self._baseline_loss(batch, generator)["loss"]
        return terms

    @torch.no_grad()
    def complete(
        self, x: torch.Tensor, samples: int = 1, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Fill the missing pixels of x (B, C, H, W) in [0, 1] (their values are ignored).
        Returns (samples, B, C, H, W): the given pixels kept, the missing ones E[t|c, z] for
        z ~ p(z|c) (``samples`` draws; with generator None and samples 1, z is the prior mean)."""
        c = self.condition_input(x)
        mu_p, logvar_p = self._prior_params(c)
        if generator is None and samples == 1:
            z = mu_p.unsqueeze(0)
        else:
            eps = torch.randn(
                (samples, *mu_p.shape), generator=generator, device=c.device, dtype=c.dtype
            )
            z = losses.reparameterize(mu_p, logvar_p, eps=eps)
        guesses = torch.sigmoid(self.generation(torch.cat([z, c.expand(len(z), *c.shape)], 2)))
        return torch.where(self.known, c, guesses).view(len(z), len(x), *self.data_shape)

    @torch.no_grad()
    def reference_completions(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """{"baseline": the baseline network's guess at the missing pixels (B, C, H, W)}."""
        c = self.condition_input(x)
        filled = torch.where(self.known, c, torch.sigmoid(self.baseline(c)))
        return {"baseline": filled.view_as(x)}

    def preview(self, held_out, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Rows of 8 held-out images, their given quadrants only (missing pixels grey), then
        completions."""
        x = self.preprocess(held_out[self.streams[0]][: n // 2].to(self.device), generator)
        given = torch.where(self.known, x.flatten(1), torch.full_like(x.flatten(1), 0.5)).view_as(x)
        filled = self.complete(x, 1, generator)[0]
        rows = [t for i in range(0, len(x), 8) for t in (given[i : i + 8], filled[i : i + 8])]
        return torch.cat(rows)

"""Capabilities: what a model family can do, declared by inheriting these classes, and
asked for by every tool with :func:`require` (or :func:`supports`).

A family lists its capabilities before the base class, so a capability's defaults (e.g. a
conditional model's grid width, a sampler's preview) take precedence::

    @register_model
    class VAE(LatentSpace, Encoder, ImportanceWeighted, GenerativeModel): ...

Tools never ask what class a model is, only what it can do::

    require(model, LatentSpace, "deepgen latent interpolate")

returns the model or raises a one-line :class:`MissingCapability` naming the tool, the
missing capability, what the model has and which families have it. This module is the
only place that tests a model's type.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch

from ..errors import ConfigError
from .contract import MODELS, GenerativeModel


class Capability:
    """Base of the capability classes: a family inherits the ones it has."""


class Sampler(Capability):
    """Draws new examples of its data."""

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` examples: images (n, C, H, W) in [0, 1], points (n, D). Conditional models
        also take ``labels`` (n,)."""
        raise NotImplementedError

    def preview(
        self, held_out: Mapping[str, torch.Tensor], n: int, generator: torch.Generator | None = None
    ) -> torch.Tensor | None:
        """The run folder's sample grids: ``n`` samples."""
        return self.sample(n, generator)


class LatentSpace(Sampler):
    """Decodes latent codes z (n, latent_dim) into examples; samples are the decoded draws
    of its prior. Interpolation, traversal, the manifold grid and completion by
    optimising z use this."""

    latent_dim: int

    def latent_prior(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n codes (n, latent_dim) from the distribution ``sample`` decodes."""
        return self.from_standard(
            torch.randn(n, self.latent_dim, generator=generator, device=self.device)
        )

    def from_standard(self, u: torch.Tensor) -> torch.Tensor:
        """Standard normal coordinates u (n, latent_dim) -> codes of the same prior
        quantiles (the identity for a N(0, I) prior; an autoencoder scales by its codes'
        spread). The manifold grid and traversal spans are in these units."""
        return u

    def generate(self, z: torch.Tensor) -> torch.Tensor:
        """Codes z (n, latent_dim) -> examples (images in [0, 1] or points), differentiable
        in z."""
        raise NotImplementedError

    def prior_energy(self, z: torch.Tensor, decoded: torch.Tensor) -> torch.Tensor:
        """The prior term completion by optimising z minimises, (n,): -log p(z) up to a
        constant, 0.5 ||u||^2 with u the standard coordinates (Yeh et al. 2017 use the
        discriminator instead; a GAN overrides this)."""
        u = self.to_standard(z)
        return 0.5 * u.pow(2).sum(1)

    def to_standard(self, z: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`from_standard`."""
        return z

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.generate(self.latent_prior(n, generator))


class Encoder(Capability):
    """Maps examples to latent codes and back."""

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Model inputs x (B, ...) -> codes (B, latent_dim) (a VAE: the posterior mean)."""
        raise NotImplementedError

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Model inputs (B, ...) -> reconstructions (images in [0, 1])."""
        raise NotImplementedError


class Conditional(Capability):
    """Samples, generates and reconstructs given class labels: ``sample``, ``generate`` and
    ``reconstruct`` take ``labels`` (n,) int64 in [0, num_classes), defaulting to
    :meth:`default_labels`."""

    num_classes: int

    def default_labels(self, n: int) -> torch.Tensor:
        """0, 1, ..., num_classes - 1, 0, 1, ... (n,): one class per column of a grid of
        ``num_classes`` columns."""
        return torch.arange(n, device=self.device) % self.num_classes

    @property
    def grid_nrow(self) -> int:
        return self.num_classes


class Completer(Capability):
    """Completes examples of which only a known region is given (amortised, no search)."""

    def known_mask(self) -> torch.Tensor:
        """(C, H, W) bool, True where pixels are given."""
        raise NotImplementedError

    def complete(
        self, x: torch.Tensor, samples: int = 1, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Fill the unknown pixels of x (B, C, H, W) in [0, 1]: (samples, B, C, H, W)."""
        raise NotImplementedError

    def reference_completions(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Other completions to show beside the model's, by name, each (B, C, H, W)."""
        return {}


class Likelihood(Capability):
    """Gives log p(x): exactly (:class:`ExactDensity`) or through importance weights
    (:class:`ImportanceWeighted`)."""


class ImportanceWeighted(Likelihood):
    """log p(x, z_i) - log q(z_i | x) for draws z_i ~ q(z|x): the input of the IWAE bound."""

    def log_importance_weights(
        self,
        x: torch.Tensor,
        n: int,
        generator: torch.Generator | None = None,
        eps: torch.Tensor | None = None,
        decoder_dtype: torch.dtype | None = None,
    ) -> torch.Tensor:
        """Model inputs x (B, ...) -> log weights (n, B), nats; ``decoder_dtype``: run the
        decoder alone in that dtype under autocast (None: the model's own)."""
        raise NotImplementedError


class ExactDensity(Likelihood):
    """An exact log-density."""

    def log_density(self, x: torch.Tensor) -> torch.Tensor:
        """Model inputs x (B, ...) -> log p(x) (B,), nats."""
        raise NotImplementedError


class DensityRatio(Capability):
    """A discriminator whose logit estimates log p_data(x) / p_model(x) (what discriminator
    rejection sampling needs, Azadi et al. 2019). ``pack``: how many consecutive samples
    it judges at once (PacGAN; 1 without packing)."""

    pack: int

    def log_density_ratio(self, samples: torch.Tensor) -> torch.Tensor:
        """Samples (n, ...) as ``sample`` returns them -> (n / pack,) logits, each the
        estimate for one pack of ``pack`` consecutive samples (the sum of their log ratios)."""
        raise NotImplementedError


class Translator(Capability):
    """Maps examples of one stream to another's (x -> y), by named direction. A direction
    is named ``FROM-to-TO`` after its two streams, e.g. ``source-to-target``."""

    directions: ClassVar[tuple[str, ...]] = ()

    def translate(self, x: torch.Tensor, direction: str) -> torch.Tensor:
        """Model inputs x (B, ...) of the direction's first stream -> examples of its second
        (images in [0, 1])."""
        raise NotImplementedError

    def direction_streams(self, direction: str) -> tuple[str, str]:
        """(from stream, to stream) of ``direction``; raises ConfigError for an unknown one."""
        if direction not in self.directions:
            raise ConfigError(
                f"a {self.family} translates {', '.join(self.directions)}, not {direction!r}"
            )
        source, _, target = direction.partition("-to-")
        return source, target


class Classifier(Capability):
    """Predicts class labels. ``accuracy_stream``: the stream whose test split measures it
    (default: the model's first stream)."""

    num_classes: int
    accuracy_stream: ClassVar[str | None] = None

    def class_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Model inputs x (B, ...) -> logits (B, num_classes)."""
        raise NotImplementedError


class Strings(Capability):
    """Maps strings to latent codes and back (a model of a grammar's strings)."""

    def encode_strings(self, strings: list[str]) -> torch.Tensor:
        """Strings -> latent codes (n, latent_dim) (the posterior means).

        Raises: GrammarError (a DataError) for a string the model cannot read."""
        raise NotImplementedError

    def decode_strings(
        self, z: torch.Tensor, generator: torch.Generator | None = None
    ) -> list[str | None]:
        """Latent codes (n, latent_dim) -> n strings, None where the decoded sequence is not
        a string of the grammar. Greedy without a generator; sampled with one."""
        raise NotImplementedError


class ClosedForm(Capability):
    """Fitted in closed form (e.g. by EM) instead of by gradient steps: ``players()`` is []."""

    def fit_closed_form(self, x: torch.Tensor, seed: int = 0) -> str:
        """Fit on the training split's model inputs x; returns a line for the log."""
        raise NotImplementedError


class MissingCapability(ConfigError):
    """A tool was asked of a model that lacks the capability it needs."""


def supports(model: GenerativeModel, capability: type[Capability]) -> bool:
    """Whether ``model`` has ``capability`` (declared by its family, not withheld by its config)."""
    return isinstance(model, capability) and capability not in model.withheld()


def require(model: GenerativeModel, capability: type[Capability], tool: str) -> Any:
    """``model`` if it has ``capability``; else raises :class:`MissingCapability`, one line
    naming the tool, the capability and the families that have it."""
    if supports(model, capability):
        return model
    why = model.withheld().get(capability)
    if why:
        raise MissingCapability(
            f"{tool} needs {capability.__name__}, and this {model.family} lacks it: {why}"
        )
    having = [name for name, cls in MODELS.items() if issubclass(cls, capability)]
    own = ", ".join(c.__name__ for c in capabilities(model)) or "none"
    raise MissingCapability(
        f"{tool} needs {capability.__name__}; a {model.family} does not have it (it has: "
        f"{own}; families with {capability.__name__}: {', '.join(having) or 'none'})"
    )


def capabilities(model: GenerativeModel) -> list[type[Capability]]:
    """The capabilities ``model`` has, most specific first (e.g. LatentSpace, not also Sampler)."""
    found = [
        c
        for c in type(model).__mro__
        if issubclass(c, Capability)
        and not issubclass(c, GenerativeModel)
        and c is not Capability
        and supports(model, c)
    ]
    return [c for c in found if not any(o is not c and issubclass(o, c) for o in found)]

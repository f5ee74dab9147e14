"""Latent-space pictures for every model with a decoder or generator: interpolation
(linear or spherical), traversal of one coordinate at a time, the 2-D manifold grid, latent
arithmetic (Radford et al. 2015), image completion by optimising z (Yeh et al. 2017) and
the nearest training images of samples, and the analogies of a conditional model with an
encoder (Kingma et al. 2014, Figure 1).

Each tool is a function returning (images (N, C, H, W) in [0, 1], images per row) and is
registered by name, with the captions its standalone picture carries, for ``deepgen latent
RUN TOOL``; the tools that need data take the run's ``dataset``. Each asks the model for
the capability it needs (:class:`LatentSpace`, :class:`Encoder`, :class:`Completer`) and
says which is missing. Codes come from
``model.latent_prior`` (the prior of a VAE or GAN; the training codes' moments for an
autoencoder); spans and grids are in the prior's standard units (``from_standard``).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass

import torch

from .errors import ConfigError, option
from .latent_data import (
    analogies,
    analogy_captions,
    arithmetic,
    arithmetic_captions,
    complete,
    completion_captions,
    latent_images,
    neighbour_captions,
    neighbours,
)
from .models.capabilities import Completer, Conditional, Encoder, LatentSpace, Sampler, supports
from .registry import Registry
from .viz import Captions

LATENT_TOOLS: Registry = Registry("latent tool")


def lerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """(1 - t) a + t b for codes a, b (n, D) and fractions t (T,) -> (n, T, D)."""
    t = t.view(1, -1, 1)
    return (1 - t) * a[:, None] + t * b[:, None]


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation (Shoemake 1985; used for GAN latents by White 2016):
    sin((1-t) w)/sin w a + sin(t w)/sin w b, w the angle between a and b; (n, T, D). Falls
    back to :func:`lerp` for (nearly) parallel codes."""
    cos = torch.nn.functional.cosine_similarity(a, b, dim=1).clamp(-1.0, 1.0)
    omega = torch.acos(cos).view(-1, 1, 1)
    t = t.view(1, -1, 1)
    sin = torch.sin(omega)
    out = (
        torch.sin((1 - t) * omega) * a[:, None] + torch.sin(t * omega) * b[:, None]
    ) / sin.clamp_min(1e-6)
    return torch.where(sin > 1e-6, out, lerp(a, b, t.flatten()))


@torch.no_grad()
def interpolate(model, rows: int = 8, steps: int = 10, mode: str = "linear", seed: int = 0):
    """``rows`` pairs of codes from the prior, each joined by ``steps`` codes (ends included).

    Returns (images (rows * steps, C, H, W), steps).
    Raises: ConfigError for an unknown mode; MissingCapability without a LatentSpace.
    """
    latent_images(model, "latent interpolate")
    if mode not in ("linear", "spherical"):
        raise ConfigError(f"interpolation mode must be linear or spherical, not {mode!r}")
    gen = torch.Generator(device=model.device).manual_seed(seed)
    a, b = model.latent_prior(rows, gen), model.latent_prior(rows, gen)
    t = torch.linspace(0, 1, steps, device=a.device)
    z = (lerp if mode == "linear" else slerp)(a, b, t)
    return model.generate(z.reshape(rows * steps, -1)), steps


@torch.no_grad()
def traverse(
    model,
    rows: int = 10,
    steps: int = 9,
    span: float = 3.0,
    seed: int = 0,
    dims: tuple[int, ...] | None = None,
):
    """The lectures' latent perturbation: one code from the prior; row i varies one
    coordinate (``dims[i]``; default the first ``rows``) over ``steps`` values in
    [-span, span] (prior standard deviations) and holds the rest.

    Returns (images (rows * steps, C, H, W), steps).
    Raises: ConfigError for a coordinate outside [0, latent_dim) or span <= 0.
    """
    latent_images(model, "latent traverse")
    gen = torch.Generator(device=model.device).manual_seed(seed)
    base = model.to_standard(model.latent_prior(1, gen))[0]
    dims = traversed(model, rows, dims)
    if not span > 0:
        raise ConfigError(f"the traversal span must be positive, not {span}")
    values = torch.linspace(-span, span, steps, device=base.device)
    u = base.repeat(len(dims), steps, 1)  # (rows, steps, D)
    for row, dim in enumerate(dims):
        u[row, :, dim] = values
    return model.generate(model.from_standard(u.reshape(len(dims) * steps, -1))), steps


def traversed(model, rows: int, dims: tuple[int, ...] | None) -> tuple[int, ...]:
    """The latent coordinates a traversal varies: ``dims``, checked, or the first ``rows``."""
    if dims is None:
        return tuple(range(min(rows, model.latent_dim)))
    bad = [d for d in dims if not 0 <= d < model.latent_dim]
    if bad or not dims:
        raise ConfigError(
            f"latent coordinates run from 0 to {model.latent_dim - 1}, not {bad or 'none'}"
        )
    return tuple(dims)


@torch.no_grad()
def manifold(model, n: int = 20, seed: int = 0):
    """Kingma & Welling's figure 4: for a 2-D latent space, codes on an n x n grid of the
    inverse Gaussian CDF of evenly spaced probabilities in (0, 1), decoded (for an
    autoencoder, scaled by its codes' running moments).

    Returns (images (n * n, C, H, W), n).
    Raises: MissingCapability without a LatentSpace; ConfigError unless latent_dim == 2.
    """
    latent_images(model, "latent manifold")
    if model.latent_dim != 2:
        raise ConfigError(
            f"the manifold grid needs latent_dim 2, not {model.latent_dim}; "
            f"train with {option('latent_dim', 2)}"
        )
    p = torch.linspace(0.5 / n, 1 - 0.5 / n, n, device=model.device)
    q = torch.special.ndtri(p)
    zy, zx = torch.meshgrid(q.flip(0), q, indexing="ij")
    u = torch.stack([zx.flatten(), zy.flatten()], dim=1)
    return model.generate(model.from_standard(u)), n


def _interpolate_captions(model, options: dict, rows: int) -> Captions:
    t = torch.linspace(0, 1, options["steps"]).tolist()
    return Captions(
        f"{options['mode']} interpolation: each row joins two codes drawn from the prior",
        columns=[f"t={v:.2g}" for v in t],
    )


def _traverse_captions(model, options: dict, rows: int) -> Captions:
    span = options["span"]
    values = torch.linspace(-span, span, options["steps"]).tolist()
    return Captions(
        f"traversal: each row varies one latent coordinate over [-{span:g}, {span:g}] prior "
        "standard deviations and holds the others at one prior draw",
        rows=[f"z{d}" for d in traversed(model, options["rows"], options["dims"])],
        columns=[f"{round(v, 2) or 0.0:+.2g}" for v in values],  # no -6e-08 for the middle
    )


def _manifold_captions(model, options: dict, rows: int) -> Captions:
    n = options["n"]
    q = torch.special.ndtri(torch.linspace(0.5 / n, 1 - 0.5 / n, n)).tolist()
    return Captions(
        "2-D latent manifold (Kingma & Welling 2014, Fig. 4): codes z = inverse Gaussian CDF of "
        "evenly spaced probabilities; columns z1, rows z2",
        rows=[f"{v:+.1f}" for v in reversed(q)],
        columns=[f"{v:+.1f}" for v in q],
    )


@dataclass(frozen=True)
class LatentTool:
    """A latent tool: the function, the capability it needs (a tuple: any one of them),
    the capabilities it needs as well (all of them), whether it reads the data, and
    ``captions(model, options, rows)``: what its picture says about itself, given the
    tool's arguments (defaults filled in) and the picture's number of rows."""

    fn: Callable
    needs: type | tuple[type, ...]
    captions: Callable[[object, dict, int], Captions]
    reads_data: bool = False
    also: tuple[type, ...] = ()

    def arguments(self, **given) -> dict:
        """The tool's keyword arguments: ``given`` over its defaults."""
        params = inspect.signature(self.fn).parameters
        return {k: p.default for k, p in params.items() if p.default is not p.empty} | given


LATENT_TOOLS.register("interpolate", LatentTool(interpolate, LatentSpace, _interpolate_captions))
LATENT_TOOLS.register("traverse", LatentTool(traverse, LatentSpace, _traverse_captions))
LATENT_TOOLS.register("manifold", LatentTool(manifold, LatentSpace, _manifold_captions))
LATENT_TOOLS.register(
    "arithmetic", LatentTool(arithmetic, LatentSpace, arithmetic_captions, reads_data=True)
)
LATENT_TOOLS.register(
    "complete",
    LatentTool(complete, (LatentSpace, Completer), completion_captions, reads_data=True),
)
LATENT_TOOLS.register(
    "neighbours", LatentTool(neighbours, Sampler, neighbour_captions, reads_data=True)
)
LATENT_TOOLS.register(
    "analogies",
    LatentTool(
        analogies, Conditional, analogy_captions, reads_data=True, also=(Encoder, LatentSpace)
    ),
)


def tools_for(model) -> list[str]:
    """The latent tools ``model`` has the capabilities for (each may still refuse a setting,
    e.g. the manifold grid a latent space that is not 2-D)."""

    def ok(needs) -> bool:
        return any(supports(model, n) for n in (needs if isinstance(needs, tuple) else (needs,)))

    return [
        name
        for name, tool in LATENT_TOOLS.items()
        if ok(tool.needs) and all(supports(model, c) for c in tool.also) and model.is_image
    ]

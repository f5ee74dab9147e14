"""Latent tools for models of strings (a :class:`Strings` capability): prior samples and
their validity, and interpolation between two expressions, as decoded strings.

Each tool returns a list of rows, each a list of strings (None where the decoded sequence
is not a string of the grammar), registered by name for ``deepgen latent RUN TOOL``.
"""

from __future__ import annotations

import torch

from .errors import ConfigError
from .latent import lerp
from .models.capabilities import Strings, require
from .registry import Registry

STRING_TOOLS: Registry = Registry("latent tool for strings")


@torch.no_grad()
def sample_strings(model, n: int = 10, seed: int = 0) -> list[list[str | None]]:
    """``n`` prior draws decoded greedily: one row."""
    require(model, Strings, "deepgen latent sample")
    z = model.latent_prior(n, torch.Generator(device=model.device).manual_seed(seed))
    return [model.decode_strings(z)]


@torch.no_grad()
def interpolate_strings(
    model, between: tuple[str, str] | None = None, rows: int = 3, steps: int = 9, seed: int = 0
) -> list[list[str | None]]:
    """Strings decoded greedily along straight lines in latent space: from the posterior
    mean of ``between[0]`` to that of ``between[1]`` (one row), or between ``rows`` pairs of
    prior draws. Raises GrammarError for an expression outside the model's grammar."""
    require(model, Strings, "deepgen latent interpolate")
    if steps < 2:
        raise ConfigError(f"an interpolation needs at least 2 steps, not {steps}")
    if between is not None:
        a, b = model.encode_strings(list(between)).chunk(2)
    else:
        gen = torch.Generator(device=model.device).manual_seed(seed)
        a, b = model.latent_prior(rows, gen), model.latent_prior(rows, gen)
    z = lerp(a, b, torch.linspace(0, 1, steps, device=a.device))  # (rows, steps, D)
    return [model.decode_strings(line) for line in z]


STRING_TOOLS.register("sample", sample_strings)
STRING_TOOLS.register("interpolate", interpolate_strings)

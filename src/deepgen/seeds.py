"""One seed scheme: every random stream of a run is derived from (seed, purpose).

A run has one seed (``--seed``). Everything random in it (each data stream's order in
each pass, the training noise, the initial weights, the validation and test evaluations,
the preview samples, the labelled subset of a semi-supervised run) draws from its own
generator, named by its purpose::

    derive(seed, "stream", "data", "pass", 3)   # the order of stream "data" in pass 3
    generator(seed, "noise", device=device)      # the Trainer's training noise

Purposes are strings and integers; the same (seed, purpose) always gives the same number,
on every machine, and different purposes give independent streams (NumPy's SeedSequence,
which hashes its entropy and spawn key with a well-mixed function).
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch

MAX_SEED = 2**63 - 1


def _key(part: str | int) -> int:
    """A purpose part as a non-negative integer: itself, or a stable hash of a string."""
    if isinstance(part, bool) or not isinstance(part, (int, str)):
        raise TypeError(f"seed purposes are strings and integers, not {type(part).__name__}")
    if isinstance(part, int):
        if part < 0:
            raise ValueError(f"integer seed purposes must be non-negative, not {part}")
        return part
    return int.from_bytes(hashlib.sha256(part.encode()).digest()[:8], "little")


def derive(seed: int, *purpose: str | int) -> int:
    """A seed in [0, 2^63) for ``purpose``, derived from the run's ``seed`` (>= 0).

    Raises:
        ValueError: a negative seed or integer purpose. TypeError: a purpose part that is
            neither a string nor an integer.
    """
    if seed < 0:
        raise ValueError(f"seeds must be non-negative, not {seed}")
    sequence = np.random.SeedSequence(seed, spawn_key=[_key(p) for p in purpose])
    return int(sequence.generate_state(1, np.uint64)[0]) & MAX_SEED


def generator(
    seed: int, *purpose: str | int, device: torch.device | str = "cpu"
) -> torch.Generator:
    """A torch.Generator on ``device`` seeded with :func:`derive` (seed, *purpose)."""
    return torch.Generator(device=device).manual_seed(derive(seed, *purpose))


def batch_generator(seed: int, index: int, device: torch.device | str = "cpu") -> torch.Generator:
    """The generator of batch ``index`` of a batched job (evaluation, sampling) seeded ``seed``.

    Each batch has its own stream, so a job's result does not depend on how its batches
    are split over processes. Batch 0 uses ``seed`` itself, so a job of one batch draws
    what ``torch.Generator().manual_seed(seed)`` draws (``deepgen sample -n 64 --seed 3``
    equals ``model.sample(64, generator=make_generator(3))``).
    """
    if index == 0:
        return torch.Generator(device=device).manual_seed(seed)
    return generator(seed, "batch", index, device=device)

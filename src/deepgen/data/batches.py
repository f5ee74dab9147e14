"""Per-batch conversion of uint8 images and the order batches are drawn in.

Datasets stay in memory as uint8; each batch is indexed out of the tensor and converted
to torch's default float dtype (float32 unless changed with ``torch.set_default_dtype``),
so there are no per-item Python transforms.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch

from ..registry import Registry

Preprocess = Callable[[torch.Tensor, torch.Generator | None], torch.Tensor]
PREPROCESS: Registry[Preprocess] = Registry("preprocessing")


def unit(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """uint8 [0, 255] -> float [0, 1]."""
    return x.to(torch.get_default_dtype()).div_(255.0)


def symmetric(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """uint8 [0, 255] -> float [-1, 1] (the range of a tanh generator)."""
    return x.to(torch.get_default_dtype()).div_(127.5).sub_(1.0)


def binarize(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Dynamic binarisation: a fresh Bernoulli draw with p = pixel/255, values in {0, 1}.

    The protocol of the VAE likelihood literature (e.g. Burda et al. 2015, sec. 5.1).
    ``generator`` must live on ``x``'s device.
    """
    return torch.bernoulli(x.to(torch.get_default_dtype()).div_(255.0), generator=generator)


PREPROCESS.register("unit", unit)
PREPROCESS.register("symmetric", symmetric)
PREPROCESS.register("binarize", binarize)


def epoch_permutation(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The order of ``n`` training images in ``epoch``: a function of (seed, epoch) only,
    so a resumed run draws the same batches as an uninterrupted one."""
    g = torch.Generator().manual_seed((seed * 1_000_003 + epoch) % (2**63))
    return torch.randperm(n, generator=g)


def batch_slices(n: int, batch_size: int) -> int:
    """Number of full batches in an epoch of ``n`` images (the remainder is dropped)."""
    return n // batch_size


def iterate_batches(n: int, batch_size: int, seed: int, epoch: int, start: int = 0,
                    device: torch.device | str = "cpu") -> Iterator[torch.Tensor]:
    """Index tensors (batch_size,) into ``n`` training images, in the order of ``epoch``,
    from batch ``start`` on; the last partial batch is dropped."""
    perm = epoch_permutation(n, seed, epoch).to(device)
    for b in range(start, batch_slices(n, batch_size)):
        yield perm[b * batch_size:(b + 1) * batch_size]

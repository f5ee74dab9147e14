"""Per-batch conversion of uint8 images and the order each stream's batches are drawn in.

Datasets stay in memory as uint8; each batch is indexed out of the tensor and converted
to torch's default float dtype (float32 unless changed with ``torch.set_default_dtype``),
so there are no per-item Python transforms.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..errors import DataError
from ..registry import Registry
from ..seeds import generator

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


def pass_permutation(n: int, seed: int, stream: str, pass_index: int) -> torch.Tensor:
    """The order of ``n`` training examples of ``stream`` in its pass ``pass_index``: a
    function of (seed, stream, pass) only (:mod:`deepgen.seeds`), so a resumed run draws
    the same batches as an uninterrupted one."""
    return torch.randperm(n, generator=generator(seed, "stream", stream, "pass", pass_index))


class StreamOrder:
    """Which rows of one stream's training split each draw of a run takes.

    A stream is drawn ``draws`` times per iteration (once per step of every player that
    reads it). A pass over it is ``n // batch_size`` batches (the last partial batch is
    dropped); a pass ends after ``iterations_per_pass`` whole iterations, so one
    iteration's draws never straddle two passes (the few batches left over are skipped).
    A stream too small for one iteration's draws (e.g. 100 labelled images and batches of
    128; ``cyclic``) is instead read as one endless sequence of its passes, each pass a
    new permutation, and a batch may hold rows of two passes. The rows of a draw are a
    function of (seed, stream, iteration, draw) only: there is no sampler state to save
    for an exact resume.

    Raises:
        DataError: the stream is empty.
    """

    def __init__(
        self,
        n: int,
        batch_size: int,
        draws: int,
        seed: int,
        stream: str,
        device: torch.device | str = "cpu",
    ):
        self.n, self.batch_size, self.draws = n, batch_size, max(1, draws)
        self.seed, self.stream, self.device = seed, stream, device
        if n < 1:
            raise DataError(f"stream {stream!r}: its training split is empty")
        self.iterations_per_pass = (n // batch_size) // self.draws
        self.cyclic = self.iterations_per_pass < 1
        self._cache: dict[int, torch.Tensor] = {}

    def position(self, iteration: int) -> tuple[int, int]:
        """(pass, first batch within the pass) of ``iteration``; for a cyclic stream, (pass,
        first row within the pass)."""
        if self.cyclic:
            start = iteration * self.draws * self.batch_size
            return start // self.n, start % self.n
        return iteration // self.iterations_per_pass, (
            iteration % self.iterations_per_pass
        ) * self.draws

    def _perm(self, pass_index: int) -> torch.Tensor:
        if pass_index not in self._cache:
            if len(self._cache) > 2:
                self._cache.pop(min(self._cache))
            self._cache[pass_index] = pass_permutation(
                self.n, self.seed, self.stream, pass_index
            ).to(self.device)
        return self._cache[pass_index]

    def indices(self, iteration: int, draw: int) -> torch.Tensor:
        """Row indices (batch_size,) of the ``draw``-th draw (0-based) of ``iteration``."""
        if self.cyclic:
            start = (iteration * self.draws + draw) * self.batch_size
            first, last = start // self.n, (start + self.batch_size - 1) // self.n
            rows = torch.cat([self._perm(p) for p in range(first, last + 1)])
            return rows[start - first * self.n : start - first * self.n + self.batch_size]
        pass_index, first = self.position(iteration)
        b = first + draw
        return self._perm(pass_index)[b * self.batch_size : (b + 1) * self.batch_size]

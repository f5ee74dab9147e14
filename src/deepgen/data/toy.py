"""2-D toy distributions for mode coverage (Srivastava et al. 2017, VEEGAN; Lin et al. 2018, PacGAN).

- ``ring8``: a uniform mixture of 8 Gaussians, centres evenly on the unit circle, std 0.01;
- ``grid25``: 25 Gaussians centred at {-4, -2, 0, 2, 4}^2, std 0.05;
- ``swissroll``: the 2-D swiss roll, t ~ U(1.5 pi, 4.5 pi), (t cos t, t sin t) / 7.5 plus
  N(0, 0.05^2) noise; it has no modes to count.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..registry import Registry


@dataclass(frozen=True)
class ToyMixture:
    """Equal-weight isotropic Gaussian mixture in 2-D: centres (M, 2) and one std."""

    centres: torch.Tensor
    std: float

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """(n, 2) float32 samples."""
        idx = torch.randint(0, len(self.centres), (n,), generator=generator)
        return self.centres[idx] + self.std * torch.randn(n, 2, generator=generator)


def ring8(radius: float = 1.0, std: float = 0.01) -> ToyMixture:
    """8 equal Gaussians with centres evenly on a circle of ``radius``, each of ``std``."""
    angles = torch.arange(8) * (2 * math.pi / 8)
    return ToyMixture(radius * torch.stack([angles.cos(), angles.sin()], 1), std)


def grid25(std: float = 0.05) -> ToyMixture:
    """25 equal Gaussians centred at {-4, -2, 0, 2, 4}^2, each of ``std``."""
    axis = torch.tensor([-4.0, -2.0, 0.0, 2.0, 4.0])
    return ToyMixture(torch.cartesian_prod(axis, axis), std)


def swissroll(
    n: int, generator: torch.Generator | None = None, noise: float = 0.05
) -> torch.Tensor:
    """(n, 2) points on the swiss roll."""
    t = 1.5 * math.pi * (1 + 2 * torch.rand(n, generator=generator))
    pts = torch.stack([t * t.cos(), t * t.sin()], 1) / 7.5
    return pts + noise * torch.randn(n, 2, generator=generator)


TOY_MIXTURES: Registry[ToyMixture] = Registry("toy distribution")
TOY_MIXTURES.register("ring8", ring8())
TOY_MIXTURES.register("grid25", grid25())


SIZES = (20_000, 2_000, 2_500)  # train / valid / test points; 2,500 is the metrics' sample count


def toy_dataset(spec, data_dir=None, seed: int = 0, **_):
    """A registered 2-D toy distribution as a Dataset of float32 points (N, 2), fixed by ``seed``."""
    from .datasets import Dataset, Split

    g = torch.Generator().manual_seed(seed)
    draw = (
        TOY_MIXTURES[spec.name].sample
        if spec.name in TOY_MIXTURES
        else lambda n, generator: swissroll(n, generator)
    )
    splits = {name: Split(draw(n, g)) for name, n in zip(("train", "valid", "test"), SIZES)}
    return Dataset(spec.name, splits, num_classes=None, source="generated")

"""Networks: encoders, decoders, generators and discriminators. No objectives here.

Image shapes are (C, H, W). Convolutional networks halve the resolution twice, so H and
W must be divisible by 4 (28x28 -> 7x7).
"""

from __future__ import annotations

import itertools
import math

import torch
from torch import nn

from .distributed import SyncBatchNorm1d, SyncBatchNorm2d
from .errors import ConfigError
from .improved_gan import MinibatchDiscrimination


def _check_conv_shape(image_shape: tuple[int, ...]) -> tuple[int, int, int]:
    if len(image_shape) != 3:
        raise ConfigError(
            f"convolutional networks need images (C, H, W), not data of shape {tuple(image_shape)}"
        )
    c, h, w = image_shape
    if h % 4 or w % 4:
        raise ConfigError(
            f"convolutional networks need height and width divisible by 4, not {h}x{w}"
        )
    return c, h // 4, w // 4


class MLP(nn.Module):
    """(B, in_dim) -> (B, out_dim): ``layers`` hidden ReLU layers of ``hidden_dim``, a linear
    output (e.g. the 784-500-500 networks of Sohn et al. 2015's MNIST experiments)."""

    def __init__(self, in_dim: int, out_dim: int, hidden_dim: int = 500, layers: int = 2):
        super().__init__()
        self.net = nn.Sequential(
            *_relu_stack(in_dim, hidden_dim, layers), nn.Linear(hidden_dim, out_dim)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class MLPEncoder(nn.Module):
    """x (B, C, H, W) -> (B, out_dim) through ``layers`` hidden ReLU layers of ``hidden_dim``
    (e.g. 784-400-2*20 with one)."""

    def __init__(self, image_shape, out_dim: int, hidden_dim: int = 400, layers: int = 1):
        super().__init__()
        self.net = nn.Sequential(
            nn.Flatten(),
            *_relu_stack(math.prod(image_shape), hidden_dim, layers),
            nn.Linear(hidden_dim, out_dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class MLPDecoder(nn.Module):
    """z (B, D) -> (B, C, H, W) pre-activation outputs through ``layers`` hidden ReLU layers
    of ``hidden_dim``."""

    def __init__(self, image_shape, in_dim: int, hidden_dim: int = 400, layers: int = 1):
        super().__init__()
        self.net = nn.Sequential(
            *_relu_stack(in_dim, hidden_dim, layers),
            nn.Linear(hidden_dim, math.prod(image_shape)),
            nn.Unflatten(1, tuple(image_shape)),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


def _relu_stack(in_dim: int, hidden_dim: int, layers: int) -> list[nn.Module]:
    """Linear + ReLU, ``layers`` times: in_dim -> hidden_dim -> ... -> hidden_dim."""
    dims = [in_dim] + [hidden_dim] * layers
    return [m for a, b in itertools.pairwise(dims) for m in (nn.Linear(a, b), nn.ReLU())]


class ConvEncoder(nn.Module):
    """x (B, C, H, W) -> (B, out_dim): two stride-2 4x4 convolutions, then two linear layers."""

    def __init__(self, image_shape, out_dim: int, hidden_dim: int = 256, channels: int = 32):
        super().__init__()
        c, h4, w4 = _check_conv_shape(image_shape)
        self.net = nn.Sequential(
            nn.Conv2d(c, channels, 4, 2, 1),
            nn.ReLU(),
            nn.Conv2d(channels, 2 * channels, 4, 2, 1),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(2 * channels * h4 * w4, hidden_dim),
            nn.ReLU(),
            nn.Linear(hidden_dim, out_dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class ConvDecoder(nn.Module):
    """z (B, D) -> (B, C, H, W) pre-activation outputs; mirror of :class:`ConvEncoder`."""

    def __init__(self, image_shape, in_dim: int, hidden_dim: int = 256, channels: int = 32):
        super().__init__()
        c, h4, w4 = _check_conv_shape(image_shape)
        self.net = nn.Sequential(
            nn.Linear(in_dim, hidden_dim),
            nn.ReLU(),
            nn.Linear(hidden_dim, 2 * channels * h4 * w4),
            nn.ReLU(),
            nn.Unflatten(1, (2 * channels, h4, w4)),
            nn.ConvTranspose2d(2 * channels, channels, 4, 2, 1),
            nn.ReLU(),
            nn.ConvTranspose2d(channels, c, 4, 2, 1),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


class DCGANGenerator(nn.Module):
    """z (B, latent_dim) -> images (B, C, H, W) in [-1, 1] (Radford et al. 2015).

    Linear projection to (2*channels, H/4, W/4), two stride-2 transposed convolutions;
    batch norm and ReLU everywhere except the Tanh output layer. Batch norm is pooled over
    ranks under torchrun (:mod:`deepgen.distributed`).
    """

    def __init__(self, image_shape, latent_dim: int = 100, channels: int = 64):
        super().__init__()
        c, h4, w4 = _check_conv_shape(image_shape)
        self.net = nn.Sequential(
            nn.Linear(latent_dim, 2 * channels * h4 * w4, bias=False),
            SyncBatchNorm1d(2 * channels * h4 * w4),
            nn.ReLU(),
            nn.Unflatten(1, (2 * channels, h4, w4)),
            nn.ConvTranspose2d(2 * channels, channels, 4, 2, 1, bias=False),
            SyncBatchNorm2d(channels),
            nn.ReLU(),
            nn.ConvTranspose2d(channels, c, 4, 2, 1),
            nn.Tanh(),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


class _Discriminator(nn.Module):
    """A discriminator's shared shape: ``net`` is its body ending in a linear output layer;
    :meth:`features` is what that layer reads (feature matching's f(x), Salimans et al.
    2016, sec. 3.1), and minibatch discrimination, when on, adds its closeness features
    there (sec. 3.2)."""

    def _minibatch(self, features: int, kernels: int) -> None:
        self.minibatch = MinibatchDiscrimination(features, kernels) if kernels else None

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, ...) -> the last hidden layer's activations (B, F)."""
        return self.net[:-1](x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.features(x)
        if self.minibatch is not None:
            f = self.minibatch(f)
        return self.net[-1](f).squeeze(1)


class DCGANDiscriminator(_Discriminator):
    """images (B, C, H, W) in [-1, 1] -> logits (B,) (Radford et al. 2015).

    Two stride-2 convolutions with LeakyReLU(0.2); batch norm except at the input layer,
    unless ``batch_norm`` is False (a WGAN-GP critic: the penalty is per example, which
    batch norm would break; Gulrajani et al. 2017, sec. 4). ``minibatch_kernels`` > 0
    adds minibatch discrimination before the output layer.
    """

    def __init__(
        self, image_shape, channels: int = 64, batch_norm: bool = True, minibatch_kernels: int = 0
    ):
        super().__init__()
        c, h4, w4 = _check_conv_shape(image_shape)
        features = 2 * channels * h4 * w4
        self.net = nn.Sequential(
            nn.Conv2d(c, channels, 4, 2, 1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(channels, 2 * channels, 4, 2, 1, bias=not batch_norm),
            SyncBatchNorm2d(2 * channels) if batch_norm else nn.Identity(),
            nn.LeakyReLU(0.2),
            nn.Flatten(),
            nn.Linear(features + minibatch_kernels, 1),
        )
        self._minibatch(features, minibatch_kernels)


class MLPGenerator(nn.Module):
    """z (B, latent_dim) -> (B, *shape): ``layers`` hidden ReLU layers of ``hidden_dim``;
    a linear output for points, tanh (range [-1, 1]) for images (len(shape) == 3). Used
    for the 2-D mixtures (ring8, grid25)."""

    def __init__(self, shape, latent_dim: int, hidden_dim: int = 400, layers: int = 3):
        super().__init__()
        out = [nn.Tanh()] if len(shape) == 3 else []
        self.net = nn.Sequential(
            *_relu_stack(latent_dim, hidden_dim, layers),
            nn.Linear(hidden_dim, math.prod(shape)),
            *out,
            nn.Unflatten(1, tuple(shape)),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


class MLPDiscriminator(_Discriminator):
    """x (B, *shape) -> scores (B,) (logits or critic values): ``layers`` hidden
    LeakyReLU(0.2) layers of ``hidden_dim``, no normalisation; ``minibatch_kernels`` > 0
    adds minibatch discrimination before the output layer."""

    def __init__(self, shape, hidden_dim: int = 400, layers: int = 3, minibatch_kernels: int = 0):
        super().__init__()
        dims = [math.prod(shape)] + [hidden_dim] * layers
        blocks = [m for a, b in zip(dims, dims[1:]) for m in (nn.Linear(a, b), nn.LeakyReLU(0.2))]
        self.net = nn.Sequential(nn.Flatten(), *blocks, nn.Linear(dims[-1] + minibatch_kernels, 1))
        self._minibatch(dims[-1], minibatch_kernels)


class Maxout(nn.Module):
    """Linear maxout (Goodfellow et al. 2013, eq. 1): (B, in_dim) -> (B, out_dim), each unit
    the largest of ``pieces`` linear functions of the input."""

    def __init__(self, in_dim: int, out_dim: int, pieces: int):
        super().__init__()
        self.out_dim, self.pieces = out_dim, pieces
        self.linear = nn.Linear(in_dim, out_dim * pieces)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x).view(-1, self.out_dim, self.pieces).amax(-1)


class MaxoutDiscriminator(_Discriminator):
    """points (B, *shape) -> logits (B,): ``layers`` maxout layers of ``hidden_dim`` units of
    ``pieces`` pieces and a linear output, no normalisation; PacGAN's discriminator for the
    2-D mixtures (Lin et al. 2018, sec. 5.1: 3 x 200 units, 5 pieces)."""

    def __init__(self, shape, hidden_dim: int = 200, layers: int = 3, pieces: int = 5):
        super().__init__()
        dims = [math.prod(shape)] + [hidden_dim] * layers
        blocks = [Maxout(a, b, pieces) for a, b in zip(dims, dims[1:])]
        self.net = nn.Sequential(nn.Flatten(), *blocks, nn.Linear(dims[-1], 1))
        self._minibatch(dims[-1], 0)


class BatchNormMLPGenerator(nn.Module):
    """z (B, latent_dim) -> points (B, *shape): ``layers`` hidden layers of a linear map
    without bias, batch norm and ReLU, then a linear output; PacGAN's generator for the
    2-D mixtures (Lin et al. 2018, sec. 5.1: 4 x 400 units). Batch norm's running
    statistics move by 0.05 per batch, as in the paper's code."""

    def __init__(self, shape, latent_dim: int, hidden_dim: int = 400, layers: int = 4):
        super().__init__()
        dims = [latent_dim] + [hidden_dim] * layers
        blocks = [
            m
            for a, b in zip(dims, dims[1:])
            for m in (nn.Linear(a, b, bias=False), nn.BatchNorm1d(b, momentum=0.05), nn.ReLU())
        ]
        self.net = nn.Sequential(
            *blocks, nn.Linear(dims[-1], math.prod(shape)), nn.Unflatten(1, tuple(shape))
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


def gaussian_init_(module: nn.Module, std: float = 0.02) -> None:
    """Linear weights ~ N(0, std), biases 0; batch norm at scale 1, shift 0 (PacGAN's
    initialisation, Lin et al. 2018's code)."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm1d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def dcgan_init_(module: nn.Module) -> None:
    """DCGAN initialisation: conv/linear weights ~ N(0, 0.02), batch-norm scale ~ N(1, 0.02),
    biases 0 (Radford et al. 2015, sec. 4)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)

"""The network pieces of Salimans et al. 2016 ("Improved Techniques for Training GANs")
that a GAN family can use: weight-normalised layers with data-dependent initialisation,
minibatch discrimination and running averages of parameters (historical averaging, and
the averaged weights their semi-supervised classifier is tested with). Their losses (the
K+1-class terms, feature matching, one-sided label smoothing, the historical-averaging
penalty) are pure functions in :mod:`deepgen.losses`.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn
from torch.nn import functional as F

from . import distributed
from .losses import historical_average_penalty


class WeightNormLinear(nn.Module):
    """y = x W^T + b with every output unit's weight vector w_j = g_j v_j / ||v_j||
    (Salimans & Kingma 2016, eq. 2): x (B, in_features) -> (B, out_features).

    ``train_scale`` False keeps the scales g fixed after :meth:`initialise` (a buffer), as
    the hidden layers of Salimans et al.'s MNIST discriminator do; True learns them.
    Directions v start N(0, 0.1^2), g at 1, b at 0 (their code's initialisation).
    """

    def __init__(self, in_features: int, out_features: int, train_scale: bool = False):
        super().__init__()
        self.direction = nn.Parameter(torch.randn(out_features, in_features) * 0.1)
        scale = torch.ones(out_features)
        if train_scale:
            self.scale = nn.Parameter(scale)
        else:
            self.register_buffer("scale", scale)
        self.bias = nn.Parameter(torch.zeros(out_features))

    def weight(self) -> torch.Tensor:
        """The effective weight W (out_features, in_features)."""
        return self.direction * (self.scale / self.direction.norm(dim=1)).unsqueeze(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight(), self.bias)

    @torch.no_grad()
    def initialise(self, x: torch.Tensor) -> torch.Tensor:
        """Data-dependent initialisation (Salimans & Kingma 2016, sec. 3): set g and b so
        that the outputs on ``x`` (B, in_features) have mean 0 and standard deviation 1
        per unit, and return those outputs (B, out_features). Under torchrun the moments
        are pooled over ranks, so every rank sets the same values."""
        pre = F.linear(x, self.weight())
        mean = distributed.all_mean(pre.mean(0))
        std = (distributed.all_mean(pre.pow(2).mean(0)) - mean.pow(2)).clamp_min(1e-12).sqrt()
        self.scale.div_(std)
        self.bias.copy_(-mean / std)
        return (pre - mean) / std


class MinibatchDiscrimination(nn.Module):
    """Minibatch discrimination (Salimans et al. 2016, sec. 3.2): features f (B, in_features)
    -> [f, o(f)] (B, in_features + kernels), where o(f_i)_b = sum_{j != i} exp(-||M_i,b -
    M_j,b||_L1) over the other examples of the batch, M = f T reshaped (B, kernels,
    kernel_dim). It lets the discriminator see how alike the examples of a batch are, which
    penalises a generator that collapses. T starts N(0, 0.05^2)."""

    def __init__(self, in_features: int, kernels: int = 100, kernel_dim: int = 5):
        super().__init__()
        self.kernels, self.kernel_dim = kernels, kernel_dim
        self.T = nn.Parameter(torch.randn(in_features, kernels * kernel_dim) * 0.05)
        self.bias = nn.Parameter(torch.full((kernels,), -1.0))

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        m = (f @ self.T).view(len(f), self.kernels, self.kernel_dim)
        l1 = (m.unsqueeze(0) - m.unsqueeze(1)).abs().sum(3)  # (B, B, kernels)
        closeness = torch.exp(-l1).sum(1) - 1.0  # minus the example's own exp(0)
        return torch.cat([f, closeness + self.bias], 1)


class ParameterAverage(nn.Module):
    """A running average of a module's parameters, held as buffers (so checkpoints keep it
    and resume stays exact).

    ``rate`` None: the mean of all past values (historical averaging, Salimans et al.
    2016, sec. 3.3); a number: the exponential moving average with that rate, corrected for
    its start at zero (the averaged weights Salimans et al.'s code tests the classifier
    with, rate 1e-4). ``module`` is not stored: it is passed to each call.
    """

    def __init__(self, module: nn.Module, rate: float | None = None):
        super().__init__()
        self.rate = rate
        self.names = [name for name, _ in module.named_parameters()]
        for name, p in module.named_parameters():
            self.register_buffer(self._key(name), torch.zeros_like(p, requires_grad=False))
        self.register_buffer("count", torch.zeros((), dtype=torch.int64))

    @staticmethod
    def _key(name: str) -> str:
        return "mean_" + name.replace(".", "__")

    @torch.no_grad()
    def update(self, module: nn.Module) -> None:
        """Fold the module's current parameters into the average."""
        self.count.add_(1)
        weight = 1.0 / float(self.count) if self.rate is None else self.rate
        for name, p in module.named_parameters():
            getattr(self, self._key(name)).lerp_(p.detach(), weight)

    def averages(self) -> dict[str, torch.Tensor]:
        """Parameter name -> its average (bias-corrected for an exponential average);
        empty before the first update."""
        if int(self.count) == 0:
            return {}
        means = {name: getattr(self, self._key(name)) for name in self.names}
        if self.rate is None:  # the plain mean: the buffers themselves, no copies
            return means
        correction = 1.0 - (1.0 - self.rate) ** int(self.count)
        return {name: mean / correction for name, mean in means.items()}

    def penalty(self, module: nn.Module) -> torch.Tensor:
        """sum ||theta - average||^2 over the module's parameters (a scalar; 0 before the
        first update), differentiable in the module's parameters (sec. 3.3)."""
        averages = self.averages()
        if not averages:
            return torch.zeros((), device=self.count.device)
        params = [p for _, p in module.named_parameters()]
        return historical_average_penalty(params, [averages[n] for n in self.names])

    def forward_averaged(self, module: nn.Module, *args, **kwargs):
        """Call ``module`` with its parameters replaced by their averages (its own before the
        first update)."""
        return torch.func.functional_call(module, self.averages(), args, kwargs)


def with_historical_averaging(player, average: ParameterAverage, weight: float):
    """``player`` (a :class:`deepgen.models.contract.Player`) with weight * sum ||theta -
    mean of past theta||^2 added to its loss (Salimans et al. 2016, sec. 3.3) and its
    parameters folded into ``average`` after each step. Logs ``historical_average``."""
    loss, after = player.loss, player.after_step

    def penalised(batch, generator):
        out = dict(loss(batch, generator))
        penalty = average.penalty(player.module)
        out["loss"] = out["loss"] + weight * penalty
        out["historical_average"] = penalty.detach()
        return out

    def step_done():
        if after is not None:
            after()
        average.update(player.module)

    return dataclasses.replace(player, loss=penalised, after_step=step_done)

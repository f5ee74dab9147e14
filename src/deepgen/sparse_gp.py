"""A sparse Gaussian process over latent codes and batch expected improvement maximised by
L-BFGS-B, as Kusner et al. 2017 (sec. 4.1) and their code (``sparse_gp.py`` of
github.com/mkusner/grammarVAE, equation_optimization) did for Bayesian optimisation in a
VAE's latent space.

- The GP: GPyTorch's variational sparse GP (Hensman et al. 2013, "Gaussian Processes for
  Big Data": q(u) at ``inducing`` points, the ELBO of eq. 4 on minibatches) with a constant
  mean and a scaled Matérn 5/2 kernel with one length scale per dimension, on every code
  given; scores are standardised inside. The paper's code fitted a sparse GP of 500
  inducing points by Adam on minibatches of 5,000 as well (an expectation-propagation
  approximation rather than this variational one).
- The incumbent is the minimum of the GP's mean over the box, found by L-BFGS-B from the
  best of a grid of uniform points, as theirs (``get_incumbent``).
- A batch of q points is chosen greedily: each maximises log expected improvement (Jones et
  al. 1998, for minimisation) under the GP conditioned on the points already chosen, taken
  as observed at the GP's mean (which leaves the mean as it is and shrinks the variance:
  their ``compute_log_averaged_ei`` with its randomness set to zero), by L-BFGS-B from the
  best grid point (``batched_greedy_ei``: a grid of 10,000, at most 150 iterations).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch
from scipy.optimize import fmin_l_bfgs_b

from .errors import ConfigError


class SparseGP:
    """A sparse GP regression from points ``x`` (N, D) to values ``y`` (N,) (float64 inside).

    Args:
        inducing: number of inducing points, initialised at a random subset of ``x``
            (at most N). epochs, batch_size: passes and minibatch size over the points.
        lr: Adam's rate for the kernel, mean, noise and inducing points; natural_lr: the
            natural-gradient rate for q(u) (Salimbeni et al. 2018).
        seed: the subset and the minibatch order.

    Raises:
        ConfigError: fewer than 2 points, shapes that do not match, or non-finite values.
    """

    def __init__(
        self,
        x: np.ndarray,
        y: np.ndarray,
        inducing: int = 500,
        epochs: int = 20,
        batch_size: int = 5000,
        lr: float = 0.01,
        natural_lr: float = 0.1,
        seed: int = 0,
    ):
        gpytorch = _gpytorch()
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64).reshape(-1)
        if x.ndim != 2 or len(x) != len(y) or len(x) < 2:
            raise ConfigError(
                f"a sparse GP needs points (N, D) and values (N,) with N >= 2, not {x.shape} "
                f"and {y.shape}"
            )
        if not (np.isfinite(x).all() and np.isfinite(y).all()):
            raise ConfigError("a sparse GP's points and values must be finite")
        self.y_mean, self.y_sd = float(y.mean()), float(y.std()) or 1.0
        tx = torch.as_tensor(x)
        ty = torch.as_tensor((y - self.y_mean) / self.y_sd)
        gen = torch.Generator().manual_seed(seed)
        start = tx[torch.randperm(len(tx), generator=gen)[: min(inducing, len(tx))]].clone()
        self.model = _variational(start, x.shape[1]).double()
        self.likelihood = gpytorch.likelihoods.GaussianLikelihood().double()
        self.model.train()
        self.likelihood.train()
        # Natural gradients for q(u), Adam for the kernel, mean, noise and inducing points
        # (Salimbeni et al. 2018): far fewer steps than Adam on everything.
        natural = gpytorch.optim.NGD(
            self.model.variational_parameters(), num_data=len(tx), lr=natural_lr
        )
        hyper = [p for n, p in self.model.named_parameters() if "variational_distribution" not in n]
        optimiser = torch.optim.Adam(hyper + list(self.likelihood.parameters()), lr=lr)
        elbo = gpytorch.mlls.VariationalELBO(self.likelihood, self.model, num_data=len(tx))
        for _ in range(epochs):
            order = torch.randperm(len(tx), generator=gen)
            for i in range(0, len(tx), batch_size):
                idx = order[i : i + batch_size]
                natural.zero_grad()
                optimiser.zero_grad()
                loss = -elbo(self.model(tx[idx]), ty[idx])
                loss.backward()
                natural.step()
                optimiser.step()
        self.model.eval()
        self.likelihood.eval()
        self.noise = float(self.likelihood.noise.detach()) * self.y_sd**2

    def joint(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The GP's posterior of f at ``points`` (n, D), float64: mean (n,) and covariance
        (n, n), in the units of y; differentiable in ``points``."""
        f = self.model(points)
        return f.mean * self.y_sd + self.y_mean, f.covariance_matrix * self.y_sd**2

    def marginal(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and variance (n,) of f at ``points`` (n, D), without the covariances;
        differentiable in ``points``."""
        f = self.model(points)
        return f.mean * self.y_sd + self.y_mean, f.variance * self.y_sd**2

    def predict(self, points: np.ndarray, chunk: int = 2000) -> tuple[np.ndarray, np.ndarray]:
        """Mean and standard deviation of f at ``points`` (n, D): two arrays (n,)."""
        means, sds = [], []
        with torch.no_grad():
            for i in range(0, len(points), chunk):
                f = self.model(torch.as_tensor(points[i : i + chunk], dtype=torch.float64))
                means.append(f.mean * self.y_sd + self.y_mean)
                sds.append(f.variance.clamp_min(1e-18).sqrt() * self.y_sd)
        return torch.cat(means).numpy(), torch.cat(sds).numpy()


def _gpytorch():
    """GPyTorch, imported without the deprecation warning its import raises under torch 2.13
    (it applies torch.jit.script)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import gpytorch
    return gpytorch


def _variational(inducing: torch.Tensor, dims: int):
    gpytorch = _gpytorch()

    class Variational(gpytorch.models.ApproximateGP):
        def __init__(self):
            distribution = gpytorch.variational.NaturalVariationalDistribution(len(inducing))
            strategy = gpytorch.variational.VariationalStrategy(
                self, inducing, distribution, learn_inducing_locations=True
            )
            super().__init__(strategy)
            self.mean_module = gpytorch.means.ConstantMean()
            self.covar_module = gpytorch.kernels.ScaleKernel(
                gpytorch.kernels.MaternKernel(nu=2.5, ard_num_dims=dims)
            )

        def forward(self, x):
            return gpytorch.distributions.MultivariateNormal(
                self.mean_module(x), self.covar_module(x)
            )

    return Variational()


def log_expected_improvement(mean: torch.Tensor, sd: torch.Tensor, best: float) -> torch.Tensor:
    """log E[max(best - f, 0)] for f ~ N(mean, sd^2), elementwise (minimisation; Jones et
    al. 1998), computed stably far in the tail: log sd + log(u Phi(u) + phi(u)) with
    u = (best - mean) / sd, and for u < -5 its asymptote log phi(u) - 2 log|u| + log(1 - 3/u^2)."""
    u = (best - mean) / sd
    safe = u.clamp_min(-5.0)
    h = safe * torch.special.ndtr(safe) + torch.exp(-0.5 * safe**2) / math.sqrt(2 * math.pi)
    tail_u = u.clamp_max(-5.0)
    tail = (
        -0.5 * tail_u**2
        - 0.5 * math.log(2 * math.pi)
        - 2 * torch.log(-tail_u)
        + torch.log1p(-3 / tail_u**2)
    )
    return torch.log(sd) + torch.where(u < -5.0, tail, torch.log(h.clamp_min(1e-300)))


def _minimise(grid: np.ndarray, low, high, values, value_and_grad) -> tuple[np.ndarray, float]:
    """L-BFGS-B (at most 150 iterations, in the box) from the grid point of least value."""
    start = grid[int(np.argmin(values(grid)))]
    best, value, _ = fmin_l_bfgs_b(value_and_grad, start, bounds=list(zip(low, high)), maxiter=150)
    return best, float(value)


def batched_greedy_ei(
    gp: SparseGP,
    q: int,
    low: np.ndarray,
    high: np.ndarray,
    rng: np.random.Generator,
    grid_size: int = 10000,
    shortlist: int = 1000,
) -> np.ndarray:
    """``q`` points (q, D) in the box [low, high] chosen greedily by expected improvement
    over the minimum of the GP's mean, each given the points chosen before it (see the
    module docstring)."""
    low, high = np.asarray(low, np.float64), np.asarray(high, np.float64)
    grid = rng.uniform(low, high, size=(grid_size, len(low)))

    def mean_of(points: np.ndarray) -> np.ndarray:
        return gp.predict(points)[0]

    def mean_and_grad(point: np.ndarray):
        p = torch.tensor(point[None], dtype=torch.float64, requires_grad=True)
        mean, _ = gp.marginal(p)
        mean.sum().backward()
        return float(mean.detach()), p.grad[0].numpy().copy()

    _, incumbent = _minimise(grid, low, high, mean_of, mean_and_grad)
    chosen: list[np.ndarray] = []

    def log_ei(points: torch.Tensor) -> torch.Tensor:
        if not chosen:
            mean, var = gp.marginal(points)
        else:
            taken = torch.as_tensor(np.array(chosen))
            mean, cov = gp.joint(torch.cat([points, taken]))
            n = len(points)
            cross = cov[:n, n:]
            observed = cov[n:, n:] + gp.noise * torch.eye(len(taken), dtype=cov.dtype)
            var = cov.diagonal()[:n] - (cross * torch.linalg.solve(observed, cross.T).T).sum(1)
            mean = mean[:n]
        return log_expected_improvement(mean, var.clamp_min(1e-18).sqrt(), incumbent)

    def values(points: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return -torch.cat(
                [log_ei(torch.as_tensor(points[i : i + 1000])) for i in range(0, len(points), 1000)]
            ).numpy()

    def value_and_grad(point: np.ndarray):
        p = torch.tensor(point[None], dtype=torch.float64, requires_grad=True)
        value = -log_ei(p).sum()
        value.backward()
        return float(value.detach()), p.grad[0].numpy().copy()

    # Conditioning on chosen points only lowers expected improvement, so the grid is cut to
    # its ``shortlist`` best points before any is chosen, and only those are scored again.
    grid = grid[np.argsort(values(grid))[:shortlist]]
    for _ in range(q):
        chosen.append(_minimise(grid, low, high, values, value_and_grad)[0])
    return np.array(chosen)

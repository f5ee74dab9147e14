"""The textbook baseline: a Gaussian mixture model on pixels (scikit-learn's EM), registered
like any other family so every table can start with it.

p(x) = sum_k w_k N(x; mu_k, diag sigma_k^2), x the flattened image in [0, 1]; fitted in
closed form by expectation-maximisation (Dempster et al. 1977) on the training split.
Its log-likelihood is a density over continuous pixels (nats per image, as a Gaussian VAE
reports), not comparable with a Bernoulli likelihood of binarised images. Pixels that are
always 0 would get zero variance and unbounded density, so every variance is floored at
``reg_covar`` (0.01 squared pixel units for images; 1e-6 for 2-D points). Also fits the
2-D toy mixtures, where it is the first row of a mode-coverage table.
"""

from __future__ import annotations

import math
import warnings
from typing import Literal

import numpy as np
import torch
from pydantic import Field

from ..errors import ConfigError, option
from .base import ModelConfig
from .capabilities import ClosedForm, ExactDensity, Sampler
from .contract import Batch, GenerativeModel, register_model


class GMMConfig(ModelConfig):
    """Mixture size, covariance form, variance floor and EM iterations (scikit-learn's
    ``GaussianMixture``)."""

    components: int = Field(10, ge=1, le=1000, description="mixture components K")
    covariance: Literal["diag", "spherical"] = Field(
        "diag", description="covariance of each component"
    )
    reg_covar: float | None = Field(
        None,
        gt=0,
        description="variance floor; default 0.01 for images "
        "(squared pixel units), 1e-6 for points",
    )
    max_iter: int = Field(100, ge=1, le=10000, description="EM iterations at most")


@register_model
class GMM(Sampler, ExactDensity, ClosedForm, GenerativeModel):
    """Gaussian mixture on flattened images (B, C, H, W) in [0, 1]; fitted by EM, not SGD."""

    family = "gmm"
    title = "Gaussian mixture on pixels fitted by EM: the textbook baseline"
    Config = GMMConfig
    summary = ("neg_log_density", "nats")
    units = {"log_density": "nats", "neg_log_density": "nats"}
    evaluate_protocol = (
        "exact log-density of each image under the mixture (continuous pixels in [0, 1])"
    )
    report_curves = []

    def __init__(self, config: GMMConfig):
        super().__init__(config)
        d, k = math.prod(self.data_shape), config.components
        self.register_buffer("weights", torch.full((k,), 1.0 / k))
        self.register_buffer("means", torch.zeros(k, d))
        self.register_buffer("variances", torch.ones(k, d))
        self.register_buffer("converged", torch.tensor(False))

    def players(self):
        return []  # no gradient steps: the Trainer calls fit_closed_form instead

    def fit_closed_form(self, x: torch.Tensor, seed: int = 0) -> str:
        """Run EM on training images x (N, C, H, W) in [0, 1]; returns a line for the log."""
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.mixture import GaussianMixture

        c = self.config
        floor = c.reg_covar if c.reg_covar is not None else (0.01 if self.is_image else 1e-6)
        gm = GaussianMixture(
            c.components,
            covariance_type=c.covariance,
            reg_covar=floor,
            max_iter=c.max_iter,
            random_state=seed,
        )
        with warnings.catch_warnings():  # reported below, and saved with the weights
            warnings.simplefilter("ignore", ConvergenceWarning)
            gm.fit(x.flatten(1).double().cpu().numpy())
        self.converged.fill_(bool(gm.converged_))
        variances = np.broadcast_to(
            gm.covariances_[:, None] if c.covariance == "spherical" else gm.covariances_,
            self.means.shape,
        )
        with torch.no_grad():
            self.weights.copy_(torch.from_numpy(gm.weights_))
            self.means.copy_(torch.from_numpy(gm.means_))
            self.variances.copy_(
                torch.from_numpy(np.array(variances))
            )  # broadcast views are read-only
        if gm.converged_:
            return f"EM converged after {gm.n_iter_} iterations"
        return f"EM did not converge in {gm.n_iter_} iterations; raise {option('max_iter')}"

    def log_density(self, x: torch.Tensor) -> torch.Tensor:
        """log p(x) per image, (B,) nats."""
        flat = x.flatten(1).double()
        var, mu = self.variances.double(), self.means.double()
        # sum_d log N(x_d; mu_kd, var_kd) for every (image, component), via expanded squares
        quad = flat.pow(2) @ (1 / var).T - 2 * flat @ (mu / var).T + (mu.pow(2) / var).sum(1)
        log_comp = -0.5 * (quad + torch.log(2 * math.pi * var).sum(1))
        return torch.logsumexp(log_comp + self.weights.double().log(), dim=1)

    def evaluate(self, batch: Batch, generator: torch.Generator) -> dict[str, torch.Tensor]:
        lp = self.log_density(batch.x)
        return {"log_density": lp, "neg_log_density": -lp}

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n images (n, C, H, W) clipped to [0, 1], or n points (n, D): a component drawn by
        weight, then its Gaussian."""
        if not torch.isfinite(self.variances).all():
            raise ConfigError("the mixture has not been fitted")
        k = torch.multinomial(
            self.weights.float().cpu(), n, replacement=True, generator=_cpu(generator)
        )
        k = k.to(self.means.device)
        eps = torch.randn(n, self.means.shape[1], generator=generator, device=self.means.device)
        x = self.means[k] + self.variances[k].sqrt() * eps
        x = x.view(n, *self.data_shape).float()
        return x.clamp(0, 1) if self.is_image else x


def _cpu(generator: torch.Generator | None) -> torch.Generator | None:
    """multinomial needs a CPU generator; derive one from a device generator's next draw."""
    if generator is None or generator.device.type == "cpu":
        return generator
    seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device))
    return torch.Generator().manual_seed(seed)

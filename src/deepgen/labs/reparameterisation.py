"""Lab: why the reparameterisation trick matters, by gradient variance.

One ELBO, two unbiased estimators of its gradient in the mean m of q(z) = N(m, diag v):

- reparameterised (Kingma & Welling 2013, sec. 2.4): z = m + sqrt(v) eps, differentiate
  f(z) = log p(x, z) - log q(z) through z (``losses.reparameterize``);
- score function / REINFORCE (Williams 1992; Paisley et al. 2012):
  f(z) * grad_m log q(z) = f(z) (z - m) / v.

The model is linear-Gaussian with a 10-d latent and a 20-d observation, so the exact
gradient is W^T (x - W m) / s^2 - m. Both estimators are checked for bias against it, and
their variance (summed over the 10 coordinates) is measured over 1,000 repeats for each
number of samples S. Both fall as 1/S; the score-function one is orders of magnitude higher.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .. import losses
from .common import check, figure, register_lab

LATENT, OBSERVED, NOISE_STD = 10, 20, 0.5
SAMPLES = (1, 4, 16, 64, 256, 1024)


def _problem(g: torch.Generator):
    w = torch.randn(OBSERVED, LATENT, generator=g, dtype=torch.float64) / math.sqrt(LATENT)
    x = w @ torch.randn(LATENT, generator=g, dtype=torch.float64) + NOISE_STD * torch.randn(
        OBSERVED, generator=g, dtype=torch.float64
    )
    m = torch.zeros(LATENT, dtype=torch.float64)
    logvar = torch.full((LATENT,), math.log(0.3), dtype=torch.float64)
    exact = w.T @ (x - w @ m) / NOISE_STD**2 - m
    return w, x, m, logvar, exact


def _f(z, w, x, m, logvar):
    """log p(x, z) - log q(z) for z (..., LATENT): (...) nats."""
    log_px = -0.5 * (((x - z @ w.T) / NOISE_STD) ** 2).sum(-1) - OBSERVED * (
        math.log(NOISE_STD) + 0.5 * losses.LOG_2PI
    )
    log_pz = losses.log_normal(z, torch.zeros_like(z), torch.zeros_like(z))
    return log_px + log_pz - losses.log_normal(z, m.expand_as(z), logvar.expand_as(z))


def estimators(s: int, repeats: int, w, x, m, logvar, g):
    """(repeats, LATENT) reparameterised and score-function gradient estimates from s samples each."""
    m_rep = m.expand(repeats, LATENT).clone().requires_grad_(True)
    mu = m_rep.unsqueeze(1).expand(repeats, s, LATENT)
    z = losses.reparameterize(mu, logvar.expand(repeats, s, LATENT), g)
    # Reparameterised: differentiate the whole ELBO integrand in m, through z and log q.
    (reparam,) = torch.autograd.grad(_f(z, w, x, mu, logvar).mean(1).sum(), m_rep)
    # Score function: m enters only through the density q the samples are drawn from.
    z = z.detach()
    f = _f(z, w, x, m, logvar)
    score = (f.unsqueeze(-1) * (z - m) / logvar.exp()).mean(1)
    return reparam, score


@register_lab(
    "reparameterisation",
    "Gradient variance: reparameterised vs score-function (REINFORCE) estimator",
    "Kingma & Welling 2013, sec. 2.4; Williams 1992",
)
def run(fast: bool = False, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    w, x, m, logvar, exact = _problem(g)
    repeats = 300 if fast else 1000
    rows = []
    for s in SAMPLES:
        reparam, score = estimators(s, repeats, w, x, m, logvar, g)
        row = {"samples": s}
        for name, est in (("reparam", reparam), ("score", score)):
            mean, se = est.mean(0), est.std(0) / math.sqrt(repeats)
            row[f"{name}_variance"] = float(est.var(0).sum())
            row[f"{name}_max_bias_z"] = float(((mean - exact).abs() / se).max())
        rows.append(row)
    ratios = [r["score_variance"] / r["reparam_variance"] for r in rows]
    slopes = {
        name: float(
            np.polyfit(np.log(SAMPLES), np.log([r[f"{name}_variance"] for r in rows]), 1)[0]
        )
        for name in ("reparam", "score")
    }
    max_z = max(max(r["reparam_max_bias_z"], r["score_max_bias_z"]) for r in rows)

    fig, ax = figure(1, 1, (6.5, 4.4))
    a = ax[0, 0]
    a.loglog(
        SAMPLES, [r["score_variance"] for r in rows], "rs-", label="score function (REINFORCE)"
    )
    a.loglog(SAMPLES, [r["reparam_variance"] for r in rows], "bo-", label="reparameterised")
    ref = 10 * rows[0]["reparam_variance"]  # drawn a decade above, so it stays visible
    a.loglog(SAMPLES, [ref / s for s in SAMPLES], "k:", label="reference slope -1 (variance ~ 1/S)")
    a.set_xlabel("samples S per gradient estimate")
    a.set_ylabel("gradient variance (sum over 10 coords)")
    a.set_title(
        f"Same ELBO, same S: REINFORCE variance is {min(ratios):.0f}-{max(ratios):.0f}x higher",
        fontsize=10,
    )
    a.legend(fontsize=8)
    numbers = {
        "rows": rows,
        "variance_ratio_score_over_reparam": ratios,
        "slopes": slopes,
        "repeats": repeats,
        "checks": {
            "min variance ratio (score / reparam)": check(min(ratios), min(ratios) >= 10, ">= 10"),
            "max |mean - exact| / s.e. (both unbiased)": check(max_z, max_z <= 5, "<= 5"),
            "reparam variance slope in log S": check(
                slopes["reparam"], abs(slopes["reparam"] + 1) <= 0.15, "-1 +- 0.15"
            ),
            "score variance slope in log S": check(
                slopes["score"], abs(slopes["score"] + 1) <= 0.15, "-1 +- 0.15"
            ),
        },
    }
    return fig, numbers

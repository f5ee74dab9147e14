"""Lab: the ELBO gap on a model whose likelihood and posterior are exact.

Probabilistic PCA (Tipping & Bishop 1999) is a linear-Gaussian VAE: p(z) = N(0, I_k),
p(x|z) = N(W z, sigma^2 I_D). Then log p(x) = log N(x; 0, W W^T + sigma^2 I) and
p(z|x) = N(M^-1 W^T x, sigma^2 M^-1) with M = W^T W + sigma^2 I (their eqs. 6 and 7).
It is fitted in closed form to MNIST projected on its top D principal components; W is
rotated by a random orthogonal R (as likely as R = I), so the true posterior covariance
is full while q(z|x) = N(A x + b, diag(exp(logvar))) is diagonal and cannot reach it.
q is trained with the library's ELBO terms. Then, on test images:

- ELBO <= IWAE_k <= log p(x), IWAE_k rising with k (Burda et al. 2015, Theorem 1) and
  within 0.1 nat of log p(x) at k = 5000;
- log p(x) - ELBO = KL(q(z|x) || p(z|x)) (Kingma & Welling 2013, eq. 1), the left side
  by Monte Carlo, the right in closed form.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .. import losses
from ..data import load_dataset
from .common import check, figure, register_lab

D, K = 30, 8  # observed dimensions (principal components) and latent dimensions
KS = (1, 10, 100, 1000, 5000)
NOISE = 0.01  # nats: Monte-Carlo slack for orderings that hold in expectation


def fit_ppca(
    train: torch.Tensor, seed: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]:
    """PCA basis (784, D) and mean, and the ML PPCA W (D, K), sigma^2 in that basis."""
    mean = train.mean(0)
    cov = torch.cov((train - mean).T)
    evals, evecs = torch.linalg.eigh(cov)
    evals, evecs = evals.flip(0)[:D], evecs.flip(1)[:, :D]
    sigma2 = float(evals[K:].mean())
    g = torch.Generator().manual_seed(seed)
    rot, _ = torch.linalg.qr(torch.randn(K, K, generator=g, dtype=torch.float64))
    w = torch.diag((evals[:K] - sigma2).sqrt()) @ rot  # rows: the K leading components
    w = torch.cat([w, torch.zeros(D - K, K, dtype=torch.float64)])
    return evecs, mean, w, sigma2


def exact(y: torch.Tensor, w: torch.Tensor, sigma2: float):
    """log p(y) (B,), posterior mean (B, K) and covariance (K, K)."""
    cov = w @ w.T + sigma2 * torch.eye(D, dtype=y.dtype)
    log_p = torch.distributions.MultivariateNormal(torch.zeros(D, dtype=y.dtype), cov).log_prob(y)
    m_inv = torch.linalg.inv(w.T @ w + sigma2 * torch.eye(K, dtype=y.dtype))
    return log_p, y @ (m_inv @ w.T).T, sigma2 * m_inv


def log_weights(y, mu, logvar, w, log_sigma, z):
    """log p(y, z) - log q(z|y) for z (S, B, K): (S, B) nats."""
    log_px = losses.gaussian_log_likelihood(
        y.expand(z.shape[0], *y.shape).reshape(-1, D), (z @ w.T).reshape(-1, D), log_sigma
    ).view(z.shape[:2])
    log_pz = losses.log_normal(z, torch.zeros_like(z), torch.zeros_like(z))
    return log_px + log_pz - losses.log_normal(z, mu.expand_as(z), logvar.expand_as(z))


def kl_gaussians(mu_q, var_q, mu_p, cov_p) -> torch.Tensor:
    """KL(N(mu_q, diag var_q) || N(mu_p, cov_p)) per row, in nats, closed form."""
    prec = torch.linalg.inv(cov_p)
    diff = mu_p - mu_q
    return 0.5 * (
        (torch.diagonal(prec) * var_q).sum(1)
        + torch.einsum("bi,ij,bj->b", diff, prec, diff)
        - K
        + torch.logdet(cov_p)
        - var_q.log().sum(1)
    )


@register_lab(
    "elbo-gap",
    "ELBO <= IWAE_k <= log p(x) on probabilistic PCA, and the gap is a KL",
    "Tipping & Bishop 1999; Kingma & Welling 2013, eq. 1; Burda et al. 2015, Theorem 1",
)
def run(fast: bool = False, seed: int = 0):
    data = load_dataset("mnist")
    to_float = lambda s: data[s].x.flatten(1).double() / 255
    basis, mean, w, sigma2 = fit_ppca(to_float("train"), seed)
    project = lambda x: (x - mean) @ basis
    train, test = project(to_float("train")), project(to_float("test"))[: 200 if fast else 1000]
    log_sigma = torch.tensor([0.5 * math.log(sigma2)], dtype=torch.float64)
    g = torch.Generator().manual_seed(seed)
    enc = torch.nn.Linear(D, K, dtype=torch.float64)
    logvar = torch.zeros(K, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([*enc.parameters(), logvar], lr=1e-2)
    for step in range(1500 if fast else 3000):
        y = train[torch.randint(0, len(train), (512,), generator=g)]
        mu, lv = enc(y), logvar.expand(len(y), K)
        z = losses.reparameterize(mu, lv, g)
        log_px = losses.gaussian_log_likelihood(y, z @ w.T, log_sigma)
        loss = -losses.elbo(log_px, losses.kl_normal_std_normal(mu, lv)).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    with torch.no_grad():
        log_p, post_mu, post_cov = exact(test, w, sigma2)
        mu, lv = enc(test), logvar.detach().expand(len(test), K)
        kl = kl_gaussians(mu, lv.exp(), post_mu, post_cov)
        iwae = {k: [] for k in KS}
        elbo_points = []
        for start in range(0, len(test), 50):
            sl = slice(start, start + 50)
            eps = torch.randn(max(KS), *mu[sl].shape, generator=g, dtype=torch.float64)
            lw = log_weights(
                test[sl], mu[sl], lv[sl], w, log_sigma, mu[sl] + (0.5 * lv[sl]).exp() * eps
            )
            elbo_points.append(lw)
            for k in KS:
                iwae[k].append(losses.iwae_bound(lw[:k]))
        lw_all = torch.cat(
            elbo_points, dim=1
        )  # (5000, N): 5000 one-sample ELBO estimates per image
        elbo_mc, elbo_se = lw_all.mean(0), lw_all.std(0) / math.sqrt(lw_all.shape[0])
        iwae_means = {k: float(torch.cat(v).mean()) for k, v in iwae.items()}
    gap = log_p - elbo_mc
    gap_mean, kl_mean = float(gap.mean()), float(kl.mean())
    gap_se = float((elbo_se.pow(2).sum()).sqrt() / len(gap))  # Monte-Carlo s.e. of the mean gap
    z_scores = ((gap - kl) / elbo_se).abs()
    lp = float(log_p.mean())
    chain = [float(elbo_mc.mean())] + [iwae_means[k] for k in KS[1:]] + [lp]
    rising = all(b >= a - NOISE for a, b in zip(chain, chain[1:]))

    fig, ax = figure(1, 3, (15, 4.2))
    a, b, c = ax[0, 0], ax[0, 1], ax[0, 2]
    a.semilogx(KS, [iwae_means[k] for k in KS], "o-", label="IWAE_k (k = 1 is the ELBO)")
    a.axhline(lp, color="k", ls="--", label="exact log p(x)")
    a.set_xlabel("k (importance samples)")
    a.set_ylabel("nats per test image (mean)")
    a.set_title(f"log p(x) - IWAE_5000 = {lp - iwae_means[5000]:.4f} nats", fontsize=10)
    a.legend(fontsize=8)
    b.plot(kl.numpy(), gap.numpy(), ".", ms=3, alpha=0.6)
    top = float(max(kl.max(), gap.max()))
    b.plot([0, top], [0, top], "k--", lw=1, label="y = x")
    b.set_xlabel("KL(q(z|x) || p(z|x)), closed form (nats)")
    b.set_ylabel("log p(x) - ELBO, Monte Carlo (nats)")
    b.set_title(f"mean gap {gap_mean:.4f} vs mean KL {kl_mean:.4f} nats", fontsize=10)
    b.legend(fontsize=8)
    _ellipses(c, post_mu[0, :2], post_cov[:2, :2], mu[0, :2], lv[0, :2].exp())
    numbers = {
        "D": D,
        "K": K,
        "sigma2": sigma2,
        "n_test": len(test),
        "log_px": lp,
        "elbo": chain[0],
        "iwae": {str(k): v for k, v in iwae_means.items()},
        "gap_mean": gap_mean,
        "kl_mean": kl_mean,
        "checks": {
            "ELBO <= IWAE_10 <= ... <= IWAE_5000 <= log p(x) (means)": check(
                float(rising), rising, f"holds, each step within {NOISE} nats of Monte-Carlo noise"
            ),
            "log p(x) - IWAE_5000": check(
                lp - iwae_means[5000],
                -NOISE <= lp - iwae_means[5000] <= 0.1,
                f"in [-{NOISE}, 0.1] nats",
            ),
            "|mean(log p - ELBO) - mean(KL)| / Monte-Carlo s.e.": check(
                abs(gap_mean - kl_mean) / gap_se, abs(gap_mean - kl_mean) <= 4 * gap_se, "<= 4"
            ),
            "share of images with |gap - KL| <= 4 s.e.": check(
                float((z_scores <= 4).double().mean()),
                float((z_scores <= 4).double().mean()) >= 0.99,
                ">= 0.99",
            ),
            "mean KL (the gap exists)": check(kl_mean, kl_mean > 0.05, "> 0.05 nats"),
        },
    }
    return fig, numbers


def _ellipses(ax, mu_p, cov_p, mu_q, var_q) -> None:
    """2-sigma ellipses of p(z|x) and q(z|x) in the first two latent dimensions."""
    t = np.linspace(0, 2 * np.pi, 200)
    circle = np.stack([np.cos(t), np.sin(t)])
    for mean, cov, style, label in (
        (mu_p, cov_p, "k-", "true posterior p(z|x)"),
        (mu_q, torch.diag(var_q), "r--", "diagonal q(z|x)"),
    ):
        vals, vecs = np.linalg.eigh(cov.numpy())
        pts = vecs @ (2 * np.sqrt(vals)[:, None] * circle) + mean.numpy()[:, None]
        ax.plot(pts[0], pts[1], style, label=label)
    ax.set_xlabel("z_1")
    ax.set_ylabel("z_2")
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_title("first test image: 2-sigma contours", fontsize=10)
    ax.legend(fontsize=8)

"""Lab: the optimal discriminator and the value of the game at it.

For a fixed generator density p_g, the discriminator maximising
V(D, G) = E_{p_data}[log D(x)] + E_{p_g}[log(1 - D(x))] is
D*(x) = p_data(x) / (p_data(x) + p_g(x))          (Goodfellow et al. 2014, Proposition 1, eq. 2)
and V(D*, G) = -log 4 + 2 JSD(p_data || p_g)      (Theorem 1, eq. 6).

A small network is trained on samples with the library's own per-example
``losses.discriminator_loss``; its D is compared with D* where either density is
non-negligible (max(p_data, p_g) >= 0.02 per unit x), and V at the trained D is compared,
by quadrature, with -log 4 + 2 JSD.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .. import losses
from .common import Mixture1D, check, figure, integrate, jsd, mlp, register_lab, xlogy

P_DATA = Mixture1D((0.5, 0.5), (-1.5, 1.2), (0.45, 0.6))
P_G = Mixture1D((1.0,), (0.3,), (1.3,))
SUPPORT = 0.02  # densities below this (per unit x) count as negligible
MAX_ERROR, VALUE_TOL = 0.03, 0.01


def train_discriminator(steps: int, batch: int, seed: int) -> torch.nn.Module:
    """Fit D on fresh samples of P_DATA and P_G each step, with Adam and a cosine schedule."""
    g = torch.Generator().manual_seed(seed)
    net = mlp(1, 1, hidden=64, depth=3)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    for _ in range(steps):
        real, fake = P_DATA.sample(batch, g), P_G.sample(batch, g)
        loss = losses.discriminator_loss(net(real), net(fake)).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    return net


@register_lab(
    "optimal-discriminator",
    "The optimal discriminator D* = p_data / (p_data + p_g)",
    "Goodfellow et al. 2014, Proposition 1 (eq. 2) and Theorem 1",
)
def run(fast: bool = False, seed: int = 0):
    xs = np.linspace(-7, 7, 14001)
    p, q = P_DATA.pdf(xs), P_G.pdf(xs)
    d_star = p / (p + q)
    net = train_discriminator(1500 if fast else 4000, 4096, seed)
    with torch.no_grad():
        d = (
            torch.sigmoid(net(torch.tensor(xs, dtype=torch.float32).unsqueeze(1)))
            .squeeze(1)
            .double()
            .numpy()
        )
    mask = np.maximum(p, q) >= SUPPORT
    max_err = float(np.abs(d - d_star)[mask].max())
    value = lambda dd: integrate(xlogy(p, dd) + xlogy(q, 1 - dd), xs)
    v_trained, v_star = value(d), value(d_star)
    theory = -math.log(4) + 2 * jsd(p, q, xs)

    fig, ax = figure(2, 1, (7, 6))
    top, bottom = ax[0, 0], ax[1, 0]
    top.plot(xs, p, "k", label="p_data")
    top.plot(xs, q, "g", label="p_g (fixed)")
    top.set_ylabel("density (per unit x)")
    top.legend()
    top.set_title("Densities")
    bottom.plot(xs, d_star, "b", lw=2.5, alpha=0.5, label="D*(x) = p_data / (p_data + p_g)")
    bottom.plot(xs, d, "r--", label="D(x) trained with discriminator_loss")
    bottom.fill_between(xs, 0, 1, where=~mask, color="0.9", label=f"max density < {SUPPORT}")
    bottom.set_xlabel("x")
    bottom.set_ylabel("probability 'real'")
    bottom.set_ylim(0, 1)
    bottom.legend(loc="upper right", fontsize=8)
    bottom.set_title(
        f"max |D - D*| = {max_err:.3f};  V(D, G) = {v_trained:.4f} nats;  "
        f"-log 4 + 2 JSD = {theory:.4f} nats",
        fontsize=9,
    )
    numbers = {
        "max_abs_error": max_err,
        "value_trained_nats": v_trained,
        "value_optimal_nats": v_star,
        "minus_log4_plus_2jsd_nats": theory,
        "jsd_nats": (theory + math.log(4)) / 2,
        "checks": {
            "max |D - D*|": check(max_err, max_err <= MAX_ERROR, f"<= {MAX_ERROR}"),
            "|V(D, G) - (-log 4 + 2 JSD)|": check(
                abs(v_trained - theory),
                abs(v_trained - theory) <= VALUE_TOL,
                f"<= {VALUE_TOL} nats",
            ),
            "|V(D*, G) - (-log 4 + 2 JSD)| (quadrature identity)": check(
                abs(v_star - theory), abs(v_star - theory) <= 1e-6, "<= 1e-6"
            ),
        },
    }
    return fig, numbers

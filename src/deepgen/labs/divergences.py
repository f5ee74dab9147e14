"""Lab: KL, Jensen-Shannon and Wasserstein distances on parallel lines.

P is uniform on the segment {0} x [0, 1], Q_theta on {theta} x [0, 1]. For theta != 0:
KL(P || Q) = infinity, JS(P, Q) = log 2, W(P, Q) = |theta|   (Arjovsky et al. 2017, Example 1).
Only W changes smoothly with theta, so only W tells a generator which way to move.

From samples: a WGAN-GP critic (``losses.gradient_penalty``, lambda = 10; Gulrajani et
al. 2017, eq. 3) recovers W as E_P f - E_Q f, and d/dtheta of -E_Q f (the generator's
gradient) is about sign(theta). A GAN discriminator (``losses.discriminator_loss``) gives
JS_hat = (V(D, G) + log 4) / 2 (Goodfellow et al. 2014, Theorem 1): it sits near log 2,
and its derivative in theta, E_Q[d/dtheta log(1 - D)], the minimax generator's gradient,
is about 0.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from .. import losses
from .common import check, figure, mlp, register_lab

LAMBDA = 10.0
REL_TOL, ABS_TOL, SMALL = 0.10, 0.02, 0.1


def sample(theta: torch.Tensor, n: int, g: torch.Generator) -> torch.Tensor:
    """(n, 2) points (theta, y), y ~ U(0, 1); differentiable in theta."""
    y = torch.rand(n, 1, generator=g)
    return torch.cat([theta.expand(n, 1), y], dim=1)


def _train(theta: float, steps: int, g: torch.Generator, critic: bool) -> torch.nn.Module:
    # The critic is smooth (tanh): with leaky ReLU, 1 run in 18 ended at a wrong-signed W_hat
    # (-0.44 |theta|), the gradient penalty satisfied by a slope along y; tanh: 0 in 18.
    net = mlp(2, 1, hidden=64, depth=3, act=nn.Tanh if critic else nn.LeakyReLU)
    betas = (0.5, 0.9) if critic else (0.5, 0.999)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, betas=betas)
    t = torch.tensor(theta)
    for _ in range(steps):
        p, q = sample(torch.tensor(0.0), 256, g), sample(t, 256, g)
        fp, fq = net(p).squeeze(1), net(q).squeeze(1)
        if critic:
            f = lambda x: net(x).squeeze(1)
            loss = (fq - fp + LAMBDA * losses.gradient_penalty(f, p, q, g)).mean()
        else:
            loss = losses.discriminator_loss(fp, fq).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return net


def estimate(theta: float, steps: int, g: torch.Generator, n: int = 20_000) -> dict[str, float]:
    """W_hat, JS_hat and their derivatives in theta, from freshly trained networks."""
    critic, disc = _train(theta, steps, g, True), _train(theta, steps, g, False)
    t = torch.tensor(theta, requires_grad=True)
    p, q = sample(torch.tensor(0.0), n, g), sample(t, n, g)
    w_hat = critic(p).mean() - critic(q).mean()
    (dw,) = torch.autograd.grad(w_hat, t)
    t = torch.tensor(theta, requires_grad=True)
    q = sample(t, n, g)
    value = losses.gan_value(disc(p).squeeze(1), disc(q).squeeze(1)).mean()
    js_hat = (value + math.log(4)) / 2
    (djs,) = torch.autograd.grad(js_hat, t)
    return {
        "theta": theta,
        "w_hat": w_hat.item(),
        "dw_dtheta": dw.item(),
        "js_hat": js_hat.item(),
        "djs_dtheta": djs.item(),
    }


@register_lab(
    "divergences",
    "KL vs JS vs Wasserstein on parallel lines, and what a critic recovers",
    "Arjovsky et al. 2017, Example 1; Gulrajani et al. 2017, eq. 3",
)
def run(fast: bool = False, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    thetas = (
        [0.02, 0.05, 0.1, 0.5, 1.0]
        if fast
        else [-1.0, -0.5, -0.2, -0.1, -0.05, -0.02, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0]
    )
    rows = [estimate(t, 400 if fast else 800, g) for t in thetas]

    def w_ok(r):
        err = abs(r["w_hat"] - abs(r["theta"]))
        return err <= (REL_TOL * abs(r["theta"]) if abs(r["theta"]) >= SMALL else ABS_TOL)

    worst_rel = max(
        abs(r["w_hat"] - abs(r["theta"])) / abs(r["theta"])
        for r in rows
        if abs(r["theta"]) >= SMALL
    )
    worst_abs = max(
        [abs(r["w_hat"] - abs(r["theta"])) for r in rows if abs(r["theta"]) < SMALL] or [0.0]
    )
    js_far = [r for r in rows if abs(r["theta"]) >= SMALL]
    js_gap = max(math.log(2) - r["js_hat"] for r in js_far)
    ratio = max(abs(r["djs_dtheta"]) for r in js_far) / min(abs(r["dw_dtheta"]) for r in js_far)

    fig, ax = figure(1, 2, (12, 4.2))
    left, right = ax[0, 0], ax[0, 1]
    grid = np.linspace(-1, 1, 401)
    left.plot(grid, np.abs(grid), "b", label="W = |theta|")
    left.plot(grid, np.where(grid == 0, 0, math.log(2)), "r", label="JS = log 2 (0 at theta = 0)")
    left.axhline(1.15, color="k", ls=":", label="KL = infinity (for theta != 0)")
    left.plot(
        [r["theta"] for r in rows], [r["w_hat"] for r in rows], "bo", label="W from WGAN-GP critic"
    )
    left.plot(
        [r["theta"] for r in rows],
        [r["js_hat"] for r in rows],
        "rs",
        label="JS from GAN discriminator",
    )
    left.set_xlabel("theta (distance between the lines)")
    left.set_ylabel("divergence (nats; W in units of x)")
    left.set_ylim(-0.05, 1.25)
    left.legend(fontsize=8, loc="lower right")
    left.set_title("Distances between P and Q_theta")
    right.semilogy(
        [r["theta"] for r in rows],
        [abs(r["dw_dtheta"]) for r in rows],
        "bo-",
        label="|d W_hat / d theta|",
    )
    right.semilogy(
        [r["theta"] for r in rows],
        [max(abs(r["djs_dtheta"]), 1e-8) for r in rows],
        "rs-",
        label="|d JS_hat / d theta| (minimax generator gradient)",
    )
    right.set_xlabel("theta")
    right.set_ylabel("gradient magnitude (log scale)")
    right.legend(fontsize=8)
    right.set_title("What the generator would be told")
    numbers = {
        "estimates": rows,
        "lambda": LAMBDA,
        "checks": {
            "W_hat relative error, 0.1 <= |theta| <= 1": check(
                worst_rel, worst_rel <= REL_TOL, f"<= {REL_TOL}"
            ),
            "W_hat absolute error, |theta| < 0.1": check(
                worst_abs, worst_abs <= ABS_TOL, f"<= {ABS_TOL}"
            ),
            "log 2 - JS_hat, |theta| >= 0.1": check(js_gap, js_gap <= 0.05, "<= 0.05 nats"),
            "max |dJS/dtheta| / min |dW/dtheta|, |theta| >= 0.1": check(
                ratio, ratio <= 0.05, "<= 0.05"
            ),
        },
        "all_w_within_tolerance": all(w_ok(r) for r in rows),
    }
    return fig, numbers

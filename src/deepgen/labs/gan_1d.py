"""Lab: a 1-D GAN trained with Algorithm 1, drawn like Figure 1 of Goodfellow et al. 2014.

p_data = N(1.5, 0.5^2); z ~ N(0, 1); G(z) = a z + b + MLP(z) (tanh), D a leaky-ReLU MLP.
Both learning rates decay on a cosine schedule so the game settles; k = 5. Each iteration takes
k discriminator steps (``losses.discriminator_loss``) and one generator step
(``losses.generator_loss_nonsaturating``). Four panels show the data density (black
dots), the generator's density (green), the discriminator (blue dashes) and the map
x = G(z) (lines from the z axis below, at equally spaced quantiles of p_z, to the x axis). At the end D(x) is about 1/2 on the
data and JSD(p_g || p_data) is small; p_g is a histogram of 10^6 samples of G.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.stats import norm
from torch import nn

from .. import losses
from .common import check, figure, jsd, mlp, normal_pdf, register_lab

MEAN, STD = 1.5, 0.5
XLIM = (-2.0, 4.0)
JSD_TOL, D_TOL = 0.01, 0.05


class Generator(nn.Module):
    """x = a z + b + MLP(z): the affine part makes unbounded tails reachable."""

    def __init__(self, hidden: int = 32):
        super().__init__()
        self.affine, self.net = nn.Linear(1, 1), mlp(1, 1, hidden=hidden, depth=2, act=nn.Tanh)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.affine(z) + self.net(z)


def generator_density(
    gen: torch.nn.Module, edges: np.ndarray, n: int, g: torch.Generator
) -> np.ndarray:
    """Histogram density of G(z) on ``edges`` from ``n`` samples (per unit x)."""
    with torch.no_grad():
        x = gen(torch.randn(n, 1, generator=g)).squeeze(1).double().numpy()
    hist, _ = np.histogram(x, bins=edges)
    return hist / (n * np.diff(edges))


def draw(ax, gen, disc, g, title: str) -> None:
    edges = np.linspace(*XLIM, 241)
    centres = 0.5 * (edges[1:] + edges[:-1])
    ax.plot(centres[::4], normal_pdf(centres[::4], MEAN, STD), "k.", ms=3, label="p_data")
    ax.plot(centres, generator_density(gen, edges, 200_000, g), "g-", label="p_g")
    xs = torch.linspace(*XLIM, 400).unsqueeze(1)
    with torch.no_grad():
        ax.plot(xs.squeeze(1), torch.sigmoid(disc(xs)).squeeze(1), "b--", label="D(x)")
        zs = torch.tensor(norm.ppf(np.linspace(0.03, 0.97, 15)), dtype=torch.float32).unsqueeze(1)
        gx = gen(zs).squeeze(1)
    z_pos = XLIM[0] + (zs.squeeze(1) + 2.5) / 5 * (
        XLIM[1] - XLIM[0]
    )  # z in [-2.5, 2.5] across the panel
    for zp, x in zip(z_pos.tolist(), gx.tolist()):
        ax.annotate(
            "", xy=(x, -0.08), xytext=(zp, -0.45), arrowprops={"arrowstyle": "->", "lw": 0.6}
        )
    ax.axhline(-0.08, color="0.4", lw=0.8)
    ax.axhline(-0.45, color="0.4", lw=0.8)
    ax.text(XLIM[0], -0.42, "z", fontsize=8)
    ax.text(XLIM[0], -0.05, "x", fontsize=8)
    ax.set_xlim(*XLIM)
    ax.set_ylim(-0.5, 1.05)
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("x (and z ~ N(0, 1) below)")
    ax.set_ylabel("density (per unit x); D(x)", fontsize=8)


@register_lab(
    "gan-1d",
    "A 1-D GAN trained with Algorithm 1, drawn like Goodfellow et al.'s Figure 1",
    "Goodfellow et al. 2014, Algorithm 1 and Figure 1",
)
def run(fast: bool = False, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    gen, disc = Generator(), mlp(1, 1, hidden=64, depth=2)
    opt_g = torch.optim.Adam(gen.parameters(), lr=1e-3, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(disc.parameters(), lr=1e-3, betas=(0.5, 0.999))
    # k = 5 discriminator steps per generator step: with k = 1 this game oscillated and
    # ended at JSD 0.02-0.3 nats depending on the seed; with k = 5, 0.0004-0.0006 (3 seeds).
    iterations, k, batch = (600 if fast else 1500), 5, 512
    schedules = [torch.optim.lr_scheduler.CosineAnnealingLR(o, iterations) for o in (opt_g, opt_d)]
    snapshots = [0, iterations // 20, iterations // 4, iterations]
    fig, axes = figure(1, 4, (14, 3.6))
    for it in range(iterations + 1):
        if it in snapshots:
            draw(axes[0, snapshots.index(it)], gen, disc, g, f"iteration {it}")
        if it == iterations:
            break
        for _ in range(k):
            real = MEAN + STD * torch.randn(batch, 1, generator=g)
            with torch.no_grad():
                fake = gen(torch.randn(batch, 1, generator=g))
            loss_d = losses.discriminator_loss(disc(real), disc(fake)).mean()
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()
        disc.requires_grad_(False)
        loss_g = losses.generator_loss_nonsaturating(
            disc(gen(torch.randn(batch, 1, generator=g)))
        ).mean()
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        disc.requires_grad_(True)
        for sched in schedules:
            sched.step()
    axes[0, 0].legend(fontsize=7, loc="upper left")
    edges = np.linspace(-4, 6, 1001)
    centres = 0.5 * (edges[1:] + edges[:-1])
    p_g = generator_density(gen, edges, 1_000_000, g)
    p_data = normal_pdf(centres, MEAN, STD)
    divergence = jsd(p_g, p_data, centres)
    with torch.no_grad():
        d_data = (
            torch.sigmoid(disc(MEAN + STD * torch.randn(100_000, 1, generator=g))).mean().item()
        )
    numbers = {
        "iterations": iterations,
        "k": k,
        "batch": batch,
        "jsd_nats": divergence,
        "mean_d_on_data": d_data,
        "checks": {
            "JSD(p_g || p_data)": check(
                divergence,
                divergence <= JSD_TOL,
                f"<= {JSD_TOL} nats (log 2 = 0.693 is the maximum)",
            ),
            "|E_data D(x) - 1/2|": check(
                abs(d_data - 0.5), abs(d_data - 0.5) <= D_TOL, f"<= {D_TOL}"
            ),
        },
    }
    fig.suptitle(
        f"1-D GAN, Algorithm 1 (k = {k}): at the end JSD(p_g || p_data) = {divergence:.4f} nats, "
        f"mean D on data = {d_data:.3f}",
        fontsize=10,
    )
    return fig, numbers

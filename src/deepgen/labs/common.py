"""What every lab shares: the registry, small networks, 1-D densities and quadrature,
and writing a lab's figure (PNG) and numbers (JSON)."""

from __future__ import annotations

import io
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.integrate import trapezoid
from torch import nn

from ..fileio import atomic_write_bytes, atomic_write_text
from ..registry import Registry


@dataclass(frozen=True)
class Lab:
    """A runnable demonstration. ``run(fast, seed)`` returns (figure, numbers); numbers
    hold a ``checks`` dict: name -> {"value", "tolerance" (text), "passed"}."""

    name: str
    title: str
    source: str
    run: Callable[..., tuple[Any, dict[str, Any]]]


LABS: Registry[Lab] = Registry("lab")


def register_lab(name: str, title: str, source: str):
    def wrap(fn):
        LABS.register(name, Lab(name, title, source, fn))
        return fn

    return wrap


def check(value: float, passed: bool, tolerance: str) -> dict[str, Any]:
    return {"value": float(value), "tolerance": tolerance, "passed": bool(passed)}


def run_lab(name: str, out: str | Path = ".", fast: bool = False, seed: int = 0) -> dict[str, Any]:
    """Run lab ``name``; write ``out/NAME.png`` and ``out/NAME.json``; return the numbers."""
    lab = LABS[name]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        fig, numbers = lab.run(fast=fast, seed=seed)
    numbers = {
        "lab": name,
        "title": lab.title,
        "source": lab.source,
        "fast": fast,
        "seed": seed,
        **numbers,
    }
    out = Path(out)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    numbers["figure"] = str(atomic_write_bytes(out / f"{name}.png", buf.getvalue()))
    atomic_write_text(out / f"{name}.json", json.dumps(numbers, indent=2, sort_keys=True) + "\n")
    return numbers


def figure(rows: int = 1, cols: int = 1, size: tuple[float, float] = (6.0, 4.0)):
    """A Matplotlib Figure (no display needed) and its axes array."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, dpi=100, layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    return fig, axes


def mlp(
    in_dim: int, out_dim: int, hidden: int = 64, depth: int = 2, act=nn.LeakyReLU
) -> nn.Sequential:
    """A small fully connected network."""
    layers, width = [], in_dim
    for _ in range(depth):
        layers += [nn.Linear(width, hidden), act()]
        width = hidden
    layers.append(nn.Linear(width, out_dim))
    return nn.Sequential(*layers)


# --- 1-D densities and quadrature (float64 NumPy) ---


def normal_pdf(x: np.ndarray, mean: float, std: float) -> np.ndarray:
    return np.exp(-0.5 * ((x - mean) / std) ** 2) / (std * math.sqrt(2 * math.pi))


@dataclass(frozen=True)
class Mixture1D:
    """A 1-D Gaussian mixture: weights, means, stds."""

    weights: tuple[float, ...]
    means: tuple[float, ...]
    stds: tuple[float, ...]

    def pdf(self, x: np.ndarray) -> np.ndarray:
        return sum(w * normal_pdf(x, m, s) for w, m, s in zip(self.weights, self.means, self.stds))

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """(n, 1) float32 samples."""
        comp = torch.multinomial(
            torch.tensor(self.weights), n, replacement=True, generator=generator
        )
        means, stds = torch.tensor(self.means)[comp], torch.tensor(self.stds)[comp]
        return (means + stds * torch.randn(n, generator=generator)).unsqueeze(1)


def integrate(values: np.ndarray, xs: np.ndarray) -> float:
    """Trapezoid rule on a grid."""
    return float(trapezoid(values, xs))


def xlogy(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """x * log(y) with 0 * log(0) = 0."""
    out = np.zeros_like(x, dtype=np.float64)
    mask = x > 0
    out[mask] = x[mask] * np.log(y[mask])
    return out


def jsd(p: np.ndarray, q: np.ndarray, xs: np.ndarray) -> float:
    """Jensen-Shannon divergence of two densities on a grid, in nats (at most log 2)."""
    m = 0.5 * (p + q)
    with np.errstate(divide="ignore", invalid="ignore"):
        kl_pm = xlogy(p, np.where(m > 0, p / np.where(m > 0, m, 1), 1))
        kl_qm = xlogy(q, np.where(m > 0, q / np.where(m > 0, m, 1), 1))
    return 0.5 * integrate(kl_pm, xs) + 0.5 * integrate(kl_qm, xs)

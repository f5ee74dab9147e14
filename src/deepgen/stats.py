"""Summaries of per-example values, as every reported number carries them."""

from __future__ import annotations

import math

import torch


def mean_stderr(values: torch.Tensor) -> dict[str, float | int]:
    """{"mean", "stderr", "n"} of per-example values (N,): the mean, and its standard
    error std / sqrt(N) (NaN when N < 2), in the values' own unit."""
    v = values.detach().double().flatten()
    n = len(v)
    stderr = float(v.std() / math.sqrt(n)) if n > 1 else float("nan")
    return {"mean": float(v.mean()), "stderr": stderr, "n": n}

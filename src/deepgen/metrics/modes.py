"""Mode coverage on 2-D mixtures, as VEEGAN (Srivastava et al. 2017, sec. 5.1) and PacGAN
(Lin et al. 2018, sec. 5) measure it, over 2,500 generated samples:

- modes captured: a mode counts when some sample lies within 3 std of its centre;
- high-quality samples: the percentage of samples within 3 std of some mode's centre;
- reverse KL: KL(q || uniform) in nats, where q is the histogram of the high-quality
  samples over their nearest modes (0 when every mode gets an equal share; log M when
  all fall in one mode; infinite when there is no high-quality sample).
"""

from __future__ import annotations

import math

import torch

from ..data.toy import ToyMixture
from ..errors import ConfigError


def mode_metrics(samples: torch.Tensor, mixture: ToyMixture) -> dict[str, float]:
    """Modes captured, % high-quality samples and reverse KL of ``samples`` (N, 2)."""
    if samples.dim() != 2 or samples.shape[1] != 2:
        raise ConfigError(f"samples must be (N, 2), got {tuple(samples.shape)}")
    centres = mixture.centres.to(samples.device, torch.float64)
    dist = torch.cdist(samples.double(), centres)
    nearest_d, nearest = dist.min(1)
    good = nearest_d <= 3 * mixture.std
    counts = torch.bincount(nearest[good], minlength=len(centres)).double()
    m = len(centres)
    if counts.sum() == 0:
        reverse_kl = math.inf
    else:
        q = counts / counts.sum()
        nz = q > 0
        reverse_kl = float((q[nz] * (q[nz] * m).log()).sum())
    return {
        "modes": int((counts > 0).sum()),
        "num_modes": m,
        "high_quality_percent": 100.0 * float(good.double().mean()),
        "reverse_kl": reverse_kl,
        "n": len(samples),
    }

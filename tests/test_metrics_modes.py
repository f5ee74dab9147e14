"""Mode-coverage metrics on the 2-D mixtures, by their definitions."""

import math

import pytest
import torch

from deepgen.data.toy import TOY_MIXTURES, grid25, ring8, swissroll
from deepgen.metrics.modes import mode_metrics

# In 2-D, P(||x - c|| <= 3 std) for an isotropic Gaussian is 1 - exp(-9/2) (chi with 2 d.o.f.).
WITHIN_3_STD = 100 * (1 - math.exp(-4.5))  # 98.89%


@pytest.mark.parametrize("name", ["ring8", "grid25"])
def test_the_data_itself_scores_perfectly(name):
    mix = TOY_MIXTURES[name]
    out = mode_metrics(mix.sample(2500, torch.Generator().manual_seed(0)), mix)
    assert out["modes"] == out["num_modes"]
    assert out["high_quality_percent"] == pytest.approx(WITHIN_3_STD, abs=0.7)  # s.e. 0.2
    assert out["reverse_kl"] < 0.02


def test_collapse_to_one_mode():
    mix = ring8()
    one = mix.centres[3] + 0.001 * torch.randn(2500, 2, generator=torch.Generator().manual_seed(1))
    out = mode_metrics(one, mix)
    assert out["modes"] == 1 and out["high_quality_percent"] == 100.0
    assert out["reverse_kl"] == pytest.approx(math.log(8))


def test_half_the_modes_and_off_mode_samples():
    mix = grid25()
    g = torch.Generator().manual_seed(2)
    idx = torch.randint(0, 12, (2000,), generator=g)
    good = mix.centres[idx] + 0.05 * torch.randn(2000, 2, generator=g)
    bad = torch.full((500, 2), 1.0)  # between modes: 1.41 from the nearest centre
    out = mode_metrics(torch.cat([good, bad]), mix)
    assert out["modes"] == 12
    assert out["high_quality_percent"] == pytest.approx(0.8 * WITHIN_3_STD, abs=0.7)
    assert out["reverse_kl"] == pytest.approx(math.log(25 / 12), abs=0.02)


def test_no_high_quality_sample_gives_infinite_reverse_kl():
    assert mode_metrics(torch.full((10, 2), 10.0), ring8())["reverse_kl"] == math.inf


def test_geometry():
    assert torch.allclose(ring8().centres.norm(dim=1), torch.ones(8))
    assert len(grid25().centres) == 25 and grid25().centres.abs().max() == 4
    roll = swissroll(1000, torch.Generator().manual_seed(0))
    assert roll.shape == (1000, 2) and roll.norm(dim=1).max() < 2.0

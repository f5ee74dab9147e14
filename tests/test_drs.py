"""Discriminator rejection sampling: exact where the discriminator is optimal, and refused
where the discriminator does not estimate a density ratio."""

import math

import pytest
import torch
from torch import nn

from deepgen.drs import rejection_sample
from deepgen.errors import ConfigError
from deepgen.models import build_model

MEAN, STD = torch.tensor([1.0, -0.5]), 0.5


class OptimalLogit(nn.Module):
    """log N(x; MEAN, STD^2 I) - log N(x; 0, I): the optimal discriminator's logit when G
    draws N(0, I) and the data are N(MEAN, STD^2 I)."""

    def forward(self, x):
        data = -((x - MEAN) ** 2).sum(1) / (2 * STD**2) - 2 * math.log(STD)
        return data + (x**2).sum(1) / 2


def gan_with_optimal_d():
    model = build_model("gan", {"net": "mlp", "latent_dim": 2, "hidden_dim": 8}, (2,))
    model.generator, model.discriminator = nn.Identity(), OptimalLogit()  # G(z) = z
    return model


def test_exact_drs_turns_the_generator_into_the_data_distribution():
    g = torch.Generator().manual_seed(0)
    x, rate = rejection_sample(gan_with_optimal_d(), 4000, g, shift_quantile=None)
    assert x.shape == (4000, 2)
    assert torch.allclose(x.mean(0), MEAN, atol=0.04), x.mean(0)
    assert torch.allclose(x.std(0), torch.full((2,), STD), atol=0.03), x.std(0)
    # acceptance = E_pg[p/p_g] / max(p/p_g) = 1 / max ratio; the ratio peaks at x = 4/3 MEAN
    peak = OptimalLogit()(MEAN.view(1, 2) * 4 / 3).exp().item()
    assert rate == pytest.approx(1 / peak, rel=0.1)


class PackedOptimalLogit(nn.Module):
    """The optimal PacGAN discriminator's logit for packs of PACK rows laid side by side
    (B / PACK, PACK * 2): the sum of the members' optimal logits."""

    def forward(self, packs):
        return OptimalLogit()(packs.reshape(-1, 2)).reshape(len(packs), -1).sum(1)


PACK = 3


@pytest.mark.slow
def test_exact_drs_of_packs_keeps_whole_packs_drawn_from_the_data():
    model = build_model("gan", {"net": "mlp", "latent_dim": 2, "hidden_dim": 8, "pack": PACK}, (2,))
    model.generator, model.discriminator = nn.Identity(), PackedOptimalLogit()
    g = torch.Generator().manual_seed(0)
    x, rate = rejection_sample(model, 3000, g, shift_quantile=None, batch_size=1000)
    assert x.shape == (3000, 2)
    assert torch.allclose(x.mean(0), MEAN, atol=0.05), x.mean(0)
    assert torch.allclose(x.std(0), torch.full((2,), STD), atol=0.035), x.std(0)
    # a pack is kept with probability prod ratio / max prod ratio, so the rate is 1 / peak^PACK
    peak = OptimalLogit()(MEAN.view(1, 2) * 4 / 3).exp().item()
    assert rate == pytest.approx(peak**-PACK, rel=0.15)


def test_the_quantile_shift_sets_how_selective_sampling_is():
    # gamma = the q-quantile of F: with a calibrated D, a higher q keeps fewer candidates,
    # those where p_data/p_g is highest (it peaks at 4/3 MEAN).
    g = torch.Generator().manual_seed(0)
    peak = MEAN * 4 / 3
    spread = {}
    for q in (None, 0.5, 0.95):
        x, rate = rejection_sample(gan_with_optimal_d(), 2000, g, shift_quantile=q)
        spread[q] = ((x - peak).norm(dim=1).mean().item(), rate)
    assert spread[0.95][0] < spread[0.5][0] and spread[0.95][1] < spread[0.5][1]
    assert spread[0.5][1] > spread[None][1]  # the median shift accepts more than exact DRS here


@pytest.mark.parametrize(
    "family,options,match",
    [
        ("wgan", {}, "needs DensityRatio; a wgan does not have it"),
        ("gan", {"loss": "lsgan"}, "this gan lacks it: an lsgan discriminator"),
        ("cgan", {"num_classes": 3}, "needs DensityRatio; a cgan does not have it"),
    ],
)
def test_refused_where_d_is_no_density_ratio(family, options, match):
    model = build_model(family, {"net": "mlp", "latent_dim": 2, "hidden_dim": 8, **options}, (2,))
    with pytest.raises(ConfigError, match=match):
        rejection_sample(model, 10)


def test_api_sample_with_drs():
    from deepgen.api import sample

    assert sample(gan_with_optimal_d(), 50, seed=1, drs=True).shape == (50, 2)
    with pytest.raises(ConfigError, match="drop the label"):
        sample(gan_with_optimal_d(), 5, drs=True, label=1)


def test_too_few_accepted_is_a_clear_error():
    with pytest.raises(ConfigError, match="accepted .* fewer than"):
        rejection_sample(
            gan_with_optimal_d(), 5000, shift_quantile=None, batch_size=100, max_draws=1000
        )

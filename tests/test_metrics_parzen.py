"""Parzen windows against a brute-force computation and known densities."""

import math

import pytest
import torch

from deepgen.errors import ConfigError
from deepgen.metrics.parzen import parzen_log_likelihood, parzen_protocol, select_sigma


def test_matches_brute_force_on_a_tiny_case():
    g = torch.Generator().manual_seed(0)
    samples, x, sigma = torch.rand(7, 3, generator=g), torch.rand(4, 3, generator=g), 0.3
    brute = []
    for xi in x.double():
        dens = sum(
            math.prod(
                math.exp(-((a - b) ** 2) / (2 * sigma**2)) / math.sqrt(2 * math.pi * sigma**2)
                for a, b in zip(xi.tolist(), si.tolist())
            )
            for si in samples.double()
        )
        brute.append(math.log(dens / len(samples)))
    got = parzen_log_likelihood(samples, x, sigma, chunk=3)
    assert torch.allclose(got, torch.tensor(brute, dtype=torch.float64), atol=1e-10)


def test_no_underflow_far_from_every_sample():
    ll = parzen_log_likelihood(torch.zeros(5, 784), torch.ones(2, 784), sigma=0.1)
    assert torch.isfinite(ll).all() and (ll < -30000).all()


def test_recovers_a_known_density_and_picks_a_sensible_sigma():
    g = torch.Generator().manual_seed(1)
    data = lambda n: torch.randn(n, 2, generator=g) * 0.3  # noqa: E731
    proto = parzen_protocol(data(10000), data(1000), data(2000), sigmas=[0.01, 0.1, 1.0])
    exact = -math.log(2 * math.pi * 0.09) - 1.0  # E[log N(x; 0, 0.09 I)] in 2-d
    assert proto["sigma"] == 0.1
    assert proto["mean"] == pytest.approx(exact, abs=0.1)
    assert select_sigma(data(1000), data(200), [0.01, 0.1, 1.0])[0] == 0.1


def test_bad_arguments():
    with pytest.raises(ConfigError, match="positive"):
        parzen_log_likelihood(torch.zeros(2, 2), torch.zeros(2, 2), 0.0)
    with pytest.raises(ConfigError, match="dimensions"):
        parzen_log_likelihood(torch.zeros(2, 2), torch.zeros(2, 3), 0.1)


def test_only_the_papers_counts_on_its_data_may_be_compared_with_its_table():
    from deepgen.errors import ConfigError
    from deepgen.metrics.paper_protocols import check_paper_protocol, counts_used, label

    follows = {"protocol": "Parzen"}
    label("parzen", follows, "mnist", counts_used("parzen", 10_000, 10_000, 5000))
    assert check_paper_protocol(follows, "parzen") == "Goodfellow et al. 2014 (Table 1)"
    assert follows["protocol"] == "Parzen"
    for data, n in (("mnist", 2000), ("fashion-mnist", 10_000)):
        other = {"protocol": "Parzen"}
        label("parzen", other, data, counts_used("parzen", n, n, 5000))
        with pytest.raises(ConfigError, match="cannot be compared with Goodfellow"):
            check_paper_protocol(other, "parzen")
        assert "NOT Goodfellow" in other["protocol"]
    with pytest.raises(ConfigError, match="does not say which protocol"):
        check_paper_protocol({}, "parzen")
    with pytest.raises(ConfigError, match="no paper's protocol"):
        check_paper_protocol({}, "fid")
    unlabelled = {}
    label("fid", unlabelled, "mnist", {})
    assert unlabelled == {}

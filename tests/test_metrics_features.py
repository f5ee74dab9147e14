"""Feature-space metrics against independent computations."""

import math

import numpy as np
import pytest
import torch

from deepgen.metrics.feature_space import (
    density_coverage,
    fid,
    frechet_distance,
    inception_score,
    kid,
    kid_full,
    precision_recall,
)


def gaussian(n, mean, std, seed, dim=4):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, dim, generator=g, dtype=torch.float64) * torch.tensor(std) + torch.tensor(
        mean
    )


def test_frechet_distance_of_diagonal_gaussians_has_a_closed_form():
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    s1, s2 = np.array([1.0, 2.0, 0.5]), np.array([3.0, 1.0, 0.5])
    closed = float(((mu1 - mu2) ** 2).sum() + ((s1 - s2) ** 2).sum())
    assert frechet_distance(mu1, np.diag(s1**2), mu2, np.diag(s2**2)) == pytest.approx(
        closed, rel=1e-9
    )


def test_frechet_distance_with_full_covariances_matches_eigen_route():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(5, 5)), rng.normal(size=(5, 5))
    c1, c2 = a @ a.T + np.eye(5), b @ b.T + np.eye(5)
    r = np.linalg.cholesky(c1)  # tr((c1 c2)^1/2) = tr((L^T c2 L)^1/2) for c1 = L L^T
    vals = np.linalg.eigvalsh(r.T @ c2 @ r)
    closed = np.trace(c1) + np.trace(c2) - 2 * np.sqrt(vals).sum()
    assert frechet_distance(np.zeros(5), c1, np.zeros(5), c2) == pytest.approx(closed, rel=1e-8)


def test_fid_of_samples_approaches_the_closed_form():
    a = gaussian(20000, [0, 0, 0, 0], [1, 1, 1, 1], 0)
    b = gaussian(20000, [1, 0, 0, 0], [2, 1, 1, 1], 1)
    assert fid(a, b) == pytest.approx(1.0 + 1.0, abs=0.1)
    assert fid(a, gaussian(20000, [0, 0, 0, 0], [1, 1, 1, 1], 2)) < 0.01


def test_kid_is_about_zero_for_one_distribution_and_positive_otherwise():
    a, b = gaussian(2000, [0] * 4, [1] * 4, 0), gaussian(2000, [0] * 4, [1] * 4, 1)
    mean, std = kid(a, b, subsets=20, subset_size=500, generator=torch.Generator().manual_seed(0))
    assert abs(mean) < 3 * std + 1e-3
    far, _ = kid(a, gaussian(2000, [1] * 4, [1] * 4, 2), subsets=20, subset_size=500)
    assert far > 20 * max(std, 1e-4)


def test_kid_estimator_is_unbiased_by_brute_force():
    # Unbiased MMD^2 by explicit double sums over i != j.
    x, y = gaussian(30, [0] * 3, [1] * 3, 3, dim=3), gaussian(30, [0.5] * 3, [1] * 3, 4, dim=3)
    k = lambda u, v: (float(u @ v) / 3 + 1) ** 3  # noqa: E731
    n = 30
    xx = sum(k(x[i], x[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(k(x[i], y[j]) for i in range(n) for j in range(n)) / n**2
    mean, std = kid(x, y, subsets=3, subset_size=30)
    assert mean == pytest.approx(xx + yy - 2 * xy, rel=1e-9) and std < 1e-9


def test_full_set_kid_is_the_paired_u_statistic_by_brute_force():
    x, y = gaussian(25, [0] * 3, [1] * 3, 3, dim=3), gaussian(30, [0.5] * 3, [1] * 3, 4, dim=3)
    k = lambda u, v: (float(u @ v) / 3 + 1) ** 3
    m = 25  # the first min(N, M) rows of each

    def h(i, j):
        return k(x[i], x[j]) + k(y[i], y[j]) - k(x[i], y[j]) - k(x[j], y[i])

    values = [h(i, j) for i in range(m) for j in range(m) if i != j]
    value, stderr = kid_full(x, y, block=7)  # blocks that do not divide m
    assert value == pytest.approx(sum(values) / len(values), rel=1e-9)
    assert stderr > 0


@pytest.mark.parametrize("shift", [0.0, 0.3])
def test_full_set_kid_standard_error_matches_the_spread_of_repeated_draws(shift):
    """60 fresh draws of 600 real and 600 generated features (seeds 0-59): the mean
    reported standard error is within 25% of the spread of the values, both when the two
    distributions differ and when they are the same (where the statistic is degenerate and
    only the second-order term of its variance remains)."""
    values, errors = [], []
    for seed in range(60):
        g = torch.Generator().manual_seed(seed)
        real = torch.randn(600, 16, generator=g) * 2
        fake = torch.randn(600, 16, generator=g) * 2 + shift
        value, stderr = kid_full(real, fake)
        values.append(value)
        errors.append(stderr)
    assert np.mean(errors) / np.std(values, ddof=1) == pytest.approx(1.0, abs=0.25)


def test_inception_score_bounds():
    confident = torch.eye(10).repeat(100, 1)  # every class, each with certainty
    assert inception_score(confident)[0] == pytest.approx(10.0, rel=1e-6)
    assert inception_score(torch.full((1000, 10), 0.1))[0] == pytest.approx(1.0)
    one_class = torch.zeros(1000, 10)
    one_class[:, 3] = 1
    assert inception_score(one_class)[0] == pytest.approx(1.0)


def test_precision_recall_and_density_coverage():
    real = gaussian(1000, [0] * 4, [1] * 4, 0)
    same = gaussian(1000, [0] * 4, [1] * 4, 1)
    p, r = precision_recall(real, same)
    assert p > 0.7 and r > 0.7
    d, c = density_coverage(real, same)
    d2, c2, d_stderr = density_coverage(real, same, stderr=True)
    assert (d2, c2) == (d, c) and 0 < d_stderr < 0.1
    assert 0.7 < d < 1.3 and c > 0.9
    collapsed = gaussian(
        1000, [0] * 4, [0.05] * 4, 2
    )  # good but not diverse: high precision, low recall
    p, r = precision_recall(real, collapsed)
    assert p > 0.95 and r < 0.1
    d, c = density_coverage(real, collapsed)
    assert c < 0.1
    off = gaussian(1000, [6] * 4, [1] * 4, 3)  # diverse but wrong
    assert precision_recall(real, off)[0] < 0.05


def test_identical_sets():
    real = gaussian(500, [0] * 4, [1] * 4, 0)
    assert precision_recall(real, real) == (1.0, 1.0)
    assert density_coverage(real, real)[1] == 1.0
    assert fid(real, real) == pytest.approx(0.0, abs=1e-6)
    assert math.isfinite(kid(real, real, subsets=5, subset_size=100)[0])


def test_features_of_images_are_the_feature_networks_and_bad_images_are_named(mnist):
    from deepgen import metrics
    from deepgen.errors import ConfigError

    x = mnist["test"].x[:200]
    f = metrics.features(x, "mnist")
    assert f.shape == (200, 128) and torch.allclose(f, metrics.features(x.float() / 255, "mnist"))
    p = metrics.class_probabilities(x, "mnist")
    assert (p.argmax(1) == mnist["test"].labels[:200]).double().mean() > 0.95
    assert metrics.fid(f[:100], f[100:]) < metrics.fid(
        f[:100], metrics.features(1 - x / 255, "mnist")
    )
    for bad, message in [
        (x[0], r"images must be a tensor \(N, C, H, W\), not \(1, 28, 28\)"),
        (x.float(), r"float images must lie in \[0, 1\]"),
        (x.numpy(), "not ndarray"),
    ]:
        with pytest.raises(ConfigError, match=message):
            metrics.features(bad, "mnist")
    with pytest.raises(ConfigError, match=r"reads images \(3, 28, 28\), not \(1, 28, 28\)"):
        metrics.features(x, "mnist-m")


def test_density_standard_error_matches_the_spread_over_generated_draws():
    """The real k-NN balls held fixed, 60 fresh draws of 500 generated points: density's
    reported standard error is within 25% of the spread of its values."""
    real = gaussian(500, [0] * 4, [1] * 4, 0)
    values, errors = [], []
    for seed in range(1, 61):
        d, _, stderr = density_coverage(real, gaussian(500, [0.2] * 4, [1] * 4, seed), stderr=True)
        values.append(d)
        errors.append(stderr)
    assert np.mean(errors) / np.std(values, ddof=1) == pytest.approx(1.0, abs=0.25)


def test_fid_with_a_feature_that_never_varies_is_finite_and_zero_for_one_set():
    x = gaussian(400, [0] * 4, [1] * 4, 5)
    x[:, 2] = 0.5  # a dead feature: both covariances are singular
    y = gaussian(400, [0] * 4, [1] * 4, 6)
    y[:, 2] = 0.5
    assert fid(x, x) == pytest.approx(0.0, abs=1e-9)
    assert 0 < fid(x, y) < 0.2  # two samples of one distribution: small, not zero

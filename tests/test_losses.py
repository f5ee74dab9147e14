"""Objectives against closed forms and Monte-Carlo estimates."""

import math

import pytest
import torch

from deepgen import losses


def test_kl_closed_form_matches_monte_carlo():
    g = torch.Generator().manual_seed(0)
    mu = torch.randn(4, 3, generator=g)
    logvar = torch.randn(4, 3, generator=g) * 0.5
    n = 200_000
    z = losses.reparameterize(mu.repeat(n, 1), logvar.repeat(n, 1), g)
    log_q = losses.log_normal(z, mu.repeat(n, 1), logvar.repeat(n, 1))
    log_p = losses.log_normal(z, torch.zeros_like(z), torch.zeros_like(z))
    samples = (log_q - log_p).view(n, 4)
    mc, se = samples.mean(0), samples.std(0) / math.sqrt(n)
    exact = losses.kl_normal_std_normal(mu, logvar)
    assert torch.all((mc - exact).abs() < 5 * se + 1e-4), (mc, exact, se)


def test_kl_is_zero_only_at_the_prior():
    assert losses.kl_normal_std_normal(torch.zeros(2, 5), torch.zeros(2, 5)).abs().max() < 1e-7
    assert torch.all(losses.kl_normal_std_normal(torch.full((2, 5), 0.1), torch.zeros(2, 5)) > 0)


def test_reparameterised_gradient_matches_analytic():
    # E_{z ~ N(mu, s^2)}[z^2] = mu^2 + s^2: d/dmu = 2 mu, d/dlogvar = s^2.
    g = torch.Generator().manual_seed(1)
    mu = torch.tensor([[0.7, -1.3]], requires_grad=True)
    logvar = torch.tensor([[-0.4, 0.3]], requires_grad=True)
    n = 400_000
    z = losses.reparameterize(mu.expand(n, 2), logvar.expand(n, 2), g)
    z.pow(2).mean(0).sum().backward()
    assert torch.allclose(mu.grad, 2 * mu.detach(), atol=0.02)
    assert torch.allclose(logvar.grad, logvar.detach().exp(), atol=0.02)


def test_log_normal_matches_torch_distributions():
    g = torch.Generator().manual_seed(2)
    z, mu, logvar = (torch.randn(5, 4, generator=g) for _ in range(3))
    ref = torch.distributions.Normal(mu, (0.5 * logvar).exp()).log_prob(z).sum(1)
    assert torch.allclose(losses.log_normal(z, mu, logvar), ref, atol=1e-5)


def test_bernoulli_and_gaussian_log_likelihood():
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(3, 1, 4, 4, generator=g)
    x = torch.bernoulli(torch.full((3, 1, 4, 4), 0.4), generator=g)
    ref = torch.distributions.Bernoulli(logits=logits).log_prob(x).flatten(1).sum(1)
    assert torch.allclose(losses.bernoulli_log_likelihood(logits, x), ref, atol=1e-5)
    mean, log_scale = torch.rand(3, 1, 4, 4, generator=g), torch.tensor([-1.0])
    ref = torch.distributions.Normal(mean, log_scale.exp()).log_prob(x).flatten(1).sum(1)
    assert torch.allclose(losses.gaussian_log_likelihood(x, mean, log_scale), ref, atol=1e-4)


def test_gan_losses_at_half_give_minus_log_4():
    logits = torch.zeros(6)  # D = sigmoid(0) = 1/2 everywhere
    assert torch.allclose(losses.gan_value(logits, logits), torch.full((6,), -math.log(4)))
    assert torch.allclose(losses.discriminator_loss(logits, logits), torch.full((6,), math.log(4)))
    assert torch.allclose(losses.generator_loss_minimax(logits), torch.full((6,), -math.log(2)))
    assert torch.allclose(
        losses.generator_loss_nonsaturating(logits), torch.full((6,), math.log(2))
    )


@pytest.mark.parametrize("d", [0.1, 0.5, 0.9])
def test_gan_value_is_log_d_plus_log_one_minus_d(d):
    logit = torch.logit(torch.tensor([d], dtype=torch.float64))
    expected = math.log(d) + math.log(1 - d)
    assert abs(losses.gan_value(logit, logit).item() - expected) < 1e-9


def test_nonsaturating_gradient_is_strong_where_minimax_saturates():
    # Early in training D(G(z)) ~ 0: minimax's gradient vanishes, the non-saturating one does not.
    logit = torch.tensor([-8.0], requires_grad=True)
    (g_mm,) = torch.autograd.grad(losses.generator_loss_minimax(logit).sum(), logit)
    (g_ns,) = torch.autograd.grad(losses.generator_loss_nonsaturating(logit).sum(), logit)
    assert g_mm.abs() < 1e-3 < 0.9 < g_ns.abs()


def test_bits_per_dim():
    assert losses.bits_per_dim(torch.tensor([784 * math.log(2)]), 784).item() == pytest.approx(1.0)


def test_iwae_bound_rises_with_k_and_never_exceeds_log_px():
    # q = prior = N(0, 1), p(x|z) = N(x; z, 1): log p(x) = log N(x; 0, 2) exactly.
    g = torch.Generator().manual_seed(4)
    x = torch.tensor([0.3, -1.7, 2.5])
    exact = torch.distributions.Normal(0.0, math.sqrt(2.0)).log_prob(x)
    means = []
    for k in (1, 10, 100, 2000):
        z = torch.randn(200, k, 3, generator=g)
        log_w = torch.distributions.Normal(z, 1.0).log_prob(x)  # log p(x|z); prior and q cancel
        means.append(torch.stack([losses.iwae_bound(lw) for lw in log_w]).mean(0))
    for a, b in zip(means, means[1:]):
        assert torch.all(b >= a - 0.01)
    assert torch.all(means[-1] <= exact + 0.01) and torch.allclose(means[-1], exact, atol=0.03)


def test_iwae_bound_is_a_stable_log_mean_exp():
    lw = torch.tensor([[1000.0, -5.0], [1000.0, -7.0]])
    expected = torch.tensor([1000.0, math.log((math.exp(-5) + math.exp(-7)) / 2)])
    assert torch.allclose(losses.iwae_bound(lw), expected)


def test_gradient_penalty_against_a_hand_computation():
    # f(x) = a . x^2 / 2 has gradient a * x; at x_hat = eps*r + (1-eps)*f the norm is known.
    a = torch.tensor([3.0, -4.0])
    critic = lambda x: (0.5 * a * x.pow(2)).sum(1)  # noqa: E731
    real, fake = torch.tensor([[1.0, 1.0], [2.0, 0.0]]), torch.tensor([[0.0, 0.0], [0.0, 2.0]])
    g = torch.Generator().manual_seed(5)
    eps = torch.rand((2, 1), generator=torch.Generator().manual_seed(5))
    x_hat = eps * real + (1 - eps) * fake
    expected = ((a * x_hat).norm(dim=1) - 1).pow(2)
    assert torch.allclose(losses.gradient_penalty(critic, real, fake, g), expected)


def test_gradient_penalty_draws_one_weight_per_example():
    # With per-pixel weights, x_hat would leave the segment between real and fake.
    seen = {}

    def critic(x):
        seen["x"] = x
        return x.flatten(1).sum(1)

    real, fake = torch.ones(4, 1, 3, 3), torch.zeros(4, 1, 3, 3)
    losses.gradient_penalty(critic, real, fake, torch.Generator().manual_seed(0))
    x = seen["x"].detach().flatten(1)
    assert torch.all(x.max(1).values == x.min(1).values)
    assert len(set(x[:, 0].tolist())) == 4


def test_likelihoods_are_the_sum_of_one_elementwise_definition_over_each_event():
    g = torch.Generator().manual_seed(2)
    logits, x = (
        torch.randn(3, 1, 4, 4, generator=g) * 3,
        (torch.rand(3, 1, 4, 4, generator=g) > 0.5).float(),
    )
    reference = torch.distributions.Bernoulli(logits=logits).log_prob(x)
    assert torch.allclose(losses.bernoulli_log_prob(logits, x), reference, atol=1e-6)
    assert torch.allclose(
        losses.bernoulli_log_likelihood(logits, x), reference.flatten(1).sum(1), atol=1e-5
    )
    mean, log_scale = torch.rand(3, 1, 4, 4, generator=g), torch.tensor([-1.5])
    reference = torch.distributions.Normal(mean, log_scale.exp()).log_prob(x)
    assert torch.allclose(
        losses.gaussian_log_likelihood(x, mean, log_scale), reference.flatten(1).sum(1), atol=1e-4
    )


def test_event_dims_let_several_draws_per_example_share_the_definition():
    """IWAE decodes n latents per image: logits (n, B, C, H, W) against x (B, C, H, W) give
    (n, B), each entry what the one-draw call gives for that draw."""
    g = torch.Generator().manual_seed(3)
    logits, x = torch.randn(5, 3, 1, 4, 4, generator=g), torch.rand(3, 1, 4, 4, generator=g)
    many = losses.bernoulli_log_likelihood(logits, x, event_dims=3)
    assert many.shape == (5, 3)
    assert torch.allclose(
        many, torch.stack([losses.bernoulli_log_likelihood(l, x) for l in logits])
    )
    assert losses.sum_event(torch.ones(2, 3), 0).shape == (2, 3)

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
    assert torch.allclose(losses.generator_loss_nonsaturating(logits), torch.full((6,), math.log(2)))


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

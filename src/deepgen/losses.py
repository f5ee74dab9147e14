"""Pure objectives: tensors in, per-example values of shape (B,) out, in nats.

Nothing here reduces over the batch or steps an optimiser; the Trainer does that.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

LOG_2PI = math.log(2 * math.pi)


def sum_event(values: torch.Tensor, event_dims: int | None = None) -> torch.Tensor:
    """Sum element-wise values over the dimensions of one event.

    Args:
        values: (*batch, *event) element-wise values (e.g. nats per pixel).
        event_dims: how many trailing dimensions form one event; None: every dimension
            but the first, i.e. (B, ...) -> (B,).
    Returns: (*batch) sums.
    """
    if event_dims is None:
        return values.reshape(values.shape[0], -1).sum(dim=1)
    if event_dims == 0:
        return values
    return values.flatten(-event_dims).sum(dim=-1)


def reparameterize(
    mu: torch.Tensor,
    logvar: torch.Tensor,
    generator: torch.Generator | None = None,
    eps: torch.Tensor | None = None,
) -> torch.Tensor:
    """z = mu + sigma * eps, eps ~ N(0, I) (Kingma & Welling 2013, sec. 2.4).

    Args:
        mu, logvar: (B, D) mean and log-variance of q(z|x).
        generator: source of eps; must live on ``mu``'s device.
        eps: the standard normal draw to use instead (e.g. ``Batch.randn``): (B, D), or
            (n, B, D) for n draws per example (importance sampling).
    Returns: a sample of eps's shape, differentiable in mu and logvar.
    """
    if eps is None:
        eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
    return mu + torch.exp(0.5 * logvar) * eps


def kl_normal_std_normal(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, diag exp(logvar)) || N(0, I)) in nats, shape (B,).

    Closed form: 0.5 * sum(exp(logvar) + mu^2 - 1 - logvar)
    (Kingma & Welling 2013, appendix B).
    """
    return 0.5 * torch.sum(torch.exp(logvar) + mu.pow(2) - 1.0 - logvar, dim=1)


def kl_normal_normal(
    mu_q: torch.Tensor, logvar_q: torch.Tensor, mu_p: torch.Tensor, logvar_p: torch.Tensor
) -> torch.Tensor:
    """KL(N(mu_q, diag exp(logvar_q)) || N(mu_p, diag exp(logvar_p))) in nats: (B, D) -> (B,).

    Closed form:
    0.5 * sum(logvar_p - logvar_q + (exp(logvar_q) + (mu_q - mu_p)^2) / exp(logvar_p) - 1);
    with mu_p = 0, logvar_p = 0 it is :func:`kl_normal_std_normal`. The KL term of a CVAE
    with a conditional prior p(z|x) (Sohn et al. 2015, eq. 4).
    """
    return 0.5 * torch.sum(
        logvar_p
        - logvar_q
        + (torch.exp(logvar_q) + (mu_q - mu_p).pow(2)) * torch.exp(-logvar_p)
        - 1.0,
        dim=1,
    )


def log_normal(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(z; mu, diag exp(logvar)) summed over the last dimension: (..., D) -> (...) nats.
    Arguments broadcast, e.g. z (n, B, D) against mu (B, D)."""
    return -0.5 * torch.sum(LOG_2PI + logvar + (z - mu).pow(2) * torch.exp(-logvar), dim=-1)


def bernoulli_log_prob(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Element-wise log Bernoulli(x; sigmoid(logits)) = x * logits - softplus(logits), nats.

    x in [0, 1] (binary for a true likelihood; grey levels give the cross-entropy used as
    a likelihood by e.g. Sohn et al. 2015). Arguments broadcast.
    """
    return x * logits - F.softplus(logits)


def bernoulli_log_likelihood(
    logits: torch.Tensor, x: torch.Tensor, event_dims: int | None = None
) -> torch.Tensor:
    """:func:`bernoulli_log_prob` summed per event (:func:`sum_event`): (B, ...) -> (B,) nats,
    or e.g. logits (n, B, C, H, W) against x (B, C, H, W) with ``event_dims=3`` -> (n, B)."""
    return sum_event(bernoulli_log_prob(logits, x), event_dims)


def gaussian_log_prob(x: torch.Tensor, mean: torch.Tensor, log_scale: torch.Tensor) -> torch.Tensor:
    """Element-wise log N(x; mean, exp(log_scale)^2), nats. A density, so its value depends on
    the data's units (here pixels in [0, 1]). Arguments broadcast."""
    return -0.5 * LOG_2PI - log_scale - 0.5 * ((x - mean) * torch.exp(-log_scale)).pow(2)


def gaussian_log_likelihood(
    x: torch.Tensor, mean: torch.Tensor, log_scale: torch.Tensor, event_dims: int | None = None
) -> torch.Tensor:
    """:func:`gaussian_log_prob` summed per event (:func:`sum_event`): (B, ...) -> (B,) nats;
    give ``event_dims`` when ``mean`` has more leading dimensions than x."""
    return sum_event(gaussian_log_prob(x, mean, log_scale), event_dims)


def elbo(log_px_given_z: torch.Tensor, kl: torch.Tensor) -> torch.Tensor:
    """ELBO = E_q[log p(x|z)] - KL(q(z|x) || p(z)), shape (B,), nats
    (Kingma & Welling 2013, eq. 10)."""
    return log_px_given_z - kl


def gaussian_elbo_terms(
    mu: torch.Tensor,
    logvar: torch.Tensor,
    log_px_given_z: Callable[[torch.Tensor], torch.Tensor],
    generator: torch.Generator | None = None,
    eps: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """The one-sample ELBO of a Gaussian q(z|x) = N(mu, diag exp(logvar)) (B, D) under an
    N(0, I) prior: {"elbo", "recon" (= -log p(x|z)), "kl"}, each (B,) nats, with z drawn by
    the reparameterisation (``eps`` (B, D): the standard normal draw to use) and
    ``log_px_given_z(z)`` -> (B,) nats (Kingma & Welling 2013, eq. 10)."""
    z = reparameterize(mu, logvar, generator, eps)
    log_px = log_px_given_z(z)
    kl = kl_normal_std_normal(mu, logvar)
    return {"elbo": elbo(log_px, kl), "recon": -log_px, "kl": kl}


def expected_over_classes(neg_bound: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """The unlabelled bound of a model with a discrete latent class y (Kingma et al. 2014,
    eq. 7, negated): -U(x) = sum_y q(y|x) (-L(x, y)) - H(q(y|x)).

    neg_bound: -L(x, y) for every class (B, K), nats; log_q: log q(y|x) (B, K), normalised.
    Returns (B,) nats. Exact in y (no sampling of the class), so gradients reach q(y|x)."""
    q = log_q.exp()
    return (q * neg_bound).sum(1) + (q * log_q).sum(1)


def kl_weight(beta: float, warmup: int, iteration: int) -> float:
    """The KL term's weight at a training iteration (KL annealing, Bowman et al. 2016):
    ``beta`` reached linearly over the first ``warmup`` iterations; ``beta`` throughout
    when ``warmup`` is 0."""
    return beta if warmup == 0 else beta * min(1.0, iteration / warmup)


def bits_per_dim(nats: torch.Tensor, num_dims: int) -> torch.Tensor:
    """Convert a negative log-likelihood in nats per example to bits per dimension."""
    return nats / (num_dims * math.log(2.0))


# --- GANs (Goodfellow et al. 2014). D outputs a logit; D(x) = sigmoid(logit). ---


def gan_value(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Per-example V(D, G) = log D(x) + log(1 - D(G(z))) (Goodfellow et al. 2014, eq. 1), nats.

    Equals -log 4 when D = 1/2 everywhere. Shapes (B,) or (B, 1) -> (B,).
    """
    return -F.softplus(-real_logits).flatten() - F.softplus(fake_logits).flatten()


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """-V(D, G) per example, (B,) nats: the discriminator ascends V (Algorithm 1, step 1)."""
    return -gan_value(real_logits, fake_logits)


def generator_loss_minimax(fake_logits: torch.Tensor) -> torch.Tensor:
    """log(1 - D(G(z))) per example, (B,) nats: the generator descends it (Algorithm 1)."""
    return -F.softplus(fake_logits).flatten()


def generator_loss_nonsaturating(fake_logits: torch.Tensor) -> torch.Tensor:
    """-log D(G(z)) per example, (B,) nats: same fixed point, stronger gradients early
    (Goodfellow et al. 2014, sec. 3)."""
    return F.softplus(-fake_logits).flatten()


def lsgan_discriminator_loss(real_out: torch.Tensor, fake_out: torch.Tensor) -> torch.Tensor:
    """Least-squares discriminator loss per example, (B,): 1/2 (D(x) - 1)^2 + 1/2 D(G(z))^2,
    on raw (unsquashed) outputs, with targets a = 0 (fake), b = 1 (real) (Mao et al. 2017,
    eq. 2). Unitless."""
    return 0.5 * ((real_out.flatten() - 1.0).pow(2) + fake_out.flatten().pow(2))


def lsgan_generator_loss(fake_out: torch.Tensor) -> torch.Tensor:
    """Least-squares generator loss per example, (B,): 1/2 (D(G(z)) - 1)^2 (Mao et al.
    2017, eq. 2, c = 1). Unitless."""
    return 0.5 * (fake_out.flatten() - 1.0).pow(2)


def critic_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    """WGAN critic loss per example, (B,): f(G(z)) - f(x). Its negative mean estimates the
    Wasserstein-1 distance when f is 1-Lipschitz (Arjovsky et al. 2017, eq. 3 and
    Algorithm 1). Units of the data's metric."""
    return fake_scores.flatten() - real_scores.flatten()


def wgan_generator_loss(fake_scores: torch.Tensor) -> torch.Tensor:
    """WGAN generator loss per example, (B,): -f(G(z)) (Arjovsky et al. 2017, Algorithm 1)."""
    return -fake_scores.flatten()


# --- Improved techniques for training GANs (Salimans et al. 2016) ---


def k_plus_one_supervised_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """-log p_model(y | x, y < K + 1) per labelled example, (B,) nats: the cross-entropy of
    the K real classes' logits (B, K) with labels (B,) (Salimans et al. 2016, sec. 5,
    L_supervised). The fake class K + 1 has its logit fixed at 0, so it does not enter."""
    return F.cross_entropy(logits, labels, reduction="none")


def k_plus_one_unsupervised_loss(
    real_logits: torch.Tensor, fake_logits: torch.Tensor
) -> torch.Tensor:
    """The unsupervised part of the K+1-class discriminator's loss per pair of a real and
    a generated example, (B,) nats (Salimans et al. 2016, sec. 5, L_unsupervised, with the
    logit of class K + 1 fixed at 0).

    With Z(x) = sum_k exp(l_k(x)) over the real classes' logits (B, K), the probability
    that x is real is D(x) = Z(x) / (Z(x) + 1), so -log D(x) = softplus(-log Z(x)) and
    -log(1 - D(G(z))) = softplus(log Z(G(z))). Returns half their sum, as the paper's code
    weights the two halves of the batch: 0.5 softplus(-log Z(x)) + 0.5 softplus(log Z(G(z)))."""
    real, fake = torch.logsumexp(real_logits, 1), torch.logsumexp(fake_logits, 1)
    return 0.5 * F.softplus(-real) + 0.5 * F.softplus(fake)


def feature_matching_loss(real_features: torch.Tensor, fake_features: torch.Tensor) -> torch.Tensor:
    """The generator's feature-matching loss ||E f(x) - E f(G(z))||^2, as the mean over the
    F features of the squared difference of the batch means of real (B, F) and generated
    (B', F) features (Salimans et al. 2016, sec. 3.1; the mean, as in their code, not the
    sum). Returns (B',): every generated example carries the batch's value, so the mean is
    the loss. Units: squared feature units. Zero when the two batches' means are equal."""
    value = (real_features.mean(0) - fake_features.mean(0)).pow(2).mean()
    return value.expand(len(fake_features))


def historical_average_penalty(params, averages) -> torch.Tensor:
    """sum_i ||theta_i - mean of theta_i's past values||^2 over a player's parameters and
    their running means (Salimans et al. 2016, sec. 3.3); a scalar in squared parameter
    units, differentiable in ``params``."""
    return sum((p - a).pow(2).sum() for p, a in zip(params, averages, strict=True))


def one_sided_smoothed_discriminator_loss(
    real_logits: torch.Tensor, fake_logits: torch.Tensor, real_target: float
) -> torch.Tensor:
    """The discriminator's cross-entropy with one-sided label smoothing (Salimans et al.
    2016, sec. 3.4): real examples' target ``real_target`` (alpha, e.g. 0.9) instead of 1,
    generated examples' target kept at 0. Per example (B,) nats:
    -alpha log D(x) - (1 - alpha) log(1 - D(x)) - log(1 - D(G(z))). ``real_target`` = 1 is
    :func:`discriminator_loss`."""
    real, fake = real_logits.flatten(), fake_logits.flatten()
    return (
        real_target * F.softplus(-real) + (1.0 - real_target) * F.softplus(real) + F.softplus(fake)
    )


# --- importance weighting and critics ---


def iwae_bound(log_weights: torch.Tensor) -> torch.Tensor:
    """The k-sample importance-weighted bound log (1/k) sum_i w_i, per example, in nats
    (Burda et al. 2015, eq. 8), computed with log-sum-exp.

    Args:
        log_weights: (k, B) log p(x, z_i) - log q(z_i | x) for z_i ~ q(z|x).
    Returns: (B,) nats. k = 1 gives the one-sample ELBO estimate; the expectation rises
    with k towards log p(x) (Theorem 1).
    """
    k = log_weights.shape[0]
    return torch.logsumexp(log_weights, dim=0) - math.log(k)


def gradient_penalty(
    critic,
    real: torch.Tensor,
    fake: torch.Tensor,
    generator: torch.Generator | None = None,
    eps: torch.Tensor | None = None,
) -> torch.Tensor:
    """(||grad_x f(x_hat)||_2 - 1)^2 per example at x_hat = eps * real + (1 - eps) * fake,
    with one eps ~ U(0, 1) per example, not per pixel (Gulrajani et al. 2017, Algorithm 1).

    Args:
        critic: callable (B, ...) -> (B,) or (B, 1).
        real, fake: (B, ...) same shape.
        eps: (B,) the uniform draws to use instead of drawing them (e.g. ``Batch.rand``).
    Returns: (B,) penalty (unitless; multiply by lambda, 10 in the paper), differentiable
    in the critic's parameters.
    """
    shape = (real.shape[0],) + (1,) * (real.dim() - 1)
    if eps is None:
        eps = torch.rand(shape, generator=generator, device=real.device, dtype=real.dtype)
    eps = eps.reshape(shape)
    x_hat = (eps * real.detach() + (1 - eps) * fake.detach()).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)
    return (grad.flatten(1).norm(dim=1) - 1.0).pow(2)


def r1_penalty(discriminator, real: torch.Tensor) -> torch.Tensor:
    """||grad_x D(x)||_2^2 per example at real data x (Mescheder et al. 2018, eq. 9, without
    the gamma / 2 in front).

    Args:
        discriminator: callable (B, ...) -> (B / m,) logits, m = 1 unless the discriminator
            judges packs of m consecutive examples (PacGAN).
        real: (B, ...) real examples.
    Returns: (B / m,) squared gradient norms per logit with respect to its inputs (logit
    units per input unit, squared), differentiable in the discriminator's parameters.
    """
    x = real.detach().requires_grad_(True)
    logits = discriminator(x)
    (grad,) = torch.autograd.grad(logits.sum(), x, create_graph=True)
    return grad.reshape(len(logits), -1).pow(2).sum(1)


def classification_terms(logits: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-example ``error`` (0 or 1) and ``cross_entropy`` (nats), each (B,), of class
    logits (B, K) against integer labels y (B,) in [0, K)."""
    return {
        "error": (logits.argmax(1) != y).to(logits.dtype),
        "cross_entropy": F.cross_entropy(logits, y, reduction="none"),
    }

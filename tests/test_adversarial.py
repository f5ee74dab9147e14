"""The adversarial families beyond the plain GAN: LSGAN, WGAN, WGAN-GP, and MLP networks
for 2-D points. The shared registry tests in test_models.py cover their shapes, losses,
gradients and save/load; these check what is particular to each paper."""

from __future__ import annotations

import pytest
import torch

import deepgen
from deepgen import losses
from deepgen.models import Batch, build_model


def test_lsgan_losses_vanish_at_their_targets_and_grow_quadratically():
    ones, zeros = torch.ones(4), torch.zeros(4)
    assert torch.equal(
        losses.lsgan_discriminator_loss(ones, zeros), zeros
    )  # D(x) = b = 1, D(G(z)) = a = 0
    assert torch.equal(losses.lsgan_generator_loss(ones), zeros)  # D(G(z)) = c = 1
    t = torch.tensor([0.0, 2.0, -1.0])
    assert torch.allclose(losses.lsgan_generator_loss(t), 0.5 * (t - 1) ** 2)
    assert torch.allclose(losses.lsgan_discriminator_loss(t, t), 0.5 * ((t - 1) ** 2 + t**2))


def test_critic_loss_is_minus_the_wasserstein_estimate():
    real, fake = torch.tensor([3.0, 1.0]), torch.tensor([0.5, 2.0])
    assert torch.equal(losses.critic_loss(real, fake), fake - real)
    assert torch.equal(losses.wgan_generator_loss(fake), -fake)


def test_wgan_clipping_keeps_every_critic_weight_in_range(tiny):
    """Arjovsky et al.'s Algorithm 1, line 7: after every critic step all weights lie in
    [-c, c]. A large learning rate pushes them against the bounds."""
    model = build_model("wgan", {"channels": 8, "clip": 0.01, "lr": 0.05}, tiny.data_shape)
    deepgen.fit(model, tiny, images=32 * 5 * 3, batch_size=32, progress=False, log=lambda m: None)
    weights = torch.cat([p.detach().flatten() for p in model.discriminator.parameters()])
    assert weights.abs().max() <= 0.01 + 1e-9
    assert (weights.abs() > 0.0099).float().mean() > 0.2  # the bounds were reached: clipping acted
    assert model.players()[0].steps == 5 and isinstance(
        model.players()[0].make_optimizer(model.discriminator.parameters()), torch.optim.RMSprop
    )


def test_wgan_gp_follows_the_paper_and_has_no_batch_norm_in_the_critic():
    model = build_model("wgan-gp", {}, (1, 28, 28))
    assert not any(
        isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.discriminator.modules()
    )
    critic = model.players()[0]
    opt = critic.make_optimizer(model.discriminator.parameters())
    assert critic.steps == 5 and model.config.gp_weight == 10
    assert (
        isinstance(opt, torch.optim.Adam)
        and opt.defaults["lr"] == 1e-4
        and opt.defaults["betas"] == (0.0, 0.9)
    )


def test_wgan_gp_critic_loss_adds_lambda_times_the_penalty():
    model = build_model("wgan-gp", {"net": "mlp", "hidden_dim": 16}, (2,))
    x = torch.randn(8, 2)
    out = model.players()[0].loss(deepgen.models.Batch.of(x), torch.Generator().manual_seed(0))
    wasserstein_part = out["loss"] - 10 * out["gradient_penalty"]
    assert torch.allclose(wasserstein_part, -out["wasserstein"], atol=1e-6)
    assert (out["gradient_penalty"] > 0).all()


def test_a_2d_gan_with_mlp_networks_moves_its_samples_onto_the_ring():
    """MLP G and D on points (ring8, radius 1): 300 iterations take G's samples from near
    the origin to near the circle (median distance to it measured 0.94 -> 0.25)."""
    data = deepgen.load_dataset("ring8")
    model = build_model("gan", {"hidden_dim": 64}, data.data_shape, seed=0)
    gen = deepgen.make_generator(0)
    before = (model.sample(2500, generator=gen).norm(dim=1) - 1).abs().median()
    deepgen.fit(model, data, images=256 * 300, batch_size=256, progress=False, log=lambda m: None)
    samples = model.sample(2500, generator=deepgen.make_generator(0))
    assert samples.shape == (2500, 2) and torch.isfinite(samples).all()
    assert (samples.norm(dim=1) - 1).abs().median() < 0.5 * before


# Each loss option, written out here from its paper (not through deepgen.losses), as
# (discriminator loss of real and fake logits, generator loss of fake logits), per example.
PAPER_LOSSES = {
    # Goodfellow et al. 2014, eq. 1 and sec. 3: D ascends log D(x) + log(1 - D(G(z))).
    "minimax": (
        lambda r, f: -(torch.log(torch.sigmoid(r)) + torch.log(1 - torch.sigmoid(f))),
        lambda f: torch.log(1 - torch.sigmoid(f)),
    ),
    "nonsaturating": (
        lambda r, f: -(torch.log(torch.sigmoid(r)) + torch.log(1 - torch.sigmoid(f))),
        lambda f: -torch.log(torch.sigmoid(f)),
    ),
    # Mao et al. 2017, eq. 2 with a = 0, b = 1, c = 1.
    "lsgan": (lambda r, f: 0.5 * (r - 1) ** 2 + 0.5 * f**2, lambda f: 0.5 * (f - 1) ** 2),
}


@pytest.mark.parametrize("loss", sorted(PAPER_LOSSES))
def test_each_gan_loss_option_trains_on_its_papers_objective(loss):
    """The players' losses on a batch equal the paper's formulas on the same logits, so an
    option pointing at another loss (e.g. nonsaturating at the minimax one) fails here."""
    model = build_model(
        "gan", {"loss": loss, "net": "mlp", "hidden_dim": 16, "latent_dim": 3}, (2,)
    ).eval()
    x = torch.randn(6, 2)
    d_player, g_player = model.players()
    d_loss, g_loss = PAPER_LOSSES[loss]
    batch = Batch.of(x)
    g = torch.Generator().manual_seed(5)
    z = batch.randn(3, generator=torch.Generator().manual_seed(5))
    fake_logits = model.D(model.G(z))
    got = d_player.loss(batch, g)["loss"]
    assert torch.allclose(got, d_loss(model.D(x), fake_logits), atol=1e-6)
    got = g_player.loss(batch, torch.Generator().manual_seed(5))["loss"]
    assert torch.allclose(got, g_loss(fake_logits), atol=1e-6)
    others = [name for name in PAPER_LOSSES if PAPER_LOSSES[name][1] is not g_loss]
    assert all(not torch.allclose(got, PAPER_LOSSES[o][1](fake_logits), atol=1e-3) for o in others)


def test_pacgan_networks_are_the_papers_and_fit_only_points():
    """Lin et al. 2018's 2-D networks: G of 4 x 400 (bias-free linear, batch norm, ReLU), D of
    3 maxout layers of 200 units x 5 pieces reading packs of 4 points (8 numbers)."""
    from deepgen.errors import ConfigError
    from deepgen.nets import Maxout

    model = build_model("gan", {"net": "pacgan", "latent_dim": 2, "pack": 4}, (2,), seed=0)
    g, d = model.generator, model.discriminator
    assert sum(isinstance(m, torch.nn.BatchNorm1d) for m in g.modules()) == 4
    assert [m.in_features for m in g.modules() if isinstance(m, torch.nn.Linear)] == [2] + [400] * 4
    maxouts = [m for m in d.modules() if isinstance(m, Maxout)]
    assert [(m.linear.in_features, m.out_dim, m.pieces) for m in maxouts] == [
        (8, 200, 5),
        (200, 200, 5),
        (200, 200, 5),
    ]
    x = torch.randn(6, 8)
    pieces = maxouts[0].linear(x).view(6, 200, 5)
    assert torch.equal(maxouts[0](x), pieces.max(-1).values)
    weights = torch.cat(
        [m.weight.detach().flatten() for m in d.modules() if isinstance(m, torch.nn.Linear)]
    )
    assert abs(float(weights.std()) - 0.02) < 0.002  # N(0, 0.02) initialisation
    scores = model.D(model.G(torch.randn(12, 2)))
    assert scores.shape == (3,)  # 12 points in packs of 4
    with pytest.raises(ConfigError, match="PacGAN's network for points"):
        build_model("gan", {"net": "pacgan"}, (1, 28, 28))

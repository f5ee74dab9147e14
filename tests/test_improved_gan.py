"""Salimans et al. 2016 (issue 16): the K+1-class losses against the paper's expressions,
feature matching, label smoothing, minibatch discrimination, parameter averages, weight
normalisation, and the semi-supervised GAN trained, checkpointed and resumed exactly."""

import pytest
import torch
from torch.nn import functional as F

import deepgen
from deepgen import losses
from deepgen.config import DataConfig
from deepgen.data.streams import load_stream
from deepgen.improved_gan import MinibatchDiscrimination, ParameterAverage, WeightNormLinear
from deepgen.models import build_model

SHAPE = (1, 28, 28)


def _k_plus_one(logits: torch.Tensor) -> torch.Tensor:
    """The K+1 class probabilities with the generated class's logit fixed at 0."""
    return F.softmax(torch.cat([logits, torch.zeros(len(logits), 1, dtype=logits.dtype)], 1), 1)


def test_the_k_plus_one_losses_are_the_papers_expressions():
    g = torch.Generator().manual_seed(0)
    real, fake = (torch.randn(6, 4, generator=g, dtype=torch.double) * 3 for _ in range(2))
    labels = torch.tensor([0, 1, 2, 3, 1, 2])
    p_real, p_fake = _k_plus_one(real), _k_plus_one(fake)
    # L_supervised = -log p_model(y | x, y < K + 1)
    conditional = p_real[torch.arange(6), labels] / (1 - p_real[:, -1])
    assert torch.allclose(losses.k_plus_one_supervised_loss(real, labels), -conditional.log())
    # L_unsupervised = -log(1 - p(K+1 | x)) - log p(K+1 | G(z)), each half weighted 0.5
    direct = -0.5 * (1 - p_real[:, -1]).log() - 0.5 * p_fake[:, -1].log()
    assert torch.allclose(losses.k_plus_one_unsupervised_loss(real, fake), direct)


def test_feature_matching_is_zero_exactly_when_the_feature_means_agree():
    g = torch.Generator().manual_seed(1)
    real = torch.randn(8, 5, generator=g)
    fake = torch.randn(12, 5, generator=g)
    fake = (fake - fake.mean(0) + real.mean(0)).requires_grad_(True)  # other rows, same means
    loss = losses.feature_matching_loss(real, fake)
    assert loss.shape == (12,) and loss.abs().max() < 1e-12
    shifted = losses.feature_matching_loss(real, fake + torch.tensor([1.0, 0, 0, 0, 2.0]))
    assert torch.allclose(shifted, torch.full((12,), (1.0 + 4.0) / 5))
    shifted.mean().backward()
    assert fake.grad.abs().sum() > 0


def test_one_sided_label_smoothing_moves_only_the_real_target():
    g = torch.Generator().manual_seed(2)
    real, fake = torch.randn(7, generator=g), torch.randn(7, generator=g)
    plain = losses.discriminator_loss(real, fake)
    assert torch.allclose(losses.one_sided_smoothed_discriminator_loss(real, fake, 1.0), plain)
    # The optimal D at a point with real density r and model density f is
    # alpha r / (r + f) (Salimans et al. 2016, sec. 3.4): the expected loss is flat there.
    r, f, alpha = 0.7, 0.3, 0.9
    best = torch.logit(torch.tensor(alpha * r / (r + f), dtype=torch.double)).requires_grad_(True)
    smoothed = losses.one_sided_smoothed_discriminator_loss
    expected = r * smoothed(best, torch.tensor(-1e4), alpha) + f * F.softplus(best)
    (slope,) = torch.autograd.grad(expected.sum(), best)
    assert abs(slope.item()) < 1e-12
    moved = (best + 0.1).detach()
    assert (
        r * smoothed(moved, torch.tensor(-1e4), alpha) + f * F.softplus(moved)
    ).item() > expected.item()


def test_minibatch_discrimination_scores_a_collapsed_batch_higher():
    torch.manual_seed(3)
    layer = MinibatchDiscrimination(6, kernels=4, kernel_dim=3)
    varied = torch.randn(10, 6)
    collapsed = varied[:1].repeat(10, 1)
    out_varied, out_collapsed = layer(varied), layer(collapsed)
    assert out_varied.shape == (10, 10) and torch.equal(out_varied[:, :6], varied)
    # identical rows: each sees 9 others at distance 0
    assert torch.allclose(out_collapsed[:, 6:], torch.full((10, 4), 9.0) + layer.bias)
    assert (out_collapsed[:, 6:] > out_varied[:, 6:]).all()
    assert torch.allclose(layer(varied[:1])[:, 6:], layer.bias)  # alone: no other example


def test_parameter_averages_are_the_mean_and_the_corrected_moving_average():
    net = torch.nn.Linear(3, 2)
    uniform, moving = ParameterAverage(net, None), ParameterAverage(net, 0.25)
    assert uniform.averages() == {} and uniform.penalty(net).item() == 0.0
    history = []
    for step in range(4):
        with torch.no_grad():
            net.weight.fill_(float(step + 1))
        history.append(net.weight.detach().clone())
        uniform.update(net)
        moving.update(net)
    assert torch.allclose(uniform.averages()["weight"], torch.stack(history).mean(0))
    weights = torch.tensor([0.25 * 0.75 ** (3 - i) for i in range(4)])
    expected = (weights.view(4, 1, 1) * torch.stack(history)).sum(0) / weights.sum()
    assert torch.allclose(moving.averages()["weight"], expected)
    # the penalty is sum ||theta - mean||^2, zero at the mean
    penalty = uniform.penalty(net)
    assert penalty.requires_grad and penalty.detach().item() == pytest.approx((4.0 - 2.5) ** 2 * 6)
    with torch.no_grad():
        net.weight.fill_(2.5)
    assert uniform.penalty(net).detach().item() == 0.0
    assert "mean_weight" in uniform.state_dict() and int(uniform.state_dict()["count"]) == 4


def test_weight_norm_initialisation_standardises_the_first_batch():
    torch.manual_seed(4)
    layer = WeightNormLinear(20, 7)
    x = torch.randn(500, 20) * 3 + 1
    out = layer.initialise(x)
    assert torch.allclose(out, layer(x), atol=1e-5)
    assert torch.allclose(out.mean(0), torch.zeros(7), atol=1e-5)
    assert torch.allclose(out.std(0, unbiased=False), torch.ones(7), atol=1e-4)
    assert torch.allclose(layer.weight().norm(dim=1), layer.scale)
    assert "scale" not in dict(layer.named_parameters())  # fixed: a buffer


def _ssgan_streams():
    data = DataConfig(name="fake", labels_per_class=2, options={"sizes": (256, 64, 64)})
    return {
        part: load_stream(data.model_copy(update={"part": part}), seed=0)
        for part in ("unlabelled", "labelled")
    }


SMALL = {"hidden": [32, 16], "generator_hidden": 16, "latent_dim": 8, "num_classes": 10}


def test_the_ssgan_initialises_on_its_first_batch_and_resumes_exactly(tmp_path):
    streams = _ssgan_streams()
    shapes = {name: SHAPE for name in streams}
    full = build_model("ssgan", SMALL, shapes)
    assert not bool(full.discriminator.initialised)
    deepgen.fit(
        full,
        streams,
        out=tmp_path / "full",
        epochs=2,
        batch_size=32,
        progress=False,
        log=lambda m: None,
    )
    assert bool(full.discriminator.initialised) and int(full.average.count) == 2 * (
        (256 - 20) // 32
    )
    part = build_model("ssgan", SMALL, shapes)
    deepgen.fit(
        part,
        streams,
        out=tmp_path / "part",
        epochs=1,
        batch_size=32,
        progress=False,
        log=lambda m: None,
    )
    resumed = deepgen.resume(
        tmp_path / "part", data=streams, progress=False, log=lambda m: None, epochs=2
    )
    a, b = full.state_dict(), resumed.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # the classifier tests with the averaged weights, not the last ones
    x = torch.rand(4, *SHAPE)
    raw, _ = resumed.discriminator(x)
    assert not torch.allclose(resumed.class_logits(x), raw)
    samples = resumed.eval().sample(5, torch.Generator().manual_seed(0))
    assert samples.shape == (5, *SHAPE) and 0 <= samples.min() and samples.max() <= 1


def test_the_ssgan_uniform_prior_maps_to_and_from_standard_coordinates():
    model = build_model("ssgan", SMALL, {"unlabelled": SHAPE, "labelled": SHAPE})
    u = torch.randn(1000, 8, generator=torch.Generator().manual_seed(5))
    z = model.from_standard(u)
    assert 0 < z.min() and z.max() < 1 and abs(z.mean().item() - 0.5) < 0.01
    assert torch.allclose(model.to_standard(z), u, atol=1e-3)


def test_root_eps_adam_is_adam_with_its_eps_inside_the_square_root():
    from deepgen.models.base import RootEpsAdam

    torch.manual_seed(6)
    grads = [torch.randn(4) * 1e-5 for _ in range(3)]  # gradients far below sqrt(eps)
    p, q = (torch.nn.Parameter(torch.zeros(4)) for _ in range(2))
    ours, plain = (
        RootEpsAdam([p], 0.01, (0.5, 0.999), eps=0.0),
        torch.optim.Adam([q], 0.01, (0.5, 0.999), eps=0.0),
    )
    for g in grads:
        p.grad, q.grad = g.clone(), g.clone()
        ours.step()
        plain.step()
    assert torch.allclose(p, q)  # eps = 0: the same update
    r = torch.nn.Parameter(torch.zeros(4))
    damped = RootEpsAdam([r], 0.01, (0.5, 0.999), eps=1e-8)
    m = v = expected = torch.zeros(4)
    for t, g in enumerate(grads, 1):
        r.grad = g.clone()
        damped.step()
        m, v = 0.5 * m + 0.5 * g, 0.999 * v + 0.001 * g * g
        expected = expected - 0.01 * (m / (1 - 0.5**t)) / (v / (1 - 0.999**t) + 1e-8).sqrt()
    assert torch.allclose(r, expected, rtol=1e-5) and r.abs().max() < 0.2 * p.abs().max()


def test_g_ema_samples_with_the_bias_corrected_average_of_the_generators_steps():
    model = build_model("gan", {"net": "mlp", "hidden_dim": 8, "g_ema": 0.5}, (2,))
    step_done = next(p.after_step for p in model.players() if p.name == "generator")
    z = torch.randn(5, model.latent_dim)
    own = lambda: model.to_samples(model.generator(z))
    assert torch.equal(model.generate(z), own())  # before G's first step: its own weights
    seen = []
    for scale in (1.0, 3.0):
        with torch.no_grad():
            for p in model.generator.parameters():
                p.mul_(scale)
        seen.append({n: p.detach().clone() for n, p in model.generator.named_parameters()})
        step_done()
    rate = 0.5  # 1 - g_ema
    first, second = seen
    average = {
        n: ((1 - rate) * rate * first[n] + rate * second[n]) / (1 - (1 - rate) ** 2) for n in first
    }
    expected = model.to_samples(torch.func.functional_call(model.generator, average, (z,)))
    assert torch.allclose(model.generate(z), expected, atol=1e-6)
    assert not torch.allclose(model.generate(z), own(), atol=1e-3)  # not G's own weights

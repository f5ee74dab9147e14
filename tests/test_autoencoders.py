"""The autoencoder family beyond the plain VAE: the deterministic AE, beta and KL warm-up,
and the IWAE objective. Shapes, finite losses, gradients and save/load are covered for
each by the shared registry tests in test_models.py."""

from __future__ import annotations

import json

import pytest
import torch

import deepgen
from deepgen.models import Batch, build_model


def test_kl_weight_rises_linearly_to_beta_during_training(tiny, tmp_path):
    model = build_model(
        "vae",
        {"net": "mlp", "hidden_dim": 16, "latent_dim": 2, "beta": 2.0, "kl_warmup": 4},
        tiny.data_shape,
    )
    assert [model.kl_weight(i) for i in (0, 1, 2, 4, 100)] == [0.0, 0.5, 1.0, 2.0, 2.0]
    deepgen.fit(
        model,
        tiny,
        out=tmp_path / "run",
        images=32 * 6,
        batch_size=32,
        log_every=1,
        progress=False,
        log=lambda m: None,
    )
    records = [
        json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    ]
    logged = [r["kl_weight"] for r in records if r["split"] == "train"]
    assert logged == pytest.approx(
        [0.0, 0.5, 1.0, 1.5, 2.0, 2.0]
    )  # the Trainer passes its iteration


def test_the_training_loss_uses_the_weighted_kl_but_the_logged_elbo_is_true():
    model = build_model("vae", {"net": "mlp", "hidden_dim": 16, "beta": 4.0}, (1, 28, 28))
    x = torch.rand(8, 1, 28, 28).round()
    out = model.players()[0].loss(Batch.of(x, iteration=3), torch.Generator().manual_seed(0))
    assert torch.allclose(out["loss"], out["recon"] + 4.0 * out["kl"])
    assert torch.allclose(out["elbo"], -(out["recon"] + out["kl"]))


def test_the_iwae_bound_is_at_least_the_mean_elbo_of_its_samples():
    model = build_model("iwae", {"net": "mlp", "hidden_dim": 32, "k": 8}, (1, 28, 28))
    x = torch.rand(16, 1, 28, 28).round()
    out = model.players()[0].loss(Batch.of(x), torch.Generator().manual_seed(0))
    assert (out["iwae"] >= out["elbo"] - 1e-5).all()  # Jensen: log mean exp >= mean
    assert torch.allclose(out["loss"], -out["iwae"])


@pytest.mark.slow
def test_an_autoencoder_reconstructs_mnist_better_than_the_mean_image(mnist):
    subset = deepgen.data.from_tensors(mnist["train"].x[:6000], mnist["train"].labels[:6000])
    model = build_model("ae", {"net": "mlp", "latent_dim": 5}, subset.data_shape, seed=0)
    deepgen.fit(model, subset, epochs=3, batch_size=64, progress=False, log=lambda m: None)
    x = subset["test"].x.float() / 255
    recon = model.reconstruct(x)
    error = (recon - x).pow(2).flatten(1).sum(1).mean()
    baseline = (subset["train"].x.float().mean(0) / 255 - x).pow(2).flatten(1).sum(1).mean()
    assert error < 0.6 * baseline
    samples = model.sample(16, generator=deepgen.make_generator(0))
    assert samples.shape == (16, 1, 28, 28) and 0 <= samples.min() and samples.max() <= 1
    assert (model.code_var > 0).all() and model.code_mean.abs().sum() > 0  # moments were tracked


@pytest.mark.parametrize("family", ["vae", "iwae"])
def test_hidden_layers_deepen_both_mlps_and_are_refused_for_conv_nets(family):
    """--hidden-layers 2: 784-32-32-2*3 and 3-32-32-784; with --net conv, a ConfigError."""
    from deepgen.errors import ConfigError

    options = {"net": "mlp", "hidden_dim": 32, "latent_dim": 3, "hidden_layers": 2}
    model = build_model(family, options, (1, 28, 28))
    shapes = lambda net: [m.weight.shape[::-1] for m in net.modules() if hasattr(m, "weight")]
    assert shapes(model.encoder) == [(784, 32), (32, 32), (32, 6)]
    assert shapes(model.decoder) == [(3, 32), (32, 32), (32, 784)]
    with pytest.raises(ConfigError, match="hidden_layers applies to net mlp"):
        build_model(family, {"net": "conv", "hidden_layers": 2}, (1, 28, 28))

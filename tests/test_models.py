"""Shared conformance tests, run over every registered model family."""

import json

import pytest
import torch

import deepgen
from deepgen.rundir import RunDir
from deepgen.errors import ConfigError
from deepgen.models import MODELS, Batch, ClosedForm, Completer, Sampler, build_model, supports

# The generative families of one stream that read images, not test-local toys. Sequence
# families (test_grammar) and several-stream or non-generative ones (test_semi_supervised,
# test_contract) have their own tests.
FAMILIES = [
    f
    for f, cls in MODELS.items()
    if cls.__module__.startswith("deepgen.")
    and "images" in cls.reads
    and len(cls.streams) == 1
    and issubclass(cls, Sampler)
]
SHAPE = (1, 28, 28)
# Each family with its defaults, plus the variants its config offers.
VARIANTS = [(f, {}) for f in FAMILIES] + [
    ("vae", {"net": "mlp", "likelihood": "gaussian", "preprocess": "unit"}),
    ("gan", {"loss": "minimax", "d_steps": 2, "channels": 16}),
    ("gan", {"loss": "lsgan", "net": "mlp", "hidden_dim": 32}),
    ("wgan", {"net": "mlp", "hidden_dim": 32, "n_critic": 2}),
    ("wgan-gp", {"channels": 8}),
    ("vae", {"net": "mlp", "beta": 4.0, "kl_warmup": 10}),
    ("iwae", {"net": "mlp", "k": 3}),
    ("ae", {"net": "mlp", "latent_dim": 2}),
    ("gmm", {"covariance": "spherical", "components": 2}),
    ("gan", {"net": "mlp", "hidden_dim": 32, "pack": 2, "r1_weight": 1.0}),
    ("cgan", {"channels": 8, "pack": 2}),
    ("cvae", {"hidden_dim": 32, "layers": 1}),
    ("cvae-quadrants", {"quadrants": 2, "hidden_dim": 32, "k": 3}),
    # Salimans et al. 2016's techniques
    (
        "gan",
        {
            "net": "mlp",
            "hidden_dim": 32,
            "feature_matching": True,
            "minibatch_kernels": 8,
            "historical_averaging": 0.01,
            "label_smoothing": 0.1,
        },
    ),
    ("cgan", {"channels": 8, "feature_matching": True, "minibatch_kernels": 4, "pack": 2}),
    ("wgan-gp", {"channels": 8, "historical_averaging": 0.1}),
]


def draw(model, n, seed):
    """n samples, or for a model that completes given images, n completions."""
    g = torch.Generator().manual_seed(seed)
    if supports(model, Completer):
        x = torch.randint(
            0, 256, (n, *SHAPE), dtype=torch.uint8, generator=torch.Generator().manual_seed(99)
        )
        return model.complete(model.preprocess(x), 1, g)[0]
    return model.sample(n, generator=g)


def batch_for(model, n=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, *SHAPE), dtype=torch.uint8, generator=g)
    return Batch.of(model.preprocess(x, g), torch.randint(0, 10, (n,), generator=g))


GRADIENT_VARIANTS = [(f, o) for f, o in VARIANTS if build_model(f, o, SHAPE).players()]


def test_every_family_trains_by_players_or_in_closed_form():
    for family in FAMILIES:
        model = build_model(family, {}, SHAPE)
        assert bool(model.players()) != supports(model, ClosedForm), family


@pytest.mark.parametrize("family,options", GRADIENT_VARIANTS)
def test_players_give_finite_per_example_losses_and_gradients(family, options):
    model = build_model(family, options, SHAPE)
    players = model.players()
    assert players and all(p.steps >= 1 for p in players)
    for player in players:
        model.zero_grad(set_to_none=True)
        out = player.loss(batch_for(model), torch.Generator().manual_seed(1))
        assert out["loss"].shape == (8,), f"{player.name} loss must be per example"
        assert torch.isfinite(out["loss"]).all()
        out["loss"].mean().backward()
        grads = [p.grad for p in player.module.parameters()]
        assert all(g is not None and torch.isfinite(g).all() for g in grads)
        assert any(g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize("family,options", VARIANTS)
def test_samples_have_the_image_shape_and_range(family, options, tiny):
    model = build_model(family, options, SHAPE)
    if not model.players():
        deepgen.fit(model, tiny, progress=False)
    model.eval()
    x = draw(model, 5, 0)
    assert x.shape == (5, *SHAPE)
    assert x.min() >= 0 and x.max() <= 1
    assert torch.equal(x, draw(model, 5, 0))


@pytest.mark.parametrize("family", [f for f, o in GRADIENT_VARIANTS if not o])
def test_same_seed_same_weights(family):
    a, b, c = (build_model(family, {}, SHAPE, seed=s) for s in (0, 0, 1))
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)


@pytest.mark.parametrize("family", FAMILIES)
def test_config_round_trips_through_json(family):
    model = build_model(family, {}, SHAPE)
    dumped = json.loads(json.dumps(model.config.model_dump(mode="json")))
    again = build_model(family, dumped)
    assert again.config == model.config


@pytest.mark.parametrize("family,options", VARIANTS)
def test_save_load_round_trip_reproduces_samples(family, options, tiny, tmp_path):
    model = build_model(family, options, SHAPE)
    deepgen.fit(model, tiny, out=tmp_path / "run", epochs=1, batch_size=32, progress=False)
    model.eval()
    loaded = deepgen.load(tmp_path / "run")
    assert torch.equal(draw(model, 6, 7), draw(loaded, 6, 7))


@pytest.mark.parametrize("family", FAMILIES)
def test_unknown_config_keys_and_bad_values_are_config_errors(family):
    with pytest.raises(ConfigError, match="nosuch"):
        build_model(family, {"nosuch": 1}, SHAPE)
    field = "latent_dim" if "latent_dim" in MODELS[family].Config.model_fields else "components"
    with pytest.raises(ConfigError, match=field):
        build_model(family, {field: 0}, SHAPE)


def test_vae_terms_add_up_and_defaults_follow_the_network():
    model = build_model("vae", {"net": "mlp"}, SHAPE)
    assert (model.config.latent_dim, model.config.hidden_dim) == (20, 400)
    assert sum(p.numel() for p in model.encoder.parameters()) == 784 * 400 + 400 + 400 * 40 + 40
    terms = model.elbo_terms(batch_for(model).x, torch.Generator().manual_seed(0))
    assert torch.allclose(terms["elbo"], -(terms["recon"] + terms["kl"]))
    assert (terms["kl"] >= 0).all() and (terms["recon"] >= 0).all()
    assert build_model("vae", {}, SHAPE).config.latent_dim == 32


def test_gan_follows_algorithm_1_and_dcgan():
    model = build_model("gan", {"d_steps": 3}, SHAPE)
    d, g = model.players()
    assert (d.name, d.steps, d.uses_data) == ("discriminator", 3, True)
    assert (g.name, g.steps, g.uses_data) == ("generator", 1, False)
    opt = d.make_optimizer(model.discriminator.parameters())
    assert opt.defaults["lr"] == 2e-4 and opt.defaults["betas"] == (0.5, 0.999)
    conv = model.discriminator.net[0]
    assert abs(conv.weight.std().item() - 0.02) < 0.005  # N(0, 0.02) initialisation
    assert isinstance(model.generator.net[-1], torch.nn.Tanh)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.discriminator.net[:2])


def test_gmm_density_matches_scipy_and_is_fitted_by_em(tiny):
    from scipy.stats import multivariate_normal

    model = build_model("gmm", {"components": 3}, SHAPE)
    deepgen.fit(model, tiny, progress=False)
    x = tiny["test"].x[:4].float() / 255
    flat = x.flatten(1).double().numpy()
    ref = torch.logsumexp(
        torch.stack(
            [
                torch.tensor(
                    multivariate_normal(
                        model.means[k].double().numpy(), model.variances[k].double().numpy()
                    ).logpdf(flat)
                )
                + model.weights[k].double().log()
                for k in range(3)
            ]
        ),
        dim=0,
    )
    assert torch.allclose(model.log_density(x), ref, atol=1e-6)
    assert (
        abs(float(model.weights.sum()) - 1) < 1e-5 and float(model.variances.min()) >= 0.01 - 1e-9
    )


@pytest.mark.parametrize("family", [f for f in FAMILIES if MODELS[f].report_curves])
def test_report_curves_name_metrics_the_records_hold(family, tiny, tmp_path):
    model = build_model(family, {}, SHAPE)
    deepgen.fit(model, tiny, out=tmp_path / "run", images=64, batch_size=32, progress=False)
    records = RunDir(tmp_path / "run").metrics()
    for _, _, keys in MODELS[family].report_curves:
        for key, _ in keys:
            split, name = key.split(":", 1) if ":" in key else ("train", key)
            assert any(name in r for r in records if r["split"] == split), key


def test_older_runs_training_names_are_read_as_todays():
    from deepgen.report import current_names

    old = {"split": "train", "iteration": 5, "vae/elbo": -90.0, "vae/loss": 90.0}
    assert current_names(old) == {"split": "train", "iteration": 5, "elbo": -90.0, "vae/loss": 90.0}
    shared = {"split": "train", "a/x": 1.0, "b/x": 2.0, "b/y": 3.0}
    assert current_names(shared) == {"split": "train", "a/x": 1.0, "b/x": 2.0, "y": 3.0}
    valid = {"split": "valid", "source/error": 0.1}
    assert current_names(valid) == valid


def test_runs_of_one_family_share_their_curves_and_single_runs_do_not(tiny, tmp_path):
    from deepgen.report import comparison_table, family_curves

    for name, family in (("a", "vae"), ("b", "vae"), ("c", "ae")):
        model = build_model(family, {"net": "mlp", "hidden_dim": 16}, SHAPE)
        deepgen.fit(model, tiny, out=tmp_path / name, epochs=1, batch_size=32, progress=False)
    runs = [tmp_path / n for n in "abc"]
    section = family_curves(runs)
    assert section.count("<figure>") == len(MODELS["vae"].report_curves)
    assert 'alt="vae: ' in section and 'alt="ae: ' not in section  # one ae run: no overlay
    assert family_curves(runs[1:]) == ""
    table = comparison_table(runs)
    assert table.count("<tr>") == 4 and "deepgen eval" in table

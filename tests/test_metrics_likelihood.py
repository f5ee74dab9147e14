"""The importance-sampled likelihood on a VAE: consistency with the ELBO, rising with k,
and exactness where the model's likelihood is known."""

import math

import pytest
import torch

from deepgen.errors import ConfigError
from deepgen.metrics.likelihood import evaluate_nll, iwae_log_likelihood
from deepgen.models import build_model


def test_log_weights_average_to_the_elbo():
    model = build_model("vae", {"net": "mlp"}, (1, 28, 28)).eval()
    x = torch.bernoulli(torch.full((3, 1, 28, 28), 0.3), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        lw = model.log_importance_weights(x, 20000, torch.Generator().manual_seed(1))
        terms = model.elbo_terms(x.repeat(20000, 1, 1, 1), torch.Generator().manual_seed(2))
    elbo = terms["elbo"].view(20000, 3).mean(0)  # same expectation, closed-form KL
    se = lw.std(0) / 20000**0.5
    assert torch.all((lw.mean(0) - elbo).abs() < 5 * se + 0.05)


def _vae_with_known_likelihood():
    """Decoder ignores z (every pixel logit 0.4), so log p(x) is exact; q(z|x) = N(1, I)
    per dimension: KL(q || p) = 1 nat, and the weights p/q have finite variance."""
    model = build_model("vae", {"net": "mlp", "latent_dim": 2}, (1, 28, 28)).eval()
    with torch.no_grad():
        for p in [*model.decoder.parameters(), *model.encoder.parameters()]:
            p.zero_()
        model.decoder.net[2].bias.fill_(0.4)
        model.encoder.net[3].bias.copy_(torch.tensor([1.0, 1.0, 0.0, 0.0]))  # mu = 1, logvar = 0
    return model


def test_bound_rises_with_k_and_reaches_the_exact_likelihood():
    model = _vae_with_known_likelihood()
    x = torch.bernoulli(
        torch.full((64, 1, 28, 28), 0.5), generator=torch.Generator().manual_seed(0)
    )
    exact = (x * 0.4 - torch.nn.functional.softplus(torch.tensor(0.4))).flatten(1).sum(1).double()
    g = torch.Generator().manual_seed(3)
    gaps = [
        float((exact - iwae_log_likelihood(model, x, k, chunk=64, generator=g)[0]).mean())
        for k in (1, 10, 100, 1000)
    ]
    assert gaps[0] == pytest.approx(1.0, abs=0.3)  # IWAE_1 = ELBO = log p(x) - KL
    assert gaps[0] > gaps[1] > gaps[2] > gaps[3] > -0.01
    assert (
        gaps[3] < 0.05
    )  # bias ~ Var(w) / 2k = 0.003, plus ~0.01 s.e. of the estimate over 64 images


def test_evaluate_nll_reports_units_and_errors(tiny):
    model = build_model("vae", {"net": "mlp"}, (1, 28, 28))
    out = evaluate_nll(model, tiny["test"].x[:20], k=50, batch_size=8, chunk=16)
    assert out["nll"]["n"] == 20 and out["nll"]["unit"] == "nats"
    assert out["nll"]["mean"] <= out["neg_elbo"]["mean"] + 1e-6
    assert out["bits_per_dim"]["mean"] == pytest.approx(out["nll"]["mean"] / (784 * math.log(2)))
    with pytest.raises(ConfigError, match="needs ImportanceWeighted; a gan does not have it"):
        iwae_log_likelihood(build_model("gan", {}, (1, 28, 28)), torch.zeros(1, 1, 28, 28), k=2)


def test_the_monte_carlo_variance_is_the_known_one_and_matches_repeated_draws():
    """With q(z|x) = N(1, I) and a decoder that ignores z, log w = log N(z; 0, I) -
    log N(z; 1, I) is Normal with variance 2 (2 latent dimensions), so Var(w) / E[w]^2 =
    e^2 - 1 and log((1/k) sum w) has Monte-Carlo variance about (e^2 - 1) / k."""
    from deepgen.metrics.likelihood import importance_variance

    model = _vae_with_known_likelihood()
    x = torch.bernoulli(torch.full((8, 1, 28, 28), 0.5), generator=torch.Generator().manual_seed(0))
    k, known = 400, (math.e**2 - 1) / 400
    estimates, variances = [], []
    for seed in range(60):
        log_px, _, var = iwae_log_likelihood(
            model, x, k, generator=torch.Generator().manual_seed(seed)
        )
        estimates.append(log_px)
        variances.append(var)
    spread = torch.stack(estimates).var(0)  # over draws, per image
    assert float(torch.stack(variances).mean()) == pytest.approx(known, rel=0.25)
    assert float(spread.mean()) == pytest.approx(known, rel=0.25)
    assert torch.isnan(importance_variance(torch.zeros(1, 3))).all()


def test_the_reported_nll_error_holds_a_monte_carlo_term_that_shrinks_with_k(tiny):
    model = _vae_with_known_likelihood()
    images = tiny["test"].x[:16]
    few, many = (evaluate_nll(model, images, k=k, batch_size=8, chunk=64)["nll"] for k in (25, 400))
    for out in (few, many):
        assert out["stderr"] == pytest.approx(
            math.hypot(out["stderr_images"], out["stderr_monte_carlo"])
        )
    assert many["stderr_monte_carlo"] < few["stderr_monte_carlo"] / 2.5  # 1 / sqrt(k): 4x
    assert many["stderr_monte_carlo"] > 0


def test_a_bfloat16_decoder_runs_in_bfloat16_and_stays_close_to_float32(tiny):
    """The conv decoder alone runs in bfloat16: the weights move (so the path is taken), by
    far less than a nat per image (the encoder and the log-densities stay float32)."""
    model = build_model("vae", {"net": "conv"}, (1, 28, 28)).eval()
    x = model.preprocess(tiny["test"].x[:6], torch.Generator().manual_seed(0))
    eps = torch.randn(8, 6, model.latent_dim, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        full = model.log_importance_weights(x, 8, eps=eps)
        half = model.log_importance_weights(x, 8, eps=eps, decoder_dtype=torch.bfloat16)
    assert half.dtype == torch.float32
    assert 0 < (half - full).abs().max() < 0.5


def test_a_bfloat16_nll_is_labelled_as_not_the_papers_protocol(tiny):
    from deepgen.metrics.evaluate import evaluate_model
    from deepgen.metrics.paper_protocols import check_paper_protocol

    model = build_model("vae", {"net": "mlp"}, (1, 28, 28))
    out = evaluate_model(model, tiny, ["nll"], n=10, k=4, log=lambda m: None, precision="bfloat16")
    nll = out["metrics"]["nll"]
    assert nll["precision"] == "bfloat16" and "decoder in bfloat16" in nll["protocol"]
    assert "decoder in bfloat16, not float32" in nll["paper_protocol"]["deviations"]
    with pytest.raises(ConfigError, match="decoder in bfloat16"):
        check_paper_protocol(nll, "nll")
    with pytest.raises(ConfigError, match="precision must be one of float32, bfloat16"):
        evaluate_nll(model, tiny["test"].x[:4], k=2, precision="float16")

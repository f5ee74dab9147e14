"""`deepgen eval` on a short real MNIST run: every metric, the JSON it writes, its errors."""

import json

import pytest
from conftest import run_cli

import deepgen
from deepgen.models import build_model

pytestmark = pytest.mark.slow  # trains on real MNIST, then the CLI measures it


@pytest.fixture(scope="module")
def vae_run(mnist, tmp_path_factory):
    out = tmp_path_factory.mktemp("eval") / "vae"
    deepgen.fit(
        build_model("vae", {"net": "mlp"}, mnist.data_shape),
        mnist,
        out=out,
        images=12800,
        progress=False,
        log=lambda m: None,
    )
    return out


def test_eval_writes_every_metric_with_uncertainty_and_the_classifier_hash(vae_run):
    proc = run_cli(
        "eval", str(vae_run), "--metrics", "nll,parzen,fid,kid,is,pr", "--n", "300", "--k", "20"
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads((vae_run / "eval.json").read_text())
    m = data["metrics"]
    assert set(m) == {"nll", "parzen", "fid", "kid", "is", "pr"}
    assert m["nll"]["nll"]["mean"] <= m["nll"]["neg_elbo"]["mean"] and m["nll"]["k"] == 20
    assert all("stderr" in m[k] for k in ("parzen", "fid", "kid", "is"))
    assert 1.0 <= m["is"]["mean"] <= 10.0 and 0 <= m["pr"]["precision"]["mean"] <= 1
    assert len(data["classifier"]["sha256"]) == 64
    report = run_cli("report", str(vae_run), "-o", str(vae_run / "r.html"))
    page = (vae_run / "r.html").read_text()
    assert report.returncode == 0 and "Feature classifier sha256" in page
    assert "real data ± std. error" in page and "not with Inception-based figures" in page
    assert page.count("Kynkäänniemi") == 1  # each protocol once, not once per row
    # 300 samples and test images, k = 20: neither Goodfellow's nor Burda's protocol
    from deepgen.errors import ConfigError
    from deepgen.metrics.paper_protocols import check_paper_protocol

    assert m["parzen"]["paper_protocol"] == {
        "paper": "Goodfellow et al. 2014 (Table 1)",
        "follows": False,
        "deviations": ["300 samples, not 10,000", "300 test images, not 10,000"],
    }
    assert m["nll"]["paper_protocol"]["deviations"] == [
        "300 test images, not 10,000",
        "k = 20, not 5,000",
    ]
    assert "NOT Goodfellow et al. 2014 (Table 1)'s protocol" in m["parzen"]["protocol"]
    assert "not Goodfellow et al. 2014 (Table 1)'s protocol" in proc.stderr + proc.stdout
    for name in ("parzen", "nll"):
        with pytest.raises(ConfigError, match="cannot be compared with"):
            check_paper_protocol(m[name], name)
    assert "do not compare with the paper" in page


def test_eval_errors(vae_run, tmp_path):
    proc = run_cli("eval", str(vae_run), "--metrics", "nosuch")
    assert (
        proc.returncode == 2
        and "unknown metric 'nosuch'" in proc.stderr
        and "Traceback" not in proc.stderr
    )
    gan = tmp_path / "gan"
    assert (
        run_cli(
            "train",
            "gan",
            "--data",
            "fake",
            "--epochs",
            "1",
            "--channels",
            "8",
            "--out",
            str(gan),
            "--quiet",
        ).returncode
        == 0
    )
    proc = run_cli("eval", str(gan), "--metrics", "nll", "--n", "10", "--k", "2")
    assert proc.returncode != 0 and "needs Likelihood; a gan does not have it" in proc.stderr
    proc = run_cli("eval", str(gan), "--metrics", "fid", "--n", "10")
    assert proc.returncode != 0 and "no feature classifier for 'fake'" in proc.stderr


def test_eval_uses_the_exact_likelihood_when_a_model_has_one(mnist, tmp_path):
    out = tmp_path / "gmm"
    deepgen.fit(
        build_model("gmm", {"components": 2, "max_iter": 5}, mnist.data_shape),
        mnist,
        out=out,
        progress=False,
        log=lambda m: None,
    )
    proc = run_cli("eval", str(out), "--metrics", "nll,is", "--n", "200")
    assert proc.returncode == 0, proc.stderr
    nll = json.loads((out / "eval.json").read_text())["metrics"]["nll"]
    assert "exact" in nll["protocol"] and "k" not in nll
    results = json.loads((out / "results.json").read_text())
    assert (
        abs(results["metrics"]["neg_log_density"]["mean"] - nll["nll"]["mean"])
        < 5 * nll["nll"]["stderr"] + 1
    )


def test_gmm_on_a_toy_mixture_captures_every_mode(tmp_path):
    out = tmp_path / "ring"
    proc = run_cli(
        "train", "gmm", "--data", "ring8", "--components", "8", "--out", str(out), "--quiet"
    )
    assert proc.returncode == 0, proc.stderr
    proc = run_cli("eval", str(out), "--metrics", "modes")
    assert proc.returncode == 0, proc.stderr
    modes = json.loads((out / "eval.json").read_text())["metrics"]["modes"]
    assert modes["modes"] == 8 and modes["high_quality_percent"] > 97 and modes["reverse_kl"] < 0.05
    assert run_cli("report", str(out)).returncode == 0  # 2-D samples drawn as a scatter
    assert run_cli("sample", str(out), "-n", "500", "-o", str(tmp_path / "s.png")).returncode == 0


def test_modes_metric_and_conv_nets_refuse_the_wrong_data(vae_run, tmp_path):
    proc = run_cli("eval", str(vae_run), "--metrics", "modes", "--n", "10")
    assert proc.returncode != 0 and "the modes metric applies to points" in proc.stderr
    proc = run_cli("train", "vae", "--data", "ring8", "--out", str(tmp_path / "x"))
    assert (
        proc.returncode != 0
        and "need images (C, H, W)" in proc.stderr
        and "Traceback" not in proc.stderr
    )


def test_evaluate_in_python_matches_the_run_and_measures_an_in_memory_model(tmp_path):
    data = deepgen.load_dataset("fake", sizes=(256, 64, 64))
    model = build_model("gmm", {"components": 2, "covariance": "spherical"}, (1, 28, 28))
    deepgen.fit(model, data, out=tmp_path / "run", progress=False, log=lambda m: None)
    from_run = deepgen.evaluate(tmp_path / "run", metrics=["nll"], n=32)
    in_memory = deepgen.evaluate(model, data, metrics=["nll"], n=32)
    assert from_run["metrics"]["nll"]["nll"] == in_memory["metrics"]["nll"]["nll"]
    assert (
        "checkpoint" in from_run["metrics"]["nll"]
        and "checkpoint" not in in_memory["metrics"]["nll"]
    )
    with pytest.raises(deepgen.ConfigError, match="give the data"):
        deepgen.evaluate(model)
    with pytest.raises(deepgen.ConfigError, match="leave out data"):
        deepgen.evaluate(tmp_path / "run", data)


def test_a_model_whose_samples_are_the_real_images_scores_the_real_data_column(vae_run):
    from deepgen.metrics.evaluate import METRICS, TRAIN_VS_TEST, Context

    ctx = Context.of_run(vae_run, n=300, k=1, seed=4)
    ctx.samples = ctx.train_images.float() / 255  # a perfect model's samples
    for name in ("fid", "kid", "parzen"):
        value = METRICS[name].compute(ctx)
        assert value["mean"] == pytest.approx(value["reference"]["mean"]), name
        assert value["stderr"] == pytest.approx(value["reference"]["stderr"]), name
    pr = METRICS["pr"].compute(ctx)
    for part in ("precision", "recall", "density", "coverage"):
        assert pr[part] | {"of": TRAIN_VS_TEST} == pr["reference"][part], part
    ctx = Context.of_run(vae_run, n=300, k=1, seed=4)
    ctx.samples = ctx.test.float() / 255  # IS's reference is the test images themselves
    value = METRICS["is"].compute(ctx)
    assert value["mean"] == pytest.approx(value["reference"]["mean"]) and value["mean"] > 8
    ctx = Context.of_run(vae_run, n=300, k=1, seed=4)  # the model's own samples: worse
    fid = METRICS["fid"].compute(ctx)
    assert fid["mean"] > fid["reference"]["mean"] + 3 * fid["stderr"]

"""The Grammar VAE's side of the library: grammars, the expressions data, masked decoding,
the character baseline, the score, and Bayesian optimisation in latent space."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from conftest import run_cli
from hypothesis import given, settings
from hypothesis import strategies as st

import deepgen
from deepgen.config import DataConfig, RunConfig, TrainConfig
from deepgen.data.grammar import EXPRESSIONS, Grammar, GrammarError, evaluate
from deepgen.errors import ConfigError, DataError
from deepgen.optimize import (
    POINTS,
    expected_improvement,
    expression_score,
    fit_gp,
    gp_subset,
    propose,
)
from deepgen.rundir import RunDir

GRAMMAR = Grammar(EXPRESSIONS)
TARGET = "1/3 + x + sin(x*x)"


def quiet(msg):
    pass


def test_every_derivation_of_the_data_gives_its_string_back():
    data = deepgen.load_dataset("expressions", count=2000)
    assert data.sizes() == {"train": 1800, "valid": 100, "test": 100}
    for split in ("train", "test"):
        for row, n in zip(data[split].x.tolist(), data[split].lengths.tolist()):
            string = GRAMMAR.derive(row)
            assert string is not None and GRAMMAR.parse(string) == row[:n], row
            assert all(i == GRAMMAR.end for i in row[n:])
    assert len({GRAMMAR.derive(r) for r in data["train"].x.tolist()}) == 1800  # distinct strings
    chars = deepgen.load_dataset("expressions", count=2000, encoding="characters")
    assert chars.vocabulary[-1] == "<end>" and chars["test"].x.shape[0] == 100


@pytest.mark.parametrize(
    "string,position",
    [
        ("x++1", 2),
        ("x+", 2),
        ("sin x", 0),
        ("(x", 2),
        ("))", 0),
        ("x + 1)", 5),
        ("x 1", 2),
        ("", 0),
        ("x+y", 2),
    ],
)
def test_a_string_outside_the_grammar_is_refused_at_its_position(string, position):
    with pytest.raises(GrammarError) as caught:
        GRAMMAR.parse(string)
    assert caught.value.position == position and repr(string) in str(caught.value)


def test_the_score_is_zero_for_the_target_and_worst_for_what_is_not_an_expression():
    target = evaluate(GRAMMAR, TARGET, POINTS)
    assert np.allclose(target, 1 / 3 + POINTS + np.sin(POINTS * POINTS))
    assert expression_score(GRAMMAR, TARGET, target) == 0.0
    assert expression_score(GRAMMAR, "x/3+x+sin(x*x)", target) > 0
    worst = math.log1p(1000)
    assert (
        expression_score(GRAMMAR, None, target) == worst == expression_score(GRAMMAR, "x+", target)
    )
    assert (
        5 < expression_score(GRAMMAR, "exp(exp(exp(x)))", target) < worst
    )  # overflow capped at 1000, not inf


def _small(family, length):
    return deepgen.build_model(family, {"latent_dim": 4, "hidden_dim": 16, "filters": 4}, (length,))


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), sample=st.booleans())
def test_masked_decoding_only_ever_expands_the_top_of_the_stack(seed, sample):
    model = _small("gvae", 15)
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(8, 15, len(GRAMMAR), generator=g) * 5
    ids = model.decode_ids(logits, g if sample else None)
    rows = GRAMMAR.masks()[1]
    for row in ids.tolist():
        stack = GRAMMAR.start_stack()
        for production in row:
            assert int(rows[production]) == GRAMMAR.stack_row(stack)  # its left side is the top
            stack = GRAMMAR.expand(stack, production)
        assert (GRAMMAR.derive(row) is not None) == (not stack)  # complete exactly when emptied
        assert not stack  # finish_in_time: never cut off at the length limit


def test_without_finishing_in_time_a_long_derivation_is_cut_off_and_invalid():
    model = deepgen.build_model(
        "gvae", {"latent_dim": 4, "hidden_dim": 16, "filters": 4, "finish_in_time": False}, (15,)
    )
    logits = torch.zeros(1, 15, len(GRAMMAR))
    logits[0, :, 0] = 10.0  # always S -> S '+' T: the stack never empties
    assert model.strings_of(model.decode_ids(logits)) == [None]
    model.config.finish_in_time = True
    assert model.strings_of(model.decode_ids(logits))[0] is not None


@pytest.fixture(scope="module")
def small_runs(tmp_path_factory):
    """A GVAE and a character VAE trained briefly on 600 expressions."""
    out = {}
    for family in ("gvae", "charvae"):
        config = RunConfig(
            family=family,
            model={"latent_dim": 4, "hidden_dim": 32, "filters": 8},
            data=DataConfig(name="expressions", options={"count": 600}),
            train=TrainConfig(epochs=3, batch_size=30, seed=1),
        )
        out[family] = tmp_path_factory.mktemp(family) / "run"
        deepgen.train(config, out[family], progress=False, log=quiet)
    return out


def test_both_models_train_report_their_terms_and_decode(small_runs):
    from deepgen.rundir import RunDir

    for run in small_runs.values():
        model = deepgen.load(run)
        results = RunDir(run).results()
        terms = results["metrics"]
        assert math.isfinite(terms["neg_elbo"]["mean"]) and 0 <= terms["reconstructed"]["mean"] <= 1
        strings = model.decode_strings(model.latent_prior(50, torch.Generator().manual_seed(0)))
        assert len(strings) == 50 and all(s is None or GRAMMAR.parse(s) for s in strings)
        codes = model.encode_strings(["x+1", "sin(x)"])
        assert codes.shape == (2, 4)
        with pytest.raises(GrammarError, match="at character 2"):
            model.encode_strings(["x++1"])
    config = RunDir(small_runs["charvae"]).config()
    assert config.streams["data"].options["encoding"] == "characters"


def test_eval_report_and_the_latent_tools_of_a_model_of_strings(small_runs, tmp_path, capsys):
    from deepgen.cli import main
    from deepgen.metrics.evaluate import evaluate_run
    from deepgen.report import write_report

    run = small_runs["gvae"]
    validity = evaluate_run(run, None, n=200, log=quiet)["metrics"]["validity"]
    assert 0 <= validity["mean"] <= 1 and validity["stderr"] >= 0
    nll = evaluate_run(run, ["nll"], n=20, k=10, log=quiet)["metrics"]["nll"]
    assert nll["nll"]["mean"] <= nll["neg_elbo"]["mean"] + 1e-6
    assert main(["latent", str(run), "interpolate", "--between", "x+1", "sin(x)*3"]) == 0
    assert "->" in capsys.readouterr().out and (run / "interpolate.txt").is_file()
    page = write_report([run], tmp_path / "r.html").read_text()
    assert "Prior samples (greedy decoding" in page and "Interpolation from" in page


@pytest.mark.parametrize("family", ["gvae", "charvae"])
def test_bayesian_optimisation_in_a_trained_latent_space_runs_end_to_end(
    small_runs, tmp_path, family
):
    from deepgen.optimize import optimize_run

    model = deepgen.load(small_runs[family])
    sampled = model.decode_strings(
        torch.zeros(3, 4), torch.Generator().manual_seed(0)
    )  # decoding by sampling
    assert len(sampled) == 3 and all(s is None or isinstance(s, str) for s in sampled)
    path = optimize_run(
        model,
        deepgen.run_data(small_runs[family]),
        TARGET,
        tmp_path / "o.json",
        iterations=2,
        batch=4,
        gp_points=60,
        seeds=2,
        log=quiet,
    )
    result = json.loads(path.read_text())
    assert len(result["seeds"]) == 2 and len(result["seeds"][0]["iterations"]) == 2
    first = result["seeds"][0]["iterations"][0]
    assert len(first["proposals"]) == 4 and all(
        0 <= s <= math.log1p(1000) + 1e-9 for s in first["scores"]
    )
    assert result["best"]["score"] == min(b["score"] for r in result["seeds"] for b in r["best"])
    assert path.with_suffix(".png").stat().st_size > 0


@pytest.mark.slow
def test_the_command_line_optimises_with_the_sparse_gp_on_every_training_code(small_runs, tmp_path):
    out = tmp_path / "o.json"
    args = ["optimize", str(small_runs["gvae"]), "--target", TARGET, "--gp", "sparse"]
    assert run_cli(*args, "--iterations", "1", "--batch", "3", "-o", str(out)).returncode == 0
    result = json.loads(out.read_text())["seeds"][0]
    assert result["protocol"].startswith("sparse GP (500 inducing points) on all ")
    assert len(result["iterations"][0]["proposals"]) == 3 and result["valid_fraction"] == 1.0
    refused = run_cli(*args[:4], "--gp", "dense")
    assert refused.returncode != 0 and "'dense' is not one of 'exact', 'sparse'" in refused.stderr


def test_the_gp_starts_from_the_best_training_expressions_and_a_random_rest():
    scores = np.array([5.0, 0.1, 3.0, 0.1, 7.0, 2.0, 9.0, 4.0])
    pick = gp_subset(scores, 4, 0.5, np.random.default_rng(0))
    assert list(pick[:2]) == [1, 3] and len(set(pick)) == 4
    drawn = {
        int(i)
        for seed in range(30)
        for i in gp_subset(scores, 4, 0.5, np.random.default_rng(seed))[2:]
    }
    assert drawn == {0, 2, 4, 5, 6, 7}  # the rest comes from all of the others
    assert len(gp_subset(scores, 4, 0.0, np.random.default_rng(0))) == 4
    assert list(gp_subset(scores, 20, 0.5, np.random.default_rng(0))) == list(range(8))


def test_the_gp_and_expected_improvement_find_the_minimum_of_a_1d_function():
    f = lambda x: (x[:, 0] - 0.3) ** 2
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (6, 1))
    y = f(x)
    for _ in range(4):
        new = propose(x, y, 3, rng, candidates=400)
        x, y = np.vstack([x, new]), np.append(y, f(new))
    assert abs(x[np.argmin(y), 0] - 0.3) < 0.03
    gp = fit_gp(x, y)
    assert expected_improvement(gp, np.array([[0.3]]), y.min())[0] >= 0


@pytest.mark.slow
def test_the_sparse_gp_and_batched_expected_improvement_find_the_minimum_of_a_1d_function():
    from deepgen.sparse_gp import SparseGP, batched_greedy_ei

    f = lambda x: (x[:, 0] - 0.3) ** 2
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (40, 1))
    x = x[np.abs(x[:, 0] - 0.3) > 0.1]  # nothing near the minimum to start from
    y = f(x)
    for it in range(3):
        gp = SparseGP(x, y, inducing=20, epochs=200, batch_size=64, lr=0.05, seed=it)
        new = batched_greedy_ei(gp, 3, np.zeros(1), np.ones(1), rng, grid_size=200)
        assert len(np.unique(new.round(6), axis=0)) == 3  # each point given those before it
        x, y = np.vstack([x, new]), np.append(y, f(new))
    assert abs(x[np.argmin(y), 0] - 0.3) < 0.03
    mean, sd = gp.predict(np.array([[0.3], [0.9]]))
    assert abs(mean[0] - 0.0) < 0.05 and abs(mean[1] - 0.36) < 0.05 and (sd > 0).all()


def test_log_expected_improvement_matches_the_closed_form_and_stays_finite_in_the_tail():
    import mpmath

    from deepgen.sparse_gp import log_expected_improvement

    mean = torch.tensor([0.0, 1.0, 3.0, 12.0, 40.0], dtype=torch.float64)
    sd = torch.tensor([1.0, 0.5, 0.5, 1.0, 1.0], dtype=torch.float64)
    got = log_expected_improvement(mean, sd, 0.5)
    for m, s, g in zip(mean.tolist(), sd.tolist(), got.tolist()):
        u = mpmath.mpf(0.5 - m) / s
        ei = s * (u * mpmath.ncdf(u) + mpmath.npdf(u))
        assert abs(g - float(mpmath.log(ei))) < 1e-3 * max(1.0, abs(g))
    assert torch.isfinite(got).all() and (got.diff() < 0).all()


def test_your_own_grammar_and_strings_file(tmp_path):
    grammar = tmp_path / "g.cfg"
    grammar.write_text("S -> S 'and' B | B\nB -> 'yes' | 'no' | 'not' B\n")
    lines = ["yes", "no and yes", "not yes and no", "maybe", "yes and no"]
    (tmp_path / "s.txt").write_text("\n".join(lines) + "\n")
    with pytest.raises(
        DataError, match=r"s.txt, line 4: 'maybe' is not in the grammar: no terminal starts at"
    ):
        deepgen.load_dataset("expressions", tmp_path / "s.txt", grammar=str(grammar))
    logs = []
    data = deepgen.load_dataset(
        "expressions",
        tmp_path / "s.txt",
        grammar=str(grammar),
        on_bad_line="skip",
        max_rules=8,
        log=logs.append,
    )
    assert sum(data.sizes().values()) == 4 and "skipped 1 line" in logs[0] and "line 4" in logs[0]
    assert data.vocabulary[0] == "S -> S 'and' B"
    with pytest.raises(
        ConfigError,
        match="not a context-free grammar in nltk notation: Unable to parse line 1: "
        "S => x; Expected an arrow",
    ):
        Grammar("S => x")


def test_the_command_line_trains_on_your_grammar_and_strings(tmp_path):
    grammar = tmp_path / "g.cfg"
    grammar.write_text("S -> S 'and' B | B\nB -> 'yes' | 'no' | 'not' B\n")
    words = ["yes", "no", "not yes", "not no", "not not yes"]
    lines = [f"{a} and {b} and {c}" for a in words for b in words for c in words[:3]][:60]
    lines.insert(7, "yes or no")
    (tmp_path / "s.txt").write_text("\n".join(lines) + "\n")
    args = [
        "train",
        "gvae",
        "--data",
        "expressions",
        "--data-dir",
        str(tmp_path / "s.txt"),
        "--grammar",
        str(grammar),
        "--epochs",
        "1",
        "--batch-size",
        "16",
        "--latent-dim",
        "2",
        "--hidden-dim",
        "8",
        "--filters",
        "2",
        "--quiet",
    ]
    proc = run_cli(*args, "--out", str(tmp_path / "refused"))
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    expected = (
        f"deepgen: error: {tmp_path / 's.txt'}, line 8: 'yes or no' is not in the grammar: no terminal "
        "starts at character 4 ('o') (--on-bad-line skip skips such lines)"
    )
    assert proc.stderr.strip().splitlines() == [expected]
    assert not (tmp_path / "refused").exists()
    proc = run_cli(*args, "--on-bad-line", "skip", "--out", str(tmp_path / "run"))
    assert proc.returncode == 0, proc.stderr
    config = RunDir(tmp_path / "run").config()
    assert config.data.options["on_bad_line"] == "skip" and config.data.options["grammar"] == str(
        grammar
    )
    model = deepgen.load(tmp_path / "run")
    assert model.grammar.names == Grammar(grammar.read_text()).names
    assert all(s is None or model.grammar.parse(s) for s in model.decode_strings(torch.zeros(3, 2)))


def test_sequence_models_refuse_other_data():
    with pytest.raises(ConfigError, match="reads token sequences"):
        deepgen.build_model("gvae", {}, (1, 28, 28))
    data = deepgen.load_dataset("expressions", count=300, encoding="characters")
    model = _small("gvae", 15)
    with pytest.raises(ConfigError, match="shape"):
        deepgen.fit(model, data, epochs=1, progress=False, log=quiet)

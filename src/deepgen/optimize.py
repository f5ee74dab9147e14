"""Bayesian optimisation in the latent space of a model of strings (Kusner et al. 2017,
sec. 4.1, after Gómez-Bombarelli et al. 2016): find an expression close to a target one.

1. Encode training expressions to their posterior means and score each: the paper's
   log(1 + mean over 1,000 points x in [-10, 10] of min((f(x) - target(x))^2, 1000)),
   log(1 + 1000) for an invalid or non-finite expression; lower is better, 0 is the target.
2. Fit a Gaussian process from latent codes to scores (scikit-learn's
   GaussianProcessRegressor: a constant times an isotropic Matérn 5/2 kernel plus white
   noise, hyperparameters by maximum likelihood) on ``gp_points`` of the codes, drawn at
   random (by default), like the paper's data if fewer: it fitted a sparse GP with 500
   inducing points to 90% of all of them. That GP also knew the best training
   expressions, which 1,000 random ones rarely hold (on the lectures' grammar, the 8 best
   score 0.105: x + sin(x*x) and its rewritings); ``best_share`` > 0 makes that share of
   the points the best-scoring training expressions. An exact GP on 90,000 points is out
   of reach; one length scale per dimension cost scikit-learn 70 s per fit on 1,000
   points here, against 3 s for the isotropic kernel.
3. Propose a batch of points by expected improvement, greedily: the best point of a
   shortlist is taken, added to the data with the GP's mean as if it were observed (the
   "kriging believer"), and the next is chosen the same way. Candidates: points drawn
   uniformly in the box of the training codes and around the best codes so far; the
   shortlist: the candidates of highest expected improvement before any is taken.
4. Decode each point 25 times by sampling and keep the most frequent valid string (as the
   paper's code did), score it, add it to the data, and repeat for ``iterations`` batches.
"""

from __future__ import annotations

import collections
import math
import warnings

import numpy as np
import torch
from scipy.stats import norm

from .data.grammar import Grammar, GrammarError, evaluate
from .errors import ConfigError
from .models.capabilities import Strings, require

WORST = 1000.0
POINTS = np.linspace(-10.0, 10.0, 1000)


def expression_score(
    grammar: Grammar, string: str | None, target: np.ndarray, x: np.ndarray = POINTS
) -> float:
    """log(1 + mean(min((f(x) - target)^2, 1000))) of expression ``string`` against the
    target's values ``target`` at ``x``; log(1 + 1000) when the string is None, outside the
    grammar, or not finite (Kusner et al. 2017, sec. 4.1 and their code)."""
    if string is None:
        return math.log1p(WORST)
    try:
        values = evaluate(grammar, string, x)
    except GrammarError:
        return math.log1p(WORST)
    with np.errstate(all="ignore"):
        score = math.log1p(float(np.mean(np.minimum((values - target) ** 2, WORST))))
    return score if math.isfinite(score) else math.log1p(WORST)


def fit_gp(x: np.ndarray, y: np.ndarray, seed: int = 0, kernel=None):
    """A GaussianProcessRegressor fitted to codes ``x`` (N, D) and scores ``y`` (N,); with
    ``kernel`` given, its hyperparameters are kept as they are (no optimisation)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel

    fixed = kernel is not None
    if kernel is None:
        kernel = ConstantKernel(1.0) * Matern(1.0, nu=2.5) + WhiteKernel(0.1)
    gp = GaussianProcessRegressor(
        kernel, normalize_y=True, random_state=seed, optimizer=None if fixed else "fmin_l_bfgs_b"
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return gp.fit(x, y)


def expected_improvement(gp, points: np.ndarray, best: float) -> np.ndarray:
    """E[max(best - f(x), 0)] under the GP's posterior at ``points`` (N, D): expected
    improvement for minimisation (Jones et al. 1998)."""
    mean, std = gp.predict(points, return_std=True)
    std = np.maximum(std, 1e-12)
    u = (best - mean) / std
    return (best - mean) * norm.cdf(u) + std * norm.pdf(u)


def propose(
    x: np.ndarray,
    y: np.ndarray,
    batch: int,
    rng: np.random.Generator,
    candidates: int = 2000,
    shortlist: int = 300,
    seed: int = 0,
) -> np.ndarray:
    """``batch`` points (batch, D) chosen greedily by expected improvement under a GP fitted
    to (x, y), each taken as observed at the GP's mean before the next is chosen."""
    gp = fit_gp(x, y, seed)
    low, high = x.min(0), x.max(0)
    best_codes = x[np.argsort(y)[:20]]
    uniform = rng.uniform(low, high, size=(candidates // 2, x.shape[1]))
    local = best_codes[rng.integers(0, len(best_codes), candidates - len(uniform))]
    local = local + rng.normal(0.0, 0.1, local.shape) * (high - low)
    pool = np.concatenate([uniform, local])
    pool = pool[np.argsort(-expected_improvement(gp, pool, y.min()))[: max(shortlist, batch)]]
    chosen, xs, ys = [], x, y
    for _ in range(batch):
        gain = expected_improvement(gp, pool, ys.min())
        k = int(np.argmax(gain))
        chosen.append(pool[k])
        xs, ys = np.vstack([xs, pool[k]]), np.append(ys, gp.predict(pool[k][None])[0])
        pool = np.delete(pool, k, axis=0)
        gp = fit_gp(xs, ys, seed, kernel=gp.kernel_)
    return np.array(chosen)


def gp_subset(
    scores: np.ndarray, size: int, best_share: float, rng: np.random.Generator
) -> np.ndarray:
    """Indices of the ``size`` training expressions the GP starts from: the
    round(``best_share`` * size) lowest ``scores`` (ties by index), then a uniform draw
    without replacement from the others; all of them when there are at most ``size``."""
    if len(scores) <= size:
        return np.arange(len(scores))
    best = np.argsort(scores, kind="stable")[: round(best_share * size)]
    rest = np.setdiff1d(np.arange(len(scores)), best)
    return np.concatenate([best, rng.choice(rest, size=size - len(best), replace=False)])


def decode_points(model, points: np.ndarray, attempts: int = 25, seed: int = 0) -> list[str | None]:
    """Latent points (N, latent_dim) -> N strings: each point decoded ``attempts`` times by
    sampling, and its most frequent valid string kept (None when no draw was valid), as the
    paper's code (``decode_from_latent_space`` in its run_bo.py) did."""
    z = torch.as_tensor(points, dtype=torch.get_default_dtype())
    draws = [
        model.decode_strings(z, torch.Generator(device=model.device).manual_seed(seed * 1000 + a))
        for a in range(attempts)
    ]
    out = []
    for i in range(len(points)):
        valid = collections.Counter(d[i] for d in draws if d[i] is not None)
        out.append(valid.most_common(1)[0][0] if valid else None)
    return out


def optimize(
    model,
    strings: list[str],
    target: str,
    iterations: int = 5,
    batch: int = 50,
    gp_points: int = 1000,
    seed: int = 0,
    log=None,
    best_share: float = 0.0,
    scores: np.ndarray | None = None,
    gp: str = "exact",
) -> dict:
    """Bayesian optimisation of expressions towards ``target`` in ``model``'s latent space
    (see the module docstring); ``strings``: the training expressions to start from,
    ``scores`` (len(strings),): theirs against the target, when already computed; they are
    computed for all of them only when ``best_share`` > 0 or ``gp`` is "sparse", else for
    the GP's points alone. ``gp``: "exact" (steps 2-3 of the module docstring) or "sparse"
    (:mod:`deepgen.sparse_gp` on every training code, as the paper's code).

    Returns a dict: per iteration the proposals, their scores, the fraction valid and the
    mean score; the best expressions found; the mean score of all proposals (an invalid one
    counting log(1 + 1000)); and the totals the paper reports, computed as its code
    (equation_optimization/get_final_results.py) does: the fraction of valid proposals and
    the ``average_score`` over the proposals scoring below the seed's worst score, which
    leaves out every invalid one (and, when all are valid, the worst).

    Raises:
        MissingCapability: the model has no :class:`Strings`. GrammarError: the target is
            not in the model's grammar. ConfigError: too few training strings, or ``gp``
            neither "exact" nor "sparse".
    """
    require(model, Strings, "deepgen optimize")
    grammar = model.grammar
    target_values = evaluate(grammar, target, POINTS)
    if len(strings) < 10:
        raise ConfigError(
            f"Bayesian optimisation needs at least 10 training expressions, not {len(strings)}"
        )
    if not 0 <= best_share <= 1:
        raise ConfigError(f"best_share is a fraction in [0, 1], not {best_share}")
    if gp not in ("exact", "sparse"):
        raise ConfigError(f"the Gaussian process is 'exact' or 'sparse', not {gp!r}")
    if gp == "sparse":  # every training code, as the paper's sparse GP
        gp_points, best_share = len(strings), 0.0
    if scores is None and (best_share > 0 or gp == "sparse"):
        scores = np.array([expression_score(grammar, s, target_values) for s in strings])
    rng = np.random.default_rng(seed)
    # With best_share 0 no point is chosen by score, and gp_subset reads only the count.
    pick = gp_subset(
        np.zeros(len(strings)) if scores is None else scores, gp_points, best_share, rng
    )
    start = [strings[i] for i in pick]
    with torch.no_grad():
        x = (
            torch.cat(
                [model.encode_strings(start[i : i + 1000]) for i in range(0, len(start), 1000)]
            )
            .cpu()
            .double()
        )
    x = x.numpy()
    y = (
        scores[pick]
        if scores is not None
        else np.array([expression_score(grammar, s, target_values) for s in start])
    )
    rounds = []
    low, high = x.min(0), x.max(0)
    for it in range(iterations):
        if gp == "sparse":
            from .sparse_gp import SparseGP, batched_greedy_ei

            surrogate = SparseGP(x, y, seed=seed * 100 + it)
            points = batched_greedy_ei(surrogate, batch, low, high, rng)
        else:
            points = propose(x, y, batch, rng, seed=seed)
        found = decode_points(model, points, seed=seed * 100 + it)
        scores = np.array([expression_score(grammar, s, target_values) for s in found])
        x, y = np.vstack([x, points]), np.append(y, scores)
        valid = [s is not None for s in found]
        rounds.append(
            {
                "proposals": found,
                "scores": scores.tolist(),
                "valid_fraction": float(np.mean(valid)),
                "mean_score": float(scores.mean()),
            }
        )
        if log:
            best = int(np.argmin(scores))
            log(
                f"iteration {it + 1}/{iterations}: {sum(valid)}/{batch} valid, "
                f"mean score {scores.mean():.3f}, best {scores[best]:.3f} ({found[best]})"
            )
    proposals = [(s, sc) for r in rounds for s, sc in zip(r["proposals"], r["scores"])]
    best = sorted({s: sc for s, sc in proposals if s is not None}.items(), key=lambda kv: kv[1])[:5]
    all_scores = np.array([sc for _, sc in proposals])
    below_worst = all_scores[all_scores < all_scores.max()]
    return {
        "target": target,
        "seed": seed,
        "iterations": rounds,
        "valid_fraction": float(np.mean([s is not None for s, _ in proposals])),
        "mean_score": float(all_scores.mean()),
        "average_score": (
            float(below_worst.mean()) if len(below_worst) else float(all_scores.max())
        ),
        "best": [{"expression": s, "score": sc} for s, sc in best],
        "protocol": (
            f"sparse GP (500 inducing points) on all {len(start)} training codes; "
            if gp == "sparse"
            else f"GP on {len(start)} training codes ({round(best_share * 100)}% the "
            "best-scoring, the rest at random); "
        )
        + f"{iterations} batches of {batch} by greedy expected "
        "improvement; each point decoded 25 times, most frequent valid string kept; score "
        "log(1 + mean min((f - target)^2, 1000)) on 1,000 points in [-10, 10]",
    }


def optimize_run(
    model,
    streams: dict,
    target: str,
    output,
    iterations: int = 5,
    batch: int = 50,
    gp_points: int = 1000,
    seeds: int = 1,
    log=print,
    best_share: float = 0.0,
    gp: str = "exact",
):
    """:func:`optimize` from the training expressions of a run's data, over seeds 0 ..
    ``seeds`` - 1; writes the results to ``output`` (JSON) and a plot of the target and
    the best expression found beside it (.png). Returns the JSON path."""
    import json
    from pathlib import Path

    from .fileio import atomic_write_bytes, atomic_write_text

    require(model, Strings, "deepgen optimize")
    train = streams[model.epoch_stream]["train"]
    strings = [s for s in model.strings_of(train.x) if s is not None]
    scores = None  # every training expression's score, computed once for all seeds when needed
    if best_share > 0 or gp == "sparse":
        target_values = evaluate(model.grammar, target, POINTS)
        scores = np.array([expression_score(model.grammar, s, target_values) for s in strings])
    runs = []
    for seed in range(seeds):
        if log:
            log(f"seed {seed}:")
        runs.append(
            optimize(
                model,
                strings,
                target,
                iterations,
                batch,
                gp_points,
                seed,
                log,
                best_share,
                scores,
                gp,
            )
        )
    summary = {
        key: _mean_sd([r[key] for r in runs])
        for key in ("valid_fraction", "average_score", "mean_score")
    }
    best = min((b for r in runs for b in r["best"]), key=lambda b: b["score"], default=None)
    result = {"target": target, "seeds": runs, "summary": summary, "best": best}
    if log and best:
        log(
            f"best: {best['expression']} (score {best['score']:.4f}); valid fraction "
            f"{summary['valid_fraction']['mean']:.3f} ± {summary['valid_fraction']['sd']:.3f}, "
            f"average score {summary['average_score']['mean']:.3f} ± "
            f"{summary['average_score']['sd']:.3f} (± sd over {seeds} seed(s); average of the "
            "proposals below each seed's worst, as the paper's code)"
        )
    path = atomic_write_text(Path(output), json.dumps(result, indent=2) + "\n")
    if best:
        atomic_write_bytes(
            path.with_suffix(".png"), _plot(model.grammar, target, best["expression"])
        )
    return path


def _mean_sd(values: list[float]) -> dict:
    return {
        "mean": float(np.mean(values)),
        "sd": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0,
        "n": len(values),
    }


def _plot(grammar: Grammar, target: str, found: str) -> bytes:
    """PNG: the target and the expression found, over [-10, 10]."""
    from .viz import curves_png

    with np.errstate(all="ignore"):
        series = [
            (f"target {target}", POINTS, evaluate(grammar, target, POINTS)),
            (f"found {found}", POINTS, evaluate(grammar, found, POINTS)),
        ]
    return curves_png(series, "x", "f(x)", "Bayesian optimisation in latent space")

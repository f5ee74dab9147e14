"""The Grammar VAE against the character VAE on the expressions (Kusner et al. 2017, sec. 4.1):
reconstruction of test expressions, validity of prior samples, and Bayesian optimisation
towards 1/3 + x + sin(x*x) over seeds, with wall-clock.

    python benchmarks/grammar_vae.py [--epochs 10] [--seeds 10] [--out DIR] [--gp-best 0] [--option beta=0.1]

Each model is trained once (`deepgen train gvae|charvae --data expressions`, seed 0) into
--out (a finished run is reused), then `deepgen optimize` runs its 5 batches of 50 for every
seed, the GP starting from 1,000 training codes: with --gp-best 0 (the default) all at
random, with --gp-best 0.5 the 500 best-scoring and 500 at random. Printed beside the
paper's figures as the issue reads them (Table 2: fraction of valid proposals and average
score, 10 seeds; Table 3: the best expression found); the paper's text could not be read
here. Its code (github.com/mkusner/grammarVAE, get_final_results.py)
says how they were computed, and this benchmark computes them the same way: the average is
over the proposals that score below the seed's worst score (so it leaves out the invalid
ones), and the paper's ± is the sd over the 10 seeds divided by sqrt(5) (the number of
batches); the table shows our sd and, beside the paper's ±, that ± times sqrt(5).
Under the score formula of the same code, the expression the issue quotes as GVAE's best
(x/1 + sin(x) + sin(x*x), "0.04") scores 0.46, so that reading of Table 3 cannot be right
about both the expression and the score; the goal of 0.04 is kept as a score.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

import deepgen
from deepgen.config import DataConfig, RunConfig, TrainConfig
from deepgen.optimize import optimize_run

TARGET = "1/3 + x + sin(x*x)"
# (valid mean, its ±), (average score mean, its ±), best; the paper's ± is sd / sqrt(5).
PAPER = {
    "gvae": ((0.99, 0.01), (3.47, 0.24), "x/1 + sin(x) + sin(x*x), 0.04"),
    "charvae": ((0.86, 0.06), (4.75, 0.25), "x*1 + sin(x) + sin(3+x), 0.39"),
}


def train(family: str, out: Path, epochs: int, options: dict) -> float:
    """Train ``family`` with model ``options`` into ``out`` unless it finished there;
    returns training seconds."""
    if (out / "results.json").is_file():
        return json.loads((out / "results.json").read_text())["training_seconds"]
    config = RunConfig(
        family=family,
        model=options,
        data=DataConfig(name="expressions"),
        train=TrainConfig(epochs=epochs, batch_size=256, seed=0),
    )
    deepgen.train(config, out, progress=False)
    return json.loads((out / "results.json").read_text())["training_seconds"]


def prior_validity(model, n: int = 1000) -> float:
    with torch.no_grad():
        strings = model.decode_strings(model.latent_prior(n, torch.Generator().manual_seed(0)))
    return sum(s is not None for s in strings) / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--families", nargs="+", default=["gvae", "charvae"])
    parser.add_argument(
        "--out", default=None, help="folder for the runs [default: a temporary one]"
    )
    parser.add_argument(
        "--gp-best",
        type=float,
        default=0.0,
        help="share of the GP's starting codes that are the best-scoring training expressions",
    )
    parser.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a model option for both families, e.g. beta=0.01 (repeatable)",
    )
    args = parser.parse_args()
    options = {k: json.loads(v) for k, v in (o.split("=", 1) for o in args.option)}
    out = Path(args.out or tempfile.mkdtemp(prefix="deepgen-gvae-"))
    rows = []
    for family in args.families:
        run = out / family
        train_seconds = train(family, run, args.epochs, options)
        model = deepgen.load(run)
        results = json.loads((run / "results.json").read_text())
        start = time.perf_counter()
        path = optimize_run(
            model,
            deepgen.run_data(run),
            TARGET,
            run / f"optimize-best{args.gp_best:g}.json",
            seeds=args.seeds,
            log=lambda m: None,
            best_share=args.gp_best,
        )
        bo_seconds = (time.perf_counter() - start) / args.seeds
        result = json.loads(path.read_text())
        valid = [r["valid_fraction"] for r in result["seeds"]]
        score = [r["average_score"] for r in result["seeds"]]
        rows.append(
            (
                family,
                results["metrics"]["reconstructed"]["mean"],
                prior_validity(model),
                valid,
                score,
                result["best"],
                train_seconds,
                bo_seconds,
                results["metrics"]["neg_elbo"],
            )
        )
        print(
            f"{family}: done ({train_seconds / 60:.1f} min training, {bo_seconds / 60:.1f} min BO per seed)",
            flush=True,
        )
    sd = lambda v: statistics.stdev(v) if len(v) > 1 else 0.0
    paper_sd = lambda m, e: f"{m:.2f} ± {e:.2f} (sd {e * 5**0.5:.2f})"
    print(
        f"\nruns in {out}; BO over {args.seeds} seeds, mean ± sd, the GP starting from 1,000 training codes of "
        f"which {args.gp_best:.0%} the best-scoring; the paper's figures as the issue reads them"
    )
    print(
        "| model | test -ELBO (nats) | test reconstructed | prior valid | BO valid | BO average score | "
        "best found (score) | training / BO per seed | paper: valid; average score; best |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for family, recon, prior, valid, score, best, train_s, bo_s, elbo in rows:
        paper = PAPER.get(family)
        cited = f"{paper_sd(*paper[0])}; {paper_sd(*paper[1])}; {paper[2]}" if paper else "–"
        print(
            f"| {family} | {elbo['mean']:.2f} ± {elbo['stderr']:.2f} | {recon:.3f} | {prior:.3f} | "
            f"{statistics.mean(valid):.3f} ± {sd(valid):.3f} | {statistics.mean(score):.2f} ± {sd(score):.2f} | "
            f"{best['expression']} ({best['score']:.3f}) | {train_s / 60:.1f} / {bo_s / 60:.1f} min | {cited} |"
        )


if __name__ == "__main__":
    main()

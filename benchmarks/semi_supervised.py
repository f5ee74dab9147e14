"""Semi-supervised MNIST: test error with N labels per class, beside Kingma et al. 2014,
Table 1, over seeds of the label choice, with wall-clock.

    python benchmarks/semi_supervised.py [--labels-per-class 10] [--seeds 5] [--m2-epochs 10]
                                         [--m1-epochs 10] [--m1m2-epochs 10]
                                         [--ssgan-epochs 60] [--supervised-iterations 2000]
                                         [--families supervised m1 m2 m1+m2 ssgan]

Each family is trained in memory through the Trainer (no run folder, no per-epoch
validation: a setting with N labels per class has no validation labels to select with),
for a fixed length, then its classifier's argmax is scored once on the 10,000 MNIST test
images (one dynamic binarisation, seed 0). The labelled subset of seed s is the same for
every family. The semi-supervised GAN is Salimans et al. 2016's (their Table 1: 0.93% with
100 labels, permutation-invariant MNIST, feature matching). M1 is compared with the
paper's M1+TSVM, though its classifier is a logistic regression on the latent means (see
deepgen.models.m1); M1+M2 trains both of its parts at once.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import deepgen
from deepgen.config import DataConfig, TrainConfig
from deepgen.models import build_model
from deepgen.rundata import load_streams
from deepgen.trainer import Trainer

# Kingma et al. 2014, Table 1: test error (%) with N labels in all, mean ± sd over runs.
# Salimans et al. 2016, Table 1: test errors of 10,000 (mean ± sd over 10 runs), as %.
PAPER = {
    50: {"ssgan": "2.21 ± 1.36"},
    100: {
        "m1+tsvm": "11.82 ± 0.25",
        "m2": "11.97 ± 1.71",
        "m1+m2": "3.33 ± 0.14",
        "ssgan": "0.93 ± 0.065",
    },
    200: {"ssgan": "0.90 ± 0.042"},
    600: {"m1+tsvm": "5.72 ± 0.05", "m2": "4.94 ± 0.13", "m1+m2": "2.59 ± 0.05"},
    1000: {"m1+tsvm": "4.24 ± 0.07", "m2": "3.60 ± 0.56", "m1+m2": "2.40 ± 0.02"},
    3000: {"m1+tsvm": "3.49 ± 0.04", "m2": "3.92 ± 0.63", "m1+m2": "2.18 ± 0.04"},
}


def run(family: str, per_class: int, seed: int, length: dict) -> tuple[float, float]:
    """(test error, training seconds) of one family trained with ``per_class`` labels of
    each class chosen by ``seed``."""
    config = deepgen.RunConfig(
        family=family,
        model={},
        data=DataConfig(name="mnist", labels_per_class=per_class),
        train=TrainConfig(batch_size=100, seed=seed, **length),
    )
    streams = load_streams(config)
    values = deepgen.MODELS[family].configure({}, streams)
    model = build_model(family, values, {n: ds.data_shape for n, ds in streams.items()}, seed=seed)
    start = time.perf_counter()
    Trainer(model, streams, config.train, progress=False, evaluate=False, log=lambda m: None).fit()
    seconds = time.perf_counter() - start
    test = streams[model.accuracy_stream or model.streams[0]]["test"]
    model.eval()
    with torch.no_grad():
        x = model.preprocess(test.x.to(model.device), torch.Generator(model.device).manual_seed(0))
        error = (model.class_logits(x).argmax(1).cpu() != test.labels).double().mean().item()
    return error, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--labels-per-class", type=int, default=10)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument(
        "--m2-epochs", type=int, default=10, help="passes over the unlabelled stream"
    )
    parser.add_argument(
        "--m1-epochs", type=int, default=10, help="passes over the unlabelled stream"
    )
    parser.add_argument(
        "--m1m2-epochs", type=int, default=10, help="passes over the unlabelled stream"
    )
    parser.add_argument(
        "--ssgan-epochs", type=int, default=60, help="passes over the unlabelled stream"
    )
    parser.add_argument("--supervised-iterations", type=int, default=2000)
    parser.add_argument("--families", nargs="+", default=["supervised", "m2"])
    args = parser.parse_args()
    lengths = {
        "supervised": {"images": 100 * args.supervised_iterations},
        "m2": {"epochs": args.m2_epochs},
        "ssgan": {"epochs": args.ssgan_epochs},
        "m1": {"epochs": args.m1_epochs},
        "m1+m2": {"epochs": args.m1m2_epochs},
    }
    n = 10 * args.labels_per_class
    rows = []
    for family in args.families:
        errors, seconds = [], []
        for seed in range(args.seeds):
            error, took = run(family, args.labels_per_class, seed, lengths[family])
            errors.append(100 * error)
            seconds.append(took)
            print(
                f"{family} seed {seed}: test error {100 * error:.2f}% ({took / 60:.1f} min)",
                flush=True,
            )
        rows.append((family, errors, seconds))
    sd = lambda v: statistics.stdev(v) if len(v) > 1 else 0.0
    print(
        f"\nMNIST test error (%) with {n} labels, {args.seeds} seeds of the label choice, mean ± sd; "
        "Kingma et al. 2014, Table 1 (ssgan: Salimans et al. 2016, Table 1) beside it"
    )
    print("| family | length | test error (%) | per seed | minutes per run | paper |")
    print("|---|---|---|---|---|---|")
    for family, errors, seconds in rows:
        length = ", ".join(f"{v:,} {k}" for k, v in lengths[family].items())
        paper = PAPER.get(n, {}).get({"m1": "m1+tsvm"}.get(family, family), "–")
        print(
            f"| {family} | {length} | {statistics.mean(errors):.2f} ± {sd(errors):.2f} | "
            f"{', '.join(f'{e:.2f}' for e in errors)} | {statistics.mean(seconds) / 60:.1f} | {paper} |"
        )


if __name__ == "__main__":
    main()

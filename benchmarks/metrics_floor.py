"""The real-data floor and ceiling of every sample metric on MNIST, under the shipped classifier.

'Generated' sets here are real or damaged real images, so each metric's best reachable
value (train images against test images) and what damage does to it can be read off
before any model is compared. A second table shows how much the uncertain numbers move
with their own randomness (train against test): KID by Bińkowski et al.'s subset
protocol over five seeds beside the full-set value and its standard error, and FID's
bootstrap standard error over five seeds with 10 and with 100 resamples.

    python benchmarks/metrics_floor.py [--n 10000]
"""

from __future__ import annotations

import argparse
import time

import torch

import deepgen
from deepgen.metrics import (
    density_coverage,
    fid,
    inception_score,
    kid,
    kid_full,
    precision_recall,
)
from deepgen.metrics.classifier import classifier_outputs, load_classifier
from deepgen.metrics.evaluate import bootstrap_std
from deepgen.metrics.parzen import parzen_protocol


def sets(data, n: int, g: torch.Generator) -> dict[str, torch.Tensor]:
    x = data["test"].x[:n].float() / 255
    return {
        "train (real)": data["train"].x[:n].float() / 255,
        "noisy test (+N(0, 0.3^2))": (x + 0.3 * torch.randn(x.shape, generator=g)).clamp(0, 1),
        "blurred test (5x5 box)": torch.nn.functional.avg_pool2d(x, 5, stride=1, padding=2),
        "one class (test 1s)": data["test"].x[data["test"].labels == 1].float() / 255,
        "uniform noise": torch.rand(x.shape, generator=g),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=10_000)
    args = parser.parse_args()
    data = deepgen.load_dataset("mnist")
    model, sha = load_classifier("mnist")
    g = torch.Generator().manual_seed(0)
    test = data["test"].x[: args.n].float() / 255
    real_f, real_p = classifier_outputs(model, test)
    valid = data["valid"].x[:1000].float().flatten(1) / 255
    print(f"MNIST, n = {args.n} per set, classifier sha256 {sha[:16]}...")
    print(f"classifier score of the test set itself: {inception_score(real_p)[0]:.3f}")
    print(
        f"{'set':28s} {'FID':>8s} {'KID':>10s} {'IS':>6s} {'prec':>6s} {'rec':>6s} {'dens':>6s} "
        f"{'cov':>6s} {'Parzen':>8s}"
    )
    for name, images in sets(data, args.n, g).items():
        t = time.perf_counter()
        f, p = classifier_outputs(model, images)
        pr = precision_recall(real_f, f)
        dc = density_coverage(real_f, f)
        parzen = parzen_protocol(images.flatten(1), valid, test.flatten(1))["mean"]
        print(
            f"{name:28s} {fid(real_f, f):8.2f} {kid(real_f, f, 50, 1000, g)[0]:10.3f} "
            f"{inception_score(p)[0]:6.3f} {pr[0]:6.3f} {pr[1]:6.3f} {dc[0]:6.3f} {dc[1]:6.3f} "
            f"{parzen:8.1f}   ({time.perf_counter() - t:.0f} s)"
        )

    uncertainty(real_f, classifier_outputs(model, data["train"].x[: args.n].float() / 255)[0])


def uncertainty(real_f: torch.Tensor, train_f: torch.Tensor) -> None:
    """The train-against-test numbers of KID and FID's error under their own randomness."""
    seeds = range(5)
    subset = [kid(real_f, train_f, 100, 1000, torch.Generator().manual_seed(s))[0] for s in seeds]
    t = time.perf_counter()
    value, stderr = kid_full(real_f, train_f)
    seconds = time.perf_counter() - t
    print("\ntrain against test, KID (the table's units):")
    print(
        "  subset protocol (100 subsets of 1,000), seeds 0-4: "
        + ", ".join(f"{v:.2f}" for v in subset)
        + f"  (sd {torch.tensor(subset).std().item():.2f})"
    )
    print(f"  full set, all pairs: {value:.2f} +- {stderr:.2f}  ({seconds:.0f} s)")
    for resamples in (10, 100):
        errors = [bootstrap_std(fid, real_f, train_f, s, resamples) for s in seeds]
        print(
            f"FID bootstrap stderr, {resamples} resamples, seeds 0-4: "
            + ", ".join(f"{e:.3f}" for e in errors)
        )


if __name__ == "__main__":
    main()

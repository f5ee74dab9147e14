"""Goodfellow et al. 2014's Parzen-window protocol on deepgen's GAN, beside the paper's number.

10,000 samples; sigma from logspace(-1, 0, 10) chosen on 1,000 validation images; mean
log-likelihood over the 10,000 MNIST test images +- std / sqrt(N), pixels in [0, 1].
The paper (Table 1) reports 225 +- 2 nats for its MLP GAN on MNIST.

    python benchmarks/parzen_gan.py [RUN]      # default: trains `deepgen train gan --epochs 5` first
"""

from __future__ import annotations

import argparse
import tempfile

import deepgen
from deepgen.errors import ConfigError
from deepgen.metrics.evaluate import evaluate_run
from deepgen.metrics.paper_protocols import check_paper_protocol

PAPER = "Goodfellow et al. 2014, Table 1: GAN on MNIST, Parzen window estimate 225 +- 2 nats"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", nargs="?")
    args = parser.parse_args()
    run = args.run
    if run is None:
        run = tempfile.mkdtemp(prefix="deepgen-parzen-") + "/gan"
        print(f"training a DCGAN for 5 epochs into {run} (about 3 minutes)")
        config = deepgen.RunConfig(family="gan", model={}, train=deepgen.TrainConfig(epochs=5))
        deepgen.train(config, run, progress=False, log=lambda m: None)
    result = evaluate_run(run, ["parzen"], n=10_000, log=lambda m: None)["metrics"]["parzen"]
    print(
        f"deepgen GAN ({run}): {result['mean']:.1f} +- {result['stderr']:.1f} nats "
        f"(sigma {result['sigma']:.3f}, {result['n_samples']} samples, {result['n']} test images)"
    )
    try:
        check_paper_protocol(result, "parzen")
    except ConfigError as err:
        print(f"not beside the paper: {err}")
        return
    print(f"paper: {PAPER}")


if __name__ == "__main__":
    main()

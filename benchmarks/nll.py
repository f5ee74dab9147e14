"""Importance-sampled test NLL of a VAE: the full protocol timed, beside a one-image-at-a-time loop.

Burda et al. 2015's protocol: IWAE bound with k = 5000 over the 10,000 MNIST test images.
deepgen batches images and samples; the reference loop evaluates one image at a time, as
pythae's ``get_nll`` does, timed on a subset and extrapolated to 10,000 images.
Both are measured in this run, and their ratio is printed.

    python benchmarks/nll.py [RUN] [--k 5000] [--n 10000] [--reference-images 20]

Without RUN, an MLP VAE (784-400-20) is trained for 10 epochs first (about 30 s).
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch

import deepgen
from deepgen import losses
from deepgen.errors import ConfigError
from deepgen.metrics.likelihood import evaluate_nll
from deepgen.metrics.paper_protocols import check_paper_protocol, counts_used, label

PAPER = "Burda et al. 2015, Table 1: VAE with one stochastic layer, k = 5000: NLL 86.76 nats"


def one_at_a_time(model, images: torch.Tensor, k: int, inner: int = 100, seed: int = 0) -> float:
    """Seconds per image for a per-image loop (inner batches of ``inner`` samples)."""
    gen = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    with torch.no_grad():
        for img in images:
            x = model.preprocess(img.unsqueeze(0), gen)
            parts = [model.log_importance_weights(x, inner, gen) for _ in range(k // inner)]
            losses.iwae_bound(torch.cat(parts))
    return (time.perf_counter() - start) / len(images)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", nargs="?", default=None)
    parser.add_argument("--k", type=int, default=5000)
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--reference-images", type=int, default=20)
    args = parser.parse_args()
    data = deepgen.load_dataset("mnist")
    run = args.run
    if run is None:
        run = tempfile.mkdtemp(prefix="deepgen-nll-") + "/vae"
        print(f"training an MLP VAE (784-400-20, 10 epochs) into {run}")
        deepgen.fit(
            deepgen.build_model("vae", {"net": "mlp"}, data.data_shape),
            data,
            out=run,
            epochs=10,
            progress=False,
            log=lambda m: None,
        )
    model = deepgen.load(run)
    test = data["test"].x[: args.n]
    per_image = one_at_a_time(model, test[: args.reference_images], args.k)
    start = time.perf_counter()
    result = evaluate_nll(model, test, k=args.k)
    seconds = time.perf_counter() - start
    ref_total = per_image * len(test)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; run {run}")
    print(
        f"test NLL (IWAE, k = {args.k}, n = {len(test)}): {result['nll']['mean']:.2f} +- "
        f"{result['nll']['stderr']:.2f} nats ({result['bits_per_dim']['mean']:.4f} bits/dim); "
        f"k-sample -ELBO {result['neg_elbo']['mean']:.2f} nats"
    )
    print(
        f"  of which: {result['nll']['stderr_images']:.3f} over images, "
        f"{result['nll']['stderr_monte_carlo']:.3f} Monte-Carlo (importance sampler)"
    )
    label("nll", result, data.name, counts_used("nll", len(test), len(test), args.k))
    try:
        check_paper_protocol(result, "nll")
        print(f"paper: {PAPER} (trained 3,280 epochs; this model: as in RUN)")
    except ConfigError as err:
        print(f"not beside the paper: {err}")
    print(f"deepgen batched:    {seconds:8.1f} s  ({seconds / 60:.2f} min)")
    print(
        f"one image at a time: {ref_total:8.1f} s  ({ref_total / 60:.2f} min, extrapolated from "
        f"{args.reference_images} images at {per_image:.3f} s each)"
    )
    print(f"speed-up: {ref_total / seconds:.1f}x")


if __name__ == "__main__":
    main()

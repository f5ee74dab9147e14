"""The importance-sampled NLL with the decoder in bfloat16, beside float32 on the same draws.

Issue 20 asks for a conv VAE's k = 5000 NLL over the 10,000 MNIST test images in under ten
minutes. Both precisions score the first N test images with the same binarisation and the
same importance samples (one generator state per batch, replayed), so the difference is
the precision's alone; each is timed, and the full test set's time is extrapolated.

    python benchmarks/nll_precision.py [RUN] [--n 300] [--k 5000]

Without RUN, a conv VAE is trained for 10 epochs first (about a minute on two cores).
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch

import deepgen
from deepgen.metrics.likelihood import BATCH, DECODER_DTYPES, iwae_log_likelihood
from deepgen.seeds import batch_generator


def per_image_nll(model, images: torch.Tensor, k: int, precision: str, seed: int = 0):
    """-IWAE_k (N,) nats of uint8 ``images``, with the draws evaluate_nll would make, and
    the seconds it took."""
    dtype = DECODER_DTYPES[precision]
    out = []
    start = time.perf_counter()
    for index, first in enumerate(range(0, len(images), BATCH)):
        gen = batch_generator(seed, index, model.device)
        x = model.preprocess(images[first : first + BATCH].to(model.device), gen)
        log_px, _, _ = iwae_log_likelihood(model, x, k, generator=gen, decoder_dtype=dtype)
        out.append(-log_px)
    return torch.cat(out), time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", nargs="?", default=None)
    parser.add_argument("--n", type=int, default=300, help="first N test images")
    parser.add_argument("--k", type=int, default=5000)
    args = parser.parse_args()
    data = deepgen.load_dataset("mnist")
    run = args.run
    if run is None:
        run = tempfile.mkdtemp(prefix="deepgen-nll-precision-") + "/conv-vae"
        print(f"training a conv VAE (10 epochs) into {run}")
        model = deepgen.build_model("vae", {"net": "conv"}, data.data_shape)
        deepgen.fit(model, data, out=run, epochs=10, progress=False, log=lambda m: None)
    model = deepgen.load(run).eval()
    test = data["test"].x[: args.n]
    full, full_s = per_image_nll(model, test, args.k, "float32")
    half, half_s = per_image_nll(model, test, args.k, "bfloat16")
    diff = half - full
    scale = 10_000 / len(test) / 60
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; run {run}")
    print(f"k = {args.k}, first {len(test)} test images, the same draws in both")
    for name, nll, seconds in (("float32", full, full_s), ("bfloat16", half, half_s)):
        print(
            f"{name + ':':9} NLL {nll.mean():.3f} nats  {seconds:7.1f} s  "
            f"(10,000 images: {seconds * scale:.1f} min)"
        )
    print(
        f"bfloat16 - float32: mean {diff.mean():+.4f} nats, per image mean |d| "
        f"{diff.abs().mean():.4f}, max |d| {diff.abs().max():.4f}; "
        f"the float32 NLL's standard error over these images {full.std() / len(full) ** 0.5:.3f}"
    )
    print(f"speed-up: {full_s / half_s:.2f}x")


if __name__ == "__main__":
    main()

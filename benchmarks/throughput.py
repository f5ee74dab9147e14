"""Training throughput of deepgen's Trainer against a plain PyTorch loop, same run.

Both train the same network (same initial weights, optimiser, batch size, dynamic
binarisation) on MNIST held in memory as uint8; the plain loop is what a user would write
by hand: a permutation per epoch, index, binarise, forward, ELBO, backward, step. The
figure printed is images/s of each and their ratio (deepgen / plain), median of repeats.

    python benchmarks/throughput.py [--nets mlp,conv] [--images 100000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import deepgen
from deepgen import losses
from deepgen.models import build_model


def plain_loop(model, images: torch.Tensor, n_images: int, batch_size: int, seed: int) -> float:
    """A hand-written training loop; returns images/s."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(seed)
    steps, done = n_images // batch_size, 0
    start = time.perf_counter()
    while done < steps:
        perm = torch.randperm(len(images), generator=gen)
        for b in range(len(images) // batch_size):
            if done == steps:
                break
            x = torch.bernoulli(images[perm[b * batch_size:(b + 1) * batch_size]].float() / 255, generator=gen)
            h = model.encoder(x)
            mu, logvar = h.chunk(2, dim=1)
            z = mu + torch.exp(0.5 * logvar) * torch.randn(mu.shape, generator=gen)
            recon = torch.nn.functional.binary_cross_entropy_with_logits(
                model.decoder(z), x, reduction="none").flatten(1).sum(1)
            loss = (recon + losses.kl_normal_std_normal(mu, logvar)).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            done += 1
    return steps * batch_size / (time.perf_counter() - start)


def deepgen_loop(model, dataset, n_images: int, batch_size: int, seed: int) -> float:
    """deepgen's Trainer (no run folder: in-memory, as the plain loop); returns images/s."""
    trainer = deepgen.Trainer(model, dataset, deepgen.TrainConfig(images=n_images, batch_size=batch_size,
                                                                  seed=seed, log_every=100),
                              progress=False, log=lambda m: None, evaluate=False)
    start = time.perf_counter()
    trainer.fit()
    return trainer.images_seen / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nets", default="mlp,conv")
    parser.add_argument("--images", type=int, default=100_000, help="training images per measurement")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    data = deepgen.load_dataset("mnist")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch_size}, "
          f"{args.images} images per measurement, median of {args.repeats}")
    print(f"{'network':12s} {'plain img/s':>12s} {'deepgen img/s':>14s} {'ratio':>6s}")
    for net in args.nets.split(","):
        plain, ours = [], []
        for r in range(args.repeats):  # interleaved, so drift in machine load hits both
            plain.append(plain_loop(build_model("vae", {"net": net}, (1, 28, 28), seed=r),
                                    data["train"].images, args.images, args.batch_size, r))
            ours.append(deepgen_loop(build_model("vae", {"net": net}, (1, 28, 28), seed=r),
                                     data, args.images, args.batch_size, r))
        p, o = statistics.median(plain), statistics.median(ours)
        print(f"vae-{net:8s} {p:12.0f} {o:14.0f} {o / p:6.2f}")


if __name__ == "__main__":
    main()

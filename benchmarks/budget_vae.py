"""What the run around a VAE's training costs: `deepgen train vae --net mlp --epochs 10`
end to end, beside the same 10 epochs in a plain PyTorch loop, measured in the same run.

    python benchmarks/budget_vae.py [--epochs 10] [--threads 1] [--repeats 3]
                                    [--option=--valid-images=0]

The command (a new process) includes start-up, loading MNIST, per-epoch validation (its
default: the first 2,000 validation images), the test evaluation, checkpoints, sample
grids and logs. The plain loop trains the same model (deepgen's MLP VAE, 784-400-20, built
by the same seed) with the same Adam, batch size (128), per-batch dynamic binarisation and
loss, over shuffled training images, and nothing else; its data are already in memory.
The two alternate ``--repeats`` times, so a slow spell of the machine hits both, and the
medians are compared. Issue 20's goal: the whole command within 1.15x the plain loop.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

import deepgen
from deepgen.models import build_model


def plain_loop(epochs: int, seed: int = 0) -> float:
    """Seconds for ``epochs`` epochs of the MLP VAE in a bare loop (no Trainer)."""
    data = deepgen.load_dataset("mnist")
    x = data["train"].x
    model = build_model("vae", {"net": "mlp"}, data.data_shape, seed=seed).train()
    player = model.players()[0]
    optimizer = player.make_optimizer(model.parameters())
    gen = torch.Generator().manual_seed(seed)
    batch_size = 128
    start = time.perf_counter()
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=gen)
        for i in range(len(x) // batch_size):  # deepgen drops the last partial batch too
            images = x.index_select(0, order[i * batch_size : (i + 1) * batch_size])
            binary = torch.bernoulli(images.float() / 255, generator=gen)
            terms = model.elbo_terms(binary, gen)
            loss = (terms["recon"] + terms["kl"]).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return time.perf_counter() - start


def whole_command(epochs: int, threads: int, options: list[str]) -> tuple[float, dict]:
    """Wall seconds of `deepgen train vae --net mlp --epochs N [options]` in a new process,
    and its results.json."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "vae"
        env = os.environ | {"OMP_NUM_THREADS": str(threads)}
        cmd = [sys.executable, "-m", "deepgen", "train", "vae", "--net", "mlp"]
        cmd += ["--epochs", str(epochs), "--out", str(out), "--quiet", *options]
        start = time.perf_counter()
        subprocess.run(cmd, check=True, env=env, capture_output=True)
        seconds = time.perf_counter() - start
        return seconds, json.loads((out / "results.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--repeats", type=int, default=3, help="alternating pairs of measurements (median kept)"
    )
    parser.add_argument(
        "--option",
        action="append",
        default=[],
        help="extra `deepgen train` option, e.g. --option=--valid-images=0",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s), {os.cpu_count()} cores")
    deepgen.load_dataset("mnist")  # fetched and cached before either is timed
    commands, loops, plains = [], [], []
    for i in range(args.repeats):  # alternating, so a slow spell of the machine hits both
        command, results = whole_command(args.epochs, args.threads, args.option)
        commands.append(command)
        loops.append(results["training_seconds"])
        plains.append(plain_loop(args.epochs))
        print(
            f"  pair {i + 1}: command {command:.1f} s (its loop {loops[-1]:.1f} s), "
            f"plain loop {plains[-1]:.1f} s"
        )
    command, loop, plain = (statistics.median(v) for v in (commands, loops, plains))
    print(f"plain PyTorch loop, {args.epochs} epochs (median):   {plain:7.1f} s")
    print(f"deepgen train, the whole command (median): {command:7.1f} s")
    print(f"  ... of which its own training loop:      {loop:7.1f} s")
    ratio = command / plain
    print(
        f"ratio to the plain loop: {ratio:.2f}x (goal at most 1.15x: "
        f"{'met' if ratio <= 1.15 else 'NOT met'}); to its own loop: {command / loop:.2f}x"
    )


if __name__ == "__main__":
    main()

"""GAN quality per CPU-minute (issue 20, part 3): deepgen's best image-GAN configuration
against a plain PyTorch loop of the well-known public DCGAN example, each given the same
wall-clock on one core of this machine (both run at once, one thread each), with FID and
recall under deepgen's classifier against time.

    python benchmarks/budget_gan.py [--data mnist] [--minutes 10] [--samples 5000] [--out DIR]

The reference is the 32x32 MNIST DCGAN of the public PyTorch-GAN collection (Linder-Noren,
implementations/dcgan), written here from its description: G projects z (100) to 128 x 8 x 8,
then two nearest-neighbour upsamplings, each followed by a 3x3 convolution, batch norm (eps
0.8, as that code passes it) and LeakyReLU 0.2, then a 3x3 convolution to one channel and
tanh; D is four blocks of a stride-2 3x3 convolution, LeakyReLU 0.2 and Dropout2d 0.25 (batch
norm, eps 0.8, in the last three; 16, 32, 64, 128 channels), a linear layer and a sigmoid;
weights N(0, 0.02), batch-norm scales N(1, 0.02); binary cross-entropy; Adam 2e-4, betas (0.5,
0.999), batch 64; each iteration one G step, then one D step on the real batch and the
detached fakes. The example resizes MNIST to 32x32; here the 28x28 images are padded by two
pixels a side and its samples cropped back, which loses nothing (a resize would blur them
and cost the reference FID). It samples as that code draws its grids, batch norm in
training mode, in batches of 64.

deepgen's arm is ``DEEPGEN_BEST`` trained by ``deepgen.fit`` into a run folder: its own
start-up, per-epoch validation and checkpoints count against its clock. It is stopped by
SIGTERM at the budget (it writes a checkpoint and stops, as it does for Ctrl-C); every epoch's
checkpoint is a point of its curve, timed by when it was written. The reference saves its
generator at fixed times. Both clocks start when the two processes are started.

Afterwards (both cores) every snapshot is scored: ``--samples`` samples against the test
split's 10,000 images, FID and precision/recall (k = 3) on the 128-d features of deepgen's
classifier for the dataset. Issue 20's goal: at 10 and 30 minutes deepgen's FID at most half
the reference's, with recall at least as high. Results go to DIR/snapshots.jsonl and
DIR/fid_vs_time.png.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from run_snapshots import checkpoint_model, snapshots

# What deepgen ships as its best image GAN for a CPU budget (see docs/benchmarks.md).
DEEPGEN_BEST = {
    "family": "gan",
    "model": {"channels": 32, "g_ema": 0.99},
    "train": {"batch_size": 64},
}
LATENT = 100
BATCH = 64
# The reference saves its generator at these training minutes (and at the end).
MARKS = (0.5, 1, 2, 3, 5, 7.5, 10, 15, 20, 25, 30, 45, 60)


# --- the reference: a plain PyTorch DCGAN loop ------------------------------------------
def reference_networks():
    """(G, D) of the public 32x32 DCGAN example, initialised as it does."""
    from torch import nn

    def block(c_in, c_out, bn):
        layers = [nn.Conv2d(c_in, c_out, 3, 2, 1), nn.LeakyReLU(0.2, True), nn.Dropout2d(0.25)]
        return layers + ([nn.BatchNorm2d(c_out, 0.8)] if bn else [])

    class Generator(nn.Module):
        def __init__(self):
            super().__init__()
            self.project = nn.Linear(LATENT, 128 * 8 * 8)
            self.net = nn.Sequential(
                nn.BatchNorm2d(128),
                nn.Upsample(scale_factor=2),
                nn.Conv2d(128, 128, 3, 1, 1),
                nn.BatchNorm2d(128, 0.8),
                nn.LeakyReLU(0.2, True),
                nn.Upsample(scale_factor=2),
                nn.Conv2d(128, 64, 3, 1, 1),
                nn.BatchNorm2d(64, 0.8),
                nn.LeakyReLU(0.2, True),
                nn.Conv2d(64, 1, 3, 1, 1),
                nn.Tanh(),
            )

        def forward(self, z):
            return self.net(self.project(z).view(len(z), 128, 8, 8))

    class Discriminator(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(
                *block(1, 16, False),
                *block(16, 32, True),
                *block(32, 64, True),
                *block(64, 128, True),
            )
            self.head = nn.Sequential(nn.Linear(128 * 2 * 2, 1), nn.Sigmoid())

        def forward(self, x):
            return self.head(self.net(x).flatten(1))

    def init(m):
        if isinstance(m, nn.Conv2d):
            nn.init.normal_(m.weight, 0.0, 0.02)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)

    g, d = Generator(), Discriminator()
    g.apply(init)
    d.apply(init)
    return g, d


def run_reference(data_name: str, out: Path, start: float, seconds: float) -> None:
    """Train the reference until ``seconds`` after ``start``, saving G at MARKS."""
    import torch
    from safetensors.torch import save_file
    from torch.nn import functional as F

    import deepgen

    torch.manual_seed(0)
    x = deepgen.load_dataset(data_name)["train"].x  # uint8 (N, 1, 28, 28)
    x = F.pad(x.float() / 127.5 - 1.0, (2, 2, 2, 2), value=-1.0)  # [-1, 1], 32 x 32
    g, d = reference_networks()
    opt_g = torch.optim.Adam(g.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(d.parameters(), lr=2e-4, betas=(0.5, 0.999))
    bce = torch.nn.BCELoss()
    marks = [m * 60 for m in MARKS if m * 60 < seconds] + [seconds]
    iteration = 0
    while marks:
        for idx in torch.randperm(len(x)).split(BATCH):
            if len(idx) < BATCH:
                continue
            real = x[idx]
            ones, zeros = torch.ones(BATCH, 1), torch.zeros(BATCH, 1)
            fake = g(torch.randn(BATCH, LATENT))
            opt_g.zero_grad()
            bce(d(fake), ones).backward()
            opt_g.step()
            opt_d.zero_grad()
            ((bce(d(real), ones) + bce(d(fake.detach()), zeros)) / 2).backward()
            opt_d.step()
            iteration += 1
            now = time.time() - start
            if now >= marks[0]:
                name = out / f"g-{iteration:07d}.safetensors"
                save_file(g.state_dict(), str(name))
                record = {"arm": "reference", "file": name.name, "iteration": iteration}
                with open(out / "times.jsonl", "a") as f:
                    f.write(json.dumps(record | {"seconds": now}) + "\n")
                while marks and now >= marks[0]:
                    marks.pop(0)
                if not marks:
                    break


def reference_samples(path: Path, n: int, seed: int):
    """n samples (n, 1, 28, 28) in [0, 1] of a saved reference G, batch norm in training mode
    over batches of 64 as the example samples, cropped from 32 x 32."""
    import torch
    from safetensors.torch import load_file

    g, _ = reference_networks()
    g.load_state_dict(load_file(str(path)))
    g.train()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        out = [g(torch.randn(BATCH, LATENT, generator=gen)) for _ in range(-(-n // BATCH))]
    return ((torch.cat(out)[:n, :, 2:30, 2:30] + 1) / 2).clamp(0, 1)


# --- deepgen's arm -----------------------------------------------------------------------
def run_deepgen(
    data_name: str, out: Path, start: float, seconds: float, setting: dict = DEEPGEN_BEST
) -> None:
    """Train ``setting`` (family, model and train options) into ``out``/run until
    ``seconds`` after ``start`` (then SIGTERM)."""
    import deepgen
    from deepgen.errors import Interrupted

    data = deepgen.load_dataset(data_name)
    model = deepgen.build_model(setting["family"], setting["model"], data.data_shape)
    left = seconds - (time.time() - start)
    threading.Timer(left, lambda: os.kill(os.getpid(), signal.SIGTERM)).start()
    try:
        deepgen.fit(
            model,
            data,
            out=out / "run",
            epochs=10_000,
            keep_checkpoints=10_000,
            progress=False,
            log=lambda line: None,
            **setting["train"],
        )
    except Interrupted:
        pass


def model_samples(model, n: int, seed: int):
    """n samples (n, C, H, W) in [0, 1] of a deepgen model, drawn as deepgen draws them."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        return torch.cat([model.sample(min(1000, n - i), gen) for i in range(0, n, 1000)])


# --- scoring and the table ---------------------------------------------------------------
def score(data_name: str, out: Path, records: list[dict], n: int) -> list[dict]:
    """FID, precision and recall of every snapshot against the test split."""
    import deepgen
    from deepgen.metrics import fid, precision_recall
    from deepgen.metrics.classifier import features

    real = features(deepgen.load_dataset(data_name)["test"].x, data_name)
    scored = []

    def add(record: dict, images) -> None:
        fake = features(images, data_name)
        precision, recall = precision_recall(real, fake, k=3)
        scored.append(record | {"fid": fid(real, fake), "precision": precision, "recall": recall})
        print(
            f"  {record['arm']:11} {record['seconds'] / 60:6.2f} min  it {record['iteration']:7d}"
            f"  FID {scored[-1]['fid']:8.2f}  precision {precision:.3f}  recall {recall:.3f}",
            flush=True,
        )

    for r in records:
        if r["arm"] == "reference":
            add(r, reference_samples(out / "reference" / r["file"], n, seed=1))
            continue
        model = checkpoint_model(out / "deepgen" / "run", r["file"])
        add(r, model_samples(model, n, seed=1))
        if hasattr(model, "generator_ema"):  # the same weights, sampled by G's own
            del model.generator_ema
            add(r | {"arm": "deepgen-own"}, model_samples(model, n, seed=1))
    return scored


def at_minutes(scored: list[dict], arm: str, minutes: float) -> dict | None:
    """The arm's last snapshot taken by ``minutes`` (with 2% grace for the stop itself)."""
    inside = [r for r in scored if r["arm"] == arm and r["seconds"] <= minutes * 60 * 1.02]
    return inside[-1] if inside else None


def plot(scored: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    arms = (
        ("reference", "PyTorch DCGAN example (reference)"),
        ("deepgen", "deepgen (G's moving average)"),
        ("deepgen-own", "deepgen (G's own weights)"),
    )
    for arm, label in arms:
        rows = [r for r in scored if r["arm"] == arm]
        if not rows:
            continue
        ax.plot([r["seconds"] / 60 for r in rows], [r["fid"] for r in rows], "o-", label=label)
    ax.set(xlabel="wall-clock minutes (one core)", ylabel="FID (classifier features)", title=title)
    ax.set_yscale("log")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="mnist", choices=["mnist", "fashion-mnist"])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--samples", type=int, default=5000)
    parser.add_argument("--out", type=Path, default=Path("budget-gan"))
    parser.add_argument("--arm", choices=["reference", "deepgen"], help=argparse.SUPPRESS)
    parser.add_argument("--start", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    seconds = args.minutes * 60
    if args.arm:  # a child: one arm, one thread
        import torch

        torch.set_num_threads(1)
        out = args.out / args.arm
        run = run_reference if args.arm == "reference" else run_deepgen
        run(args.data, out, args.start, seconds)
        return

    import deepgen

    deepgen.load_dataset(args.data)  # fetched before the clocks start
    for arm in ("reference", "deepgen"):
        (args.out / arm).mkdir(parents=True, exist_ok=False)
    start = time.time()
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    children = [
        subprocess.Popen(
            [sys.executable, __file__, "--arm", arm, "--data", args.data]
            + ["--minutes", str(args.minutes), "--out", str(args.out), "--start", str(start)],
            env=env,
        )
        for arm in ("reference", "deepgen")
    ]
    if any(child.wait() != 0 for child in children):
        sys.exit("an arm failed; see its output above")
    reference = [
        json.loads(line)
        for line in (args.out / "reference" / "times.jsonl").read_text().splitlines()
    ]
    deepgen_run = snapshots(args.out / "deepgen" / "run", start)
    records = reference + [r | {"arm": "deepgen"} for r in deepgen_run]
    print(f"{args.data}: {len(records)} snapshots, {args.samples} samples each")
    scored = score(args.data, args.out, records, args.samples)
    with open(args.out / "snapshots.jsonl", "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in scored)
    plot(scored, args.out / "fid_vs_time.png", f"{args.data}: FID against wall-clock")
    print(f"\n{args.data}, {args.samples} samples, deepgen: {json.dumps(DEEPGEN_BEST)}")
    print("| minutes | reference FID / recall | deepgen FID / recall | FID ratio | goal |")
    print("|---|---|---|---|---|")
    for minutes in (m for m in (10, 30) if m <= args.minutes):
        ref = at_minutes(scored, "reference", minutes)
        for arm in ("deepgen", "deepgen-own"):
            ours = at_minutes(scored, arm, minutes)
            if ref is None or ours is None:
                continue
            ratio = ours["fid"] / ref["fid"]
            met = ratio <= 0.5 and ours["recall"] >= ref["recall"]
            print(
                f"| {minutes} ({arm}) | {ref['fid']:.2f} / {ref['recall']:.3f} | "
                f"{ours['fid']:.2f} / {ours['recall']:.3f} | {ratio:.2f} | "
                f"{'met' if met else 'NOT met'} |"
            )


if __name__ == "__main__":
    main()

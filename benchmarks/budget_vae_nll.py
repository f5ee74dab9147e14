"""Likelihood per CPU-minute (issue 20, part 2): the test NLL that `deepgen train iwae --preset
best-30min` reaches in its 30 minutes of training on this machine, and its curve of NLL
against wall-clock beside the plain VAE's (`deepgen train vae --net mlp`, 784-400-20,
constant learning rate), measured in the same run.

    python benchmarks/budget_vae_nll.py [--minutes 30] [--curve-images 300] [--out DIR]
        [--arms iwae/best-30min,vae/best-30min,plain]

The arms (FAMILY/PRESET for a shipped preset, ``plain`` for the plain VAE) run one after
the other, each on both cores, each in a new process: a preset to its own end (its length
is set in epochs, sized for 30 minutes here; its cosine schedule needs the end to be
known), the plain VAE stopped by SIGTERM after ``--minutes`` (it writes a checkpoint and
stops, as for Ctrl-C). Every epoch's checkpoint is kept and timed by when it
was written, from the start of its process, so start-up, data loading, per-epoch validation
and checkpoints count against each arm's clock.

Afterwards every arm's checkpoints at about ``--points`` times are scored by the importance-
sampled NLL (Burda et al. 2015, k = 5000) on the first ``--curve-images`` test images, and
the last checkpoint of the ``--full`` arms on all 10,000 test images (about 14 minutes for
the preset's 50-500-500-784 decoder on both cores): dynamically binarised once from seed 0,
as `deepgen eval RUN --metrics nll` does. Anchors: Burda et al. 2015, Table 1, test NLL 86.76
nats (VAE, one stochastic layer, k = 5000, after 3,280 epochs) and 82.90 (IWAE, two
stochastic layers, k = 50). Issue 20's goal: the preset <= 86.76 within 30 minutes of
training. Results go to DIR/curve.jsonl and DIR/nll_vs_time.png; a second call with the same
DIR trains and scores only what is missing.
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

PAPER = {"VAE, 1 layer, k=1 (Burda et al. 2015)": 86.76, "IWAE, 2 layers, k=50": 82.90}
# FAMILY/PRESET for a shipped preset; "plain" is `deepgen train vae --net mlp`.
ARMS = ("iwae/best-30min", "plain")


def train_arm(arm: str, out: Path, minutes: float) -> None:
    """(In a new process.) Train ``arm`` into ``out`` as `deepgen train vae ARGS` would, but
    keeping every epoch's checkpoint; the plain arm is stopped by SIGTERM ``minutes`` after
    this process started."""
    from deepgen import api, presets
    from deepgen.config import RunConfig
    from deepgen.errors import Interrupted

    if arm == "plain":
        left = minutes * 60 - (time.time() - float(os.environ["BUDGET_START"]))
        threading.Timer(left, lambda: os.kill(os.getpid(), signal.SIGTERM)).start()
        config = RunConfig(family="vae", model={"net": "mlp"}, train={"epochs": 100_000})
    else:
        config = presets.load(*arm.split("/"))
    train = config.train.model_copy(update={"keep_checkpoints": 100_000})
    try:
        api.train(config.model_copy(update={"train": train}), out, progress=False)
    except Interrupted:
        pass


def folder(arm: str) -> str:
    """The run folder's name for ``arm``: iwae/best-30min -> iwae-best-30min."""
    return arm.replace("/", "-")


def run_arm(arm: str, out: Path, minutes: float) -> float:
    """Wall seconds of ``arm``'s training process (start-up included)."""
    start = time.time()
    env = os.environ | {"BUDGET_START": repr(start)}
    cmd = [sys.executable, __file__, "--train-arm", arm, "--out", str(out)]
    subprocess.run(cmd + ["--minutes", str(minutes)], check=True, env=env)
    (out / "start.txt").write_text(repr(start))
    return time.time() - start


def pick(records: list[dict], points: int) -> list[dict]:
    """About ``points`` records spread evenly in log time, always with the last."""
    import numpy as np

    if len(records) <= points:
        return records
    times = np.array([r["seconds"] for r in records])
    marks = np.geomspace(times[0], times[-1], points)
    chosen = sorted({int(np.abs(times - m).argmin()) for m in marks} | {len(records) - 1})
    return [records[i] for i in chosen]


def nll(run: Path, name: str, images) -> dict:
    """`deepgen eval`'s NLL (k = 5000, seed 0) of checkpoint ``name`` of ``run``."""
    from deepgen.metrics.likelihood import evaluate_nll

    return evaluate_nll(checkpoint_model(run, name), images, k=5000, seed=0)


def score(run: Path, record: dict, images) -> dict:
    """``record`` with the NLL of its checkpoint on ``images`` and the seconds it took."""
    t0 = time.time()
    result = nll(run, record["file"], images)
    return record | {
        "images": len(images),
        "nll": result["nll"]["mean"],
        "stderr": result["nll"]["stderr"],
        "neg_elbo": result["neg_elbo"]["mean"],
        "eval_seconds": round(time.time() - t0, 1),
    }


def plot(curve: list[dict], path: Path) -> None:
    """NLL on the curve's test images against minutes, one line per arm in ``curve``; a star
    at each arm's number on all 10,000; the paper's figures as dashed lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    arms = list(dict.fromkeys(r["arm"] for r in curve))
    for i, arm in enumerate(arms):
        colour = f"C{i}"
        rows = [r for r in curve if r["arm"] == arm]
        part = [r for r in rows if r["images"] < 10_000]
        label = f"{arm} (first {part[0]['images']:,} test images)"
        ax.plot(
            [r["seconds"] / 60 for r in part], [r["nll"] for r in part], "o-", c=colour, label=label
        )
        for r in (r for r in rows if r["images"] == 10_000):
            ax.plot(r["seconds"] / 60, r["nll"], "*", ms=12, c=colour, label=f"{arm}, all 10,000")
    left = min(r["seconds"] for r in curve) / 60
    for label, value in PAPER.items():
        ax.axhline(value, ls="--", lw=0.8, color="grey")
        ax.annotate(label, (left, value), fontsize=7, va="bottom", color="grey")
    ax.set(
        xscale="log", xlabel="wall-clock minutes of training (both cores)", ylabel="test NLL, nats"
    )
    ax.set_ylim(top=min(130, max(r["nll"] for r in curve) + 2))
    ax.set_title("Importance-sampled NLL (k = 5000) against training time", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="the plain arm's budget")
    parser.add_argument("--curve-images", type=int, default=300)
    parser.add_argument("--points", type=int, default=8)
    parser.add_argument(
        "--full", default=ARMS[0], help="arms whose last checkpoint is scored on all 10,000"
    )
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--arms", default=",".join(ARMS))
    parser.add_argument("--train-arm", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.train_arm:
        return train_arm(args.train_arm, args.out, args.minutes)
    import tempfile

    import deepgen

    out = args.out or Path(tempfile.mkdtemp(prefix="budget_vae_nll-"))
    out.mkdir(parents=True, exist_ok=True)
    arms = args.arms.split(",")
    for arm in arms:
        if not (out / folder(arm) / "start.txt").exists():
            seconds = run_arm(arm, out / folder(arm), args.minutes)
            print(f"{arm}: trained in {seconds / 60:.1f} min", flush=True)
    test = deepgen.load_dataset("mnist")["test"].x
    scored = out / "curve.jsonl"  # rows scored before are kept, not scored again
    curve = (
        [json.loads(line) for line in scored.read_text().splitlines()] if scored.exists() else []
    )
    done = {(r["arm"], r["file"], r["images"]) for r in curve}
    for arm in arms:
        run = out / folder(arm)
        records = snapshots(run, float((run / "start.txt").read_text()))
        for record in pick(records, args.points):
            full = record is records[-1] and arm in args.full.split(",")
            for images in [test[: args.curve_images]] + ([test] if full else []):
                if (arm, record["file"], len(images)) in done:
                    continue
                row = score(run, record, images) | {"arm": arm}
                curve.append(row)
                with scored.open("a") as f:
                    f.write(json.dumps(row) + "\n")
                print(json.dumps(row), flush=True)
    plot(curve, out / "nll_vs_time.png")
    print("\n| arm | training minutes | iterations | test NLL, all 10,000 (k = 5000) | paper |")
    print("|---|---|---|---|---|")
    for row in (r for r in curve if r["images"] == 10_000):
        print(
            f"| {row['arm']} | {row['seconds'] / 60:.1f} | {row['iteration']:,} | "
            f"{row['nll']:.2f} ± {row['stderr']:.2f} | 86.76 (VAE), 82.90 (IWAE 2 layers) |"
        )
    print(f"results: {out}")


if __name__ == "__main__":
    main()

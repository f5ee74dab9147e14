"""MNIST quadrant completion (Sohn et al. 2015, sec. 5.1): the CVAE against its deterministic
baseline network, given 1, 2 or 3 quadrants, as negative conditional log-likelihood of the
missing pixels on the 10,000 test images (nats per image; lower is better).

    python benchmarks/quadrants.py [--epochs 100] [--patience 5] [--quadrants 1 2 3] [--k 100] [--out DIR]

Each setting is one `deepgen train cvae-quadrants` run (the baseline trains
alongside the CVAE, as the first player of each iteration); the runs are kept in --out.
Printed per setting: the baseline's cross-entropy, the CVAE's -ELBO (what Pyro's example
reports, its "Monte Carlo" row) and the CVAE's -log p(t|c) by importance sampling with k
draws (what the paper reports). Training uses k = 10 for the per-epoch validation only.
Early stopping as in Pyro's example, but honest about the split: each network keeps the
weights of its best epoch on the validation split (baseline on its NCLL, CVAE on its
k = 10 NCLL) and training stops after --patience epochs without either improving; the
test split is touched once, at the end.

Pyro's CVAE example (60k training images, 2 x 500 MLPs, early stopping on the 10k test
images it then reports on) gives, with one quadrant given, 100.4 nats for the baseline and
71.8 for the CVAE (its -ELBO). We train on 50k and select on the 10k validation images.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

import deepgen
from deepgen.models import Batch
from deepgen.stats import mean_stderr

PYRO = {1: (100.4, 71.8)}  # (baseline, CVAE -ELBO) with one quadrant given, Pyro's CVAE example


def test_figures(model, images: torch.Tensor, k: int, seed: int = 0) -> dict[str, dict[str, float]]:
    """Baseline NCLL, CVAE -ELBO and CVAE NCLL (k draws) per test image, mean and stderr."""
    values: dict[str, list[torch.Tensor]] = {"baseline_ncll": [], "neg_elbo": [], "ncll": []}
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for start in range(0, len(images), 500):
            x = model.preprocess(images[start : start + 500], gen)
            batch = Batch.of(x)
            values["baseline_ncll"].append(model._baseline_loss(batch, gen)["loss"])
            values["neg_elbo"].append(-model.elbo_terms(batch, generator=gen)["elbo"])
            values["ncll"].append(-model.conditional_log_likelihood(x, k, gen))
    return {key: mean_stderr(torch.cat(v).double()) for key, v in values.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=100, help="most epochs per setting")
    parser.add_argument(
        "--patience", type=int, default=5, help="epochs without a better validation NCLL"
    )
    parser.add_argument("--quadrants", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--k", type=int, default=100, help="importance samples for the test NCLL")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument(
        "--out", default=None, help="folder for the runs [default: a temporary one]"
    )
    args = parser.parse_args()
    data = deepgen.load_dataset("mnist")
    out = Path(args.out or tempfile.mkdtemp(prefix="deepgen-quadrants-"))
    rows = []
    for given in args.quadrants:
        start = time.perf_counter()
        model = deepgen.build_model(
            "cvae-quadrants", {"quadrants": given, "k": 10}, data.data_shape
        )
        deepgen.fit(
            model,
            data,
            out=out / f"cvae-q{given}",
            epochs=args.epochs,
            batch_size=args.batch_size,
            patience=args.patience,
            valid_images=0,  # select on the whole validation split, as the documented runs did
            progress=False,
            log=lambda m: None,
        )
        selected = json.loads((out / f"cvae-q{given}" / "results.json").read_text())["selected"]
        model.eval()
        figures = test_figures(model, data["test"].x, args.k)
        rows.append((given, figures, time.perf_counter() - start))
        print(
            f"{given} quadrant(s): baseline {figures['baseline_ncll']['mean']:.2f}, CVAE -ELBO "
            f"{figures['neg_elbo']['mean']:.2f}, CVAE NCLL (k={args.k}) {figures['ncll']['mean']:.2f} nats "
            f"({rows[-1][2] / 60:.1f} min; kept the baseline of epoch {selected['baseline']['epoch']:g}, "
            f"the CVAE of epoch {selected['cvae']['epoch']:g})",
            flush=True,
        )
    print(f"\nruns in {out}; test split, 10,000 images, nats per image (± standard error)")
    print(
        "| quadrants given | baseline NN | CVAE -ELBO | CVAE -log p(t|c), k=%d | Pyro (NN / CVAE) |"
        % args.k
    )
    print("|---|---|---|---|---|")
    for given, f, _ in rows:
        pyro = " / ".join(f"{v:g}" for v in PYRO[given]) if given in PYRO else "—"
        cells = [
            f"{f[key]['mean']:.2f} ± {f[key]['stderr']:.2f}"
            for key in ("baseline_ncll", "neg_elbo", "ncll")
        ]
        print(f"| {given} | " + " | ".join(cells) + f" | {pyro} |")


if __name__ == "__main__":
    main()

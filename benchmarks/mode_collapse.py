"""The mode-collapse table: GAN variants on ring8 and grid25, several seeds each, scored
as VEEGAN and PacGAN score them (deepgen.metrics.modes): modes captured, % high-quality
samples (within 3 std of a centre) and reverse KL, over 2,500 samples.

    python benchmarks/mode_collapse.py [--seeds 5] [--iterations 8000] [--jobs 2]
        [--datasets ring8 grid25] [--variants minimax nonsaturating ...] [--results FILE]

Every run goes through the library's Trainer (MLP networks with ``hidden_dim`` units, 2-D
z, Adam/RMSProp as each paper says, linear learning-rate decay to 0, batch 100) for the
same number of generator iterations, except the last two variants, the best settings found:
3 x 400 units, Adam at 3e-4 rather than 2e-4, 30,000 iterations and exact discriminator
rejection sampling (deepgen.drs, gamma 0), about 7 minutes per run on one core; the last
adds the R1 penalty on D (gamma 0.1), about 8 minutes. The
"+drs" variants draw their 2,500 points through D (Azadi et al. 2019; up to 25 million
candidates, as exact DRS on the grid can accept fewer than 1 in 1,000) and record the
acceptance rate. Results are appended to --results (JSON lines) as each run ends, so an
interrupted benchmark keeps its runs and `--table-only` prints the table from them. Runs
in separate processes with one thread each (--jobs at a time).

Published (PacGAN, Lin et al. 2018, Table 2/3): PacGAN4 7.8 modes / 95.9% (ring) and
24.8 / 93.6% (grid); a plain GAN 6.3 / 98.2% and 17.3 / 94.8%.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

# name -> (family, model options); every variant also gets net=mlp, latent_dim 2, hidden_dim.
VARIANTS = {
    "minimax": ("gan", {"loss": "minimax"}),
    "nonsaturating": ("gan", {"loss": "nonsaturating"}),
    "lsgan": ("gan", {"loss": "lsgan"}),
    "wgan": ("wgan", {}),
    "wgan-gp": ("wgan-gp", {}),
    "pacgan4": ("gan", {"pack": 4}),
    "nonsaturating+r1": ("gan", {"r1_weight": 0.1}),
    # the non-saturating runs again (same seeds, so the same G and D), sampled with
    # discriminator rejection sampling (Azadi et al. 2019; deepgen.drs)
    "nonsaturating+drs": ("gan", {"loss": "nonsaturating", "drs": True}),
    # the best setting without R1: wider nets (3 x 400), Adam at 3e-4, 3.75x the iterations, exact DRS (gamma 0)
    "best: 400 units, lr 3e-4, 30k it, exact drs": (
        "gan",
        {"hidden_dim": 400, "lr": 3e-4, "iterations": 30_000, "drs": True, "drs_quantile": None},
    ),
    # the best setting: the same with the R1 penalty on D (Mescheder et al. 2018), which keeps G
    # from dropping the grid's modes; the only one on the bar on every seed of both datasets
    "best: 400 units, lr 3e-4, R1 0.1, 30k it, exact drs": (
        "gan",
        {
            "hidden_dim": 400,
            "lr": 3e-4,
            "r1_weight": 0.1,
            "iterations": 30_000,
            "drs": True,
            "drs_quantile": None,
        },
    ),
    # Lin et al. 2018's own setting for grid25 (their code's config): G 4 x 400 ReLU with batch
    # norm, D 3 x 200 maxout units of 5 pieces, N(0, 0.02) weights, Adam 1e-4 with beta1 0.8,
    # constant rate, batch 100, 400 epochs of 100,000 training points (400k iterations), plain
    # samples; about 27 ms an iteration on one core here, so 3 CPU-hours a run
    "gan, PacGAN paper's setting": (
        "gan",
        {
            "net": "pacgan",
            "lr": 1e-4,
            "beta1": 0.8,
            "iterations": 400_000,
            "lr_decay": "constant",
            "train_points": 100_000,
        },
    ),
    "pacgan4, PacGAN paper's setting": (
        "gan",
        {
            "net": "pacgan",
            "pack": 4,
            "lr": 1e-4,
            "beta1": 0.8,
            "iterations": 400_000,
            "lr_decay": "constant",
            "train_points": 100_000,
        },
    ),
}
SAMPLES = 2500  # points scored per run, as VEEGAN and PacGAN score them
PUBLISHED = {
    ("ring8", "plain GAN"): (6.3, 98.2),
    ("ring8", "PacGAN4"): (7.8, 95.9),
    ("grid25", "plain GAN"): (17.3, 94.8),
    ("grid25", "PacGAN4"): (24.8, 93.6),
}


def training_data(name: str, points: int | None, seed: int):
    """The registered toy dataset, or (``points``) one of that many training points drawn
    from the same mixture (PacGAN trained on 100,000)."""
    import torch

    from deepgen.data.datasets import Dataset, Split
    from deepgen.data.toy import TOY_MIXTURES

    if points is None:
        return name
    g = torch.Generator().manual_seed(seed)
    sizes = (("train", points), ("valid", 2000), ("test", 2500))
    splits = {s: Split(TOY_MIXTURES[name].sample(n, g)) for s, n in sizes}
    return Dataset(name, splits, source=f"{points} points of deepgen's {name}")


def one_run(task: tuple[str, str, int, int, int, int, int | None]) -> dict:
    """Train one variant on one dataset with one seed; returns its mode metrics (and, for a
    variant sampled through DRS, those of plain samples of the same G as ``plain``)."""
    import torch

    torch.set_num_threads(1)
    import deepgen
    from deepgen.api import sample
    from deepgen.data.toy import TOY_MIXTURES
    from deepgen.metrics.modes import mode_metrics
    from deepgen.models import build_model

    variant, data, seed, iterations, hidden, batch, override = task
    family, options = VARIANTS[variant]
    options = dict(options)
    drs, quantile = options.pop("drs", False), options.pop("drs_quantile", 0.95)
    iterations, hidden = options.pop("iterations", iterations), options.pop("hidden_dim", hidden)
    iterations = override or iterations
    lr_decay = options.pop("lr_decay", "linear")
    points = options.pop("train_points", None)
    model = build_model(
        family, {"net": "mlp", "latent_dim": 2, "hidden_dim": hidden, **options}, (2,), seed=seed
    )
    data_steps = sum(p.steps for p in model.players() if p.uses_data)
    start = time.perf_counter()
    deepgen.fit(
        model,
        training_data(data, points, seed),
        images=iterations * batch * data_steps,
        batch_size=batch,
        seed=seed,
        lr_decay=lr_decay,
        progress=False,
        log=lambda m: None,
    )
    model.eval()
    extra = {}
    if drs:
        plain = mode_metrics(sample(model, SAMPLES, seed=10_000 + seed), TOY_MIXTURES[data])
        extra["plain"] = {k: plain[k] for k in ("modes", "high_quality_percent", "reverse_kl")}
        from deepgen.drs import rejection_sample

        points, rate = rejection_sample(
            model,
            SAMPLES,
            torch.Generator().manual_seed(10_000 + seed),
            shift_quantile=quantile,
            max_draws=10_000 * SAMPLES,
        )
        extra["acceptance_rate"] = rate
    else:
        points = sample(model, SAMPLES, seed=10_000 + seed)
    metrics = mode_metrics(points, TOY_MIXTURES[data])
    return {
        "variant": variant,
        "data": data,
        "seed": seed,
        "iterations": iterations,
        "hidden_dim": hidden,
        "batch_size": batch,
        "seconds": round(time.perf_counter() - start, 1),
        **metrics,
        **extra,
    }


def _cell(values: list[float], digits: int, error: str = "sd") -> str:
    """mean ± sd (or ± standard error, ``error="stderr"``) of ``values``."""
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    spread = sd / len(values) ** 0.5 if error == "stderr" else sd
    return f"{statistics.mean(values):.{digits}f} ± {spread:.{digits}f}"


def table(rows: list[dict]) -> str:
    """The README table: mean ± sd over seeds (± standard error where a paper reports it so:
    the PacGAN settings), how many seeds got every mode with >= 95%, and for rows sampled
    through DRS the plain samples of the same generators beside them."""
    head = (
        "| data | variant | iterations | seeds | modes | high-quality % | reverse KL (nats) "
        "| all modes and ≥95% | plain samples (DRS rows): modes, high-quality % |"
    )
    out = [head, "|---|---|---|---|---|---|---|---|---|"]
    keys = sorted(
        {(r["data"], r["variant"], r["iterations"]) for r in rows},
        key=lambda k: (k[0], list(VARIANTS).index(k[1]) if k[1] in VARIANTS else 99, k[2]),
    )
    for data, variant, iterations in keys:
        rs = [
            r
            for r in rows
            if (r["data"], r["variant"], r["iterations"]) == (data, variant, iterations)
        ]
        error = "stderr" if "paper's setting" in variant else "sd"

        def cell(values: list[float], digits: int, error: str = error) -> str:
            return _cell(values, digits, error)

        perfect = sum(r["modes"] == r["num_modes"] and r["high_quality_percent"] >= 95 for r in rs)
        kl = [r["reverse_kl"] for r in rs]
        kl_cell = (
            cell(kl, 3) if all(v != float("inf") for v in kl) else "∞ (a seed had no good sample)"
        )
        plain = [r["plain"] for r in rs if "plain" in r]
        plain_cell = ""
        if plain:
            plain_cell = (
                f"{cell([p['modes'] for p in plain], 1)}, "
                f"{cell([p['high_quality_percent'] for p in plain], 1)}"
            )
        out.append(
            f"| {data} | {variant} | {iterations:,} | {len(rs)} | "
            f"{cell([r['modes'] for r in rs], 1)} / {rs[0]['num_modes']} | "
            f"{cell([r['high_quality_percent'] for r in rs], 1)} | {kl_cell} | "
            f"{perfect}/{len(rs)} | {plain_cell} |"
        )
    out.append(
        "(± is the sd over seeds; in the PacGAN-setting rows the standard error, as the "
        "paper reports)"
    )
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument(
        "--iterations", type=int, default=8_000, help="generator iterations per run"
    )
    parser.add_argument("--hidden-dim", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--datasets", nargs="+", default=["ring8", "grid25"])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--results", default="mode_collapse.jsonl")
    parser.add_argument(
        "--variant-iterations",
        type=int,
        default=None,
        help="run every chosen variant this long instead of its own length (a shortened run, "
        "recorded and tabulated as such)",
    )
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument(
        "--table-only", action="store_true", help="print the table of --results and stop"
    )
    args = parser.parse_args()
    path = Path(args.results)
    done = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    if not args.table_only:

        def length(variant: str) -> int:
            own = VARIANTS[variant][1].get("iterations", args.iterations)
            return args.variant_iterations or own

        have = {
            (r["variant"], r["data"], r["seed"])
            for r in done
            if r["variant"] in VARIANTS and r["iterations"] == length(r["variant"])
        }
        tasks = [
            (v, d, s, args.iterations, args.hidden_dim, args.batch_size, args.variant_iterations)
            for s in range(args.first_seed, args.first_seed + args.seeds)
            for d in args.datasets
            for v in args.variants
            if (v, d, s) not in have
        ]
        print(f"{len(tasks)} runs to do ({len(have)} already in {path})", flush=True)
        with ProcessPoolExecutor(args.jobs) as pool, path.open("a") as f:
            for result in pool.map(one_run, tasks):
                f.write(json.dumps(result) + "\n")
                f.flush()
                done.append(result)
                print(
                    f"{result['data']} {result['variant']} seed {result['seed']}: {result['modes']}/"
                    f"{result['num_modes']} modes, {result['high_quality_percent']:.1f}% high quality, "
                    f"reverse KL {result['reverse_kl']:.3f} ({result['seconds']:.0f} s)",
                    flush=True,
                )
    print(table(done))
    print(
        "published (PacGAN Tables 2-3): "
        + "; ".join(f"{d} {v}: {m} modes / {q}%" for (d, v), (m, q) in PUBLISHED.items())
    )


if __name__ == "__main__":
    main()

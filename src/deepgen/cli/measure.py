"""Commands that measure and show runs or theory: eval, report, optimize, demo, lab."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import DeepgenError
from .group import SEED, _echo, _warn, cli
from .options import device_option


# --- eval -------------------------------------------------------------------------------
@cli.command("eval")
@click.argument("run", type=click.Path())
@click.option(
    "--metrics",
    default=None,
    help="comma-separated: nll, parzen, fid, kid, is, pr, modes, accuracy [default: the sample "
    "metrics (or modes for 2-D points) and accuracy, those the model can be measured by]",
)
@click.option(
    "-n",
    "--n",
    "n",
    type=click.IntRange(2),
    default=10000,
    show_default=True,
    help="test images and generated samples",
)
@click.option(
    "--k",
    "k",
    type=click.IntRange(1),
    default=5000,
    show_default=True,
    help="importance samples per image for nll",
)
@click.option(
    "--seed",
    type=SEED,
    default=0,
    show_default=True,
    help="seed of the samples, subsets and bootstrap resamples",
)
@click.option(
    "--precision",
    type=click.Choice(["float32", "bfloat16"]),
    default="float32",
    show_default=True,
    help="the decoder's in nll: bfloat16 took a conv VAE's nll 1.7 times faster on a CPU with "
    "AVX-512 bf16, moved it by 0.003 nats, and is not the paper's protocol "
    "(docs/benchmarks.md)",
)
@device_option
def eval_command(run, metrics, n, k, seed, precision, device):
    """Measure a run and write RUN/eval.json (each number with its uncertainty and protocol)."""
    from ..metrics.evaluate import evaluate_run

    names = None if metrics is None else [m.strip() for m in metrics.split(",") if m.strip()]
    evaluate_run(run, names, n=n, k=k, seed=seed, device=device, log=_echo, precision=precision)
    _echo(str(Path(run) / "eval.json"))


# --- report / demo ------------------------------------------------------------------
@cli.command()
@click.argument("runs", nargs=-1, required=True, type=click.Path())
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False),
    default=None,
    help="HTML path [default: RUN/report.html (a folder of runs: inside it), or report.html "
    "beside several runs]",
)
def report(runs, output):
    """Write one self-contained HTML report of RUNS: run folders, or folders searched for
    the runs below them (several runs begin with a table comparing them)."""
    from ..report import find_runs, write_report

    found = find_runs([Path(r) for r in runs])
    if output is None:
        output = (
            Path(runs[0]) / "report.html"
            if len(runs) == 1
            else Path(runs[0]).parent / "report.html"
        )
    click.echo(str(write_report(found, Path(output))))


@cli.command()
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    default="runs/demo",
    show_default=True,
    help="folder of the demo's runs and report",
)
@click.option(
    "--vae-epochs",
    type=click.IntRange(1),
    default=10,
    show_default=True,
    help="passes of the VAE over MNIST",
)
@click.option(
    "--gan-epochs",
    type=click.IntRange(1),
    default=5,
    show_default=True,
    help="passes of the GAN over MNIST",
)
@device_option
@click.option("--quiet", is_flag=True, help="no progress bar")
def demo(out, vae_epochs, gan_epochs, device, quiet):
    """Fetch MNIST, train a VAE and a GAN on it, and write OUT/report.html.

    Re-running continues unfinished runs and reuses finished ones.
    """
    from ..demo import run_demo

    click.echo(str(run_demo(Path(out), vae_epochs, gan_epochs, device, progress=not quiet)))


@cli.command()
@click.argument("run", type=click.Path())
@click.option("--target", required=True, help='the expression to find, e.g. "1/3 + x + sin(x*x)"')
@click.option(
    "--iterations", type=click.IntRange(1, 100), default=5, show_default=True, help="batches"
)
@click.option(
    "--batch", type=click.IntRange(1, 1000), default=50, show_default=True, help="points per batch"
)
@click.option(
    "--gp-points",
    type=click.IntRange(10, 20000),
    default=1000,
    show_default=True,
    help="training expressions the Gaussian process starts from",
)
@click.option(
    "--gp-best",
    type=click.FloatRange(0, 1),
    default=0.0,
    show_default=True,
    help="the share of them that are the best-scoring training expressions (the rest: at random)",
)
@click.option(
    "--seeds",
    type=click.IntRange(1, 100),
    default=1,
    show_default=True,
    help="repeats, with seeds 0 .. SEEDS-1",
)
@click.option(
    "--gp",
    type=click.Choice(["exact", "sparse"]),
    default="exact",
    show_default=True,
    help="exact: scikit-learn's GP on --gp-points codes; sparse: GPyTorch's sparse GP (500 "
    "inducing points) on every training code, expected improvement maximised by L-BFGS-B, "
    "as the paper's code",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False),
    default=None,
    help="JSON path [default: RUN/optimize.json; the plot beside it as .png]",
)
@device_option
def optimize(run, target, iterations, batch, gp_points, gp_best, seeds, gp, output, device):
    """Bayesian optimisation of expressions in the latent space of RUN (gvae, charvae):
    find expressions close to TARGET (Kusner et al. 2017, sec. 4.1)."""
    from .. import api
    from ..optimize import optimize_run

    model = api.load(run, device=device, warn=_warn)
    path = optimize_run(
        model,
        api.run_data(run),
        target,
        Path(output or Path(run) / "optimize.json"),
        iterations=iterations,
        batch=batch,
        gp_points=gp_points,
        seeds=seeds,
        log=_echo,
        best_share=gp_best,
        gp=gp,
    )
    _echo(str(path))


# --- labs -----------------------------------------------------------------------------
@cli.command()
@click.argument("name", required=False)
@click.option("--list", "list_labs", is_flag=True, help="name every lab")
@click.option(
    "-o",
    "--out",
    type=click.Path(file_okay=False),
    default="labs",
    show_default=True,
    help="folder for NAME.png and NAME.json",
)
@click.option("--fast", is_flag=True, help="fewer training steps and samples (the tests' setting)")
@click.option(
    "--seed", type=SEED, default=0, show_default=True, help="seed of the lab's random draws"
)
def lab(name, list_labs, out, fast, seed):
    """Run a theory lab: a figure (PNG) and its numbers (JSON), checked against theory."""
    from ..labs import LABS, run_lab

    if list_labs or not name:
        for lab_name, entry in LABS.items():
            click.echo(f"{lab_name:22s} {entry.title}  [{entry.source}]")
        return
    numbers = run_lab(name, out, fast=fast, seed=seed)
    for check_name, c in numbers["checks"].items():
        click.echo(
            f"{'ok  ' if c['passed'] else 'FAIL'} {check_name}: {c['value']:.4g} "
            f"(want {c['tolerance']})"
        )
    click.echo(f"{numbers['figure']}\n{Path(out) / (name + '.json')}")
    if not all(c["passed"] for c in numbers["checks"].values()):
        raise DeepgenError(f"lab {name}: a check is outside its tolerance (see above)")

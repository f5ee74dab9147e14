"""Commands of the browser side: serve (dashboard, latent explorer, human studies) and the
human study's create and results."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import click

from ..errors import ConfigError
from .group import SEED, _echo, _warn, cli
from .options import device_option

LOOPBACK = ("127.0.0.1", "localhost", "::1")
SERVE_NEEDS = ("fastapi", "uvicorn", "jinja2", "limits")


def _check_serve_installed() -> None:
    missing = [m for m in SERVE_NEEDS if importlib.util.find_spec(m) is None]
    if missing:
        raise ConfigError(f"deepgen serve needs {', '.join(missing)}: pip install 'deepgen[serve]'")


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="address to listen on; anything but loopback lets other machines in, and warns",
)
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=8000,
    show_default=True,
    help="port to listen on",
)
@device_option
def serve(paths, host, port, device):
    """Serve PATHS (run folders, study folders, or folders holding them) in the browser:
    the run dashboard, each run's latent explorer and the human studies' rating pages."""
    _check_serve_installed()
    import uvicorn

    from ..serve.app import create_app

    if host not in LOOPBACK:
        _warn(
            f"listening on {host}: other machines can reach this server; it has no login, "
            "so serve only what anyone on that network may see"
        )
    app = create_app(list(paths), device)
    _echo(f"serving {', '.join(map(str, paths))} at http://{host}:{port}/ (Ctrl-C stops)")
    uvicorn.run(
        app, host=host, port=port, log_level="warning", limit_concurrency=200, timeout_keep_alive=5
    )


@cli.group()
def study():
    """Human real-vs-fake studies (HYPE, Zhou et al. 2019): create one, serve it with
    `deepgen serve`, then compute its results."""


@study.command("create")
@click.argument("runs", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option(
    "-o", "--out", required=True, type=click.Path(path_type=Path), help="the new study folder"
)
@click.option(
    "--images",
    type=click.IntRange(2),
    default=100,
    show_default=True,
    help="images each rater judges: half real test images, half generated (split among RUNS)",
)
@click.option(
    "--checks",
    type=click.IntRange(0),
    default=4,
    show_default=True,
    help="attention checks mixed in: half noise (obvious fakes), half obvious reals",
)
@click.option(
    "--tutorial",
    type=click.IntRange(0),
    default=4,
    show_default=True,
    help="practice images first, each followed by its answer",
)
@click.option(
    "--exposure-ms",
    type=click.IntRange(1),
    default=None,
    help="show each image this many milliseconds (HYPE's time-limited variant) [default: untimed]",
)
@click.option("--seed", type=SEED, default=0, show_default=True, help="images and rater orders")
@device_option
def study_create(runs, out, images, checks, tutorial, exposure_ms, seed, device):
    """Make a study folder comparing the models of RUNS with real test images."""
    from ..serve.studies import create_study

    path = create_study(
        list(runs), out, images, checks, tutorial, seed, exposure_ms=exposure_ms, device=device
    )
    _echo(
        f"study written to {path}; serve it with `deepgen serve {path}` and open /study/{path.name}"
    )


@study.command("results")
@click.argument("study_path", metavar="STUDY", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--csv",
    "csv_path",
    type=click.Path(path_type=Path),
    default=None,
    help="also write every judgement to this CSV file [default: STUDY/judgements.csv only]",
)
@click.option(
    "--resamples",
    type=click.IntRange(100),
    default=2000,
    show_default=True,
    help="bootstrap resamples (raters and images) of each interval",
)
@click.option("--seed", type=SEED, default=0, show_default=True, help="the bootstrap's seed")
def study_results(study_path, csv_path, resamples, seed):
    """Fooling rate and HYPE-infinity per model with 95% bootstrap intervals; writes
    STUDY/results.json, STUDY/judgements.csv and a `human` entry in each run's eval.json."""
    from ..fileio import atomic_write_bytes
    from ..serve.hype import judgements_csv, results_table, study_results, write_results
    from ..serve.store import Study

    s = Study(study_path)
    results = study_results(s, resamples, seed)
    write_results(s, results, log=_warn)
    if csv_path is not None:
        atomic_write_bytes(csv_path, judgements_csv(s))
    _echo(results_table(results))

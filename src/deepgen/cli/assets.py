"""What runs stand on: datasets (`deepgen data`) and the feature classifiers
(`deepgen classifier`)."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import DeepgenError
from .group import SEED, cli


# --- feature classifiers ------------------------------------------------------------------
@cli.group()
def classifier():
    """The feature networks behind FID, KID, IS and precision/recall."""


@classifier.command("train")
@click.argument("name")
@click.option(
    "--epochs",
    type=click.IntRange(1),
    default=12,
    show_default=True,
    help="passes over the training split",
)
@click.option(
    "--seed", type=SEED, default=0, show_default=True, help="seed of the weights and batches"
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="directory searched first for the dataset's files",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False),
    default=None,
    help="weights path [default: ~/.cache/deepgen/classifiers/NAME-classifier.safetensors "
    "($DEEPGEN_DATA/classifiers/...); eval uses it where the package ships none for NAME]",
)
def classifier_train(name, epochs, seed, data_dir, output):
    """Train the classifier of dataset NAME and save its weights (safetensors)."""
    from ..data import load_dataset
    from ..metrics.classifier import save_classifier, train_classifier

    model, acc = train_classifier(
        load_dataset(name, data_dir), epochs, seed, log=lambda m: click.echo(m, err=True)
    )
    path = save_classifier(model, name, acc, Path(output) if output else None)
    click.echo(f"test accuracy {acc:.4f}\n{path}")


# --- data -----------------------------------------------------------------------------
@cli.group()
def data():
    """Fetch and list datasets."""


@data.command("fetch")
@click.argument("name")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="write into DIR/NAME instead of the cache",
)
@click.option("--force", is_flag=True, help="fetch even if already present")
def data_fetch(name, data_dir, force):
    """Fetch dataset NAME, verify its checksums and store it."""
    from ..data import fetch_dataset

    fetch_dataset(name, data_dir, force=force, log=lambda m: click.echo(m, err=True))


@data.command("list")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="directory searched first for each dataset's files (shown as its source)",
)
def data_list(data_dir):
    """List the registered datasets and where each one is found."""
    from ..data import DATASETS
    from ..data.datasets import locate_idx_files

    for name, spec in DATASETS.items():
        if not spec.files:
            where = spec.origin
        else:
            try:
                where = str(next(iter(locate_idx_files(spec, data_dir).values())).parent)
            except DeepgenError:
                where = f"missing (deepgen data fetch {name})"
        click.echo(f"{name:14s} {where}\n{'':14s} {spec.description}")

"""The ``deepgen`` command group and what its commands share."""

from __future__ import annotations

import click

from ..version import __version__

# Seeds are whole numbers in [0, 2^63), what torch's generators take.
SEED = click.IntRange(0, 2**63 - 1)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="deepgen")
def cli():
    """deepgen: train, sample, measure and show deep generative models."""


def _warn(msg: str) -> None:
    click.echo(f"deepgen: warning: {msg}", err=True)


def _echo(msg: str) -> None:
    """Print a result line (once, from rank 0, under torchrun)."""
    from .. import distributed

    if distributed.is_main():
        click.echo(msg)

"""`deepgen train`: options, a config file and named streams into a RunConfig, then the
library's training."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import ConfigError
from .group import SEED, _echo, cli
from .options import TrainCommand, model_options

# Options of `deepgen train` that belong to TrainConfig (the rest are model fields).
TRAIN_OPTIONS = (
    "epochs",
    "images",
    "batch_size",
    "seed",
    "device",
    "log_every",
    "on_divergence",
    "max_grad_norm",
    "compile",
    "channels_last",
    "lr_decay",
    "keep_best",
    "patience",
    "valid_images",
)


# --- train ----------------------------------------------------------------------------
@cli.command(cls=TrainCommand)
@click.argument("family", required=False)
@click.option("--data", default="mnist", show_default=True, help="dataset name (deepgen data list)")
@click.option(
    "--data-dir",
    type=click.Path(),
    default=None,
    help="directory searched first for the data (the folder for imagefolder, the file for arrays)",
)
@click.option(
    "--image-size", type=int, default=None, help="imagefolder: square side in pixels [default: 64]"
)
@click.option(
    "--image-channels",
    type=click.Choice(["1", "3"]),
    default=None,
    help="imagefolder: 1 grey, 3 RGB [default: 3]",
)
@click.option(
    "--on-bad-file",
    type=click.Choice(["stop", "skip"]),
    default=None,
    help="imagefolder: stop at an unreadable image, or skip it [default: stop]",
)
@click.option(
    "--grammar",
    type=click.Path(dir_okay=False),
    default=None,
    help="expressions: a grammar file in nltk notation [default: the lectures' expression grammar]",
)
@click.option(
    "--on-bad-line",
    type=click.Choice(["stop", "skip"]),
    default=None,
    help="expressions from a file: stop at a line outside the grammar, or skip it [default: stop]",
)
@click.option(
    "--labels-per-class",
    type=click.IntRange(1),
    default=None,
    help="semi-supervised families (m2): labelled training examples kept per class, chosen by the "
    "seed; the rest of the training split is the unlabelled stream",
)
@click.option(
    "--epochs", type=int, default=None, help="passes over the training split [default: 10]"
)
@click.option(
    "--images", type=int, default=None, help="training length in images seen, instead of --epochs"
)
@click.option("--batch-size", type=int, default=None, help="images per batch [default: 128]")
@click.option("--seed", type=SEED, default=None, help="seed of every random draw [default: 0]")
@click.option("--device", default=None, help="auto, cpu, cuda or cuda:N [default: auto]")
@click.option(
    "--log-every", type=int, default=None, help="iterations between metrics records [default: 50]"
)
@click.option(
    "--on-divergence",
    type=click.Choice(["stop", "rollback"]),
    default=None,
    help="on a NaN/inf loss or exploding gradient: stop, or roll back to the last checkpoint with "
    "halved learning rates (3 times at most) [default: stop]",
)
@click.option(
    "--max-grad-norm",
    type=float,
    default=None,
    help="a gradient norm above this counts as divergence",
)
@click.option(
    "--lr-decay",
    type=click.Choice(["constant", "linear", "cosine"]),
    default=None,
    help="learning rates constant, or decayed to 0 over the run, linearly or by a half cosine "
    "[default: constant]",
)
@click.option(
    "--keep-best",
    is_flag=True,
    default=None,
    help="end with each player's weights from its best validation epoch (e.g. lowest -ELBO)",
)
@click.option(
    "--patience",
    type=int,
    default=None,
    help="early stopping: stop after this many epochs without a better validation metric "
    "(implies --keep-best)",
)
@click.option(
    "--valid-images",
    type=int,
    default=None,
    help="validation images evaluated after each epoch, the split's first N (0: all) "
    "[default: 2000]",
)
@click.option(
    "--compile",
    "compile",
    is_flag=True,
    default=None,
    help="torch.compile each network (see benchmarks/throughput.py for where it helps)",
)
@click.option(
    "--channels-last",
    is_flag=True,
    default=None,
    help="channels-last memory format for conv networks",
)
@click.option(
    "--stream",
    "stream_specs",
    multiple=True,
    metavar="NAME=DATASET[:DIR]",
    help="a named stream of a family with several (e.g. --stream target=mnist); repeatable",
)
@click.option(
    "--out",
    type=click.Path(),
    default=None,
    help="run folder, refused if it holds a run [default: runs/FAMILY-DATA-sSEED, "
    "or -v2, -v3, ... when taken]",
)
@click.option(
    "--resume", "resume_run", type=click.Path(), default=None, help="continue this run folder"
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False),
    default=None,
    help="start from this run config: a run's config.json, or TOML with the same keys "
    "(family, model, data, streams, train); options given here override it",
)
@click.option(
    "--preset",
    default=None,
    help="start from a run config shipped with deepgen, like --config (e.g. iwae --preset "
    "best-30min); options given here override it",
)
@click.option("--quiet", is_flag=True, help="no progress bar")
def train(
    family,
    data,
    data_dir,
    image_size,
    image_channels,
    on_bad_file,
    grammar,
    on_bad_line,
    labels_per_class,
    stream_specs,
    out,
    resume_run,
    config_file,
    preset,
    quiet,
    **options,
):
    """Train FAMILY (vae, gan, ...) on a dataset, or continue a run with --resume RUN."""
    from .. import api
    from ..config import DataConfig, RunConfig, TrainConfig, validate
    from ..models import MODELS

    train_opts = {k: options.pop(k) for k in TRAIN_OPTIONS if options.get(k) is not None}
    model_opts = {k: v for k, v in options.items() if v is not None}
    if resume_run:
        if labels_per_class is not None:
            model_opts["labels_per_class"] = (
                labels_per_class  # refused below: the run's data are fixed
            )
        if family or model_opts or stream_specs or config_file or preset:
            given = (
                [family]
                if family
                else [f"--{k.replace('_', '-')}" for k in model_opts]
                or (["--stream"] if stream_specs else ["--config" if config_file else "--preset"])
            )
            may = ", ".join(f"--{k.replace('_', '-')}" for k in api.RESUME_MAY_CHANGE)
            raise ConfigError(
                f"--resume continues a run as it was configured; drop {', '.join(given)} "
                f"(a resume may change {may}; for another model, start a new run, e.g. "
                "with --config RUN/config.json)"
            )
        api.resume(resume_run, progress=not quiet, **train_opts)
        _echo(f"run folder: {resume_run}")
        return
    if preset and config_file:
        raise ConfigError("give --preset or --config, not both")
    if preset and not family:
        raise click.UsageError(
            "name the family of the preset, e.g. deepgen train vae --preset NAME"
        )
    base = _config_file(config_file) if config_file else None
    if preset:
        from .. import presets

        base = presets.load(family, preset)
    if base is not None:
        if family and family != base.family:
            raise ConfigError(
                f"{config_file} configures a {base.family}; drop {family} or give a {family} config"
            )
        family = base.family
    if not family:
        raise click.UsageError(f"name a model family ({', '.join(MODELS)}) or give --resume RUN")
    cls = MODELS[family]
    fields = model_options()
    for key in model_opts:
        if key not in cls.Config.model_fields:
            owners = ", ".join(fields[key]["families"])
            raise ConfigError(
                f"--{key.replace('_', '-')} does not apply to {family} (it applies to {owners})"
            )
    dataset_options = {
        k: v
        for k, v in {
            "image_size": image_size,
            "on_bad_file": on_bad_file,
            "image_channels": int(image_channels) if image_channels else None,
            "grammar": str(Path(grammar).resolve()) if grammar else None,
            "on_bad_line": on_bad_line,
        }.items()
        if v is not None
    }
    data_config = validate(
        DataConfig,
        {
            "name": data,
            "data_dir": data_dir,
            "options": dataset_options,
            "labels_per_class": labels_per_class,
        },
        "data.",
    )
    streams = _streams(stream_specs)
    if base is not None:  # the file, with what the command line gives on top
        source = click.get_current_context().get_parameter_source
        data_given = any(
            source(name) is not click.core.ParameterSource.DEFAULT
            for name in ("data", "data_dir", "labels_per_class")
        )
        model_opts = base.model | model_opts
        kept = base.train.model_dump()
        if "epochs" in train_opts or "images" in train_opts:  # a length given replaces the file's
            kept.pop("epochs"), kept.pop("images")
        train_opts = kept | train_opts
        if data_given or dataset_options:
            first = MODELS[family].streams[0]
            streams = {k: v for k, v in base.streams.items() if k != first} | streams
        else:
            data_config, streams = base.data, base.streams | streams
        data = data_config.name
    config = RunConfig(
        family=family,
        model=model_opts,
        data=data_config,
        streams=streams,
        train=validate(TrainConfig, train_opts, "train."),
    )
    labels = f"-{labels_per_class}pc" if labels_per_class else ""
    if out is None:  # a default folder is never refused: a taken one gets a version suffix
        from ..rundir import RunDir

        out = RunDir.fresh_path(f"runs/{family}-{data}{labels}-s{config.train.seed}")
    api.train(config, Path(out), progress=not quiet)
    _echo(f"run folder: {out}")


def _config_file(path: str):
    """The RunConfig in ``path``: JSON (a run's config.json), TOML (``.toml``) or YAML
    (``.yaml``/``.yml``, with PyYAML installed: ``pip install 'deepgen[yaml]'``).

    Raises:
        ConfigError: unreadable, not JSON/TOML/YAML, YAML without PyYAML, or not a valid
            run config."""
    from ..config import parse_run_config
    from ..fileio import read_small_file

    text = read_small_file(path, 1 << 20, ConfigError, path).decode("utf-8", "replace")
    return parse_run_config(text, path)


def _streams(specs: tuple[str, ...]) -> dict:
    """``--stream NAME=DATASET[:DIR]`` options -> stream name -> DataConfig."""
    from ..config import DataConfig

    streams = {}
    for spec in specs:
        name, sep, rest = spec.partition("=")
        dataset, _, data_dir = rest.partition(":")
        if not sep or not name or not dataset:
            raise ConfigError(f"--stream takes NAME=DATASET or NAME=DATASET:DIR, not {spec!r}")
        if name in streams:
            raise ConfigError(f"--stream {name}=... is given twice")
        streams[name] = DataConfig(name=dataset, data_dir=data_dir or None)
    return streams

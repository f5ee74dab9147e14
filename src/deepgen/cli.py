"""The command line: parse, build a config, call the library. Nothing else lives here.

Model options (``--latent-dim``, ``--net``, ``--loss``, ...) are generated from the
registered model configs (:mod:`deepgen.cli_options`), so a new family brings its own flags.
"""

from __future__ import annotations

import errno
import os
import sys
from pathlib import Path

import click

from .cli_options import TrainCommand, device_option, model_options
from .errors import FROM_COMMAND_LINE, ConfigError, DeepgenError
from .version import __version__

# Seeds are whole numbers in [0, 2^63), what torch's generators take.
SEED = click.IntRange(0, 2**63 - 1)

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
)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="deepgen")
def cli():
    """deepgen: train, sample, measure and show deep generative models."""


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
    type=click.Choice(["constant", "linear"]),
    default=None,
    help="learning rates constant, or decayed linearly to 0 over the run [default: constant]",
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
    quiet,
    **options,
):
    """Train FAMILY (vae, gan, ...) on a dataset, or continue a run with --resume RUN."""
    from . import api
    from .config import DataConfig, RunConfig, TrainConfig, validate
    from .models import MODELS

    train_opts = {k: options.pop(k) for k in TRAIN_OPTIONS if options.get(k) is not None}
    model_opts = {k: v for k, v in options.items() if v is not None}
    if resume_run:
        if labels_per_class is not None:
            model_opts["labels_per_class"] = (
                labels_per_class  # refused below: the run's data are fixed
            )
        if family or model_opts or stream_specs or config_file:
            given = (
                [family]
                if family
                else [f"--{k.replace('_', '-')}" for k in model_opts]
                or (["--stream"] if stream_specs else ["--config"])
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
    base = _config_file(config_file) if config_file else None
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
        train_opts = base.train.model_dump() | train_opts
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
        from .rundir import RunDir

        out = RunDir.fresh_path(f"runs/{family}-{data}{labels}-s{config.train.seed}")
    api.train(config, Path(out), progress=not quiet)
    _echo(f"run folder: {out}")


def _config_file(path: str):
    """The RunConfig in ``path``: JSON (a run's config.json) or TOML.

    Raises:
        ConfigError: unreadable, not JSON/TOML, or not a valid run config."""
    import tomllib

    from .config import RunConfig, validate
    from .fileio import read_small_file

    text = read_small_file(path, 1 << 20, ConfigError, path).decode("utf-8", "replace")
    if not path.endswith(".toml"):
        return RunConfig.from_json(text, source=path)
    try:
        values = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path} is not valid TOML: {err}") from None
    return validate(RunConfig, values, prefix="")


def _streams(specs: tuple[str, ...]) -> dict:
    """``--stream NAME=DATASET[:DIR]`` options -> stream name -> DataConfig."""
    from .config import DataConfig

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


# --- sample / reconstruct / translate -------------------------------------------------
@cli.command()
@click.argument("run", type=click.Path())
@click.option(
    "-n",
    "n",
    type=click.IntRange(1, 100_000),
    default=64,
    show_default=True,
    help="number of samples",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(),
    default=None,
    help="FILE.png: a grid; FILE.npz: uint8 images (N, C, H, W) and, for a conditional model, "
    "labels; DIR/ or an existing folder: one PNG per image [default: RUN/samples.png]",
)
@click.option("--seed", type=SEED, default=0, show_default=True, help="seed of the latent draws")
@click.option("--nrow", type=click.IntRange(1, 1000), default=None, help="images per row")
@click.option(
    "--scale",
    type=click.IntRange(1, 16),
    default=2,
    show_default=True,
    help="FILE.png: each pixel drawn as SCALE x SCALE",
)
@click.option(
    "--label",
    type=int,
    default=None,
    help="conditional models (cgan, cvae): only this class [default: cycle through the classes]",
)
@click.option(
    "--drs",
    is_flag=True,
    help="models with a density-ratio discriminator (gan): keep samples by discriminator rejection "
    "sampling (Azadi et al. 2019)",
)
@device_option
def sample(run, n, output, seed, nrow, scale, label, drs, device):
    """Draw N samples from the model in RUN and save them: a PNG grid (2-D points: a scatter
    over the test points), an .npz of arrays, or one PNG per image."""
    import torch

    from . import api, distributed
    from .data.arrays import save_arrays
    from .viz import save_image_files, save_samples, to_uint8

    output = output or str(Path(run) / "samples.png")
    kind = _sample_output_kind(output)
    model = api.load(run, device=device, warn=_warn)
    images = api.sample(model, n, seed, label=label, drs=drs)
    if nrow is None and label is None:
        nrow = model.grid_nrow  # a conditional model: one class per column
    if not distributed.is_main():
        return
    if kind != "png" and images.dim() != 4:
        raise ConfigError(f"{output}: the samples are points; write them as a .png scatter")
    if kind == "png":
        points = images.dim() == 2
        test = api.run_data(run)[model.epoch_stream]["test"].x[: max(n, 2500)] if points else None
        written = save_samples(images, output, nrow=nrow, reference=test, scale=scale)
    elif kind == "folder":
        written = save_image_files(images, output)
    else:
        written = save_arrays(
            output, torch.from_numpy(to_uint8(images)), api.sample_labels(model, n, label)
        )
    click.echo(str(written))


def _sample_output_kind(output: str) -> str:
    """ "png", "npz" or "folder" for ``deepgen sample -o OUTPUT``.

    Raises:
        ConfigError: another extension (never silently another format)."""
    if output.endswith(("/", os.sep)) or Path(output).is_dir():
        return "folder"
    suffix = Path(output).suffix.lower()
    if suffix in (".png", ".npz"):
        return suffix[1:]
    raise ConfigError(
        f"-o {output}: write samples to FILE.png (a grid), FILE.npz (arrays) or DIR/ (one PNG "
        f"each), not {suffix or 'a name without an extension'}"
    )


@cli.command()
@click.argument("run", type=click.Path())
@click.option(
    "-n", "n", type=click.IntRange(1, 1000), default=32, show_default=True, help="number of images"
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False),
    default=None,
    help="PNG path [default: RUN/reconstructions.png]",
)
@click.option(
    "--split",
    type=click.Choice(["train", "valid", "test"]),
    default="test",
    show_default=True,
    help="the split whose first N images are reconstructed",
)
@device_option
def reconstruct(run, n, output, split, device):
    """Save images of a split beside their reconstructions (rows: input, reconstruction)."""
    from . import api
    from .models.capabilities import Encoder, require
    from .report import reconstruction_grid
    from .viz import Captions, save_grid

    model = require(api.load(run, device=device, warn=_warn), Encoder, "deepgen reconstruct")
    grid, nrow = reconstruction_grid(model, api.run_data(run)[model.epoch_stream], split, n)
    captions = Captions(
        f"the first {n} {split} images and their reconstructions, in turns of {nrow}",
        rows=("input", "reconstruction"),
    )
    path = save_grid(
        grid, output or Path(run) / "reconstructions.png", nrow=nrow, captions=captions
    )
    click.echo(str(path))


@cli.command()
@click.argument("run", type=click.Path())
@click.option(
    "--direction",
    default=None,
    help="which way to translate [default: the model's first direction]",
)
@click.option(
    "-n", "n", type=click.IntRange(1, 1000), default=32, show_default=True, help="number of images"
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False),
    default=None,
    help="PNG path [default: RUN/translate-DIRECTION.png]",
)
@click.option(
    "--split",
    type=click.Choice(["train", "valid", "test"]),
    default="test",
    show_default=True,
    help="the split whose images are translated",
)
@click.option(
    "--npz",
    type=click.Path(dir_okay=False),
    default=None,
    help="also translate every image of the split and write them with their labels to this "
    ".npz (images, labels), which `--data arrays --data-dir FILE` reads: e.g. a classifier "
    "trained on translated source images (pixel-level adaptation)",
)
@device_option
def translate(run, direction, n, output, split, device, npz):
    """Translate images of one stream into another's (models that translate, e.g. cyclegan):
    rows alternate the inputs and their translations."""
    from . import api
    from .models.capabilities import Translator, require
    from .report import translation_grid
    from .viz import Captions, save_grid

    model = require(api.load(run, device=device, warn=_warn), Translator, "deepgen translate")
    direction = direction or model.directions[0]
    if npz is not None:
        import torch

        from .data.arrays import save_arrays

        origin, _ = model.direction_streams(direction)
        images = api.run_data(run)[origin][split]
        moved = api.translate(model, images.x, direction)
        click.echo(str(save_arrays(npz, (moved * 255).round().to(torch.uint8), images.labels)))
    grid, nrow = translation_grid(model, api.run_data(run), direction, split, n)
    origin, goal = model.direction_streams(direction)
    back = f"{goal}-to-{origin}" in model.directions
    turns = (origin, f"-> {goal}", f"-> {origin}")[: 3 if back else 2]
    captions = Captions(
        f"{direction}: the first {n} {split} images of {origin}, their translations to {goal}"
        + (" and back" if len(turns) == 3 else ""),
        rows=turns,
    )
    path = save_grid(
        grid, output or Path(run) / f"translate-{direction}.png", nrow=nrow, captions=captions
    )
    click.echo(str(path))


@cli.command()
@click.argument("run", type=click.Path())
@click.argument("tool")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False),
    default=None,
    help="PNG path [default: RUN/TOOL.png]",
)
@click.option("--seed", type=SEED, default=0, show_default=True, help="seed of the latent codes")
@click.option(
    "--mode",
    type=click.Choice(["linear", "spherical"]),
    default=None,
    help="interpolate: linear or spherical [default: linear]",
)
@click.option(
    "--concepts", default=None, help="arithmetic: classes A,B,C for A - B + C [default: 7,1,4]"
)
@click.option(
    "--mask",
    type=click.Choice(["center", "left", "right", "top", "bottom", "random"]),
    default=None,
    help="complete: the hidden region [default: center]",
)
@click.option(
    "--between",
    nargs=2,
    default=None,
    metavar="A B",
    help="models of strings, interpolate: from expression A to expression B",
)
@click.option(
    "--rows",
    type=click.IntRange(1, 100),
    default=None,
    help="interpolate, traverse, analogies: rows of the picture [default: 8; traverse 10]",
)
@click.option(
    "--steps",
    type=click.IntRange(2, 100),
    default=None,
    help="interpolate, traverse: images per row [default: 10; traverse 9]; complete: "
    "optimisation steps [default: 300]",
)
@click.option(
    "--span",
    type=float,
    default=None,
    help="traverse: each coordinate runs over [-SPAN, SPAN] prior standard deviations [default: 3]",
)
@click.option(
    "--dims",
    default=None,
    metavar="I,J,...",
    help="traverse: the latent coordinates to vary, one per row [default: the first --rows]",
)
@click.option(
    "-n",
    "n",
    type=click.IntRange(1, 100),
    default=None,
    help="manifold: grid side [default: 20]; complete, neighbours: images [default: 8]",
)
@click.option(
    "-k",
    "k",
    type=click.IntRange(1, 50),
    default=None,
    help="neighbours: nearest training images per sample [default: 5]",
)
@click.option(
    "--noise",
    type=click.FloatRange(0),
    default=None,
    help="arithmetic: std of the noise added to the result's copies [default: 0.25]",
)
@device_option
def latent(run, tool, output, seed, mode, concepts, mask, between, device, **sizes):
    """Picture the latent space of RUN. TOOL: interpolate, traverse, manifold (latent_dim 2),
    arithmetic (A - B + C over class exemplars), complete (fill a hidden region by optimising
    z; a quadrant CVAE fills its quadrants), neighbours (samples beside their nearest
    training images) or analogies (a conditional model's style of test images as every
    class)."""
    import inspect

    from . import api
    from .latent import LATENT_TOOLS
    from .models.capabilities import Strings, supports
    from .viz import save_grid

    model = api.load(run, device=device, warn=_warn)
    if supports(model, Strings) and not model.is_image:
        given = [k for k, v in sizes.items() if v is not None] + ["mode"] * (mode is not None)
        given += ["concepts"] * (concepts is not None) + ["mask"] * (mask is not None)
        if given:
            raise ConfigError(f"--{given[0]} applies to models of images, not of strings")
        _string_tool(model, run, tool, output, seed, between)
        return
    if between:
        raise ConfigError("--between applies to models of strings (gvae, charvae)")
    entry = LATENT_TOOLS[tool]
    options = sizes | {
        "mode": mode,
        "mask": mask,
        "concepts": tuple(_int_list(concepts, "--concepts")) if concepts else None,
        "dims": tuple(_int_list(sizes["dims"], "--dims")) if sizes["dims"] else None,
    }
    params = inspect.signature(entry.fn).parameters
    for key, value in options.items():
        if value is not None and key not in params:
            flag = f"-{key}" if len(key) == 1 else f"--{key}"
            raise ConfigError(f"{flag} does not apply to {tool}")
    kwargs = {k: v for k, v in options.items() if v is not None}
    data = {"dataset": api.run_data(run)[model.epoch_stream]} if entry.reads_data else {}
    images, nrow = entry.fn(model, seed=seed, **data, **kwargs)
    captions = entry.captions(model, entry.arguments(**kwargs), -(-len(images) // nrow))
    path = save_grid(images, output or Path(run) / f"{tool}.png", nrow=nrow, captions=captions)
    click.echo(str(path))


def _string_tool(model, run, tool: str, output, seed: int, between) -> None:
    """A latent tool of a model of strings: print its rows and save them as RUN/TOOL.txt."""
    from .fileio import atomic_write_text
    from .latent_strings import STRING_TOOLS

    fn = STRING_TOOLS[tool]
    rows = fn(model, between=tuple(between), seed=seed) if between else fn(model, seed=seed)
    text = (
        "\n".join("  ->  ".join("(invalid)" if s is None else s for s in row) for row in rows)
        + "\n"
    )
    click.echo(text, nl=False)
    click.echo(str(atomic_write_text(output or Path(run) / f"{tool}.txt", text)))


def _int_list(text: str, option: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",")]
    except ValueError:
        raise ConfigError(
            f"{option} takes comma-separated integers such as 7,1,4, not {text!r}"
        ) from None


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
    "-o",
    "--output",
    type=click.Path(dir_okay=False),
    default=None,
    help="JSON path [default: RUN/optimize.json; the plot beside it as .png]",
)
@device_option
def optimize(run, target, iterations, batch, gp_points, gp_best, seeds, output, device):
    """Bayesian optimisation of expressions in the latent space of RUN (gvae, charvae):
    find expressions close to TARGET (Kusner et al. 2017, sec. 4.1)."""
    from . import api
    from .optimize import optimize_run

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
    )
    _echo(str(path))


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
    from .report import find_runs, write_report

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
    from .demo import run_demo

    click.echo(str(run_demo(Path(out), vae_epochs, gan_epochs, device, progress=not quiet)))


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
    from .labs import LABS, run_lab

    if list_labs or not name:
        for lab_name, entry in LABS.items():
            click.echo(f"{lab_name:22s} {entry.title}  [{entry.source}]")
        return
    numbers = run_lab(name, out, fast=fast, seed=seed)
    for check_name, c in numbers["checks"].items():
        click.echo(
            f"{'ok  ' if c['passed'] else 'FAIL'} {check_name}: {c['value']:.4g} (want {c['tolerance']})"
        )
    click.echo(f"{numbers['figure']}\n{Path(out) / (name + '.json')}")
    if not all(c["passed"] for c in numbers["checks"].values()):
        raise DeepgenError(f"lab {name}: a check is outside its tolerance (see above)")


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
@device_option
def eval_command(run, metrics, n, k, seed, device):
    """Measure a run and write RUN/eval.json (each number with its uncertainty and protocol)."""
    from .metrics.evaluate import evaluate_run

    names = None if metrics is None else [m.strip() for m in metrics.split(",") if m.strip()]
    evaluate_run(run, names, n=n, k=k, seed=seed, device=device, log=_echo)
    _echo(str(Path(run) / "eval.json"))


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
    from .data import load_dataset
    from .metrics.classifier import save_classifier, train_classifier

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
    from .data import fetch_dataset

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
    from .data import DATASETS
    from .data.datasets import locate_idx_files

    for name, spec in DATASETS.items():
        if not spec.files:
            where = spec.origin
        else:
            try:
                where = str(next(iter(locate_idx_files(spec, data_dir).values())).parent)
            except DeepgenError:
                where = f"missing (deepgen data fetch {name})"
        click.echo(f"{name:14s} {where}\n{'':14s} {spec.description}")


def _warn(msg: str) -> None:
    click.echo(f"deepgen: warning: {msg}", err=True)


# Commands that may run as several processes under torchrun (the others would race on files).
DISTRIBUTED_COMMANDS = ("train", "eval", "sample")


def _join_process_group(argv: list[str] | None) -> None:
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:  # distributed.launched(), before torch loads
        return
    from . import distributed

    args = sys.argv[1:] if argv is None else argv
    command = next((a for a in args if not a.startswith("-")), None)
    if command not in DISTRIBUTED_COMMANDS:
        raise ConfigError(
            f"`deepgen {command}` runs in one process; under torchrun only "
            f"{', '.join(DISTRIBUTED_COMMANDS)} can run"
        )
    distributed.init_from_env()


def _echo(msg: str) -> None:
    """Print a result line (once, from rank 0, under torchrun)."""
    from . import distributed

    if distributed.is_main():
        click.echo(msg)


def main(argv: list[str] | None = None) -> int:
    """Entry point: one line on stderr and a non-zero exit for every expected error."""

    def error(msg: str) -> None:
        distributed = sys.modules.get(f"{__package__}.distributed")  # loaded once torch is
        several = distributed is not None and distributed.world_size() > 1
        where = f"[rank {distributed.rank()}] " if several else ""
        click.echo(f"deepgen: {where}{msg}", err=True)

    command_line = FROM_COMMAND_LINE.set(True)  # errors name --flags, not Python arguments
    try:
        _join_process_group(argv)
        rv = cli.main(args=argv, prog_name="deepgen", standalone_mode=False)
        return rv if isinstance(rv, int) else 0
    except click.UsageError as err:
        hint = f" (see `{err.ctx.command_path} --help`)" if err.ctx else ""
        error(f"error: {err.format_message()}{hint}")
        return 2
    except click.ClickException as err:
        error(f"error: {err.format_message()}")
        return err.exit_code
    except DeepgenError as err:
        error(f"error: {err}")
        return err.exit_code
    except (KeyboardInterrupt, click.Abort):
        error("interrupted")
        return 130
    except OSError as err:  # the machine refused: a read-only or full disk, a missing folder, ...
        if err.errno is None:
            raise
        error(f"error: {os_error_message(err)}")
        return 1
    finally:
        FROM_COMMAND_LINE.reset(command_line)
        distributed = sys.modules.get(f"{__package__}.distributed")
        if distributed is not None:
            distributed.shutdown()


def os_error_message(err: OSError) -> str:
    """One line for an error of the operating system: what failed, on which file, and
    what to do (finished checkpoints are never touched by a failed write)."""
    where = f" ({err.filename})" if err.filename else ""
    text = f"{err.strerror or err}{where}"
    if err.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return (
            f"{text}: the disk (or the file-size limit) is full; the checkpoints written "
            "before are intact: free some space and continue with `deepgen train --resume RUN`"
        )
    if err.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return (
            f"{text}: cannot write there; choose a writable place (--out, -o) or fix the "
            "permissions"
        )
    return text


if __name__ == "__main__":
    sys.exit(main())

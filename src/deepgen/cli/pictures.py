"""Commands that draw from a trained model: sample, reconstruct, translate, latent."""

from __future__ import annotations

import os
from pathlib import Path

import click

from ..errors import ConfigError
from .group import SEED, _warn, cli
from .options import device_option


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

    from .. import api, distributed
    from ..data.arrays import save_arrays
    from ..viz import save_image_files, save_samples, to_uint8

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
    from .. import api
    from ..models.capabilities import Encoder, require
    from ..report import reconstruction_grid
    from ..viz import Captions, save_grid

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
    from .. import api
    from ..models.capabilities import Translator, require
    from ..report import translation_grid
    from ..viz import Captions, save_grid

    model = require(api.load(run, device=device, warn=_warn), Translator, "deepgen translate")
    direction = direction or model.directions[0]
    if npz is not None:
        import torch

        from ..data.arrays import save_arrays

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

    from .. import api
    from ..latent import LATENT_TOOLS
    from ..models.capabilities import Strings, supports
    from ..viz import save_grid

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
    from ..fileio import atomic_write_text
    from ..latent_strings import STRING_TOOLS

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

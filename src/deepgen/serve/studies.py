"""Human real-vs-fake studies (HYPE, Zhou et al. 2019): writing a study folder.

A study is a folder written once by :func:`create_study`::

    STUDY/study.json     what was shown: the models (their runs), the real data, counts, seed
    STUDY/images/ID.png  every image, under an opaque id that says nothing of its source
    STUDY/study.db       SQLite (WAL): the images, the raters, their sequences, judgements

Each rater judges every study image once, in an order shuffled by (study seed, rater
number): half are real test images, half are generated, split evenly among the models
(HYPE-infinity: untimed, unless the study sets an exposure time). A short tutorial comes
first (answers are shown after each guess) and attention checks are mixed in: uniform
noise (an obvious fake) and real images the dataset's classifier is most sure of (obvious
reals). The store of its judgements is :mod:`deepgen.serve.store`.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
from datetime import UTC, datetime
from pathlib import Path

import torch

from ..errors import ConfigError, DeepgenError
from ..fileio import atomic_write_text
from ..version import __version__
from ..viz import image_png
from .store import DATABASE, SCHEMA, STUDY_FILE, connect


def _obvious_reals(x: torch.Tensor, dataset: str, n: int) -> torch.Tensor:
    """Indices of the ``n`` images of ``x`` (uint8) the dataset's classifier is most sure
    of, or the first ``n`` when the dataset has no classifier."""
    from ..metrics.classifier import class_probabilities

    try:
        confidence = class_probabilities(x, dataset).max(1).values
    except DeepgenError:
        return torch.arange(n)
    return confidence.argsort(descending=True)[:n]


def _model_names(runs: list[Path]) -> list[str]:
    """A distinct name per run: its folder name, with its parent's where names repeat."""
    names = [run.name for run in runs]
    if len(set(names)) < len(names):
        names = [f"{run.parent.name}/{run.name}" for run in runs]
    if len(set(names)) < len(names):
        names = [f"{name}#{i + 1}" for i, name in enumerate(names)]
    return names


def create_study(
    runs: list[str | os.PathLike],
    out: str | os.PathLike,
    images: int = 100,
    checks: int = 4,
    tutorial: int = 4,
    seed: int = 0,
    exposure_ms: int | None = None,
    device: str = "auto",
) -> Path:
    """Write a study folder comparing the models of ``runs`` with their real test images.

    Args:
        images: images each rater judges, besides checks and tutorial: half real test
            images, half generated, split evenly among the models (even, at least 2 per model).
        checks: attention checks mixed in, half uniform noise, half obvious reals.
        tutorial: images shown first with their answers, half real, half generated.
        exposure_ms: show each image this long (HYPE's time-limited variant); None: untimed.

    Returns: the study folder, written whole or not at all.

    Raises:
        ConfigError: ``out`` exists, counts that do not divide, runs on different data, a
            model without a Sampler or data that are not images.
    """
    from ..api import load, run_data
    from ..models.capabilities import Sampler, require
    from ..rundata import resolve_streams
    from ..rundir import RunDir

    out = Path(out)
    if out.exists():
        raise ConfigError(f"{out} already exists; choose a new study folder")
    runs = [Path(r) for r in runs]
    fakes, rem = divmod(images // 2, len(runs))
    if images % 2 or rem or fakes < 1:
        raise ConfigError(
            f"--images {images} must be even, and half of it a multiple of the {len(runs)} "
            "model(s) (each model's share of the generated half)"
        )
    if checks < 0 or checks % 2 or tutorial < 0 or tutorial % 2:
        raise ConfigError("--checks and --tutorial must be even counts (half real, half fake)")
    if exposure_ms is not None and exposure_ms < 1:
        raise ConfigError(f"--exposure-ms must be at least 1, not {exposure_ms}")
    models = {
        name: require(load(run, device), Sampler, "deepgen study create")
        for name, run in zip(_model_names(runs), runs)
    }
    first = next(iter(models.values()))
    data = run_data(runs[0], log=lambda m: None)[first.epoch_stream]  # loaded once
    if data.kind != "images":
        raise ConfigError(f"a study shows images; {runs[0]} was trained on {data.kind}")
    for run, model in zip(runs[1:], list(models.values())[1:]):
        other = resolve_streams(RunDir.open(run).config())[model.epoch_stream].name
        if other != data.name:
            raise ConfigError(f"{run} was trained on {other}, {runs[0]} on {data.name}")

    gen = torch.Generator().manual_seed(seed)
    test = data["test"].x
    order = torch.randperm(len(test), generator=gen)
    need_real = images // 2 + tutorial // 2 + checks // 2
    if need_real > len(test):
        raise ConfigError(f"the study needs {need_real} real test images; there are {len(test)}")
    pool = order[: images // 2 + tutorial // 2]
    rest = order[len(pool) :]
    obvious = rest[_obvious_reals(test[rest[:1000]], data.name, checks // 2)]
    shown: list[tuple[torch.Tensor, str, str]] = []  # (image in [0, 1], source, kind)
    shown += [(test[i].float() / 255, "real", "study") for i in pool[: images // 2]]
    shown += [(test[i].float() / 255, "real", "tutorial") for i in pool[images // 2 :]]
    shown += [(test[i].float() / 255, "real", "check") for i in obvious]
    for m, (name, model) in enumerate(models.items()):
        # the tutorial's fakes go round the models: model m draws every len(models)-th one
        n_tut = len(range(m, tutorial // 2, len(models)))
        with torch.no_grad():
            drawn = model.sample(fakes + n_tut, torch.Generator(model.device).manual_seed(seed))
        drawn = drawn.float().clamp(0, 1).cpu()
        shown += [(img, name, "study") for img in drawn[:fakes]]
        shown += [(img, name, "tutorial") for img in drawn[fakes:]]
    noise = torch.rand((checks // 2, *test.shape[1:]), generator=gen)
    shown += [(img, "noise", "check") for img in noise]

    partial = out.with_name(f".{out.name}.partial-{secrets.token_hex(4)}")
    (partial / "images").mkdir(parents=True)
    try:
        rows = []
        for img, source, kind in shown:
            image_id = secrets.token_hex(8)
            (partial / "images" / f"{image_id}.png").write_bytes(image_png(img))
            rows.append((image_id, source, kind))
        con = connect(partial / DATABASE)
        con.executescript(SCHEMA)
        con.execute("BEGIN")
        con.executemany("INSERT INTO images VALUES (?, ?, ?)", rows)
        con.execute("COMMIT")
        con.close()
        meta = {
            "name": out.name,
            "protocol": "HYPE-infinity (Zhou et al. 2019)" if exposure_ms is None else "HYPE-time",
            "seed": seed,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "models": {name: str(run.resolve()) for name, run in zip(models, runs)},
            "data": data.name,
            "real_split": "test",
            "images": images,
            "fakes_per_model": fakes,
            "checks": checks,
            "tutorial": tutorial,
            "exposure_ms": exposure_ms,
            "deepgen_version": __version__,
        }
        atomic_write_text(partial / STUDY_FILE, json.dumps(meta, indent=2) + "\n")
        os.rename(partial, out)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return out

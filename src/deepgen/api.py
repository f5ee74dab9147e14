"""The Python API behind the CLI: train a model or a config, resume, load a run, sample."""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime
from pathlib import Path

import torch

from . import distributed
from .checkpoint import Checkpoint, checkpoint_dirs, fits, latest_checkpoint
from .config import RunConfig, TrainConfig, validate
from .data.datasets import Dataset, load_dataset
from .distributed import resolve_device
from .errors import CheckpointError, ConfigError, option
from .models.base import build_model
from .models.capabilities import (
    Conditional,
    DensityRatio,
    Sampler,
    Translator,
    require,
    supports,
)
from .models.contract import MODELS, GenerativeModel
from .rundata import check_given, load_streams, record_streams, store_streams
from .rundir import RunDir
from .seeds import batch_generator
from .trainer import Trainer
from .validation import as_streams, load_selected


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr)


def _fit(
    model: GenerativeModel, streams: dict[str, Dataset], config: RunConfig, out, progress: bool, log
) -> GenerativeModel:
    """Train ``model``; the run folder is made only once the Trainer has validated everything
    (by rank 0 under torchrun; the other ranks read from it, e.g. to roll back)."""
    trainer = Trainer(model, streams, config.train, None, progress=progress, log=log)
    if out is not None:

        def create() -> RunDir:
            run = RunDir.create(out, config)
            store_streams(streams, config.streams, run.path)
            return run

        trainer.run = distributed.main_first(create) or RunDir(out)
    try:
        trainer.fit()
    finally:
        if trainer.run is not None:
            trainer.run.unlock()
    return model


def fit(
    model: GenerativeModel,
    data: str | Dataset | dict[str, Dataset] = "mnist",
    *,
    out=None,
    data_dir=None,
    progress: bool = True,
    log=None,
    **train_options,
) -> GenerativeModel:
    """Train an already built ``model``; with ``out``, into a new run folder. Returns ``model``.

    Args:
        data: a dataset name, an in-memory Dataset, or stream name -> Dataset for a family
            with several streams. A Dataset built in memory (e.g. ``from_tensors``) is
            stored in the run folder, so resume, report and eval use exactly it.
        train_options: fields of :class:`deepgen.config.TrainConfig` (epochs, images,
            batch_size, seed, device, ...).

    Raises:
        ConfigError: a bad option, or data of another shape than the model's.
    """
    if isinstance(data, str):
        data = load_dataset(data, data_dir)
    streams = as_streams(model, data)
    model.check_data(streams)
    records = record_streams(streams)
    config = RunConfig(
        family=model.family,
        model=model.config.model_dump(mode="json"),
        data=records[model.epoch_stream].request(),
        streams=records,
        train=validate(TrainConfig, train_options, "train."),
    )
    return _fit(model, streams, config, out, progress, log)


def train(
    config: RunConfig,
    out: str | os.PathLike | None = None,
    *,
    progress: bool = True,
    log=None,
    data: Dataset | dict[str, Dataset] | None = None,
) -> GenerativeModel:
    """Build the model ``config`` describes and train it; with ``out``, into a new run folder.

    ``data``: the data to train on instead of loading each stream from its config (a
    Dataset for a family with one stream); the run records what it is (its ``origin``, or
    stores it in the run folder when it was built in memory).

    Raises:
        ConfigError, DataError, CheckpointError (``out`` exists), TrainingDiverged, Interrupted.
    """
    if data is None:
        streams = load_streams(config, log=log)
    else:
        streams = as_streams(MODELS[config.family], data)
    values = MODELS[config.family].configure(dict(config.model), streams)
    model = build_model(
        config.family,
        values,
        {n: ds.data_shape for n, ds in streams.items()},
        seed=config.train.seed,
    )
    config = config.model_copy(
        update={"model": model.config.model_dump(mode="json"), "streams": record_streams(streams)}
    )
    return _fit(model, streams, config, out, progress, log)


# What a resume may change: the run's length, where and how it runs, and how it guards
# against divergence. The rest (batch size, seed, learning-rate schedule, selection) define
# what the run computes, so changing them mid-run would make a run no single config describes.
RESUME_MAY_CHANGE = (
    "epochs",
    "images",
    "device",
    "log_every",
    "keep_checkpoints",
    "compile",
    "channels_last",
    "on_divergence",
    "max_grad_norm",
    "max_rollbacks",
    "rollback_lr_factor",
)


def resume(
    run_path: str | os.PathLike,
    *,
    progress: bool = True,
    log=None,
    data: Dataset | dict[str, Dataset] | None = None,
    **train_updates,
) -> GenerativeModel:
    """Continue the run in ``run_path`` from its newest good checkpoint, on the data it
    recorded (``data``: the same data, already loaded). A run that stopped before its first
    checkpoint starts again from iteration 0, and says so.

    ``train_updates`` may change the options in :data:`RESUME_MAY_CHANGE` (e.g.
    ``epochs=20`` to train longer; the length may not fall below what was trained). Each
    change is recorded in ``config.json``'s ``history`` (iteration, time, before and
    after) as well as applied to its ``train``. The process holds the folder's lock.

    Raises:
        ConfigError: an option a resume may not change, or a length shorter than what the
            run has trained. CheckpointError: checkpoints exist but none is usable, or
            another process is writing the run. DataError: the data differs from the
            recorded data.
    """
    log = log or _stderr
    run = RunDir.open(run_path)
    distributed.main_first(run.lock)
    try:
        return _resume(run, progress, log, data, train_updates)
    finally:
        run.unlock()


def _resume(run: RunDir, progress: bool, log, data, train_updates: dict) -> GenerativeModel:
    """The body of :func:`resume`, run while the folder is locked."""
    if not distributed.is_main():
        log = lambda msg: None
    config = run.config()
    changes = _resume_changes(config.train, train_updates)
    if changes:
        merged = config.train.model_dump() | {k: after for k, (_, after) in changes.items()}
        config = config.model_copy(update={"train": validate(TrainConfig, merged, "train.")})
    model = build_model(config.family, config.model, seed=config.train.seed)
    ckpt = None
    if checkpoint_dirs(run.path) or (run.path / "results.json").exists():
        ckpt = latest_checkpoint(run.path, warn=log, accept=fits(model, config.family))
    if data is None:
        streams = load_streams(config, run.path, log)
    else:
        streams = as_streams(model, data)
        check_given(config, streams)
    trainer = Trainer(model, streams, config.train, run, progress=progress, log=log)
    done = 0 if ckpt is None else ckpt.iteration
    if trainer.total_iterations < done:
        raise ConfigError(
            f"{run.path} has trained {done} iterations ({done / trainer.iters_per_epoch:g} epochs); a resume "
            "cannot shorten it: give a length at least that, or start a new run"
        )
    if changes and distributed.is_main():
        entry = {
            "iteration": done,
            "time": datetime.now(UTC).isoformat(timespec="seconds"),
            "changes": {k: list(v) for k, v in changes.items()},
        }
        run.write_config(config.model_copy(update={"history": [*config.history, entry]}))
    if ckpt is None:
        log(
            f"{run.path} has no checkpoint (the run stopped before its first one): training from iteration 0"
        )
        if distributed.is_main():
            run.truncate_metrics(0)
    else:
        log(f"resuming {run.path} from {ckpt.path.name} (iteration {ckpt.iteration})")
    trainer.fit(resume=ckpt)
    return model


def _resume_changes(train: TrainConfig, updates: dict) -> dict[str, tuple]:
    """option -> (before, after) for each update that changes ``train``.

    Raises:
        ConfigError: an update a resume may not make (see :data:`RESUME_MAY_CHANGE`).
    """
    before = train.model_dump()
    unknown = [k for k in updates if k not in before]
    if unknown:
        raise ConfigError(f"unknown training option(s) {', '.join(unknown)}")
    changes = {k: (before[k], v) for k, v in updates.items() if v != before[k]}
    fixed = [k for k in changes if k not in RESUME_MAY_CHANGE]
    if fixed:
        may = ", ".join(option(k) for k in RESUME_MAY_CHANGE)
        raise ConfigError(
            f"a resume cannot change {', '.join(option(k) for k in fixed)}: it defines what the "
            f"run computes; start a new run (a resume may change {may})"
        )
    if "epochs" in changes and before["images"] is not None:
        changes["images"] = (before["images"], None)
    if "images" in changes and before["epochs"] is not None:
        changes["epochs"] = (before["epochs"], None)
    return changes


def run_data(run_path: str | os.PathLike, log=None) -> dict[str, Dataset]:
    """The streams the run in ``run_path`` was trained on, checked against what it recorded.

    Raises:
        CheckpointError: not a run folder. DataError: missing, or changed since training.
    """
    run = RunDir.open(run_path)
    return load_streams(run.config(), run.path, log)


def load(run_path: str | os.PathLike, device: str = "auto", warn=_stderr) -> GenerativeModel:
    """The model of a run folder with its newest good checkpoint's weights, in eval mode; for
    a run trained with ``--keep-best``, each player's best weights so far. ``warn`` (a
    callable taking one line; default stderr) is told when an older checkpoint is used.
    ``run_path`` may also be a folder written by :func:`save` (``model.save(path)``).

    Raises:
        CheckpointError: neither a run folder nor a saved model, or no checkpoint verifies
            and fits the model.
    """
    from .saved import WEIGHTS, is_saved_model, read_saved_model

    if is_saved_model(run_path) and not (Path(run_path) / "config.json").exists():
        meta, weights = read_saved_model(run_path)
        model = build_model(meta["family"], meta["model"])
        try:
            model.load_state_dict(weights)
        except RuntimeError as err:
            first = str(err).strip().splitlines()[0]
            raise CheckpointError(
                f"{Path(run_path) / WEIGHTS} does not fit a {meta['family']}: {first}"
            ) from None
        return model.to(resolve_device(device)).eval()
    return load_checkpointed(run_path, device, warn)[0]


def save(model: GenerativeModel, path: str | os.PathLike) -> Path:
    """Write a trained ``model`` to the new folder ``path`` (model.safetensors + model.json,
    atomically), for :func:`load` outside any run folder; returns the path.

    Raises:
        CheckpointError: ``path`` exists.
    """
    from .saved import save_model

    return save_model(model, path)


def load_checkpointed(
    run_path: str | os.PathLike, device: str = "auto", warn=_stderr
) -> tuple[GenerativeModel, Checkpoint]:
    """:func:`load`, also returning the checkpoint used, so that a number computed from the
    model can cite it (``Checkpoint.record()``: folder, iteration, manifest sha256, newest).

    A checkpoint that verifies by hash but does not fit the model (other keys, shapes or
    dtypes, non-finite weights, another family) is skipped like a corrupt one.

    Raises:
        CheckpointError: not a run folder, or no checkpoint verifies and fits the model.
    """
    run = RunDir.open(run_path)
    config = run.config()
    model = build_model(config.family, config.model, seed=config.train.seed)
    ckpt = latest_checkpoint(run.path, warn=warn, accept=fits(model, config.family))
    try:
        model.load_state_dict(ckpt.model)
        load_selected(model, ckpt.tensors)
    except (RuntimeError, KeyError, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(
            f"{ckpt.path} does not fit the model in config.json: {first}"
        ) from None
    return model.to(resolve_device(device)).eval(), ckpt


def sample(
    model: GenerativeModel,
    n: int,
    seed: int = 0,
    batch_size: int = 1000,
    label: int | None = None,
    drs: bool = False,
) -> torch.Tensor:
    """``n`` samples of ``model`` on the CPU: images (n, C, H, W) in [0, 1] or points (n, D);
    with ``label``, all of that class (a :class:`Conditional` model); with ``drs``, kept by
    discriminator rejection sampling (:func:`deepgen.drs.rejection_sample`, a model with a
    :class:`DensityRatio`; drawn in one process).

    Drawn in batches of ``batch_size``, each from its own generator
    (:func:`deepgen.seeds.batch_generator`), split over ranks under torchrun, so the
    result does not depend on the number of processes; for ``n <= batch_size`` it equals
    ``model.sample(n, generator=make_generator(seed))``.

    Raises:
        ConfigError: n < 1. MissingCapability: the model cannot do what is asked.
    """
    if n < 1:
        raise ConfigError(f"the number of samples must be at least 1, not {n}")
    require(model, Sampler, "sampling")
    if drs:
        require(model, DensityRatio, f"rejection sampling ({option('drs')})")
        if label is not None:
            raise ConfigError("rejection sampling draws from the whole model; drop the label")
        from .drs import rejection_sample

        return rejection_sample(model, n, make_generator(seed, model.device))[0].cpu()
    if label is not None:
        require(model, Conditional, f"sampling one class ({option('label')})")
        if not 0 <= label < model.num_classes:
            raise ConfigError(
                f"{option('label')} must be a class in [0, {model.num_classes}), not {label}"
            )

    def one_batch(index: int, start: int, stop: int) -> torch.Tensor:
        gen = batch_generator(seed, index, model.device)
        if label is None:
            return model.sample(stop - start, generator=gen)
        return model.sample(
            stop - start, generator=gen, labels=torch.full((stop - start,), label, dtype=torch.long)
        )

    return distributed.map_batches(one_batch, n, batch_size)


def sample_labels(
    model: GenerativeModel, n: int, label: int | None = None, batch_size: int = 1000
) -> torch.Tensor | None:
    """The class labels (n,) of :func:`sample`'s draws for a :class:`Conditional` model
    (``label`` for all, else each batch's ``default_labels``); None for another model."""
    if not supports(model, Conditional):
        return None
    if label is not None:
        return torch.full((n,), label, dtype=torch.long)
    sizes = [min(batch_size, n - start) for start in range(0, n, batch_size)]
    return torch.cat([model.default_labels(size).cpu() for size in sizes])


def translate(
    model: GenerativeModel, x: torch.Tensor, direction: str, seed: int = 0, batch_size: int = 1000
) -> torch.Tensor:
    """uint8 images ``x`` (N, C, H, W) of the direction's first stream translated by a
    :class:`Translator` into images (N, C', H, W) in [0, 1] on the CPU: preprocessed and
    translated in batches, each with its generator of ``seed`` (split over ranks under
    torchrun, as :func:`sample`).

    Raises:
        MissingCapability: the model does not translate. ConfigError: an unknown direction.
    """
    require(model, Translator, "translation")
    model.direction_streams(direction)

    def one_batch(index: int, start: int, stop: int) -> torch.Tensor:
        gen = batch_generator(seed, index, model.device)
        inputs = model.preprocess(x[start:stop].to(model.device), gen)
        return model.translate(inputs, direction).cpu()

    with torch.no_grad():
        return distributed.map_batches(one_batch, len(x), batch_size)


def make_generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A seeded torch.Generator on ``device``, for ``sample(n, generator=...)``."""
    return torch.Generator(device=device).manual_seed(seed)

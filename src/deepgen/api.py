"""The Python API behind the CLI: train from a config, resume, load a run."""

from __future__ import annotations

import inspect
import os
import sys

import torch

from . import distributed
from .checkpoint import latest_checkpoint
from .config import DataConfig, RunConfig, TrainConfig, validate
from .data.datasets import Dataset, load_dataset
from .distributed import resolve_device
from .errors import CheckpointError, ConfigError
from .fileio import atomic_write_text
from .models.base import GenerativeModel, build_model
from .rundir import RunDir
from .train import Trainer
from .validation import load_selected


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr)


def _dataset(data: str | Dataset, data_dir=None) -> Dataset:
    return data if isinstance(data, Dataset) else load_dataset(data, data_dir)


def _fit(model: GenerativeModel, dataset: Dataset, config: RunConfig, out, progress: bool, log) -> GenerativeModel:
    """Train ``model``; the run folder is made only once the Trainer has validated everything
    (by rank 0 under torchrun; the other ranks read from it, e.g. to roll back)."""
    trainer = Trainer(model, dataset, config.train, None, progress=progress, log=log)
    if out is not None:
        trainer.run = distributed.main_first(lambda: RunDir.create(out, config)) or RunDir(out)
    trainer.fit()
    return model


def fit_model(model: GenerativeModel, data: str | Dataset = "mnist", *, out=None, data_dir=None,
              progress: bool = True, log=None, **train_options) -> GenerativeModel:
    """Train an already built ``model``; with ``out``, into a new run folder."""
    dataset = _dataset(data, data_dir)
    if tuple(model.image_shape) != dataset.image_shape:
        raise ConfigError(f"the model takes images of shape {model.image_shape}, "
                          f"the dataset has {dataset.image_shape}")
    config = RunConfig(family=model.family, model=model.config.model_dump(mode="json"),
                       data=DataConfig(name=dataset.name, data_dir=data_dir),
                       train=validate(TrainConfig, train_options, "train."))
    return _fit(model, dataset, config, out, progress, log)


def train(config: RunConfig, out: str | os.PathLike | None = None, *, progress: bool = True,
          log=None, dataset: Dataset | None = None) -> GenerativeModel:
    """Build the model ``config`` describes and train it; with ``out``, into a new run folder.

    Raises:
        ConfigError, DataError, CheckpointError (``out`` exists), TrainingDiverged, Interrupted.
    """
    dataset = dataset or config.data.load(log)
    model = build_model(config.family, config.model, dataset.image_shape, seed=config.train.seed)
    config = config.model_copy(update={"model": model.config.model_dump(mode="json")})
    return _fit(model, dataset, config, out, progress, log)


def resume(run_path: str | os.PathLike, *, progress: bool = True, log=None,
           dataset: Dataset | None = None, **train_updates) -> GenerativeModel:
    """Continue the run in ``run_path`` from its newest good checkpoint.

    ``train_updates`` (e.g. ``epochs=20``) change the run's TrainConfig first, e.g. to
    train longer; the new config is written back to ``config.json``.
    """
    log = log or _stderr
    run = RunDir.open(run_path)
    config = run.config()
    if train_updates:
        merged = config.train.model_dump() | train_updates
        if "epochs" in train_updates:
            merged["images"] = None
        elif "images" in train_updates:
            merged["epochs"] = None
        config = config.model_copy(update={"train": validate(TrainConfig, merged, "train.")})
        if distributed.is_main():
            atomic_write_text(run.config_path, config.to_json())
    if not distributed.is_main():
        log = lambda msg: None  # noqa: E731  rank 0 speaks for all
    ckpt = latest_checkpoint(run.path, warn=log)
    dataset = dataset or config.data.load(log)
    model = build_model(config.family, config.model, seed=config.train.seed)
    log(f"resuming {run.path} from {ckpt.path.name} (iteration {ckpt.iteration})")
    Trainer(model, dataset, config.train, run, progress=progress, log=log).fit(resume=ckpt)
    return model


def load(run_path: str | os.PathLike, device: str = "cpu", warn=None) -> GenerativeModel:
    """The model of a run folder with its newest good checkpoint's weights, in eval mode; for
    a run trained with ``--keep-best``, each player's best weights so far.

    Raises:
        CheckpointError: not a run folder, or no checkpoint verifies.
    """
    run = RunDir.open(run_path)
    config = run.config()
    model = build_model(config.family, config.model, seed=config.train.seed)
    ckpt = latest_checkpoint(run.path, warn=warn)
    try:
        model.load_state_dict(ckpt.model)
        load_selected(model, ckpt.tensors)
    except (RuntimeError, KeyError) as err:
        raise CheckpointError(f"{ckpt.path} does not fit the model in config.json: {err}") from None
    return model.to(resolve_device(device)).eval()


def sample(model: GenerativeModel, n: int, seed: int = 0, batch_size: int = 1000,
           label: int | None = None, drs: bool = False) -> torch.Tensor:
    """``n`` samples of ``model`` on the CPU: images (n, C, H, W) in [0, 1] or points (n, D);
    with ``label``, all of that class (class-conditional families: cgan, cvae); with ``drs``,
    kept by discriminator rejection sampling (:func:`deepgen.drs.rejection_sample`, a gan
    only; drawn in one process).

    Drawn in batches of ``batch_size``, each from its own generator
    (:func:`deepgen.distributed.batch_generator`), split over ranks under torchrun, so the
    result does not depend on the number of processes; for ``n <= batch_size`` it equals
    ``model.sample(n, generator=make_generator(seed))``.
    """
    if n < 1:
        raise ConfigError(f"the number of samples must be at least 1, not {n}")
    if drs:
        if label is not None:
            raise ConfigError("rejection sampling works for unconditional gans; drop the label")
        from .drs import rejection_sample

        return rejection_sample(model, n, make_generator(seed, model.device))[0].cpu()
    extra = {}
    if label is not None:
        if "labels" not in inspect.signature(model.sample).parameters:
            raise ConfigError(f"a {model.family} is not class-conditional; drop the label")
        extra = {"labels": lambda m: torch.full((m,), label, dtype=torch.long)}

    def one_batch(index: int, start: int, stop: int) -> torch.Tensor:
        kwargs = {k: f(stop - start) for k, f in extra.items()}
        return model.sample(stop - start, generator=distributed.batch_generator(seed, index, model.device), **kwargs)

    return distributed.map_batches(one_batch, n, batch_size)


def make_generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A seeded torch.Generator on ``device``, for ``sample(n, generator=...)``."""
    return torch.Generator(device=device).manual_seed(seed)


"""Data streams: a run's named datasets, each loaded from the :class:`DataConfig` that
describes it, cut to the part it asks for, and checked against what the run recorded.

A family trains on one stream ("data") or several (e.g. "source" and "target" of two
domains; "labelled" and "unlabelled" of one dataset). Each stream is a Dataset with its
own train/valid/test splits; the Trainer draws each stream's batches in its own order.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ..config import DataConfig
from ..errors import ConfigError, DataError
from ..seeds import generator
from .datasets import Dataset, load_dataset


def labelled_indices(labels: torch.Tensor, per_class: int, seed: int) -> torch.Tensor:
    """Indices (sorted) of ``per_class`` examples of every class among ``labels`` (N,): a
    balanced labelled subset, the same for the same seed (its "labels" stream).

    Raises:
        DataError: a class has fewer than ``per_class`` examples.
    """
    order = torch.randperm(len(labels), generator=generator(seed, "labels"))
    chosen = []
    for c in torch.unique(labels).tolist():
        members = order[labels[order] == c]
        if len(members) < per_class:
            raise DataError(
                f"class {c} has {len(members)} training examples, fewer than the "
                f"{per_class} labels per class asked for; lower labels_per_class"
            )
        chosen.append(members[:per_class])
    return torch.cat(chosen).sort().values


def take_part(dataset: Dataset, part: str, per_class: int | None, seed: int) -> Dataset:
    """The training split's part ``part`` of ``dataset``: "all"; "labelled" (``per_class``
    labelled examples of each class, chosen by ``seed``); or "unlabelled" (the others, their
    labels dropped). Validation and test splits are kept whole.

    Raises:
        DataError: the dataset has no labels, or a class has too few examples.
    """
    if part == "all":
        return dataset
    train = dataset["train"]
    if train.labels is None:
        raise DataError(f"{dataset.name} has no labels, so it has no {part} part")
    keep = labelled_indices(train.labels, per_class, seed)
    if part == "unlabelled":
        mask = torch.ones(len(train), dtype=torch.bool)
        mask[keep] = False
        split = train.take(mask.nonzero().flatten(), keep_labels=False)
    else:
        split = train.take(keep)
    splits = dataset.splits | {"train": split}
    return Dataset(
        dataset.name,
        splits,
        dataset.num_classes,
        f"{dataset.source}; {part} part",
        None,
        dataset.vocabulary,
        dataset.grammar,
    )


def load_stream(
    config: DataConfig,
    base_dir: str | os.PathLike | None = None,
    seed: int = 0,
    log=None,
    name: str = "data",
) -> Dataset:
    """The stream ``config`` describes, checked against its recorded hash and sizes.

    ``base_dir``: the run folder, for data stored in it (a relative ``data_dir``);
    ``seed``: the run's seed, for a labelled subset without its own ``subset_seed``.

    Raises:
        ConfigError, DataError: as :func:`load_dataset`; DataError also when the data
            differs from what the run recorded.
    """
    data_dir = config.data_dir
    if data_dir is not None and base_dir is not None and not Path(data_dir).is_absolute():
        data_dir = str(Path(base_dir) / data_dir)
    dataset = load_dataset(config.name, data_dir, log=log, **config.options)
    options = dataset.origin.options  # every option, defaults filled in
    subset_seed = (
        None if config.part == "all" else seed if config.subset_seed is None else config.subset_seed
    )
    dataset = take_part(dataset, config.part, config.labels_per_class, subset_seed)
    dataset.origin = config.request().model_copy(
        update={"options": options, "subset_seed": subset_seed}
    )
    check_stream(dataset, config, name)
    return dataset


def check_stream(dataset: Dataset, config: DataConfig, name: str = "data") -> None:
    """Raise DataError unless ``dataset`` is what ``config`` recorded (nothing recorded:
    nothing to check)."""
    where = f"stream {name!r} ({dataset.name}{'' if not dataset.source else ', ' + dataset.source})"
    if config.sizes is not None and dataset.sizes() != config.sizes:
        raise DataError(
            f"{where} has {_sizes(dataset.sizes())} examples, but the run was trained on "
            f"{_sizes(config.sizes)} of {config.name}; the data changed since training"
        )
    if config.sha256 is not None:
        digest = dataset.content_sha256()
        if digest != config.sha256:
            raise DataError(
                f"{where} has content sha256 {digest[:12]}..., but the run was trained on "
                f"{config.sha256[:12]}...; the data changed since training"
            )


def record(dataset: Dataset, config: DataConfig) -> DataConfig:
    """``config`` with the content hash, sizes and source of ``dataset``: what a run records."""
    return config.model_copy(
        update={
            "sha256": dataset.content_sha256(),
            "sizes": dataset.sizes(),
            "source": dataset.source or None,
        }
    )


def _sizes(sizes: dict[str, int]) -> str:
    order = {"train": 0, "valid": 1, "test": 2}
    names = sorted(sizes, key=lambda n: (order.get(n, 3), n))
    return "/".join(f"{sizes[n]:,}" for n in names) + " (" + "/".join(names) + ")"


def check_streams(names: tuple[str, ...], given: dict, family: str) -> None:
    """Raise ConfigError unless ``given`` has exactly the streams ``names``."""
    missing = [n for n in names if n not in given]
    extra = [n for n in given if n not in names]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing)}")
        if extra:
            parts.append(f"unknown {', '.join(extra)}")
        raise ConfigError(
            f"a {family} trains on the streams {', '.join(names)}; {'; '.join(parts)}"
        )

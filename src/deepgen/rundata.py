"""The data of a run: which streams a family trains on, loading them as the run recorded
them (and refusing data that changed), and recording what a new run trains on.

A run records every stream's :class:`DataConfig` in ``config.json`` with the content hash
and split sizes of the arrays it held. A stream built in memory (``from_tensors``, or any
Dataset without an ``origin``) is stored in the run folder as ``data/STREAM.npz`` and
recorded as the dataset ``stored``, so resume, report and eval use exactly that data.
"""

from __future__ import annotations

from pathlib import Path

from .config import DataConfig, RunConfig
from .data.arrays import save_splits
from .data.datasets import Dataset
from .data.streams import check_stream, check_streams, load_stream, record
from .models.contract import MODELS


def resolve_streams(config: RunConfig) -> dict[str, DataConfig]:
    """Every stream ``config``'s family trains on: the ones recorded or given in
    ``config.streams``, the rest from the family's :meth:`default_streams` of
    ``config.data``.

    Raises:
        ConfigError: a stream is missing or unknown to the family.
    """
    cls = MODELS[config.family]
    streams = cls.default_streams(config.data) | dict(config.streams)
    check_streams(cls.streams, streams, config.family)
    return {name: streams[name] for name in cls.streams}


def load_streams(
    config: RunConfig, run_path: str | Path | None = None, log=None
) -> dict[str, Dataset]:
    """Load every stream of ``config`` (stored data relative to ``run_path``), each checked
    against its recorded hash and sizes.

    Raises:
        ConfigError, DataError: as :func:`deepgen.data.load_stream`.
    """
    return {
        name: load_stream(cfg, run_path, config.train.seed, log, name)
        for name, cfg in resolve_streams(config).items()
    }


def check_given(config: RunConfig, streams: dict[str, Dataset]) -> None:
    """Raise DataError unless the datasets passed for a run are the ones it recorded."""
    recorded = resolve_streams(config)
    for name, dataset in streams.items():
        check_stream(dataset, recorded[name], name)


def record_streams(streams: dict[str, Dataset]) -> dict[str, DataConfig]:
    """What a new run records of each stream: the config that loads it again (the dataset's
    ``origin``, with every option; a dataset built in memory is recorded as stored in the
    run folder, ``data/STREAM.npz``), with its content hash and sizes."""
    out = {}
    for name, dataset in streams.items():
        origin = dataset.origin
        if origin is None:
            origin = DataConfig(name="stored", data_dir=f"data/{name}.npz")
        out[name] = record(dataset, origin.request())
    return out


def store_streams(
    streams: dict[str, Dataset], records: dict[str, DataConfig], run_path: Path
) -> None:
    """Write each stream recorded as stored (see :func:`record_streams`) into the run folder."""
    for name, cfg in records.items():
        if cfg.name == "stored":
            save_splits(streams[name], Path(run_path) / cfg.data_dir)

"""A run folder: its config, metrics log, checkpoints, results and pictures.

``RUN/config.json`` (the RunConfig), ``RUN/metrics.jsonl`` (one JSON record per line),
``RUN/checkpoints/``, ``RUN/results.json`` (test-split numbers at the end of training),
``RUN/samples/`` (sample grids per epoch).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .config import RunConfig
from .errors import CheckpointError
from .fileio import atomic_write_text
from .version import __version__


class RunDir:
    """Paths and small file operations of one run folder."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    config_path = property(lambda self: self.path / "config.json")
    metrics_path = property(lambda self: self.path / "metrics.jsonl")
    results_path = property(lambda self: self.path / "results.json")
    samples_dir = property(lambda self: self.path / "samples")

    @classmethod
    def create(cls, path: str | os.PathLike, config: RunConfig) -> RunDir:
        """Make a new run folder holding ``config.json``.

        Raises:
            CheckpointError: the folder exists and is not empty.
        """
        run = cls(path)
        if run.path.exists() and (not run.path.is_dir() or any(run.path.iterdir())):
            raise CheckpointError(
                f"run folder {run.path} already exists; continue it with "
                f"`deepgen train --resume {run.path}` or choose another --out")
        run.path.mkdir(parents=True, exist_ok=True)
        config = config.model_copy(update={"deepgen_version": __version__})
        atomic_write_text(run.config_path, config.to_json())
        return run

    @classmethod
    def open(cls, path: str | os.PathLike) -> RunDir:
        """An existing run folder.

        Raises:
            CheckpointError: no such folder, or it has no config.json.
        """
        run = cls(path)
        if not run.path.is_dir():
            raise CheckpointError(f"no run folder at {run.path}")
        if not run.config_path.is_file():
            raise CheckpointError(f"{run.path} is not a deepgen run folder (no config.json)")
        return run

    def config(self) -> RunConfig:
        return RunConfig.from_json(self.config_path.read_text(), source=str(self.config_path))

    def append_metrics(self, record: dict[str, Any]) -> None:
        """Append one record to metrics.jsonl (flushed, so a kill loses at most this line)."""
        with open(self.metrics_path, "a") as fh:
            fh.write(json.dumps(record, sort_keys=True) + "\n")
            fh.flush()

    def metrics(self) -> list[dict[str, Any]]:
        """All complete records of metrics.jsonl (a torn last line is ignored)."""
        if not self.metrics_path.exists():
            return []
        records = []
        for line in self.metrics_path.read_text().splitlines():
            try:
                records.append(json.loads(line))
            except ValueError:
                continue
        return records

    def truncate_metrics(self, iteration: int) -> None:
        """Keep only records up to ``iteration`` (used when resuming from a checkpoint)."""
        kept = [r for r in self.metrics() if r.get("iteration", 0) <= iteration]
        atomic_write_text(self.metrics_path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in kept))

    def results(self) -> dict[str, Any] | None:
        if not self.results_path.exists():
            return None
        try:
            return json.loads(self.results_path.read_text())
        except ValueError as err:
            raise CheckpointError(f"{self.results_path} is unreadable: {err}") from None

    def write_results(self, results: dict[str, Any]) -> None:
        atomic_write_text(self.results_path, json.dumps(results, indent=2, sort_keys=True) + "\n")

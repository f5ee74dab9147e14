"""A run folder: its config, metrics log, checkpoints, results and pictures.

``RUN/config.json`` (the RunConfig), ``RUN/metrics.jsonl`` (one JSON record per line,
viewed as ``RUN/metrics.csv`` and, with tensorboard installed, ``RUN/tensorboard/``),
``RUN/checkpoints/``, ``RUN/results.json`` (test-split numbers at the end of training),
``RUN/samples/`` (sample grids per epoch), ``RUN/.lock`` (held by the process that trains
in the folder).

One process at a time trains in a run folder: :meth:`RunDir.lock` takes an exclusive
``flock`` on ``RUN/.lock``, which the kernel releases when the process ends however it
ends, so a folder whose run was SIGKILLed can be resumed at once, and a second writer is
refused with the holder's PID.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from .config import RunConfig, format_validation_error
from .csvlog import CSVLog
from .errors import CheckpointError, ConfigError, option
from .fileio import atomic_write_text, parse_json, read_small_file
from .version import __version__

try:
    import fcntl
except ImportError:  # Windows: no flock; one writer per folder is then the user's care
    fcntl = None

LOCK = ".lock"
JSON_LIMIT = 64 << 20  # bytes of config.json or results.json


class _Stat(BaseModel):
    """One number of results.json: mean, standard error, examples (and anything else)."""

    model_config = ConfigDict(extra="allow")
    mean: float
    stderr: float
    n: int


class _Summary(_Stat):
    metric: str
    unit: str
    n: int = 0


class Results(BaseModel):
    """The fields of results.json that readers rely on; the rest is kept as written."""

    model_config = ConfigDict(extra="allow")
    split: str = "test"
    metrics: dict[str, _Stat]
    iteration: int
    epochs: float = 0.0
    images_seen: int = 0
    training_seconds: float = 0.0
    protocol: str = ""
    units: dict[str, str] = {}
    summary: _Summary | None = None


class RunDir:
    """Paths and small file operations of one run folder."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._lock_fd: int | None = None
        self._tensorboard = None  # a TensorBoardLog once a record is written, if installed
        self._purge_step: int | None = None
        self._csv = CSVLog(self.path / "metrics.csv")

    config_path = property(lambda self: self.path / "config.json")
    metrics_path = property(lambda self: self.path / "metrics.jsonl")
    results_path = property(lambda self: self.path / "results.json")
    eval_path = property(lambda self: self.path / "eval.json")
    samples_dir = property(lambda self: self.path / "samples")

    @classmethod
    def fresh_path(cls, base: str | os.PathLike) -> Path:
        """The first of BASE, BASE-v2, BASE-v3, ... that does not exist or is an empty folder:
        where a run goes when no ``--out`` was given (as Lightning's ``version_N``)."""
        base = Path(base)
        candidate, n = base, 2
        while candidate.exists() and (not candidate.is_dir() or cls(candidate)._holds_anything()):
            candidate, n = base.with_name(f"{base.name}-v{n}"), n + 1
        return candidate

    @classmethod
    def create(cls, path: str | os.PathLike, config: RunConfig) -> RunDir:
        """Make a new run folder holding ``config.json``, locked by this process.

        A folder a run left without any checkpoint (it failed or was killed before the
        first one) is not empty, so it is refused too; ``--resume`` starts such a run
        from the beginning.

        Raises:
            CheckpointError: the folder exists and is not empty, or another process holds it.
        """
        run = cls(path)
        if run.path.exists() and not run.path.is_dir():
            raise CheckpointError(
                f"{option('out')} {run.path} is a file, not a folder; "
                f"choose another {option('out')}"
            )
        taken = CheckpointError(
            f"run folder {run.path} already exists; continue it with "
            f"`deepgen train --resume {run.path}` or choose another {option('out')}"
        )
        if run.path.is_dir() and run._holds_anything():
            raise taken  # refused before anything, not even the lock file, is written there
        try:
            run.path.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise CheckpointError(
                f"cannot make the run folder {run.path}: {err.strerror or err}"
            ) from None
        run.lock()
        if run._holds_anything():  # another process was quicker
            run.unlock()
            raise taken
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

    def _holds_anything(self) -> bool:
        """Whether the folder holds anything besides its lock file."""
        return any(p.name != LOCK for p in self.path.iterdir())

    def lock(self) -> None:
        """Take this folder's write lock for the life of the process (or :meth:`unlock`).

        Raises:
            CheckpointError: another process holds it (its PID is named), or the folder
                cannot be written (e.g. read-only).
        """
        if fcntl is None or self._lock_fd is not None:
            return
        path = self.path / LOCK
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:
            raise CheckpointError(
                f"cannot write in the run folder {self.path}: {err.strerror or err}"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise CheckpointError(
                f"{self.path} is being written by another process (PID {holder}); "
                "wait for it to end or stop it, then try again"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._lock_fd = fd

    def _close_tensorboard(self) -> None:
        if self._tensorboard is not None:
            self._tensorboard.close()
            self._tensorboard = None

    def unlock(self) -> None:
        """Release the write lock (the kernel also releases it when the process ends) and
        close the TensorBoard log."""
        self._close_tensorboard()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def config(self) -> RunConfig:
        text = read_small_file(self.config_path, JSON_LIMIT, ConfigError, str(self.config_path))
        return RunConfig.from_json(text, source=str(self.config_path))

    def write_config(self, config: RunConfig) -> None:
        """Replace config.json atomically (a resume records its changes this way)."""
        atomic_write_text(self.config_path, config.to_json())

    def append_metrics(self, record: dict[str, Any]) -> None:
        """Append one record to metrics.jsonl (flushed, so a kill loses at most this line),
        and to its views: metrics.csv (:mod:`deepgen.csvlog`) and the TensorBoard log."""
        with open(self.metrics_path, "a") as fh:
            fh.write(json.dumps(record, sort_keys=True) + "\n")
            fh.flush()
        self._csv.append(record, every=self.metrics)
        self._write_tensorboard(record)

    def _write_tensorboard(self, record: dict[str, Any]) -> None:
        """The record as TensorBoard scalars in RUN/tensorboard, when tensorboard is
        installed (see :mod:`deepgen.tblog`)."""
        from . import tblog

        if self._tensorboard is None:
            if not tblog.available():
                return
            self._tensorboard = tblog.TensorBoardLog(self.path / "tensorboard", self._purge_step)
        self._tensorboard.write(record)

    def metrics(self) -> list[dict[str, Any]]:
        """All complete records of metrics.jsonl: JSON objects with a whole ``iteration``
        (a torn last line, or any other line, is ignored)."""
        if not self.metrics_path.is_file():
            return []
        records = []
        with open(self.metrics_path, "rb") as fh:
            for line in fh:
                try:
                    record = json.loads(line)
                except (ValueError, RecursionError):
                    continue
                iteration = record.get("iteration") if isinstance(record, dict) else None
                if isinstance(iteration, int) and not isinstance(iteration, bool):
                    records.append(record)
        return records

    def truncate_metrics(self, iteration: int) -> None:
        """Keep only records up to ``iteration`` (used when resuming from a checkpoint)."""
        self._close_tensorboard()
        self._purge_step = iteration + 1  # TensorBoard drops the later steps too
        kept = [r for r in self.metrics() if r.get("iteration", 0) <= iteration]
        atomic_write_text(
            self.metrics_path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in kept)
        )
        self._csv.rewrite(kept)

    def results(self) -> dict[str, Any] | None:
        """results.json, checked against :class:`Results`; None before training ended.

        Raises:
            CheckpointError: it is unreadable, not JSON, or lacks what readers rely on.
        """
        if not self.results_path.exists():
            return None
        raw = read_small_file(
            self.results_path, JSON_LIMIT, CheckpointError, str(self.results_path)
        )
        results = parse_json(raw, CheckpointError, str(self.results_path))
        try:
            Results.model_validate(results)
        except ValidationError as err:
            raise CheckpointError(
                f"{self.results_path} is damaged: {format_validation_error(err)}"
            ) from None
        return results

    def evaluation(self) -> dict[str, Any] | None:
        """eval.json (what `deepgen eval` measured); None when it was never run.

        Raises:
            CheckpointError: it is unreadable, not JSON, or holds no ``metrics`` object.
        """
        if not self.eval_path.exists():
            return None
        raw = read_small_file(self.eval_path, JSON_LIMIT, CheckpointError, str(self.eval_path))
        data = parse_json(raw, CheckpointError, str(self.eval_path))
        if not isinstance(data, dict) or not isinstance(data.get("metrics"), dict):
            raise CheckpointError(f"{self.eval_path} does not hold deepgen eval results")
        return data

    def write_results(self, results: dict[str, Any]) -> None:
        atomic_write_text(self.results_path, json.dumps(results, indent=2, sort_keys=True) + "\n")

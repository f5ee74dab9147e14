"""Metrics as TensorBoard event files, beside metrics.jsonl, when the ``tensorboard``
package is installed (``pip install deepgen[tensorboard]``); `tensorboard --logdir runs`
then shows every run. Each split writes its own folder (``RUN/tensorboard/train``,
``RUN/tensorboard/valid``, ...) with a scalar per metric, tagged by the metric's name
(``elbo``) at step ``iteration``, so TensorBoard draws a run's training and validation
values of one quantity in the same chart. metrics.jsonl stays the record deepgen reads; the
event files are a view of it.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

SKIP = {"iteration", "split"}


def available() -> bool:
    """Whether the tensorboard package is installed (torch's writer needs it)."""
    return importlib.util.find_spec("tensorboard") is not None


class TensorBoardLog:
    """Writes metric records below ``folder`` (RUN/tensorboard), one writer per split.
    ``purge_step``: on resume, the iteration resumed from; TensorBoard drops the later
    steps an earlier run wrote."""

    def __init__(self, folder: Path, purge_step: int | None = None):
        self.folder, self.purge_step = folder, purge_step
        self.writers: dict[str, Any] = {}

    def write(self, record: dict[str, Any]) -> None:
        step, split = int(record["iteration"]), str(record.get("split", "train"))
        writer = self.writers.get(split)
        if writer is None:
            from torch.utils.tensorboard import SummaryWriter

            writer = SummaryWriter(
                str(self.folder / split), purge_step=self.purge_step, flush_secs=30
            )
            self.writers[split] = writer
        for key, value in record.items():
            if key in SKIP or isinstance(value, bool) or not isinstance(value, int | float):
                continue
            writer.add_scalar(key, value, step)
        if split != "train":
            writer.flush()

    def close(self) -> None:
        for writer in self.writers.values():
            writer.close()
        self.writers.clear()

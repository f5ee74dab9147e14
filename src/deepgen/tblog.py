"""Metrics as TensorBoard event files, beside metrics.jsonl, when the ``tensorboard``
package is installed (``pip install deepgen[tensorboard]``); `tensorboard --logdir runs`
then shows every run. Each record's numbers become scalars tagged ``SPLIT/NAME`` (e.g.
``train/vae/elbo``, ``valid/elbo``) at step ``iteration``. metrics.jsonl stays the record
deepgen reads; the event files are a view of it.
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
    """Writes metric records to ``folder`` (RUN/tensorboard). ``purge_step``: on resume,
    the iteration resumed from; TensorBoard drops the later steps an earlier run wrote."""

    def __init__(self, folder: Path, purge_step: int | None = None):
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(folder), purge_step=purge_step, flush_secs=30)

    def write(self, record: dict[str, Any]) -> None:
        step, split = int(record["iteration"]), record.get("split", "train")
        for key, value in record.items():
            if key in SKIP or isinstance(value, bool) or not isinstance(value, int | float):
                continue
            self.writer.add_scalar(f"{split}/{key}", value, step)
        if split != "train":
            self.writer.flush()

    def close(self) -> None:
        self.writer.close()

"""Metrics as CSV, beside metrics.jsonl: ``RUN/metrics.csv``, one row per record and one
column per metric name (the layout of PyTorch Lightning's CSVLogger, which pandas, R and a
spreadsheet read as it is). A record with a name not yet in the header rewrites the file
with the wider header, atomically; other records are appended. metrics.jsonl stays the
record deepgen reads; the CSV is a view of it.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .fileio import atomic_write_text

FIRST = ("split", "iteration", "epoch", "images", "time")


def columns(records: list[dict[str, Any]]) -> list[str]:
    """The header for ``records``: the bookkeeping fields first, then metric names sorted."""
    names = set().union(*records) if records else set()
    return [c for c in FIRST if c in names] + sorted(names - set(FIRST))


class CSVLog:
    """Keeps ``path`` (RUN/metrics.csv) equal to the records it is given."""

    def __init__(self, path: Path):
        self.path = path
        self.header: list[str] | None = None  # unknown until written in this process

    def append(self, record: dict[str, Any], every: Callable[[], list[dict[str, Any]]]) -> None:
        """Add ``record``, the last of the records ``every()`` returns (all so far, read only
        when the header must grow or is not yet known)."""
        if self.header is not None and set(record) <= set(self.header):
            with open(self.path, "a", newline="") as fh:
                csv.DictWriter(fh, self.header, restval="").writerow(record)
        else:
            self.rewrite(every())

    def rewrite(self, records: list[dict[str, Any]]) -> None:
        """Replace the file with ``records`` under the header they need."""
        self.header = columns(records)
        text = io.StringIO(newline="")
        writer = csv.DictWriter(text, self.header, restval="")
        writer.writeheader()
        writer.writerows(records)
        atomic_write_text(self.path, text.getvalue())

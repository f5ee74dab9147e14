"""Pictures a report drew for one checkpoint, kept so the next report of the same
checkpoint reads them instead of drawing them again (the latent tools alone take about
20 s for a DCGAN on 2 CPU cores).

``RUN/report-cache/KEY/NAME.png`` with its caption in ``NAME.txt``; KEY is the first 16
hex digits of the checkpoint manifest's sha256 (which fixes every weight) and the deepgen
version (which fixes how pictures are drawn). Every picture uses seed 0, and the run's
data are fixed by its config, so a key names one set of pictures. Pictures of other keys
are removed when a new one is written; a folder that cannot be written is not an error,
the report is then drawn afresh each time.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from .fileio import atomic_write_bytes, atomic_write_text
from .version import __version__

FOLDER = "report-cache"


class PictureCache:
    """The pictures of ``run``'s checkpoint ``checkpoint`` (a :class:`Checkpoint`, or
    None: nothing is kept)."""

    def __init__(self, run: Path, checkpoint=None):
        key = getattr(checkpoint, "manifest_sha256", "")
        self.folder = run / FOLDER / f"{key[:16]}-{__version__}" if key else None

    def get(
        self, name: str, draw: Callable[[], tuple[bytes, str] | None]
    ) -> tuple[bytes, str] | None:
        """(PNG bytes, caption) of picture ``name``: read back if this checkpoint's is kept,
        else ``draw()``, kept, and returned (None, and nothing kept, when there is no such
        picture for this model)."""
        if self.folder is None:
            return draw()
        png, txt = self.folder / f"{name}.png", self.folder / f"{name}.txt"
        try:
            return png.read_bytes(), txt.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            pass
        drawn = draw()
        if drawn is None:
            return None
        data, caption = drawn
        try:
            self._forget_other_checkpoints()
            atomic_write_text(txt, caption)  # the caption first: a PNG alone is not read
            atomic_write_bytes(png, data)
        except OSError:
            pass  # a read-only run folder: draw again next time
        return data, caption

    def _forget_other_checkpoints(self) -> None:
        for other in self.folder.parent.glob("*"):
            if other != self.folder and other.is_dir():
                shutil.rmtree(other, ignore_errors=True)

"""Atomic file writes and checksums.

A file is written to a temporary name in the same directory, flushed, fsynced and then
renamed over the target, so a reader sees the old file or the new one, never half of it.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import tempfile
from pathlib import Path


def fsync_dir(path: Path) -> None:
    """Make a rename inside ``path`` durable (no-op where directories cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o644)  # mkstemp makes 0600; these are ordinary readable files
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def read_small_file(
    path: str | os.PathLike, limit: int, error: type[Exception], what: str = ""
) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes, checked before reading, so a
    FIFO, a device such as /dev/zero or an oversized file is refused rather than read.

    Raises:
        ``error`` (e.g. CheckpointError) with one line naming ``path``: missing, not a
        regular file, larger than ``limit``, or unreadable.
    """
    path = Path(path)
    name = what or str(path)
    try:
        info = path.stat()
    except FileNotFoundError:
        raise error(f"{name} is missing") from None
    except OSError as err:
        raise error(f"{name} cannot be read: {err.strerror or err}") from None
    if not stat.S_ISREG(info.st_mode):
        raise error(f"{name} is not a regular file")
    if info.st_size > limit:
        raise error(f"{name} holds {info.st_size:,} bytes, more than the {limit:,} it may")
    try:
        with open(path, "rb") as fh:
            data = fh.read(info.st_size + 1)
    except OSError as err:
        raise error(f"{name} cannot be read: {err.strerror or err}") from None
    if len(data) != info.st_size:
        raise error(f"{name} changed size while it was read")
    return data


def parse_json(data: bytes | str, error: type[Exception], what: str):
    """JSON from ``data``; malformed, non-UTF-8 or absurdly nested text raises ``error``
    with one line naming ``what`` (Python's parser recurses, so depth is an error too)."""
    try:
        return json.loads(data)
    # JSONDecodeError and UnicodeDecodeError are ValueErrors
    except (ValueError, RecursionError) as err:
        detail = "nested too deeply" if isinstance(err, RecursionError) else str(err)
        raise error(f"{what} is not valid JSON: {detail}") from None


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()

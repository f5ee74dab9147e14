"""``imagefolder``: any directory of PNG/JPEG images, e.g. CelebA, or class sub-folders.

Images are converted to 8-bit grey (1 channel) or RGB (3) (:func:`to_8bit`: 16-bit and
float pixels scaled, transparency over white), resized so the shorter side is
``image_size`` and centre-cropped to a square, then held as uint8 (N, C, S, S). Files
directly in sub-folders get the sorted sub-folder names as class labels. The converted
array is cached as an ``.npz`` (no pickle) keyed by the files' names, sizes and times and
the options, so a second run starts at once; the cache's sha256 is written beside it and
checked at every read, and a damaged or replaced cache is rebuilt. A fixed 5% / 5% of the
images (at least one each) form the validation and test splits.
"""

from __future__ import annotations

import hashlib
import io
import os
import zipfile
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from PIL import Image
from pydantic import Field

from ..config import Config
from ..errors import DataError, option
from ..fileio import atomic_write_bytes, atomic_write_text, sha256_bytes
from .datasets import Dataset, Split, default_cache_dir

SUFFIXES = {".png", ".jpg", ".jpeg"}


def list_images(root: Path) -> list[Path]:
    """Every .png/.jpg/.jpeg file under ``root`` (any depth, any case), sorted."""
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)


def to_8bit(img: Image.Image, channels: int) -> Image.Image:
    """``img`` in any PIL mode as 8-bit grey ("L", ``channels`` 1) or RGB (3).

    High bit depths are scaled, not clipped: 16-bit grey (I;16, I;16B, and I holding
    0-65535, as 16-bit PNGs open) by 255/65535; float (F) in [0, 1] by 255, in [0, 255]
    as is. Transparency (RGBA, LA, P with a transparent colour) is composited over white.
    CMYK, 1-bit and palette images use PIL's conversions.

    Raises:
        DataError: integer pixels outside 0-65535 or float pixels outside [0, 255], whose
            scale cannot be known.
    """
    mode = "L" if channels == 1 else "RGB"
    if img.mode in ("I", "F") or img.mode.startswith("I;16"):
        values = np.asarray(img, dtype=np.float64)
        low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
        if img.mode == "F" and low >= 0 and high <= 1:
            values = values * 255
        elif img.mode == "F" and low >= 0 and high <= 255:
            pass
        elif img.mode != "F" and low >= 0 and high <= 65535:
            values = values * (255 / 65535)
        else:
            raise DataError(
                f"a mode {img.mode} image with values {low:g} to {high:g}, whose scale is unknown; "
                "save it as 8 or 16 bits per channel"
            )
        return Image.fromarray(np.rint(values).astype(np.uint8), "L").convert(mode)
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba)
    return img.convert(mode)


def _load_one(path: Path, size: int, channels: int) -> np.ndarray:
    with Image.open(path) as img:
        img = to_8bit(img, channels)
        scale = size / min(img.size)
        w, h = max(size, round(img.width * scale)), max(size, round(img.height * scale))
        img = img.resize((w, h), Image.BILINEAR)
        left, top = (w - size) // 2, (h - size) // 2
        arr = np.asarray(img.crop((left, top, left + size, top + size)), dtype=np.uint8)
    return arr[None] if channels == 1 else arr.transpose(2, 0, 1)


def _cache_key(root: Path, files: list[Path], size: int, channels: int, skip: bool) -> str:
    h = hashlib.sha256(f"{root.resolve()}|{size}|{channels}|{skip}".encode())
    for p in files:
        st = p.stat()
        h.update(os.fsencode(p.relative_to(root)) + f"|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:32]


def load_arrays(root: Path, size: int, channels: int, on_bad_file: str = "stop", log=None):
    """(images uint8 (N, C, size, size), labels int64 (N,) or None, class names, from_cache)."""
    if not root.is_dir():
        raise DataError(
            f"image folder {root} does not exist; pass the folder with {option('data_dir')}"
        )
    files = list_images(root)
    if not files:
        raise DataError(f"no .png/.jpg/.jpeg images under {root}")
    cache = (
        default_cache_dir()
        / "imagefolder"
        / f"{_cache_key(root, files, size, channels, on_bad_file == 'skip')}.npz"
    )
    cached = _read_cache(cache, log)
    if cached is not None:
        return (*cached, True)
    images, kept = [], []
    for path in files:
        try:
            images.append(_load_one(path, size, channels))
            kept.append(path)
        except Exception as err:  # noqa: BLE001  PIL's decoders raise many types on damaged
            # bytes (OSError, SyntaxError, EOFError, struct.error, ...): all mean "unreadable".
            if on_bad_file == "stop":
                raise DataError(
                    f"cannot read image {path}: {type(err).__name__}: {err}; fix or remove it, "
                    f"or pass {option('on_bad_file', 'skip')}"
                ) from None
            if log:
                log(f"skipping unreadable image {path}: {err}")
    if not images:
        raise DataError(f"no readable images under {root}")
    parents = sorted({p.parent for p in kept})
    labelled = len(parents) > 1 or parents[0] != root
    classes = [str(p.relative_to(root)) for p in parents] if labelled else []
    labels = (
        np.array([classes.index(str(p.parent.relative_to(root))) for p in kept])
        if labelled
        else None
    )
    stacked = np.stack(images)
    buf = io.BytesIO()
    np.savez(
        buf,
        images=stacked,
        labels=labels if labels is not None else np.zeros(0, np.int64),
        classes=np.array(classes, dtype=str),
    )
    atomic_write_bytes(cache, buf.getvalue())
    atomic_write_text(cache.with_suffix(".sha256"), sha256_bytes(buf.getvalue()) + "\n")
    return stacked, labels, classes, False


def _read_cache(cache: Path, log) -> tuple | None:
    """(images, labels, classes) from a cache whose bytes match the sha256 recorded beside
    it when it was written; None (and a note) when it is missing, damaged or replaced, so
    that it is rebuilt from the images."""
    if not cache.is_file():
        return None
    recorded = cache.with_suffix(".sha256")
    try:
        blob = cache.read_bytes()
        expected = recorded.read_text().strip() if recorded.is_file() else None
        if sha256_bytes(blob) != expected:
            raise ValueError("its content does not match the sha256 recorded when it was written")
        with np.load(io.BytesIO(blob), allow_pickle=False) as z:
            labels = z["labels"] if z["labels"].size else None
            return z["images"], labels, [str(c) for c in z["classes"]]
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as err:
        if log:
            log(f"rebuilding the image cache {cache.name}: {err}")
        return None


class ImageFolderOptions(Config):
    """Options of ``imagefolder``: image size, channels and what to do with a bad file."""

    image_size: int = Field(64, ge=4, le=1024, description="side of the square images, pixels")
    image_channels: Literal[1, 3] = Field(3, description="1 (grey) or 3 (RGB)")
    on_bad_file: Literal["stop", "skip"] = Field(
        "stop", description="an unreadable file: stop, or skip it"
    )


def imagefolder_dataset(
    spec,
    data_dir=None,
    image_size: int = 64,
    image_channels: int = 3,
    on_bad_file: str = "stop",
    log=None,
    **_,
) -> Dataset:
    """Load an image folder (``data_dir``) as a Dataset; see the module docstring."""
    if data_dir is None:
        raise DataError(f"imagefolder needs the folder: pass {option('data_dir')} PATH")
    images, labels, classes, cached = load_arrays(
        Path(data_dir).expanduser(), image_size, image_channels, on_bad_file, log
    )
    n = len(images)
    held = max(1, n // 20)
    if n < 2 * held + 1:
        raise DataError(
            f"{data_dir} has {n} readable images; at least 3 are needed (train, valid, test)"
        )
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(0))
    x = torch.from_numpy(images)
    y = None if labels is None else torch.from_numpy(labels.astype(np.int64))
    parts = {"valid": perm[:held], "test": perm[held : 2 * held], "train": perm[2 * held :]}
    splits = {k: Split(x[idx], None if y is None else y[idx]) for k, idx in parts.items()}
    source = f"{data_dir} ({'cache' if cached else 'decoded'}, {n} images)"
    return Dataset("imagefolder", splits, num_classes=len(classes) or None, source=source)

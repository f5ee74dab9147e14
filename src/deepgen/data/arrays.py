"""Datasets from NumPy files and in-memory tensors and token sequences.

``arrays``: ``--data-dir`` names a ``.npy`` file (the images) or an ``.npz`` with
``images`` and optionally ``labels``; read with ``allow_pickle=False``. Images may be
(N, H, W) grey, (N, C, H, W), or (N, H, W, C) with C in {1, 3}; uint8 in [0, 255], or
float in [0, 1] (converted to uint8). 5% / 5% (at least one each) are held out as
validation and test, by a fixed permutation.
"""

from __future__ import annotations

import io
import math
import os
import zipfile
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError, option
from ..fileio import atomic_write_bytes
from .datasets import Dataset, Split


def _as_nchw_uint8(images: np.ndarray, source: str) -> np.ndarray:
    if images.ndim == 3:
        images = images[:, None]
    elif images.ndim == 4 and images.shape[1] not in (1, 3) and images.shape[3] in (1, 3):
        images = images.transpose(0, 3, 1, 2)
    if images.ndim != 4 or images.shape[1] not in (1, 3) or min(images.shape) < 1:
        raise DataError(
            f"{source}: images must be (N, H, W), (N, C, H, W) or (N, H, W, C) with C 1 or 3 and "
            f"N, H, W at least 1, not {images.shape}"
        )
    if images.dtype == np.uint8:
        return np.ascontiguousarray(images)
    if np.issubdtype(images.dtype, np.floating):
        if not np.isfinite(images).all() or images.min() < 0 or images.max() > 1:
            raise DataError(f"{source}: float images must be finite and in [0, 1]")
        return np.round(images * 255).astype(np.uint8)
    raise DataError(f"{source}: images must be uint8 or float in [0, 1], not {images.dtype}")


def from_tensors(images, labels=None, name: str = "tensors", held_out: float = 0.05) -> Dataset:
    """A Dataset from in-memory images (tensor or array; shapes and ranges as above) and
    optional integer labels (N,)."""
    arr = images.detach().cpu().numpy() if torch.is_tensor(images) else np.asarray(images)
    x = torch.from_numpy(_as_nchw_uint8(arr, name))
    return _held_out_dataset(name, x, _labels(labels, len(x), name), None, held_out, "images")


def _labels(labels, n: int, name: str) -> torch.Tensor | None:
    """Integer labels (n,) as int64, or None; raises DataError for another shape."""
    if labels is None:
        return None
    array = np.asarray(labels.cpu() if torch.is_tensor(labels) else labels)
    if array.dtype.kind not in "iub":
        raise DataError(
            f"{name}: labels must be integers 0, 1, ..., not {array.dtype} values such as "
            f"{array.reshape(-1)[:3].tolist()}; map the class names to numbers first"
        )
    if array.shape != (n,):
        raise DataError(f"{name}: labels must be ({n},), not {tuple(array.shape)}")
    if n and array.min() < 0:
        raise DataError(f"{name}: labels must be integers >= 0, not {int(array.min())}")
    return torch.from_numpy(array.astype(np.int64))


def _held_out_dataset(
    name: str,
    x: torch.Tensor,
    y: torch.Tensor | None,
    lengths: torch.Tensor | None,
    held_out: float,
    what: str,
    vocabulary: tuple[str, ...] | None = None,
) -> Dataset:
    """Rows of x (and y, lengths) split by a fixed permutation: ``held_out`` of them (at least
    one each) for validation and test, the rest for training."""
    n, held = len(x), max(1, int(len(x) * held_out))
    if n < 2 * held + 1:
        raise DataError(f"{name}: {n} {what}; at least 3 are needed (train, valid, test)")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(0))
    parts = {"valid": perm[:held], "test": perm[held : 2 * held], "train": perm[2 * held :]}
    splits = {k: Split(x, y, lengths).take(i) for k, i in parts.items()}
    classes = int(y.max()) + 1 if y is not None and len(y) else None
    return Dataset(
        name, splits, num_classes=classes, source=f"{n} in-memory {what}", vocabulary=vocabulary
    )


def from_sequences(
    sequences,
    vocabulary,
    labels=None,
    name: str = "sequences",
    held_out: float = 0.05,
    max_length: int | None = None,
) -> Dataset:
    """A Dataset of token sequences: ``sequences`` lists of token ids in
    [0, len(vocabulary)), held as int64 (N, T) padded with 0 after each sequence's end,
    with ``lengths`` (N,); T is ``max_length`` or the longest sequence. Labels and the
    5% / 5% validation and test split as :func:`from_tensors`.

    Raises:
        DataError: an empty sequence, a token outside the vocabulary, one longer than
            ``max_length``, or fewer than 3 sequences.
    """
    vocabulary = tuple(str(v) for v in vocabulary)
    seqs = [list(map(int, s)) for s in sequences]
    longest = max((len(s) for s in seqs), default=0)
    width = max_length or longest
    for i, seq in enumerate(seqs):
        if not seq or len(seq) > width or min(seq) < 0 or max(seq) >= len(vocabulary):
            raise DataError(
                f"{name}: sequence {i} must hold 1 to {width} token ids in [0, {len(vocabulary)}), "
                f"not {seq[:10]}"
            )
    x = torch.zeros(len(seqs), width, dtype=torch.long)
    for i, seq in enumerate(seqs):
        x[i, : len(seq)] = torch.tensor(seq)
    lengths = torch.tensor([len(seq) for seq in seqs], dtype=torch.long)
    return _held_out_dataset(
        name, x, _labels(labels, len(x), name), lengths, held_out, "sequences", vocabulary
    )


def arrays_dataset(spec, data_dir=None, **_) -> Dataset:
    """Load ``--data-dir FILE.npz|FILE.npy`` (see the module docstring)."""
    if data_dir is None:
        raise DataError(f"arrays needs a file: pass {option('data_dir')} PATH.npz or PATH.npy")
    path = Path(data_dir).expanduser()
    try:
        _check_declared_size(path)
        with open(path, "rb") as fh:  # our handle, so a broken file is closed too
            loaded = np.load(fh, allow_pickle=False)
            if isinstance(loaded, np.ndarray):  # .npy: the images themselves
                images, labels = loaded, None
            else:  # .npz
                if "images" not in loaded.files:
                    raise DataError(
                        f"{path} holds {loaded.files}; it needs an array named 'images'"
                    )
                images = loaded["images"]
                labels = loaded["labels"] if "labels" in loaded.files else None
    except FileNotFoundError:
        raise DataError(f"no array file at {path}") from None
    except DataError:
        raise
    except Exception as err:  # noqa: BLE001  damaged headers and archives raise OSError, ValueError,
        # EOFError, BadZipFile, SyntaxError, tokenize.TokenError, ...: all mean "unreadable".
        raise DataError(
            f"{path} is not a readable .npy/.npz file (pickled objects are refused): "
            f"{type(err).__name__}: {err}"
        ) from None
    data = from_tensors(images, labels, name=str(path))  # errors name the file
    data.name = "arrays"
    data.source = f"{path} ({sum(len(s) for s in data.splits.values())} images)"
    return data


def max_data_bytes() -> int:
    """The most bytes of arrays a data file may declare: ``$DEEPGEN_MAX_DATA_BYTES``, by
    default 4 GiB."""
    value = os.environ.get("DEEPGEN_MAX_DATA_BYTES", "")
    try:
        return int(value) if value else 4 << 30
    except ValueError:
        raise DataError(
            f"DEEPGEN_MAX_DATA_BYTES must be a whole number of bytes, not {value!r}"
        ) from None


def _check_declared_size(path: Path) -> None:
    """Refuse a .npy/.npz whose arrays declare more than :func:`max_data_bytes` before any
    is read, so that a small compressed file cannot inflate into memory (a "zip bomb")."""
    limit = max_data_bytes()
    with open(path, "rb") as fh:
        if zipfile.is_zipfile(fh):
            with zipfile.ZipFile(fh) as archive:
                declared = sum(info.file_size for info in archive.infolist())
        else:
            fh.seek(0)
            fmt = np.lib.format
            try:
                version = fmt.read_magic(fh)
                read_header = {
                    (1, 0): fmt.read_array_header_1_0,
                    (2, 0): fmt.read_array_header_2_0,
                }[version]
                shape, _, dtype = read_header(fh)
            except (ValueError, OSError, SyntaxError, KeyError):
                return  # not a .npy of a version read here: np.load says what is wrong
            declared = math.prod(shape) * dtype.itemsize
    if declared > limit:
        raise DataError(
            f"{path} declares {declared:,} bytes of arrays, more than the {limit:,} allowed; if it is "
            "meant, raise the limit with DEEPGEN_MAX_DATA_BYTES"
        )


def save_arrays(
    path: str | os.PathLike, images: torch.Tensor, labels: torch.Tensor | None = None
) -> Path:
    """Write uint8 ``images`` (N, C, H, W) and optional ``labels`` (N,) to an ``.npz`` that
    ``arrays`` reads, atomically (no pickle). Returns the path."""
    arrays = {"images": images.detach().cpu().numpy()}
    if labels is not None:
        arrays["labels"] = labels.detach().cpu().numpy()
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return atomic_write_bytes(Path(path), buf.getvalue())


# --- data stored in a run folder --------------------------------------------------------


def save_splits(dataset: Dataset, path: Path) -> Path:
    """Write every split of ``dataset`` to an ``.npz`` at ``path`` atomically (no pickle):
    arrays ``SPLIT/x``, ``SPLIT/labels``, ``SPLIT/lengths``, ``num_classes`` and, for token
    data, ``vocabulary`` and ``grammar``. A run
    trained on data built in memory keeps it this way, so resume, report and eval use it."""
    arrays = {"num_classes": np.array(-1 if dataset.num_classes is None else dataset.num_classes)}
    if dataset.vocabulary is not None:
        arrays["vocabulary"] = np.array(dataset.vocabulary, dtype=str)
    if dataset.grammar is not None:
        arrays["grammar"] = np.array(dataset.grammar, dtype=str)
    for name, split in dataset.splits.items():
        for field, t in (("x", split.x), ("labels", split.labels), ("lengths", split.lengths)):
            if t is not None:
                arrays[f"{name}/{field}"] = t.detach().cpu().numpy()
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return atomic_write_bytes(path, buf.getvalue())


def stored_dataset(spec, data_dir=None, **_) -> Dataset:
    """The splits :func:`save_splits` wrote to ``data_dir`` (an .npz file)."""
    if data_dir is None:
        raise DataError("stored data needs its file (data_dir)")
    path = Path(data_dir)
    try:
        with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as loaded:
            arrays = {k: loaded[k] for k in loaded.files}
    except FileNotFoundError:
        raise DataError(f"the run's stored data {path} is missing") from None
    except Exception as err:  # noqa: BLE001  any damage to the archive means "unreadable"
        raise DataError(
            f"the run's stored data {path} is unreadable: {type(err).__name__}: {err}"
        ) from None
    splits = {}
    for key in arrays:
        name, _, field = key.partition("/")
        if field == "x":
            get = lambda f: (
                torch.from_numpy(arrays[f"{name}/{f}"]) if f"{name}/{f}" in arrays else None
            )
            splits[name] = Split(get("x"), get("labels"), get("lengths"))
    if "train" not in splits:
        raise DataError(f"the run's stored data {path} has no training split")
    classes = int(arrays["num_classes"]) if "num_classes" in arrays else -1
    vocabulary = tuple(str(v) for v in arrays["vocabulary"]) if "vocabulary" in arrays else None
    grammar = str(arrays["grammar"]) if "grammar" in arrays else None
    return Dataset(
        "stored",
        splits,
        num_classes=None if classes < 0 else classes,
        source=str(path),
        vocabulary=vocabulary,
        grammar=grammar,
    )

"""The dataset registry: what each dataset is, where its files are looked for, and loading.

Images are held in memory as uint8 tensors of shape (N, C, H, W); labels as int64 (N,).
Every dataset has ``train``, ``valid`` and ``test`` splits.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from pydantic import Field

from ..config import Config, DataConfig, validate
from ..errors import ConfigError, DataError, option
from ..fileio import sha256_bytes
from ..registry import Registry
from .idx import parse_idx, read_idx_bytes

SYSTEM_DIRS = (Path("/usr/share/datasets"),)


@dataclass
class Split:
    """One split: ``x`` uint8 images (N, C, H, W) in [0, 255], float points (N, D) (used as
    they are), or int64 token ids (N, T) padded after each sequence's end; ``labels``
    int64 (N,) or None; ``lengths`` int64 (N,) sequence lengths (token data only)."""

    x: torch.Tensor
    labels: torch.Tensor | None = None
    lengths: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def take(self, index: torch.Tensor, keep_labels: bool = True) -> Split:
        """The rows ``index`` (a 1-D index tensor), with or without their labels."""
        pick = lambda t: None if t is None else t[index]
        return Split(self.x[index], pick(self.labels) if keep_labels else None, pick(self.lengths))


@dataclass
class Dataset:
    """A dataset held in memory: named splits of images, points or token sequences.

    ``origin`` is the :class:`deepgen.config.DataConfig` that loads it again (set by
    :func:`load_dataset`); None for data built in memory (``from_tensors``), which a run
    folder then stores beside its checkpoints.
    """

    name: str
    splits: dict[str, Split]
    num_classes: int | None = None
    source: str = ""
    origin: DataConfig | None = None
    vocabulary: tuple[str, ...] | None = None  # token data: the string of each token id
    grammar: str | None = None  # token data of a grammar: its text in nltk notation

    @property
    def data_shape(self) -> tuple[int, ...]:
        """The shape of one example: (C, H, W) images, (D,) points, (T,) token ids."""
        return tuple(self.splits["train"].x.shape[1:])

    @property
    def kind(self) -> str:
        """ "images" (uint8), "points" (float) or "sequences" (integer token ids)."""
        x = self.splits["train"].x
        if x.dtype == torch.uint8:
            return "images"
        return "points" if x.is_floating_point() else "sequences"

    @property
    def is_points(self) -> bool:
        return self.kind == "points"

    def sizes(self) -> dict[str, int]:
        """Examples per split: train, valid, test, then any others by name."""
        order = {"train": 0, "valid": 1, "test": 2}
        names = sorted(self.splits, key=lambda n: (order.get(n, 3), n))
        return {name: len(self.splits[name]) for name in names}

    def content_sha256(self) -> str:
        """sha256 of every split's arrays (values, dtypes and shapes) and of the vocabulary
        and grammar of token data: equal exactly when the data is, whatever file or code it
        came from."""
        h = hashlib.sha256()
        if self.vocabulary is not None:
            h.update(("vocabulary/" + "\x00".join(self.vocabulary)).encode())
        if self.grammar is not None:
            h.update(("grammar/" + self.grammar).encode())
        for name, split in sorted(self.splits.items()):
            for field_name in ("x", "labels", "lengths"):
                t = getattr(split, field_name)
                h.update(f"{name}/{field_name}/".encode())
                if t is None:
                    h.update(b"none")
                    continue
                t = t.detach().cpu().contiguous()
                h.update(f"{t.dtype}/{tuple(t.shape)}/".encode())
                h.update(t.numpy().data)
        return h.hexdigest()

    def __getitem__(self, split: str) -> Split:
        if split not in self.splits:
            raise DataError(
                f"dataset {self.name!r} has no split {split!r}; it has {sorted(self.splits)}"
            )
        return self.splits[split]


@dataclass(frozen=True)
class IdxFile:
    """One IDX file of a dataset: its standard name and the sha256 of its decompressed bytes."""

    name: str
    sha256: str
    shape: tuple[int, ...]


class NoOptions(Config):
    """A dataset without options."""


@dataclass(frozen=True)
class DatasetSpec:
    """A registered dataset: how to find or make it, its options, and how to fetch it."""

    name: str
    description: str
    load: Callable[..., Dataset]
    files: tuple[IdxFile, ...] = ()
    fetch_hint: str = ""
    sources: tuple = field(default=())  # fetch sources tried in order (see fetch.py)
    options: type[Config] = NoOptions  # the dataset's options (``DataConfig.options``)
    origin: str = "generated"  # where a dataset without files comes from, for `deepgen data list`


DATASETS: Registry[DatasetSpec] = Registry("dataset")


def default_cache_dir() -> Path:
    """``$DEEPGEN_DATA`` if set, else ``$XDG_CACHE_HOME/deepgen`` (``~/.cache/deepgen``)."""
    env = os.environ.get("DEEPGEN_DATA")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "deepgen"


def search_dirs(name: str, data_dir: str | os.PathLike | None = None) -> list[Path]:
    """Directories searched for dataset ``name``, in order.

    ``data_dir`` (and ``data_dir/name``), then the cache (``$DEEPGEN_DATA/name``), then
    system directories such as ``/usr/share/datasets/name`` (Debian's convention).
    """
    dirs: list[Path] = []
    if data_dir is not None:
        d = Path(data_dir).expanduser()
        dirs += [d / name, d]
    dirs.append(default_cache_dir() / name)
    dirs += [s / name for s in SYSTEM_DIRS]
    return dirs


def _find_file(directory: Path, name: str) -> Path | None:
    for candidate in (directory / f"{name}.gz", directory / name):
        if candidate.is_file():
            return candidate
    return None


def locate_idx_files(spec: DatasetSpec, data_dir=None) -> dict[str, Path]:
    """The directory holding all of ``spec``'s IDX files, as name -> path.

    A ``data_dir`` the user names is the only place looked (``data_dir/NAME``, then
    ``data_dir``): it is used or refused, never skipped for a copy elsewhere. Without
    one, every directory of :func:`search_dirs` is tried in order.

    Raises:
        DataError: no searched directory holds them all; the message lists every place
            looked (or the files a named directory lacks) and the command that fetches them.
    """
    if data_dir is not None:
        return _named_dir_files(spec, Path(data_dir).expanduser())
    looked = []
    for d in search_dirs(spec.name):
        found = {f.name: _find_file(d, f.name) for f in spec.files}
        if all(found.values()):
            return found  # type: ignore[return-value]
        looked.append(str(d))
    raise DataError(
        f"dataset {spec.name!r} not found; looked in: {', '.join(looked)}. {spec.fetch_hint}"
    )


def _named_dir_files(spec: DatasetSpec, directory: Path) -> dict[str, Path]:
    for d in (directory / spec.name, directory):
        found = {f.name: _find_file(d, f.name) for f in spec.files}
        if all(found.values()):
            return found  # type: ignore[return-value]
        if any(found.values()):
            missing = ", ".join(name for name, path in found.items() if path is None)
            raise DataError(
                f"{option('data_dir')}: {d} holds only part of {spec.name}: {missing} missing "
                f"(.gz or not); complete it, or leave out {option('data_dir')} to use the cache"
            )
    raise DataError(
        f"{option('data_dir')}: neither {directory / spec.name} nor {directory} holds "
        f"{spec.name}'s files ({', '.join(f.name for f in spec.files)}, each .gz or not); "
        f"{spec.fetch_hint}, or leave out {option('data_dir')}"
    )


def load_idx_arrays(spec: DatasetSpec, data_dir=None) -> tuple[dict[str, np.ndarray], str]:
    """Read and verify every IDX file of ``spec``: checksum of the decompressed bytes, shape.

    Returns (name -> uint8 array, directory they came from).
    """
    paths = locate_idx_files(spec, data_dir)
    arrays = {}
    for f in spec.files:
        path = paths[f.name]
        data = read_idx_bytes(path, limit=4 + 4 * len(f.shape) + math.prod(f.shape))
        array = parse_idx(data, str(path))  # format errors first: they say more
        if array.shape != f.shape:
            raise DataError(f"{path} has shape {array.shape}, expected {f.shape}")
        digest = sha256_bytes(data)
        if digest != f.sha256:
            raise DataError(
                f"{path} is corrupt: sha256 of its contents is {digest[:16]}..., expected "
                f"{f.sha256[:16]}...; delete it and run `deepgen data fetch {spec.name}`"
            )
        arrays[f.name] = array
    return arrays, str(paths[spec.files[0].name].parent)


class IdxOptions(Config):
    """Options of the datasets in MNIST's layout (a training file and a test file)."""

    n_valid: int = Field(
        10_000,
        ge=1,
        description="last images of the training file held out as the validation split "
        "(10,000: the standard 50k/10k split of MNIST; Burda et al. 2015 trained on all 60k)",
    )


def idx_dataset(spec: DatasetSpec, data_dir=None, n_valid: int = 10_000, **_) -> Dataset:
    """Load an IDX dataset of MNIST's layout: images (N, H, W) grey or (N, C, H, W); the
    last ``n_valid`` training images form the validation split (for MNIST, 10,000 is the
    standard 50k/10k split).

    Raises:
        DataError: the files are missing or corrupt, or ``n_valid`` leaves no training image.
    """
    arrays, where = load_idx_arrays(spec, data_dir)

    def images(name: str) -> torch.Tensor:
        x = torch.from_numpy(arrays[name].copy())
        return x.unsqueeze(1) if x.ndim == 3 else x

    train_x = images("train-images-idx3-ubyte")
    train_y = torch.from_numpy(arrays["train-labels-idx1-ubyte"].astype(np.int64))
    test_x = images("t10k-images-idx3-ubyte")
    test_y = torch.from_numpy(arrays["t10k-labels-idx1-ubyte"].astype(np.int64))
    cut = len(train_x) - n_valid
    if cut < 1:
        raise DataError(
            f"{spec.name} option n_valid={n_valid} leaves no training image "
            f"(the training file has {len(train_x):,}); give at most {len(train_x) - 1:,}"
        )
    splits = {
        "train": Split(train_x[:cut], train_y[:cut]),
        "valid": Split(train_x[cut:], train_y[cut:]),
        "test": Split(test_x, test_y),
    }
    return Dataset(spec.name, splits, num_classes=10, source=where)


class FakeOptions(Config):
    """Options of ``fake``: image shape, split sizes and the seed of its pixels."""

    shape: tuple[int, int, int] = Field((1, 28, 28), description="(C, H, W) of the images")
    sizes: tuple[int, int, int] = Field(
        (2048, 256, 256), description="train, valid and test images"
    )
    seed: int = Field(0, ge=0, description="seed of the random pixels and labels")


def fake_dataset(
    spec: DatasetSpec, data_dir=None, shape=(1, 28, 28), sizes=(2048, 256, 256), seed: int = 0, **_
) -> Dataset:
    """Random uint8 images of ``shape`` (C, H, W) with random labels 0-9, for smoke tests."""
    if (
        len(shape) != 3
        or min(shape) < 1
        or min(sizes) < 1
        or max(shape) > 1024
        or max(sizes) > 10**6
    ):
        raise DataError(
            f"fake data needs a shape C,H,W of sizes 1 to 1024 and split sizes of 1 to "
            f"10^6, not {tuple(shape)} and {tuple(sizes)}"
        )
    g = torch.Generator().manual_seed(seed)
    splits = {}
    for split, n in zip(("train", "valid", "test"), sizes):
        images = torch.randint(0, 256, (n, *shape), generator=g, dtype=torch.uint8)
        splits[split] = Split(images, torch.randint(0, 10, (n,), generator=g))
    return Dataset(spec.name, splits, num_classes=10, source="generated")


def dataset_options(name: str, options: dict) -> dict:
    """``options`` validated against dataset ``name``'s options (defaults filled in).

    Raises:
        ConfigError: unknown dataset, an option the dataset does not take, or a bad value.
    """
    spec = DATASETS[name]
    unknown = sorted(set(options) - set(spec.options.model_fields))
    if unknown:
        takes = ", ".join(spec.options.model_fields) or "none"
        raise ConfigError(
            f"dataset {name} takes no option {', '.join(unknown)} (its options: {takes})"
        )
    return validate(spec.options, options, prefix=f"{name} option ").model_dump()


def load_dataset(name: str, data_dir=None, log=None, **options) -> Dataset:
    """Load dataset ``name`` from the first place it is found (see :func:`search_dirs`),
    with its ``options`` (e.g. imagefolder's ``image_size``); the result records the
    :class:`DataConfig` that loads it again (``origin``).

    Raises:
        ConfigError: unknown dataset name, or an option it does not take.
        DataError: missing (with the fetch command in the message), corrupt or truncated.
    """
    spec = DATASETS[name]
    options = dataset_options(name, options)
    dataset = spec.load(spec, data_dir=data_dir, log=log, **options)
    dataset.origin = DataConfig(
        name=name, data_dir=None if data_dir is None else str(data_dir), options=options
    )
    return dataset

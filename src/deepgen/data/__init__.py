"""Datasets: registry, loading, fetching, IDX files and batching."""

from . import builtin as _builtin  # noqa: F401  (registers mnist, fashion-mnist, fake)
from .arrays import from_tensors
from .batches import PREPROCESS, binarize, iterate_batches, symmetric, unit
from .datasets import DATASETS, Dataset, Split, default_cache_dir, load_dataset, search_dirs
from .fetch import fetch_dataset
from .idx import encode_idx, parse_idx, read_idx

__all__ = [
    "DATASETS", "PREPROCESS", "Dataset", "Split", "binarize", "default_cache_dir", "from_tensors",
    "encode_idx", "fetch_dataset", "iterate_batches", "load_dataset", "parse_idx",
    "read_idx", "search_dirs", "symmetric", "unit",
]

"""Datasets: registry, loading, fetching, IDX files, streams and batching."""

from . import builtin as _builtin  # noqa: F401  (registers the built-in datasets)
from .arrays import from_sequences, from_tensors
from .batches import PREPROCESS, StreamOrder, binarize, symmetric, unit
from .datasets import DATASETS, Dataset, Split, default_cache_dir, load_dataset, search_dirs
from .fetch import fetch_dataset
from .idx import encode_idx, parse_idx, read_idx
from .streams import load_stream, take_part

__all__ = [
    "DATASETS",
    "PREPROCESS",
    "Dataset",
    "Split",
    "StreamOrder",
    "binarize",
    "default_cache_dir",
    "encode_idx",
    "fetch_dataset",
    "from_sequences",
    "from_tensors",
    "load_dataset",
    "load_stream",
    "parse_idx",
    "read_idx",
    "search_dirs",
    "symmetric",
    "take_part",
    "unit",
]

"""A trained model outside a run folder: ``model.save(path)`` (or ``deepgen.save``) and
``deepgen.load(path)``, like diffusers' save_pretrained / from_pretrained.

A saved model is a folder of two files: ``model.safetensors`` (every parameter and buffer)
and ``model.json`` (the family, its config with the example shapes, the deepgen version and
the sha256 of the weights). It is written into a temporary folder beside ``path`` and
renamed into place, so ``path`` is either absent or complete; nothing is unpickled.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import nn

from .errors import CheckpointError
from .fileio import fsync_dir, parse_json, read_small_file, sha256_bytes
from .version import __version__

WEIGHTS, META = "model.safetensors", "model.json"
WEIGHTS_LIMIT = 16 << 30  # bytes


def is_saved_model(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a folder written by :func:`save_model`."""
    return (Path(path) / META).is_file()


def save_model(model: nn.Module, path: str | os.PathLike) -> Path:
    """Write ``model`` (weights and config) to the new folder ``path``; returns it.

    Raises:
        CheckpointError: ``path`` exists (a saved model is never overwritten in place).
    """
    path = Path(path)
    if path.exists():
        raise CheckpointError(f"{path} exists; save to a new folder (or delete it first)")
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    blob = st_save(state, metadata={"family": model.family})
    meta = {
        "family": model.family,
        "model": model.config.model_dump(mode="json"),
        "deepgen_version": __version__,
        "weights_sha256": sha256_bytes(blob),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        for name, data in ((WEIGHTS, blob), (META, json.dumps(meta, indent=2).encode() + b"\n")):
            with open(tmp / name, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
        os.rename(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    fsync_dir(path.parent)
    return path


def read_saved_model(path: str | os.PathLike) -> tuple[dict, dict[str, torch.Tensor]]:
    """(model.json's record: family, model config, ..., the weights) of a folder written by
    :func:`save_model`; :func:`deepgen.load` builds the model from them.

    Raises:
        CheckpointError: a file is missing or unreadable, the record lacks a field, or the
            weights differ from their recorded sha256.
    """
    path = Path(path)
    meta = parse_json(
        read_small_file(path / META, 1 << 20, CheckpointError), CheckpointError, str(path / META)
    )
    if not isinstance(meta, dict) or not {"family", "model", "weights_sha256"} <= set(meta):
        raise CheckpointError(f"{path / META} lacks family, model or weights_sha256")
    blob = read_small_file(path / WEIGHTS, WEIGHTS_LIMIT, CheckpointError)
    if sha256_bytes(blob) != meta["weights_sha256"]:
        raise CheckpointError(f"{path / WEIGHTS} differs from the sha256 {path / META} records")
    try:
        return meta, st_load(blob)
    except SafetensorError as err:
        raise CheckpointError(f"{path / WEIGHTS} is not a safetensors file: {err}") from None

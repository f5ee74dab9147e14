"""Checkpoints: weights and optimiser tensors in safetensors, everything else in JSON.

Layout of one checkpoint, ``RUN/checkpoints/ckpt-<iteration>/``::

    model.safetensors   model state dict (weights and buffers)
    optim.safetensors   optimiser tensors of every player, and RNG states
    state.json          counters, optimiser structure, hyperparameters
    manifest.json       sha256 of the three files above; written last

A checkpoint is assembled in a temporary directory and renamed into place, so it exists
completely or not at all. Nothing is ever unpickled.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from .errors import CheckpointError
from .fileio import fsync_dir, sha256_bytes

FILES = ("model.safetensors", "optim.safetensors", "state.json")
PREFIX = "ckpt-"


@dataclass
class Checkpoint:
    """A loaded checkpoint: ``model`` and ``tensors`` are CPU tensors by name; ``state``
    is the JSON state (iteration, optimiser structure, ...)."""

    path: Path
    model: dict[str, torch.Tensor]
    tensors: dict[str, torch.Tensor]
    state: dict[str, Any]

    @property
    def iteration(self) -> int:
        return int(self.state["iteration"])


def flatten_optimizer(name: str, state_dict: dict) -> tuple[dict[str, torch.Tensor], dict]:
    """Split an optimiser state dict into tensors (keyed ``name/pid/key``) and JSON."""
    tensors, per_param = {}, {}
    for pid, entries in state_dict["state"].items():
        per_param[str(pid)] = {}
        for key, value in entries.items():
            if torch.is_tensor(value):
                tensors[f"optim/{name}/{pid}/{key}"] = value.detach().cpu().contiguous()
                per_param[str(pid)][key] = {"tensor": True}
            else:
                per_param[str(pid)][key] = {"value": value}
    return tensors, {"state": per_param, "param_groups": state_dict["param_groups"]}


def unflatten_optimizer(name: str, structure: dict, tensors: dict[str, torch.Tensor]) -> dict:
    """Inverse of :func:`flatten_optimizer`."""
    state = {}
    for pid, entries in structure["state"].items():
        state[int(pid)] = {
            key: tensors[f"optim/{name}/{pid}/{key}"] if spec.get("tensor") else spec["value"]
            for key, spec in entries.items()
        }
    return {"state": state, "param_groups": structure["param_groups"]}


def checkpoint_dirs(run: Path) -> list[Path]:
    """Completed checkpoint directories of a run, newest first."""
    root = Path(run) / "checkpoints"
    if not root.is_dir():
        return []
    dirs = [p for p in root.iterdir() if p.is_dir() and p.name.startswith(PREFIX)]
    return sorted(dirs, key=lambda p: p.name, reverse=True)


def save_checkpoint(run: Path, model_state: dict[str, torch.Tensor], tensors: dict[str, torch.Tensor],
                    state: dict[str, Any], keep: int = 2) -> Path:
    """Write a checkpoint atomically and keep only the newest ``keep``; returns its path."""
    root = Path(run) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    blobs = {
        "model.safetensors": st_save({k: v.detach().cpu().contiguous() for k, v in model_state.items()}),
        "optim.safetensors": st_save(tensors),
        "state.json": (json.dumps(state, indent=1, sort_keys=True) + "\n").encode(),
    }
    manifest = {name: sha256_bytes(blob) for name, blob in blobs.items()}
    blobs["manifest.json"] = (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode()
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=root))
    try:
        for name, blob in blobs.items():
            with open(tmp / name, "wb") as fh:
                fh.write(blob)
                fh.flush()
                os.fsync(fh.fileno())
        fsync_dir(tmp)
        final = root / f"{PREFIX}{int(state['iteration']):09d}"
        if final.exists():
            _discard(final)
        tmp.rename(final)
        fsync_dir(root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for old in checkpoint_dirs(run)[keep:]:
        _discard(old)
    for stale in root.glob(".tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
    return final


def _discard(path: Path) -> None:
    """Remove a checkpoint directory so that a kill at any moment leaves either the whole
    checkpoint or none: first renamed out of sight (atomic), then deleted. Deleting in place
    could leave a half-deleted ``ckpt-*`` that looks like a corrupt checkpoint."""
    hidden = path.with_name(f".tmp-discard-{path.name}")
    shutil.rmtree(hidden, ignore_errors=True)  # left by a kill during an earlier discard
    try:
        path.rename(hidden)
    except FileNotFoundError:
        return
    shutil.rmtree(hidden, ignore_errors=True)


def load_checkpoint(path: Path) -> Checkpoint:
    """Load and verify one checkpoint directory.

    Raises:
        CheckpointError: a file is missing, its sha256 differs from the manifest, or it
            cannot be parsed.
    """
    path = Path(path)
    try:
        manifest = json.loads((path / "manifest.json").read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{path} is incomplete: manifest.json is missing") from None
    except (OSError, ValueError) as err:
        raise CheckpointError(f"{path}/manifest.json is unreadable: {err}") from None
    blobs = {}
    for name in FILES:
        try:
            blob = (path / name).read_bytes()
        except OSError:
            raise CheckpointError(f"{path} is incomplete: {name} is missing") from None
        if not isinstance(manifest, dict) or sha256_bytes(blob) != manifest.get(name):
            raise CheckpointError(f"{path}/{name} is corrupt: its sha256 does not match manifest.json")
        blobs[name] = blob
    try:
        model = st_load(blobs["model.safetensors"])
        tensors = st_load(blobs["optim.safetensors"])
        state = json.loads(blobs["state.json"])
    except (SafetensorError, ValueError) as err:
        raise CheckpointError(f"{path} cannot be parsed: {err}") from None
    return Checkpoint(path, model, tensors, state)


def latest_checkpoint(run: Path, warn=None) -> Checkpoint:
    """The newest checkpoint of ``run`` that verifies; older ones are tried when newer are
    corrupt, and ``warn`` (a callable) is told which were skipped.

    Raises:
        CheckpointError: the run has no checkpoint that verifies.
    """
    problems = []
    for path in checkpoint_dirs(run):
        try:
            ckpt = load_checkpoint(path)
        except CheckpointError as err:
            problems.append(str(err))
            if warn:
                warn(f"skipping a bad checkpoint: {err}")
            continue
        return ckpt
    detail = ("; ".join(problems)) if problems else "none was written yet"
    raise CheckpointError(f"{run} has no usable checkpoint ({detail})")

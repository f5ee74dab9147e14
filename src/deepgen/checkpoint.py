"""Checkpoints: weights and optimiser tensors in safetensors, everything else in JSON.

Layout of one checkpoint, ``RUN/checkpoints/ckpt-<iteration>/``::

    model.safetensors   model state dict (weights and buffers)
    optim.safetensors   optimiser tensors of every player, and RNG states
    state.json          counters, optimiser structure, hyperparameters
    manifest.json       sha256 and size of the three files above; written last

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
from .fileio import fsync_dir, parse_json, read_small_file, sha256_bytes

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
    manifest_sha256: str = ""
    newest: bool = True

    @property
    def iteration(self) -> int:
        return int(self.state["iteration"])

    def record(self) -> dict[str, Any]:
        """What a number computed from this checkpoint should cite: its folder name,
        iteration, the sha256 of its manifest (which fixes every file), and whether it was
        the run's newest."""
        return {
            "name": self.path.name,
            "iteration": self.iteration,
            "manifest_sha256": self.manifest_sha256,
            "newest": self.newest,
        }


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


def save_checkpoint(
    run: Path,
    model_state: dict[str, torch.Tensor],
    tensors: dict[str, torch.Tensor],
    state: dict[str, Any],
    keep: int = 2,
) -> Path:
    """Write a checkpoint atomically and keep only the newest ``keep``; returns its path."""
    root = Path(run) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    blobs = {
        "model.safetensors": st_save(
            {k: v.detach().cpu().contiguous() for k, v in model_state.items()}
        ),
        "optim.safetensors": st_save(tensors),
        "state.json": (json.dumps(state, indent=1, sort_keys=True) + "\n").encode(),
    }
    manifest: dict[str, Any] = {name: sha256_bytes(blob) for name, blob in blobs.items()}
    manifest["bytes"] = {name: len(blob) for name, blob in blobs.items()}
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


MANIFEST_LIMIT = 1 << 20  # bytes of manifest.json; it holds three hashes and sizes
STATE_LIMIT = 64 << 20  # bytes of state.json when the manifest predates recorded sizes


def load_checkpoint(path: Path) -> Checkpoint:
    """Load and verify one checkpoint directory.

    Each file must be a regular file of the size the manifest records (checked before it
    is read, so a FIFO, a device or an inflated file is refused, not read) with the
    manifest's sha256; ``state.json`` must hold a whole iteration >= 0 that matches the
    directory's name.

    Raises:
        CheckpointError: a file is missing, of another size or type, its sha256 differs
            from the manifest, or it cannot be parsed.
    """
    path = Path(path)
    raw = read_small_file(
        path / "manifest.json", MANIFEST_LIMIT, CheckpointError, f"{path}/manifest.json"
    )
    manifest = parse_json(raw, CheckpointError, f"{path}/manifest.json")
    if not isinstance(manifest, dict):
        raise CheckpointError(f"{path}/manifest.json is not a JSON object")
    sizes = manifest.get("bytes") if isinstance(manifest.get("bytes"), dict) else {}
    blobs = {}
    for name in FILES:
        size = sizes.get(name)
        limit = (
            size
            if isinstance(size, int) and not isinstance(size, bool) and size >= 0
            else (STATE_LIMIT if name == "state.json" else 1 << 40)
        )
        blob = read_small_file(path / name, limit, CheckpointError, f"{path}/{name}")
        if sha256_bytes(blob) != manifest.get(name):
            raise CheckpointError(
                f"{path}/{name} is corrupt: its sha256 does not match manifest.json"
            )
        blobs[name] = blob
    try:
        model = st_load(blobs["model.safetensors"])
        tensors = st_load(blobs["optim.safetensors"])
    except (SafetensorError, ValueError) as err:
        raise CheckpointError(f"{path} cannot be parsed: {err}") from None
    state = parse_json(blobs["state.json"], CheckpointError, f"{path}/state.json")
    _check_state(path, state)
    return Checkpoint(path, model, tensors, state, sha256_bytes(raw))


def _check_state(path: Path, state: Any) -> None:
    """A state.json must be an object with a whole, non-negative iteration equal to the
    number in the directory's name (which was made from it)."""
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}/state.json is not a JSON object")
    iteration = state.get("iteration")
    if not isinstance(iteration, int) or isinstance(iteration, bool) or iteration < 0:
        raise CheckpointError(
            f"{path}/state.json: iteration must be a whole number >= 0, not {iteration!r}"
        )
    if path.name.startswith(PREFIX) and path.name != f"{PREFIX}{iteration:09d}":
        raise CheckpointError(
            f"{path}/state.json says iteration {iteration}, but the folder is {path.name}"
        )


def latest_checkpoint(run: Path, warn=None, accept=None) -> Checkpoint:
    """The newest checkpoint of ``run`` that verifies and that ``accept`` takes.

    Older checkpoints are tried when newer ones are corrupt or when ``accept`` (a callable
    taking a :class:`Checkpoint`, raising CheckpointError, e.g. "does not fit the model")
    refuses them. ``warn`` (a callable taking one line) is told each one skipped and, when
    the checkpoint returned is not the newest, which one is used instead.

    Raises:
        CheckpointError: the run has no checkpoint that verifies and is accepted.
    """
    problems = []
    dirs = checkpoint_dirs(run)
    for path in dirs:
        try:
            ckpt = load_checkpoint(path)
            if accept is not None:
                accept(ckpt)
        except CheckpointError as err:
            problems.append(str(err))
            if warn:
                warn(f"skipping a bad checkpoint: {err}")
            continue
        ckpt.newest = path == dirs[0]
        if not ckpt.newest and warn:
            warn(
                f"using the older checkpoint {path.name} (iteration {ckpt.iteration}), not the newest, "
                f"{dirs[0].name}, which is unusable"
            )
        return ckpt
    detail = ("; ".join(problems)) if problems else "none was written yet"
    raise CheckpointError(f"{run} has no usable checkpoint ({detail})")


def fits(module: torch.nn.Module, family: str | None = None):
    """An ``accept`` for :func:`latest_checkpoint`: the checkpoint's weights must have
    exactly ``module``'s keys, shapes and dtypes, be finite, and (when ``family`` is given
    and the checkpoint records one) come from that family. A checkpoint that verifies by
    hash can still fail this, e.g. one re-signed after an edit, or copied from another run.
    """
    expected = module.state_dict()

    def accept(ckpt: Checkpoint) -> None:
        recorded = ckpt.state.get("family")
        if family is not None and recorded is not None and recorded != family:
            raise CheckpointError(f"{ckpt.path} is a {recorded} checkpoint, not a {family} one")
        problem = tensor_mismatch(expected, ckpt.model)
        if problem:
            raise CheckpointError(f"{ckpt.path} does not fit the model: {problem}")

    return accept


def tensor_mismatch(
    expected: dict[str, torch.Tensor], given: dict[str, torch.Tensor]
) -> str | None:
    """One line describing how ``given`` differs from ``expected`` (keys, shapes, dtypes,
    non-finite values), or None when it matches."""
    missing = sorted(set(expected) - set(given))
    extra = sorted(set(given) - set(expected))
    if missing or extra:
        show = lambda keys: (
            ", ".join(keys[:3]) + (f" and {len(keys) - 3} more" if len(keys) > 3 else "")
        )
        return "; ".join(
            ([f"missing {show(missing)}"] if missing else [])
            + ([f"unexpected {show(extra)}"] if extra else [])
        )
    for key, want in expected.items():
        got = given[key]
        if got.shape != want.shape:
            return f"{key} has shape {tuple(got.shape)}, the model needs {tuple(want.shape)}"
        if got.dtype != want.dtype:
            return (
                f"{key} is {str(got.dtype).removeprefix('torch.')}, the model needs "
                f"{str(want.dtype).removeprefix('torch.')}"
            )
        if got.is_floating_point() and not bool(torch.isfinite(got).all()):
            return f"{key} holds NaN or infinite values"
    return None

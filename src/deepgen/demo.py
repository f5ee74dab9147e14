"""The demo: fetch MNIST, train a VAE and a GAN on it, write one report.

Re-running it reuses finished runs (those with results.json) and resumes unfinished ones.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from . import api
from .config import DataConfig, RunConfig, TrainConfig
from .data import fetch_dataset
from .report import write_report
from .rundir import RunDir


def _log(msg: str) -> None:
    print(msg, file=sys.stderr)


def _train_or_resume(path: Path, config: RunConfig, progress: bool) -> None:
    if (path / "results.json").exists():
        _log(f"{path}: finished earlier, reused")
    elif (path / "checkpoints").is_dir() and any((path / "checkpoints").iterdir()):
        api.resume(path, progress=progress, log=_log)
    else:
        if path.exists() and not (path / "checkpoints").exists():
            shutil.rmtree(path)  # a run that never reached its first checkpoint
        _log(f"training {config.family} -> {path}")
        api.train(config, path, progress=progress, log=_log)


def run_demo(
    out: Path,
    vae_epochs: int = 10,
    gan_epochs: int = 5,
    device: str = "auto",
    progress: bool = True,
) -> Path:
    """Train ``out/vae`` (conv VAE) and ``out/gan`` (DCGAN) on MNIST; returns the report path."""
    fetch_dataset("mnist", log=_log)
    data = DataConfig(name="mnist")
    runs = {
        "vae": RunConfig(
            family="vae", model={}, data=data, train=TrainConfig(epochs=vae_epochs, device=device)
        ),
        "gan": RunConfig(
            family="gan", model={}, data=data, train=TrainConfig(epochs=gan_epochs, device=device)
        ),
    }
    for name, config in runs.items():
        _train_or_resume(out / name, config, progress)
    for name in runs:
        RunDir.open(out / name)
    return write_report(
        [out / name for name in runs], out / "report.html", title="deepgen demo: MNIST"
    )

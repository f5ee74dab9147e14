"""deepgen: deep generative models (VAEs, GANs, ...) you can train, sample, measure and read.

The public surface: build or load a model, fit it, sample from it::

    import deepgen
    model = deepgen.build_model("vae", {"net": "mlp"}, (1, 28, 28))
    deepgen.fit(model, "mnist", epochs=2, out="runs/mlp")
    model = deepgen.load("runs/mlp")
    images = model.sample(16, generator=deepgen.make_generator(0))
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from .version import __version__

if TYPE_CHECKING:  # what the names below are, for readers and type checkers
    from . import data, latent, losses, seeds
    from .api import (
        fit,
        load,
        make_generator,
        resume,
        run_data,
        sample,
        save,
        train,
        translate,
    )
    from .config import DataConfig, RunConfig, TrainConfig
    from .data import DATASETS, Dataset, fetch_dataset, from_tensors, load_dataset
    from .errors import (
        CheckpointError,
        ConfigError,
        DataError,
        DeepgenError,
        Interrupted,
        TrainingDiverged,
    )
    from .metrics.evaluate import evaluate
    from .models import MODELS, GenerativeModel, build_model, register_model, require, supports
    from .trainer import Trainer

# Each public name and the module it lives in, imported when first used (PEP 562): the
# command line then imports torch inside its own error handling, so a Ctrl-C during
# start-up is one line rather than a traceback.
_HOME = {
    "evaluate": "metrics.evaluate",
    "fit": "api",
    "load": "api",
    "make_generator": "api",
    "resume": "api",
    "run_data": "api",
    "sample": "api",
    "save": "api",
    "translate": "api",
    "train": "api",
    "DataConfig": "config",
    "RunConfig": "config",
    "TrainConfig": "config",
    "DATASETS": "data",
    "Dataset": "data",
    "fetch_dataset": "data",
    "from_tensors": "data",
    "load_dataset": "data",
    "CheckpointError": "errors",
    "ConfigError": "errors",
    "DataError": "errors",
    "DeepgenError": "errors",
    "Interrupted": "errors",
    "TrainingDiverged": "errors",
    "MODELS": "models",
    "GenerativeModel": "models",
    "build_model": "models",
    "register_model": "models",
    "require": "models",
    "supports": "models",
    "Trainer": "trainer",
}


def __getattr__(name: str):
    """A public name (see ``_HOME``) or a submodule, imported on first use."""
    if name in _HOME:
        value = getattr(importlib.import_module(f".{_HOME[name]}", __name__), name)
    else:
        try:
            value = importlib.import_module(f".{name}", __name__)
        except ModuleNotFoundError:
            raise AttributeError(f"module 'deepgen' has no attribute {name!r}") from None
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_HOME))


__all__ = [
    "DATASETS",
    "MODELS",
    "CheckpointError",
    "ConfigError",
    "DataConfig",
    "DataError",
    "Dataset",
    "DeepgenError",
    "GenerativeModel",
    "Interrupted",
    "RunConfig",
    "TrainConfig",
    "Trainer",
    "TrainingDiverged",
    "__version__",
    "build_model",
    "data",
    "evaluate",
    "fetch_dataset",
    "fit",
    "from_tensors",
    "latent",
    "load",
    "load_dataset",
    "losses",
    "make_generator",
    "register_model",
    "require",
    "resume",
    "run_data",
    "sample",
    "save",
    "seeds",
    "supports",
    "train",
    "translate",
]

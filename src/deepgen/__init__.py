"""deepgen: deep generative models (VAEs, GANs, ...) you can train, sample, measure and read.

The public surface: build or load a model, fit it, sample from it::

    import deepgen
    model = deepgen.build_model("vae", {"net": "mlp"}, (1, 28, 28))
    deepgen.fit(model, "mnist", epochs=2, out="runs/mlp")
    model = deepgen.load("runs/mlp")
    images = model.sample(16, generator=deepgen.make_generator(0))
"""

from . import data, latent, losses, seeds
from .api import fit, load, make_generator, resume, run_data, sample, train
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
from .models import MODELS, GenerativeModel, build_model, register_model, require, supports
from .train import Trainer
from .version import __version__

__all__ = [
    "DATASETS", "MODELS", "CheckpointError", "ConfigError", "DataConfig", "DataError", "Dataset",
    "DeepgenError", "GenerativeModel", "Interrupted", "RunConfig", "TrainConfig", "Trainer",
    "TrainingDiverged", "__version__", "build_model", "data", "fetch_dataset", "fit", "from_tensors",
    "latent", "load", "load_dataset", "losses", "make_generator", "register_model", "require", "resume",
    "run_data", "sample", "seeds", "supports", "train",
]

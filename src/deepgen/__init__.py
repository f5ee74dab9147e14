"""deepgen: deep generative models (VAEs, GANs, ...) you can train, sample, measure and read.

The public surface: build or load a model, fit it, sample from it::

    import deepgen
    model = deepgen.build_model("vae", {"net": "mlp"}, image_shape=(1, 28, 28))
    model.fit("mnist", epochs=2, out="runs/mlp")
    model = deepgen.load("runs/mlp")
    images = model.sample(16, generator=deepgen.make_generator(0))
"""

__version__ = "0.1.0"

from . import data, latent, losses  # noqa: E402
from .api import fit_model, load, make_generator, resume, sample, train  # noqa: E402
from .config import DataConfig, RunConfig, TrainConfig  # noqa: E402
from .data import DATASETS, Dataset, fetch_dataset, load_dataset  # noqa: E402
from .errors import (  # noqa: E402
    CheckpointError,
    ConfigError,
    DataError,
    DeepgenError,
    Interrupted,
    TrainingDiverged,
)
from .models import MODELS, GenerativeModel, build_model, register_model  # noqa: E402
from .train import Trainer  # noqa: E402

__all__ = [
    "DATASETS", "MODELS", "CheckpointError", "ConfigError", "DataConfig", "DataError",
    "Dataset", "DeepgenError", "GenerativeModel", "Interrupted", "RunConfig", "TrainConfig",
    "Trainer", "TrainingDiverged", "build_model", "data", "fetch_dataset", "fit_model", "latent", "load",
    "load_dataset", "losses", "make_generator", "register_model", "resume", "sample", "train",
]

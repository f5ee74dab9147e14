"""Model families. Importing this module registers every built-in family."""

from . import gan as _gan  # noqa: F401
from . import gmm as _gmm  # noqa: F401
from . import vae as _vae  # noqa: F401
from .base import (
    MODELS,
    Batch,
    GenerativeModel,
    ModelConfig,
    Player,
    build_model,
    make_config,
    register_model,
)
from .gan import GAN, GANConfig
from .gmm import GMM, GMMConfig
from .vae import VAE, VAEConfig

__all__ = [
    "GAN", "GANConfig", "GMM", "GMMConfig", "MODELS", "VAE", "VAEConfig", "Batch", "GenerativeModel",
    "ModelConfig", "Player", "build_model", "make_config", "register_model",
]

"""Model families. Importing this module registers every built-in family."""

from . import ae as _ae  # noqa: F401
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
from .gan import GAN, WGAN, WGANGP, GANConfig, WGANConfig, WGANGPConfig
from .gmm import GMM, GMMConfig
from .ae import AE, AEConfig
from .vae import IWAE, VAE, IWAEConfig, VAEConfig

__all__ = [
    "AE", "AEConfig", "IWAE", "IWAEConfig",
    "GAN", "WGAN", "WGANGP", "GANConfig", "WGANConfig", "WGANGPConfig", "GMM", "GMMConfig", "MODELS", "VAE", "VAEConfig", "Batch", "GenerativeModel",
    "ModelConfig", "Player", "build_model", "make_config", "register_model",
]

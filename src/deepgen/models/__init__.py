"""Model families. Importing this module registers every built-in family."""

from . import ae as _ae  # noqa: F401
from . import cvae as _cvae  # noqa: F401
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
from .gan import CGAN, GAN, WGAN, WGANGP, CGANConfig, GANConfig, WGANConfig, WGANGPConfig
from .gmm import GMM, GMMConfig
from .ae import AE, AEConfig
from .cvae import CVAE, CVAEConfig
from .vae import IWAE, VAE, IWAEConfig, VAEConfig

__all__ = [
    "AE", "AEConfig", "CVAE", "CVAEConfig", "IWAE", "IWAEConfig",
    "CGAN", "CGANConfig", "GAN", "WGAN", "WGANGP", "GANConfig", "WGANConfig", "WGANGPConfig", "GMM", "GMMConfig", "MODELS", "VAE", "VAEConfig", "Batch", "GenerativeModel",
    "ModelConfig", "Player", "build_model", "make_config", "register_model",
]

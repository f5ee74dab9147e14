"""Model families. Importing this module registers every built-in family."""

from . import adaptation as _adaptation  # noqa: F401
from . import ae as _ae  # noqa: F401
from . import cvae as _cvae  # noqa: F401
from . import cyclegan as _cyclegan  # noqa: F401
from . import gan as _gan  # noqa: F401
from . import gmm as _gmm  # noqa: F401
from . import grammar_vae as _grammar_vae  # noqa: F401
from . import m1 as _m1  # noqa: F401
from . import semi_supervised as _semi_supervised  # noqa: F401
from . import ssgan as _ssgan  # noqa: F401
from . import vae as _vae  # noqa: F401
from .adaptation import ADDA, DANN, SourceOnly, TargetOnly
from .ae import AE, AEConfig
from .base import ModelConfig, build_model, make_config
from .capabilities import (
    Capability,
    Classifier,
    ClosedForm,
    Completer,
    Conditional,
    DensityRatio,
    Encoder,
    ExactDensity,
    ImportanceWeighted,
    LatentSpace,
    Likelihood,
    MissingCapability,
    Sampler,
    Strings,
    Translator,
    require,
    supports,
)
from .contract import MODELS, Batch, GenerativeModel, Player, StreamBatch, register_model
from .cvae import CVAE, LabelCVAEConfig, QuadrantCVAE, QuadrantCVAEConfig
from .cyclegan import CycleGAN, CycleGANConfig
from .gan import CGAN, GAN, WGAN, WGANGP, CGANConfig, GANConfig, WGANConfig, WGANGPConfig
from .gmm import GMM, GMMConfig
from .m1 import M1, M1M2, M1Config, M1M2Config
from .semi_supervised import M2, M2Config, SupervisedBaseline
from .ssgan import SSGAN, SSGANConfig
from .vae import IWAE, VAE, IWAEConfig, VAEConfig

__all__ = [
    "ADDA",
    "AE",
    "CGAN",
    "CVAE",
    "DANN",
    "GAN",
    "GMM",
    "IWAE",
    "M1",
    "M1M2",
    "M2",
    "MODELS",
    "SSGAN",
    "VAE",
    "WGAN",
    "WGANGP",
    "AEConfig",
    "Batch",
    "CGANConfig",
    "Capability",
    "Classifier",
    "ClosedForm",
    "Completer",
    "Conditional",
    "CycleGAN",
    "CycleGANConfig",
    "DensityRatio",
    "Encoder",
    "ExactDensity",
    "GANConfig",
    "GMMConfig",
    "GenerativeModel",
    "IWAEConfig",
    "ImportanceWeighted",
    "LabelCVAEConfig",
    "LatentSpace",
    "Likelihood",
    "M1Config",
    "M1M2Config",
    "M2Config",
    "MissingCapability",
    "ModelConfig",
    "Player",
    "QuadrantCVAE",
    "QuadrantCVAEConfig",
    "SSGANConfig",
    "Sampler",
    "SourceOnly",
    "StreamBatch",
    "Strings",
    "SupervisedBaseline",
    "TargetOnly",
    "Translator",
    "VAEConfig",
    "WGANConfig",
    "WGANGPConfig",
    "build_model",
    "make_config",
    "register_model",
    "require",
    "supports",
]

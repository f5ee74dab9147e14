"""Generative adversarial networks: the GAN of Goodfellow et al. 2014 (minimax and
non-saturating losses) and LSGAN (Mao et al. 2017) as loss options of family ``gan``; the
WGAN (Arjovsky et al. 2017) and WGAN-GP (Gulrajani et al. 2017) as families of their own,
since their optimisers, step counts and critics differ.

Algorithm 1 of each paper: each iteration takes ``d_steps`` / ``n_critic`` discriminator
(critic) steps, each on a new data minibatch and fresh noise, then one generator step on
fresh noise. Networks: DCGAN (Radford et al. 2015) for images, MLPs for points (2-D
mixtures); ``net`` = auto picks by the data.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field, model_validator

from .. import losses
from ..errors import ConfigError, option
from ..improved_gan import ParameterAverage, with_historical_averaging
from ..nets import (
    BatchNormMLPGenerator,
    DCGANDiscriminator,
    DCGANGenerator,
    MaxoutDiscriminator,
    MLPDiscriminator,
    MLPGenerator,
    dcgan_init_,
    gaussian_init_,
)
from ..registry import Registry
from .base import ModelConfig, adam, one_hot_labels
from .capabilities import Conditional, DensityRatio, LatentSpace
from .contract import Batch, GenerativeModel, Player, register_model

# name -> (discriminator loss(real_out, fake_out), generator loss(fake_out)), each (B,).
GAN_LOSSES: Registry[tuple] = Registry("GAN loss")
GAN_LOSSES.register(
    "nonsaturating", (losses.discriminator_loss, losses.generator_loss_nonsaturating)
)
GAN_LOSSES.register("minimax", (losses.discriminator_loss, losses.generator_loss_minimax))
GAN_LOSSES.register("lsgan", (losses.lsgan_discriminator_loss, losses.lsgan_generator_loss))


class AdversarialConfig(ModelConfig):
    """What every adversarial family has: the noise and the networks."""

    latent_dim: int = Field(100, ge=1, le=4096, description="size of the noise z ~ N(0, I)")
    net: Literal["auto", "dcgan", "mlp", "pacgan"] = Field(
        "auto",
        description="G and D networks: dcgan (images), mlp (points or images), pacgan (points: "
        "Lin et al. 2018's G of 4 x hidden_dim with batch norm and D of 3 x 200 maxout "
        "units); auto picks by the data",
    )
    channels: int = Field(64, ge=1, le=1024, description="dcgan: base channel count of G and D")
    hidden_dim: int = Field(400, ge=1, le=8192, description="mlp: units per hidden layer")
    preprocess: str = Field("symmetric", description="symmetric ([-1, 1], for the tanh output)")
    # Salimans et al. 2016 ("Improved Techniques for Training GANs"), sec. 3: off by default.
    feature_matching: bool = Field(
        False,
        description="G minimises ||E f(x) - E f(G(z))||^2 over D's last hidden layer "
        "instead of its adversarial loss (sec. 3.1)",
    )
    minibatch_kernels: int = Field(
        0,
        ge=0,
        le=4096,
        description="minibatch discrimination kernels before D's output "
        "(sec. 3.2; 0 = off, the paper used 100)",
    )
    historical_averaging: float = Field(
        0.0,
        ge=0,
        description="weight of ||theta - mean of past theta||^2 in each player's "
        "loss (sec. 3.3; 0 = off)",
    )
    g_ema: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="decay of an exponential moving average of G's weights, which samples "
        "are drawn with (Karras et al. 2018, app. A.1; Yazici et al. 2019); "
        "0 = off, 0.999 typical",
    )


class GANConfig(AdversarialConfig):
    """Loss, discriminator steps per generator step (k) and Adam settings (Radford et al.
    2015: 2e-4, beta1 0.5)."""

    loss: Literal["nonsaturating", "minimax", "lsgan"] = Field(
        "nonsaturating",
        description="nonsaturating or minimax (Goodfellow et al. 2014), lsgan (Mao et al. 2017)",
    )
    d_steps: int = Field(1, ge=1, le=100, description="discriminator steps per generator step (k)")
    lr: float = Field(2e-4, gt=0, description="Adam learning rate of G and D")
    beta1: float = Field(
        0.5, ge=0, lt=1, description="Adam's first-moment decay beta1 (not the beta-VAE's --beta)"
    )
    beta2: float = Field(0.999, ge=0, lt=1, description="Adam's second-moment decay beta2")
    pack: int = Field(
        1,
        ge=1,
        le=64,
        description="PacGAN packing (Lin et al. 2018): D judges this "
        "many samples at once, all real or all fake; the batch size must divide by it",
    )
    r1_weight: float = Field(
        0.0,
        ge=0,
        description="gamma of the R1 penalty gamma/2 ||grad D(x)||^2 on "
        "real data (Mescheder et al. 2018, eq. 9); 0 = off",
    )
    label_smoothing: float = Field(
        0.0,
        ge=0,
        lt=0.5,
        description="one-sided label smoothing: real examples' target is 1 - "
        "this (Salimans et al. 2016, sec. 3.4, e.g. 0.1); fakes keep 0; cross-entropy losses only",
    )

    @model_validator(mode="after")
    def _smoothing_needs_cross_entropy(self):
        if self.label_smoothing and self.loss == "lsgan":
            raise ValueError(
                "label_smoothing applies to the cross-entropy losses (nonsaturating, "
                "minimax), not lsgan"
            )
        return self


class Adversarial(LatentSpace, GenerativeModel):
    """What every adversarial family shares: G and D (or the critic) by data kind, PacGAN
    packing, the conditioning channels of a cGAN, and the map between G's output and
    samples. Not a family itself."""

    critic_batch_norm = True  # WGAN-GP's critic has none
    condition_dim = 0  # one-hot label size of a conditional GAN

    def __init__(self, config: AdversarialConfig):
        super().__init__(config)
        shape = self.data_shape
        pack, k = self.pack, self.condition_dim
        # D sees the label as k extra channels (cGAN), and PacGAN's packs side by side.
        d_shape = (pack * (shape[0] + k), *shape[1:])
        z_dim = config.latent_dim + k  # G sees z and the one-hot label
        kernels = config.minibatch_kernels
        if config.net == "pacgan":
            if len(shape) != 1 or kernels:
                raise ConfigError(
                    "net pacgan is PacGAN's network for points (e.g. grid25), without "
                    "minibatch discrimination"
                )
            self.generator = BatchNormMLPGenerator(shape, z_dim, config.hidden_dim)
            self.discriminator = MaxoutDiscriminator(d_shape)
            gaussian_init_(self)
        elif config.net == "mlp" or (config.net == "auto" and len(shape) == 1):
            self.generator = MLPGenerator(shape, z_dim, config.hidden_dim)
            self.discriminator = MLPDiscriminator(
                d_shape, config.hidden_dim, minibatch_kernels=kernels
            )
        else:
            self.generator = DCGANGenerator(shape, z_dim, config.channels)
            self.discriminator = DCGANDiscriminator(
                d_shape, config.channels, self.critic_batch_norm, minibatch_kernels=kernels
            )
            dcgan_init_(self)
        if config.g_ema > 0:  # a buffer per weight of G, so checkpoints keep it
            self.generator_ema = ParameterAverage(self.generator, rate=1.0 - config.g_ema)
        if config.historical_averaging > 0:  # the players' running means, kept in checkpoints
            self.history = torch.nn.ModuleDict(
                {
                    "discriminator": ParameterAverage(self.discriminator),
                    "generator": ParameterAverage(self.generator),
                }
            )

    @property
    def latent_dim(self) -> int:
        return self.config.latent_dim

    @property
    def pack(self) -> int:
        """Samples D judges at once (PacGAN); 1 for the families without packing."""
        return getattr(self.config, "pack", 1)

    def G(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """z (B, latent_dim) (and labels y (B,) for a cGAN) -> G's output (B, *shape)."""
        return self.generator(self.g_input(z, y))

    def g_input(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """What G reads for noise z (B, latent_dim) (and labels y (B,)): z itself; a cGAN
        appends y's one-hot, (B, latent_dim + num_classes)."""
        return z

    def sampling_generator(self, inputs: torch.Tensor) -> torch.Tensor:
        """G's output (B, *shape), in G's range, for :meth:`g_input` rows ``inputs``, by the
        bias-corrected moving average of G's weights when ``g_ema`` is on (and G has taken a
        step; Karras et al. 2018, app. A.1), else by G's own weights.
        Training (the losses) always uses G's own weights; batch-norm statistics are G's."""
        average = getattr(self, "generator_ema", None)
        weights = average.averages() if average is not None else {}
        if not weights:
            return self.generator(inputs)
        return torch.func.functional_call(self.generator, weights, (inputs,), strict=False)

    def D(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, *shape) in G's output range (and labels y) -> scores (B / pack,) of packs of
        ``pack`` rows: logits, or critic values."""
        return self.discriminator(self.d_input(x, y))

    def d_input(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """What D reads for examples x (and labels y): packs of ``pack`` rows."""
        return self.packed(x)

    def feature_matching(self, batch: Batch, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """The generator's loss with feature matching on: ||E f(x) - E f(G(z))||^2 over D's
        last hidden layer, real batch against fresh fakes with its labels (Salimans et al.
        2016, sec. 3.1), (B,) squared feature units."""
        with torch.no_grad():
            real = self.discriminator.features(self.d_input(batch.x, batch.y))
        fake_x = self.G(batch.randn(self.latent_dim, generator=generator), batch.y)
        fake = self.discriminator.features(self.d_input(fake_x, batch.y))
        loss = losses.feature_matching_loss(real, fake)
        return self.per_example({"loss": loss, "feature_matching": loss.detach()})

    def packed(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, ...) -> (B / pack, pack * C, ...): each row of the result is ``pack``
        consecutive samples side by side, as PacGAN's discriminator sees them (Lin et al.
        2018, sec. 3). Raises ConfigError when B does not divide by ``pack``."""
        pack = self.pack
        if pack == 1:
            return x
        if len(x) % pack:
            raise ConfigError(
                f"a batch of {len(x)} does not divide into packs of {pack}; choose a "
                f"batch size (per process) that is a multiple of {option('pack')}"
            )
        return x.reshape(len(x) // pack, pack * x.shape[1], *x.shape[2:])

    def per_example(self, out: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Per-pack values (B / pack,) -> (B,), each example carrying its pack's value, so
        losses stay per example and their mean is unchanged."""
        return (
            out if self.pack == 1 else {k: v.repeat_interleave(self.pack) for k, v in out.items()}
        )

    def _players(self, name: str, d_loss, steps: int, optimizer, after_step=None) -> list[Player]:
        """D (or critic) ``steps`` times on data, then G once on noise, same optimiser kind;
        G by feature matching and both with historical averaging when the config says."""
        g_loss = self.feature_matching if self.config.feature_matching else self._g_loss
        g_after = None
        if self.config.g_ema > 0:
            g_after = lambda: self.generator_ema.update(self.generator)
        players = [
            Player(name, self.discriminator, d_loss, optimizer, steps=steps, after_step=after_step),
            Player(
                "generator", self.generator, g_loss, optimizer, uses_data=False, after_step=g_after
            ),
        ]
        if self.config.historical_averaging > 0:
            averages = [self.history["discriminator"], self.history["generator"]]
            players = [
                with_historical_averaging(p, a, self.config.historical_averaging)
                for p, a in zip(players, averages)
            ]
        return players

    def generate(self, z: torch.Tensor) -> torch.Tensor:
        """z (n, latent_dim) -> G(z) as images in [0, 1] (n, C, H, W), or points (n, D); by
        the averaged weights with ``g_ema``."""
        return self.to_samples(self.sampling_generator(self.g_input(z)))

    def to_samples(self, x: torch.Tensor) -> torch.Tensor:
        """G's output -> samples: images [-1, 1] -> [0, 1]; points as they are."""
        return (x + 1.0) / 2.0 if self.is_image else x

    def from_samples(self, x: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`to_samples`: samples -> D's input range."""
        return x * 2.0 - 1.0 if self.is_image else x


class GANLosses(Adversarial):
    """The GAN objective (Goodfellow et al. 2014: minimax or non-saturating; Mao et al.
    2017: least squares) with PacGAN packing and the R1 penalty. ``D`` returns logits;
    D(x) = sigmoid(logit). Logged per step: ``d_real`` = D(x) and ``d_fake`` = D(G(z))
    (means, in [0, 1]). Shared by ``gan`` and ``cgan``; not a family itself."""

    units = {
        "d_real": "probability",
        "d_fake": "probability",
        "value": "nats",
        "r1": "squared logit per input unit",
    }
    evaluate_protocol = "D(x) on the split's images, D(G(z)) on as many samples, V(D, G) per pair"
    report_curves = [
        (
            "Discriminator outputs",
            "mean probability",
            [("d_real", "D(x)"), ("d_fake", "D(G(z))")],
        ),
        (
            "Losses",
            "nats per example",
            [("discriminator/loss", "discriminator -V(D, G)"), ("generator/loss", "generator")],
        ),
    ]

    def _d_loss(self, batch: Batch, generator: torch.Generator) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            fake = self.G(batch.randn(self.latent_dim, generator=generator), batch.y)
        real_logits, fake_logits = self.D(batch.x, batch.y), self.D(fake, batch.y)
        smoothing = self.config.label_smoothing
        d_loss = (
            GAN_LOSSES[self.config.loss][0]
            if not smoothing
            else (
                lambda real, fake: losses.one_sided_smoothed_discriminator_loss(
                    real, fake, 1.0 - smoothing
                )
            )
        )
        out = {
            "loss": d_loss(real_logits, fake_logits),
            "d_real": torch.sigmoid(real_logits.detach()),
            "d_fake": torch.sigmoid(fake_logits.detach()),
        }
        if self.config.r1_weight > 0:
            r1 = losses.r1_penalty(lambda x: self.D(x, batch.y), batch.x)
            out["loss"] = out["loss"] + 0.5 * self.config.r1_weight * r1
            out["r1"] = r1.detach()
        return self.per_example(out)

    def _g_loss(self, batch: Batch, generator: torch.Generator) -> dict[str, torch.Tensor]:
        fake = self.G(batch.randn(self.latent_dim, generator=generator), batch.y)
        fake_logits = self.D(fake, batch.y)
        return self.per_example(
            {
                "loss": GAN_LOSSES[self.config.loss][1](fake_logits),
                "d_fake": torch.sigmoid(fake_logits.detach()),
            }
        )

    def players(self) -> list[Player]:
        c = self.config
        return self._players(
            "discriminator",
            self._d_loss,
            c.d_steps,
            lambda params: adam(params, c.lr, (c.beta1, c.beta2)),
        )

    @torch.no_grad()
    def evaluate(self, batch: Batch, generator: torch.Generator) -> dict[str, torch.Tensor]:
        n = len(batch) - len(batch) % self.pack  # whole packs only
        y = None if batch.y is None else batch.y[:n]
        real_logits = self.D(batch.x[:n], y)
        fake_logits = self.D(self.G(self.latent_prior(n, generator), y), y)
        return self.per_example(
            {
                "d_real": torch.sigmoid(real_logits),
                "d_fake": torch.sigmoid(fake_logits),
                "value": losses.gan_value(real_logits, fake_logits),
            }
        )


@register_model
class GAN(DensityRatio, GANLosses):
    """A GAN on images in [-1, 1] (DCGAN networks) or on points (MLPs). With a
    cross-entropy loss its discriminator estimates the density ratio, so discriminator
    rejection sampling works on it."""

    family = "gan"
    title = "GAN (Goodfellow et al. 2014): DCGAN networks or MLPs, minimax/non-saturating/LSGAN"
    Config = GANConfig

    def withheld(self) -> dict[type, str]:
        c = self.config
        if c.loss not in ("nonsaturating", "minimax"):
            return {
                DensityRatio: f"an {c.loss} discriminator does not estimate log p_data/p_g "
                f"(train with {option('loss', 'nonsaturating')} or minimax)"
            }
        if c.label_smoothing:
            return {
                DensityRatio: "a discriminator trained with one-sided label smoothing estimates "
                f"{1 - c.label_smoothing:g} p_data / (p_data + p_g), not the density ratio"
            }
        if c.minibatch_kernels:
            return {
                DensityRatio: "with minibatch discrimination D judges an example by its batch, "
                "so its logit is not one example's density ratio"
            }
        return {}

    def log_density_ratio(self, samples: torch.Tensor) -> torch.Tensor:
        """Samples (n, ...) -> D's logits (n / pack,): at the optimal D, log p_data/p_g of each
        pack (Goodfellow et al. 2014, Prop. 1; for packs, the sum over its members)."""
        return self.D(self.from_samples(samples))

    def prior_energy(self, z: torch.Tensor, decoded: torch.Tensor) -> torch.Tensor:
        """Yeh et al.'s prior term log(1 - D(G(z))) (2017, eq. 3), per example (n,)."""
        logits = self.D(self.from_samples(decoded))
        return self.per_example({"prior": -F.softplus(logits)})["prior"]


class CGANConfig(GANConfig):
    """A GAN's settings plus the number of classes it is conditioned on."""

    num_classes: int = Field(
        10, ge=2, le=1000, description="number of classes (labels 0 .. num_classes-1)"
    )


@register_model
class CGAN(Conditional, GANLosses):
    """Conditional GAN (Mirza & Osindero 2014, eq. 2): G(z, y) and D(x, y), with y the
    class one-hot. G reads [z, y]; D reads x with y as ``num_classes`` constant extra
    channels (for points, extra coordinates). In the discriminator step the fakes take the
    real batch's labels, so fake labels follow the data's class frequencies. Samples cycle
    through the classes, one class per column of a grid."""

    family = "cgan"
    title = "class-conditional GAN (Mirza & Osindero 2014)"
    Config = CGANConfig

    @property
    def condition_dim(self) -> int:
        return self.config.num_classes

    @property
    def num_classes(self) -> int:
        return self.config.num_classes

    def _one_hot(self, y: torch.Tensor | None, n: int) -> torch.Tensor:
        return one_hot_labels(
            y, n, self.config.num_classes, next(self.generator.parameters()).dtype, "cgan"
        )

    def g_input(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return torch.cat([z, self._one_hot(y, len(z))], 1)

    def d_input(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """x with the one-hot label y as constant extra channels, in packs."""
        onehot = self._one_hot(y, len(x))
        maps = onehot.view(*onehot.shape, *([1] * (x.dim() - 2))).expand(-1, -1, *x.shape[2:])
        return self.packed(torch.cat([x, maps], 1))

    @torch.no_grad()
    def sample(
        self, n: int, generator: torch.Generator | None = None, labels: torch.Tensor | None = None
    ) -> torch.Tensor:
        """n samples of classes ``labels`` (n,), by default cycling 0, 1, ..."""
        return self.generate(self.latent_prior(n, generator), labels)

    def generate(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """z (n, latent_dim) and labels (n,) (default :meth:`default_labels`) -> G(z, y)."""
        labels = self.default_labels(len(z)) if labels is None else labels.to(self.device)
        return self.to_samples(self.sampling_generator(self.g_input(z, labels)))

    def preview(self, held_out, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """8 samples of every class, one class per column of a ``grid_nrow`` grid."""
        return self.sample(8 * self.config.num_classes, generator)


class WGANConfig(AdversarialConfig):
    """Arjovsky et al. 2017, Algorithm 1: RMSProp 5e-5, clipping c = 0.01, n_critic 5
    (their batch size, 64, is ``--batch-size 64``)."""

    n_critic: int = Field(5, ge=1, le=100, description="critic steps per generator step")
    clip: float = Field(
        0.01, gt=0, description="critic weights are clipped to [-clip, clip] after each step"
    )
    lr: float = Field(5e-5, gt=0, description="RMSProp learning rate of G and the critic")


@register_model
class WGAN(Adversarial):
    """Wasserstein GAN with weight clipping. The critic f has no sigmoid; -critic loss
    (``wasserstein``) estimates W1(p_data, p_g) up to the Lipschitz constant the clipping
    allows."""

    family = "wgan"
    title = "Wasserstein GAN with weight clipping (Arjovsky et al. 2017)"
    Config = WGANConfig
    units = {
        "wasserstein": "critic units",
        "critic_real": "critic units",
        "critic_fake": "critic units",
    }
    evaluate_protocol = "critic estimate f(x) - f(G(z)) on the split's images and as many samples"
    report_curves = [
        (
            "Wasserstein estimate",
            "critic units",
            [
                ("wasserstein", "E f(x) - E f(G(z)) (training)"),
                ("valid:wasserstein", "validation split"),
            ],
        ),
        (
            "Critic outputs",
            "critic units",
            [("critic_real", "f(x)"), ("critic_fake", "f(G(z))")],
        ),
    ]

    def _critic_loss(self, batch: Batch, generator: torch.Generator) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            fake = self.generator(batch.randn(self.latent_dim, generator=generator))
        return self._critic_terms(batch.x, fake)

    def _critic_terms(self, real: torch.Tensor, fake: torch.Tensor) -> dict[str, torch.Tensor]:
        real_scores, fake_scores = self.discriminator(real), self.discriminator(fake)
        loss = losses.critic_loss(real_scores, fake_scores)
        return {
            "loss": loss,
            "wasserstein": -loss.detach(),
            "critic_real": real_scores.detach(),
            "critic_fake": fake_scores.detach(),
        }

    def _g_loss(self, batch: Batch, generator: torch.Generator) -> dict[str, torch.Tensor]:
        fake_scores = self.discriminator(
            self.generator(batch.randn(self.latent_dim, generator=generator))
        )
        return {"loss": losses.wgan_generator_loss(fake_scores)}

    def prior_energy(self, z: torch.Tensor, decoded: torch.Tensor) -> torch.Tensor:
        """Yeh et al.'s prior term with a critic: -f(G(z)) per example (n,)."""
        return -self.discriminator(self.from_samples(decoded))

    def clip_critic(self) -> None:
        """Clip every critic weight into [-clip, clip] (Algorithm 1, line 7)."""
        with torch.no_grad():
            for p in self.discriminator.parameters():
                p.clamp_(-self.config.clip, self.config.clip)

    def players(self) -> list[Player]:
        c = self.config
        return self._players(
            "critic",
            self._critic_loss,
            c.n_critic,
            lambda params: torch.optim.RMSprop(params, lr=c.lr),
            after_step=self.clip_critic,
        )

    @torch.no_grad()
    def evaluate(self, batch: Batch, generator: torch.Generator) -> dict[str, torch.Tensor]:
        real = self.discriminator(batch.x)
        fake = self.discriminator(self.generator(self.latent_prior(len(batch), generator)))
        return {"wasserstein": real - fake, "critic_real": real, "critic_fake": fake}


class WGANGPConfig(AdversarialConfig):
    """Gulrajani et al. 2017, Algorithm 1: lambda 10, n_critic 5, Adam 1e-4 with betas
    (0, 0.9); the critic has no batch norm."""

    n_critic: int = Field(5, ge=1, le=100, description="critic steps per generator step")
    gp_weight: float = Field(10.0, ge=0, description="lambda, the gradient penalty's weight")
    lr: float = Field(1e-4, gt=0, description="Adam learning rate of G and the critic")
    beta1: float = Field(
        0.0, ge=0, lt=1, description="Adam's first-moment decay beta1 (not the beta-VAE's --beta)"
    )
    beta2: float = Field(0.9, ge=0, lt=1, description="Adam's second-moment decay beta2")


@register_model
class WGANGP(WGAN):
    """WGAN with a gradient penalty instead of clipping: the critic loss per example is
    f(G(z)) - f(x) + lambda (||grad f(x_hat)|| - 1)^2, x_hat drawn on the line between a real
    and a generated example with one uniform weight per example."""

    family = "wgan-gp"
    title = "Wasserstein GAN with a gradient penalty (Gulrajani et al. 2017)"
    Config = WGANGPConfig
    critic_batch_norm = False
    units = WGAN.units | {"gradient_penalty": "unitless"}

    def _critic_loss(self, batch: Batch, generator: torch.Generator) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            fake = self.generator(batch.randn(self.latent_dim, generator=generator))
        out = self._critic_terms(batch.x, fake)
        penalty = losses.gradient_penalty(
            self.discriminator, batch.x, fake, eps=batch.rand(generator=generator)
        )
        out["loss"] = out["loss"] + self.config.gp_weight * penalty
        out["gradient_penalty"] = penalty.detach()
        return out

    def players(self) -> list[Player]:
        c = self.config
        return self._players(
            "critic",
            self._critic_loss,
            c.n_critic,
            lambda params: adam(params, c.lr, (c.beta1, c.beta2)),
        )

"""CycleGAN: unpaired image-to-image translation between two streams (Zhu, Park, Isola &
Efros 2017, "Unpaired Image-to-Image Translation using Cycle-Consistent Adversarial
Networks").

Generators G: source -> target and F: target -> source, discriminators D_T (target images)
and D_S (source images). Per example, in the paper's notation with X the source and Y the
target (sec. 3-4):

    generators:      (D_T(G(x)) - 1)^2 + (D_S(F(y)) - 1)^2                  least squares
                     + lambda (|F(G(x)) - x|_1 + |G(F(y)) - y|_1)             cycle (eq. 2)
                     + identity * lambda (|G(y) - y|_1 + |F(x) - x|_1)        optional (sec. 5.2)
    discriminators:  1/2 [(D_T(y) - 1)^2 + D_T(G(x)')^2] + the same for D_S

each squared error a mean over the discriminator's output patches and each |.|_1 a mean
over pixels; G(x)' is drawn from a pool of the last 50 translations (Shrivastava et al.
2017), which the checkpoint holds. Adam 2e-4, beta1 0.5; the learning rate is constant,
then falls linearly to zero over the last ``decay_fraction`` of the run.

The networks are the paper's scaled to 28x28 (appendix 7.2): a generator c7s1-k, d2k,
d4k, ``blocks`` residual blocks of 4k, u2k, uk, c7s1-C with instance normalisation and a
tanh output; a PatchGAN discriminator C64 (stride 2, no normalisation), C128 (stride 2),
then a 4x4 convolution to one value per patch: 6x6 outputs for 28x28 inputs, each seeing a
22x22 receptive field. Images are read in [-1, 1]; a grey and a colour stream may meet
(G maps one channel count to the other), in which case the identity loss is refused.
"""

from __future__ import annotations

import torch
from pydantic import Field
from torch import nn

from ..errors import ConfigError
from .base import ModelConfig, adam
from .capabilities import Translator
from .contract import Batch, GenerativeModel, Player, register_model


class ResidualBlock(nn.Module):
    """x + (conv3 - IN - ReLU - conv3 - IN)(x), reflection-padded, width kept."""

    def __init__(self, width: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1),
            nn.Conv2d(width, width, 3),
            nn.InstanceNorm2d(width),
            nn.ReLU(),
            nn.ReflectionPad2d(1),
            nn.Conv2d(width, width, 3),
            nn.InstanceNorm2d(width),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResnetGenerator(nn.Module):
    """(B, C_in, H, W) in [-1, 1] -> (B, C_out, H, W) in (-1, 1); H and W divisible by 4."""

    def __init__(self, c_in: int, c_out: int, width: int, blocks: int):
        super().__init__()

        def down(a: int, b: int) -> list[nn.Module]:
            return [nn.Conv2d(a, b, 3, 2, 1), nn.InstanceNorm2d(b), nn.ReLU()]

        def up(a: int, b: int) -> list[nn.Module]:
            return [
                nn.ConvTranspose2d(a, b, 3, 2, 1, output_padding=1),
                nn.InstanceNorm2d(b),
                nn.ReLU(),
            ]

        self.net = nn.Sequential(
            nn.ReflectionPad2d(3),
            nn.Conv2d(c_in, width, 7),
            nn.InstanceNorm2d(width),
            nn.ReLU(),
            *down(width, 2 * width),
            *down(2 * width, 4 * width),
            *(ResidualBlock(4 * width) for _ in range(blocks)),
            *up(4 * width, 2 * width),
            *up(2 * width, width),
            nn.ReflectionPad2d(3),
            nn.Conv2d(width, c_out, 7),
            nn.Tanh(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class PatchDiscriminator(nn.Module):
    """(B, C, H, W) -> (B, H/4 - 1, W/4 - 1) one score per 22x22 patch (LSGAN: no sigmoid)."""

    def __init__(self, channels: int, width: int = 64):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(channels, width, 4, 2, 1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(width, 2 * width, 4, 2, 1),
            nn.InstanceNorm2d(2 * width),
            nn.LeakyReLU(0.2),
            nn.Conv2d(2 * width, 1, 4, 1, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(1)


class ImagePool(nn.Module):
    """The last ``size`` images a discriminator was shown as fakes (Shrivastava et al. 2017,
    sec. 2.3; CycleGAN sec. 4): while it fills, each new image is stored and returned;
    then each is, with probability 1/2, swapped for a stored one drawn uniformly (which is
    returned instead). Buffers, so a checkpoint holds the pool and resume is exact."""

    def __init__(self, size: int, shape: tuple[int, ...]):
        super().__init__()
        self.size = size
        self.register_buffer("images", torch.zeros(size, *shape))
        self.register_buffer("count", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def query(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Images (B, ...) -> the images (B, ...) to show the discriminator."""
        if self.size == 0:
            return images
        out = images.clone()
        coins = torch.rand(len(images), generator=generator, device=images.device)
        slots = torch.randint(
            0, self.size, (len(images),), generator=generator, device=images.device
        )
        for i in range(len(images)):
            n = int(self.count)
            if n < self.size:
                self.images[n] = images[i]
                self.count += 1
            elif coins[i] < 0.5:
                out[i] = self.images[slots[i]]
                self.images[slots[i]] = images[i]
        return out


class CycleGANConfig(ModelConfig):
    """CycleGAN's weights, schedule and network sizes (the paper's defaults)."""

    cycle_weight: float = Field(10.0, ge=0, description="lambda, the cycle-consistency weight")
    identity: float = Field(
        0.0,
        ge=0,
        description="identity loss weight as a multiple of lambda (the paper: 0.5 "
        "for paintings -> photos; 0: none)",
    )
    pool_size: int = Field(
        50, ge=0, le=10000, description="past translations each discriminator sees"
    )
    lr: float = Field(2e-4, gt=0, description="Adam learning rate")
    beta1: float = Field(
        0.5, ge=0, lt=1, description="Adam's first-moment decay beta1 (not the beta-VAE's --beta)"
    )
    decay_fraction: float = Field(
        0.5,
        ge=0,
        le=1,
        description="final fraction of the run over which the learning rate "
        "falls linearly to 0 (the paper: 100 of 200 epochs)",
    )
    width: int = Field(
        16, ge=1, le=512, description="generator channels of the first layer (the paper: 64)"
    )
    blocks: int = Field(3, ge=0, le=32, description="residual blocks (the paper: 6 at 128x128)")
    preprocess: str = Field(
        "symmetric", description="symmetric: images in [-1, 1] for tanh outputs"
    )


@register_model
class CycleGAN(Translator, GenerativeModel):
    """See the module docstring. Per-example training terms (B,): ``adversarial``,
    ``cycle``, ``identity`` (generators) and ``loss`` (discriminators), in squared or
    absolute [-1, 1] pixel units; evaluated per stream: ``cycle`` (mean |F(G(x)) - x| per
    pixel in [0, 1] units)."""

    family = "cyclegan"
    title = "unpaired image-to-image translation between two streams (Zhu et al. 2017)"
    Config = CycleGANConfig
    streams = ("source", "target")
    reads = ("images",)
    directions = ("source-to-target", "target-to-source")
    summary = ("source/cycle", "mean |F(G(x)) - x| per pixel, [0, 1] units")
    units = {"cycle": "mean absolute pixel error, [0, 1] units"}
    evaluate_protocol = "each test image translated to the other stream and back"
    report_curves = [
        (
            "Cycle error",
            "mean |x - back(x)|, [0, 1] units",
            [
                ("valid:source/cycle", "source validation"),
                ("valid:target/cycle", "target validation"),
            ],
        ),
    ]

    def __init__(self, config: CycleGANConfig):
        super().__init__(config)
        s, t = self.shape("source"), self.shape("target")
        if len(s) != 3 or len(t) != 3 or s[1:] != t[1:] or s[1] % 4 or s[2] % 4:
            raise ConfigError(
                f"a cyclegan translates images of one size, height and width divisible by 4; "
                f"the streams are source {s} and target {t}"
            )
        if config.identity > 0 and s[0] != t[0]:
            raise ConfigError(
                f"the identity loss feeds each generator images of its output stream, so both "
                f"streams need one channel count; source has {s[0]}, target {t[0]}: set identity 0"
            )
        self.G = ResnetGenerator(s[0], t[0], config.width, config.blocks)
        self.F = ResnetGenerator(t[0], s[0], config.width, config.blocks)
        self.D_target = PatchDiscriminator(t[0])
        self.D_source = PatchDiscriminator(s[0])
        self.pool_target = ImagePool(config.pool_size, t)
        self.pool_source = ImagePool(config.pool_size, s)
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.normal_(module.weight, 0.0, 0.02)  # the paper's initialisation
                nn.init.zeros_(module.bias)
        self._fakes: tuple[Batch, torch.Tensor, torch.Tensor] | None = None

    def translate(self, x: torch.Tensor, direction: str) -> torch.Tensor:
        """Model inputs (B, C, H, W) in [-1, 1] of the direction's first stream -> images of
        its second in [0, 1]."""
        source, _ = self.direction_streams(direction)
        net = self.G if source == "source" else self.F
        return (net(x) + 1) / 2

    def _generator_loss(self, batch: Batch, generator: torch.Generator) -> dict[str, torch.Tensor]:
        cfg = self.config
        x, y = batch["source"].x, batch["target"].x
        fake_y, fake_x = self.G(x), self.F(y)
        per_image = lambda t: t.flatten(1).mean(1)
        adversarial = per_image((self.D_target(fake_y) - 1) ** 2) + per_image(
            (self.D_source(fake_x) - 1) ** 2
        )
        cycle = per_image((self.F(fake_y) - x).abs()) + per_image((self.G(fake_x) - y).abs())
        loss = adversarial + cfg.cycle_weight * cycle
        out = {"adversarial": adversarial.detach(), "cycle": cycle.detach()}
        if cfg.identity > 0:
            identity = per_image((self.G(y) - y).abs()) + per_image((self.F(x) - x).abs())
            loss = loss + cfg.identity * cfg.cycle_weight * identity
            out["identity"] = identity.detach()
        self._fakes = (batch, fake_y.detach(), fake_x.detach())
        return {"loss": loss, **out}

    def _discriminator_loss(
        self, batch: Batch, generator: torch.Generator
    ) -> dict[str, torch.Tensor]:
        if self._fakes is not None and self._fakes[0] is batch:
            _, fake_y, fake_x = self._fakes
        else:  # not after this batch's generator step
            with torch.no_grad():
                fake_y, fake_x = self.G(batch["source"].x), self.F(batch["target"].x)
        self._fakes = None
        fake_y = self.pool_target.query(fake_y, generator)
        fake_x = self.pool_source.query(fake_x, generator)
        per_image = lambda t: t.flatten(1).mean(1)
        real_y, real_x = batch["target"].x, batch["source"].x
        loss = 0.5 * (
            per_image((self.D_target(real_y) - 1) ** 2)
            + per_image(self.D_target(fake_y) ** 2)
            + per_image((self.D_source(real_x) - 1) ** 2)
            + per_image(self.D_source(fake_x) ** 2)
        )
        return {"loss": loss}

    def players(self) -> list[Player]:
        cfg = self.config
        optimizer = lambda p: adam(p, cfg.lr, betas=(cfg.beta1, 0.999))
        start = 1.0 - cfg.decay_fraction
        schedule = lambda p: 1.0 if p < start else max(0.0, (1.0 - p) / cfg.decay_fraction)
        return [
            Player(
                "generators",
                nn.ModuleList([self.G, self.F]),
                self._generator_loss,
                optimizer,
                lr_scale=schedule,
            ),
            Player(
                "discriminators",
                nn.ModuleList([self.D_target, self.D_source]),
                self._discriminator_loss,
                optimizer,
                uses_data=False,
                lr_scale=schedule,
            ),
        ]

    def evaluate(self, batch: Batch, generator: torch.Generator) -> dict[str, torch.Tensor]:
        ((stream, rows),) = batch.streams.items()
        there, back = (self.G, self.F) if stream == "source" else (self.F, self.G)
        cycle = (back(there(rows.x)) - rows.x).abs().flatten(1).mean(1) / 2
        return {"cycle": cycle}

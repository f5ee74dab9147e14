"""The latent explorer's server side: a run's model, loaded once, decoding codes to PNGs.

Codes travel in the prior's standard units u (``from_standard`` maps them to the model's
codes), so a slider at 2 means two prior standard deviations for every family. Decoded
images are cached by (code, label); a request for several codes decodes them in one batch.
"""

from __future__ import annotations

import base64
import threading
from collections import OrderedDict
from pathlib import Path

import torch

from ..errors import ConfigError
from ..models.capabilities import Conditional, Encoder, LatentSpace, require, supports
from ..viz import grid_image, image_png, png_bytes

CACHE_SIZE = 4096  # decoded images kept per run
MAX_CODES = 64  # codes one request may decode


class Explorer:
    """One run's model for the explorer; thread-safe (decoding holds a lock).

    Raises (constructor): CheckpointError for a run without a usable checkpoint;
    MissingCapability when the model has no latent space.
    """

    def __init__(self, run: Path, device: str = "auto"):
        from ..api import load

        self.run = run
        self.model = require(load(run, device), LatentSpace, "the latent explorer")
        self.latent_dim = int(self.model.latent_dim)
        self.num_classes = (
            int(self.model.num_classes) if supports(self.model, Conditional) else None
        )
        self.can_encode = supports(self.model, Encoder)
        self._lock = threading.Lock()
        self._cache: OrderedDict[tuple, bytes] = OrderedDict()
        self._influence: list[tuple[int, float]] | None = None
        self._test = None  # the run's test split, loaded on first use

    def _codes(self, codes: list[list[float]]) -> torch.Tensor:
        if not 1 <= len(codes) <= MAX_CODES:
            raise ConfigError(f"give 1 to {MAX_CODES} codes, not {len(codes)}")
        u = torch.tensor(codes, dtype=torch.float32)
        if u.dim() != 2 or u.shape[1] != self.latent_dim or not torch.isfinite(u).all():
            raise ConfigError(f"each code must be {self.latent_dim} finite numbers")
        if u.abs().max() > 10:
            raise ConfigError("codes are in prior standard deviations, within [-10, 10]")
        return u

    def _label(self, label: int | None, n: int) -> dict:
        if self.num_classes is None:
            if label is not None:
                raise ConfigError("this model is not conditional: it takes no class")
            return {}
        label = 0 if label is None else label
        if not 0 <= label < self.num_classes:
            raise ConfigError(f"the class must be in [0, {self.num_classes}), not {label}")
        return {"labels": torch.full((n,), label, dtype=torch.long, device=self.model.device)}

    @torch.no_grad()
    def decode(self, codes: list[list[float]], label: int | None = None) -> torch.Tensor:
        """Codes u (n, latent_dim) in prior standard units -> images (n, C, H, W) in [0, 1],
        ``model.generate(model.from_standard(u))``.

        Raises: ConfigError for codes of the wrong size, non-finite or beyond 10 sd, or a
        class outside the model's."""
        u = self._codes(codes).to(self.model.device)
        extra = self._label(label, len(u))
        with self._lock:
            return self.model.generate(self.model.from_standard(u), **extra).float().cpu()

    def decode_png(self, codes: list[list[float]], label: int | None = None) -> list[bytes]:
        """One PNG per code (enlarged 4 times), from the cache where it holds them."""
        keys = [(tuple(round(v, 6) for v in code), label) for code in codes]
        missing = [i for i, k in enumerate(keys) if k not in self._cache]
        if missing:
            images = self.decode([codes[i] for i in missing], label)
            with self._lock:
                for i, img in zip(missing, images):
                    self._cache[keys[i]] = image_png(img, scale=4)
                    while len(self._cache) > CACHE_SIZE:
                        self._cache.popitem(last=False)
        with self._lock:
            for k in keys:
                self._cache.move_to_end(k)
            return [self._cache[k] for k in keys]

    @torch.no_grad()
    def influence(self, samples: int = 16, step: float = 0.05) -> list[tuple[int, float]]:
        """(coordinate, influence) sorted most influential first: the mean norm of the
        decoder's Jacobian column d generate / d u_i over ``samples`` prior codes, by central
        differences of ``step`` prior standard deviations (per pixel, RMS). Computed once."""
        if self._influence is None:
            gen = torch.Generator(device=self.model.device).manual_seed(0)
            u = torch.randn(samples, self.latent_dim, generator=gen, device=self.model.device)
            eye = torch.eye(self.latent_dim, device=u.device) * step
            norms = torch.zeros(self.latent_dim)
            extra = self._label(None, 2 * self.latent_dim)
            with self._lock:
                for code in u:
                    shifted = torch.cat([code + eye, code - eye])
                    out = self.model.generate(self.model.from_standard(shifted), **extra)
                    out = out.flatten(1).float().cpu()
                    diff = out[: self.latent_dim] - out[self.latent_dim :]
                    norms += diff.pow(2).mean(1).sqrt() / (2 * step)
            order = (norms / samples).argsort(descending=True)
            self._influence = [(int(i), float(norms[i] / samples)) for i in order]
        return self._influence

    def manifold_png(self, cells: int) -> bytes:
        """The decoded 2-D latent space over u in [-3, 3]^2 on a ``cells`` x ``cells`` grid,
        u_1 rising left to right and u_2 top to bottom from 3 to -3, as one PNG.

        Raises: ConfigError unless latent_dim == 2."""
        if self.latent_dim != 2:
            raise ConfigError("the manifold map needs a 2-D latent space")
        axis = torch.linspace(-3, 3, cells)
        codes = [[float(x), float(-y)] for y in axis for x in axis]
        step = MAX_CODES
        images = torch.cat([self.decode(codes[i : i + step]) for i in range(0, len(codes), step)])
        return png_bytes(grid_image(images, cells, scale=1))

    def test_codes(self, count: int, seed: int) -> tuple[list[list[float]], list[int] | None]:
        """``count`` test images of the run's data, drawn by ``seed``, encoded: (codes in
        prior standard units, their labels or None). The test split is loaded once.

        Raises: MissingCapability without an encoder; DataError when the run's data cannot
        be loaded."""
        from ..api import run_data

        require(self.model, Encoder, "the explorer's encoding of test images")
        if self._test is None:
            self._test = run_data(self.run, log=lambda m: None)[self.model.epoch_stream]["test"]
        pick = torch.randperm(len(self._test), generator=torch.Generator().manual_seed(seed))
        pick = pick[:count]
        labels = None if self._test.labels is None else self._test.labels[pick]
        codes = self.encode(self._test.x[pick], labels)
        return codes, None if labels is None else labels.tolist()

    @torch.no_grad()
    def encode(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> list[list[float]]:
        """Images (n, C, H, W) uint8 (and their labels (n,) for a conditional model) -> their
        codes in prior standard units.

        Raises: MissingCapability when the model has no encoder."""
        model = require(self.model, Encoder, "the explorer's encoding of test images")
        gen = torch.Generator(device=model.device).manual_seed(0)
        x = model.preprocess(images.to(model.device), gen)
        extra = () if self.num_classes is None else (labels.to(model.device),)
        with self._lock:
            return model.to_standard(model.encode(x, *extra)).cpu().tolist()


def data_url(png: bytes) -> str:
    """PNG bytes as a ``data:image/png;base64,...`` URL, what an <img> shows without a
    second request."""
    return "data:image/png;base64," + base64.b64encode(png).decode()

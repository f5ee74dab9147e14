"""``optdigits``: the UCI handwritten digits that scikit-learn bundles
(``sklearn.datasets.load_digits``; Alpaydin & Kaynak 1998), as a second digit domain beside
MNIST: 1,797 images of 8x8 cells, each the count (0-16) of set pixels in a 4x4 block of a
32x32 bitmap, written by 43 people other than MNIST's writers.

To be read by a model of MNIST's 28x28 digits, each image is scaled from 0-16 to 0-255,
upsampled bilinearly (``torch.nn.functional.interpolate``, half-pixel centres, no
anti-aliasing) to a ``box`` x ``box`` square and centred on a 28x28 black canvas: with the
default box of 20 pixels the digit fills the box MNIST normalises its digits into (MNIST
centres by centre of mass; these are centred by their box). The splits are a permutation
by ``seed``: 1,097 train, 200 valid, 500 test. The bundled arrays are checked against a
stored sha256 before use.
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch
from pydantic import Field
from torch.nn import functional as F

from ..config import Config
from ..errors import DataError
from ..seeds import generator
from .datasets import Dataset, DatasetSpec, Split

SHA256 = "87ff0c9e40dc7e2c0e34e7257799c2e3f3aec1a016363bb11cad869ec428a826"  # images, labels
SIZES = (1097, 200, 500)
CANVAS = 28


class OptdigitsOptions(Config):
    """Options of ``optdigits``: the side of the upsampled digit and the seed of the split."""

    box: int = Field(
        20,
        ge=8,
        le=CANVAS,
        description="side in pixels of the upsampled digit, "
        "centred in 28x28 (20: MNIST's digit box; 28: fill the image)",
    )
    seed: int = Field(0, ge=0, description="seed of the train/valid/test permutation")


def bundled_digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's images (1797, 8, 8) uint8 in 0-16 and labels (1797,) int64.

    Raises:
        DataError: the bundled arrays differ from the ones this dataset was defined on.
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = digits.images.astype(np.uint8)
    labels = digits.target.astype(np.uint8)
    digest = hashlib.sha256(images.tobytes() + labels.tobytes()).hexdigest()
    if digest != SHA256:
        raise DataError(
            f"scikit-learn's bundled digits have sha256 {digest[:16]}..., expected "
            f"{SHA256[:16]}...; this scikit-learn ships other data"
        )
    return images, labels.astype(np.int64)


def upsample(images: np.ndarray, box: int) -> torch.Tensor:
    """8x8 counts (N, 8, 8) in 0-16 -> (N, 1, 28, 28) uint8 images: scaled to 0-255,
    bilinearly upsampled to ``box`` x ``box`` and centred (left/top margin rounded down)."""
    x = torch.from_numpy(images).float().unsqueeze(1) * (255 / 16)
    x = F.interpolate(x, size=(box, box), mode="bilinear", align_corners=False)
    out = torch.zeros(len(images), 1, CANVAS, CANVAS)
    start = (CANVAS - box) // 2
    out[:, :, start : start + box, start : start + box] = x
    return out.round().clamp(0, 255).to(torch.uint8)


def optdigits_dataset(
    spec: DatasetSpec, data_dir=None, box: int = 20, seed: int = 0, **_
) -> Dataset:
    """The upsampled UCI digits with train/valid/test splits of ``SIZES`` by ``seed``."""
    images, labels = bundled_digits()
    x, y = upsample(images, box), torch.from_numpy(labels)
    order = torch.randperm(len(x), generator=generator(seed, "optdigits-split"))
    splits, start = {}, 0
    for name, size in zip(("train", "valid", "test"), SIZES):
        index = order[start : start + size].sort().values
        splits[name] = Split(x[index], y[index])
        start += size
    return Dataset(spec.name, splits, num_classes=10, source="scikit-learn's load_digits")

"""MNIST-M by the recipe of Ganin & Lempitsky 2015 ("Unsupervised Domain Adaptation by
Backpropagation", sec. 4.1): every MNIST digit blended over a random 28x28 patch of a
colour photograph, ``out = |digit - patch|`` per channel (the grey digit taken as the same
value in R, G and B), with MNIST's splits and labels.

The original took its patches from the 500 photographs of BSDS500, which cannot be fetched
here. This build takes them from the six colour PNG photographs that scikit-image's wheel
bundles (``PHOTOS``: an astronaut, a cat, a coffee cup, a stained tissue micrograph and a
stereo pair of a motorcycle), read losslessly so every machine decodes the same pixels
(JPEG decoders differ between library versions, so the bundled JPEGs are left out). So that
test digits are blended over texture never seen in training, each photograph is cut by
rows: patches for the training file's digits (train and valid splits) lie wholly in its
top ``TRAIN_ROWS`` of rows, patches for the test file's digits wholly in the rest.

The draw is fixed (``SEED``) and the four IDX files it writes are checked against stored
sha256 digests, so every machine builds exactly the same set; `deepgen data fetch mnist-m`
builds it (fetching MNIST first if needed).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import DataError
from .datasets import DATASETS, DatasetSpec, load_idx_arrays

SKIMAGE_WHEEL = "scikit-image==0.26.0"
PHOTOS = {  # wheel member -> sha256 of the file
    "skimage/data/astronaut.png": "88431cd9653ccd539741b555fb0a46b61558b301d4110412b5bc28b5e3ea6cb5",
    "skimage/data/chelsea.png": "596aa1e7cb875eb79f437e310381d26b338a81c2da23439704a73c4651e8c4bb",
    "skimage/data/coffee.png": "cc02f8ca188b167c775a7101b5d767d1e71792cf762c33d6fa15a4599b5a8de7",
    "skimage/data/ihc.png": "f8dd1aa387ddd1f49d8ad13b50921b237df8e9b262606d258770687b0ef93cef",
    "skimage/data/motorcycle_left.png": (
        "db18e9c4157617403c3537a6ba355dfeafe9a7eabb6b9b94cb33f6525dd49179"
    ),
    "skimage/data/motorcycle_right.png": (
        "5fc913ae870e42a4b662314bc904d1786bcad8e2f0b9b67dba5a229406357797"
    ),
}
TRAIN_ROWS = 0.75  # fraction of each photograph's rows, from the top, that training patches use
SEED = 0
PATCH = 28


def decode_photos(payloads: dict[str, bytes]) -> list[np.ndarray]:
    """The photographs (H, W, 3) uint8, in the order of ``payloads``.

    Raises:
        DataError: a file is not an RGB image.
    """
    photos = []
    for name, payload in payloads.items():
        with Image.open(io.BytesIO(payload)) as image:
            if image.mode != "RGB":
                raise DataError(
                    f"{name} is a {image.mode} image; MNIST-M blends over RGB photographs"
                )
            photos.append(np.asarray(image, dtype=np.uint8).copy())
    return photos


def region_rows(height: int, part: str) -> tuple[int, int]:
    """The rows [start, stop) of a photograph of ``height`` rows that patches of ``part``
    ("train": the training file's digits; "test": the test file's) may cover."""
    cut = int(height * TRAIN_ROWS)
    if part == "train":
        return 0, cut
    if part == "test":
        return cut, height
    raise ValueError(f"part is 'train' or 'test', not {part!r}")


@dataclass
class Blend:
    """Blended images (N, 3, 28, 28) uint8 and where each patch came from: ``photo`` (N,)
    index into the photographs, ``top`` and ``left`` (N,) the patch's corner."""

    images: np.ndarray
    photo: np.ndarray
    top: np.ndarray
    left: np.ndarray


def blend(digits: np.ndarray, photos: list[np.ndarray], part: str, seed: int) -> Blend:
    """MNIST-M images of ``digits`` (N, 28, 28) uint8: for each, a photograph drawn
    uniformly, a 28x28 patch drawn uniformly inside its ``part`` rows (see
    :func:`region_rows`), and ``|digit - patch|`` per channel. A function of (digits,
    photos, part, seed) only.

    Raises:
        DataError: a photograph's region is smaller than a patch.
    """
    rng = np.random.Generator(np.random.PCG64([seed, 0 if part == "train" else 1]))
    n = len(digits)
    photo = rng.integers(0, len(photos), size=n)
    top = np.empty(n, dtype=np.int64)
    left = np.empty(n, dtype=np.int64)
    out = np.empty((n, 3, PATCH, PATCH), dtype=np.uint8)
    for k, picture in enumerate(photos):
        start, stop = region_rows(picture.shape[0], part)
        if stop - start < PATCH or picture.shape[1] < PATCH:
            raise DataError(
                f"photograph {k} has a {part} region of {stop - start}x"
                f"{picture.shape[1]} pixels, smaller than a {PATCH}x{PATCH} patch"
            )
        rows = np.flatnonzero(photo == k)
        top[rows] = rng.integers(start, stop - PATCH + 1, size=len(rows))
        left[rows] = rng.integers(0, picture.shape[1] - PATCH + 1, size=len(rows))
        grid = np.arange(PATCH)
        patches = picture[top[rows, None, None] + grid[:, None], left[rows, None, None] + grid]
        digit = digits[rows].astype(np.int16)[..., None]
        out[rows] = np.abs(digit - patches.astype(np.int16)).astype(np.uint8).transpose(0, 3, 1, 2)
    return Blend(out, photo, top, left)


def build_mnist_m(mnist: dict[str, np.ndarray], photos: list[np.ndarray]) -> dict[str, np.ndarray]:
    """MNIST-M's four IDX arrays from MNIST's (name -> array, as in the IDX files)."""
    train = blend(mnist["train-images-idx3-ubyte"], photos, "train", SEED)
    test = blend(mnist["t10k-images-idx3-ubyte"], photos, "test", SEED)
    return {
        "train-images-idx3-ubyte": train.images,
        "train-labels-idx1-ubyte": mnist["train-labels-idx1-ubyte"],
        "t10k-images-idx3-ubyte": test.images,
        "t10k-labels-idx1-ubyte": mnist["t10k-labels-idx1-ubyte"],
    }


@dataclass(frozen=True)
class MnistMSource:
    """Builds MNIST-M from MNIST (fetched first if missing) and scikit-image's photographs."""

    def describe(self) -> str:
        return f"MNIST and the photographs of pip download --no-deps {SKIMAGE_WHEEL}"

    def fetch(self, spec: DatasetSpec, dest: Path) -> None:
        from .fetch import fetch_dataset, wheel_members, write_idx_files

        fetch_dataset("mnist", log=lambda message: None)
        mnist, _ = load_idx_arrays(DATASETS["mnist"])
        photos = decode_photos(wheel_members(SKIMAGE_WHEEL, PHOTOS))
        write_idx_files(spec, dest, build_mnist_m(mnist, photos))

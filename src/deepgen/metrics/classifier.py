"""The feature networks: a small CNN classifier per dataset, trained by
``deepgen classifier train NAME`` and shipped inside the package as safetensors.

No pretrained Inception weights can be fetched here, and Inception features fit 28x28
grey digits poorly; these classifiers give the features (128-d, penultimate layer) and
class probabilities for FID, KID, IS and precision/recall. Every metric computed with
one records its sha256, so numbers are only compared under the same network.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import nn

from .. import distributed
from ..data.datasets import Dataset
from ..errors import CheckpointError, ConfigError
from ..fileio import atomic_write_bytes, sha256_bytes
from ..seeds import derive

FEATURES = 128


class Classifier(nn.Module):
    """images (B, 1, 28, 28) in [0, 1] -> logits (B, classes); ``features`` gives (B, 128)."""

    def __init__(self, classes: int = 10, channels: int = 1):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, 32, 5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(64 * 7 * 7, FEATURES),
        )
        # Features are taken before this ReLU: after it, 54 of 128 units never fired on
        # MNIST and the feature covariance was singular.
        self.head = nn.Sequential(nn.ReLU(), nn.Dropout(0.3), nn.Linear(FEATURES, classes))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 128) pre-activation features of the penultimate layer."""
        return self.body((x - 0.5) / 0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def weights_path(name: str) -> Path:
    """Where the package ships the classifier weights of dataset ``name``."""
    return Path(
        str(resources.files("deepgen.metrics") / "weights" / f"{name}-classifier.safetensors")
    )


def user_weights_path(name: str) -> Path:
    """Where ``deepgen classifier train NAME`` writes by default: the data cache's
    ``classifiers/`` folder (``$DEEPGEN_DATA``, else ``~/.cache/deepgen``), never the
    package, so the shipped networks that published numbers were measured with stay."""
    from ..data.datasets import default_cache_dir

    return default_cache_dir() / "classifiers" / f"{name}-classifier.safetensors"


def classifier_path(name: str) -> Path:
    """The weights ``deepgen eval`` uses for dataset ``name``: the shipped ones, else the
    user's (:func:`user_weights_path`), else the shipped path (which then does not exist)."""
    shipped, user = weights_path(name), user_weights_path(name)
    return user if not shipped.is_file() and user.is_file() else shipped


def _shift(x: torch.Tensor, g: torch.Generator, max_shift: int = 2) -> torch.Tensor:
    """Translate each image by up to ``max_shift`` pixels (zero padding), per image."""
    b, c = x.shape[:2]
    padded = nn.functional.pad(x, [max_shift] * 4)
    dx = torch.randint(0, 2 * max_shift + 1, (b,), generator=g)
    dy = torch.randint(0, 2 * max_shift + 1, (b,), generator=g)
    rows = (dy[:, None] + torch.arange(x.shape[2])[None]).view(b, 1, -1, 1)
    cols = (dx[:, None] + torch.arange(x.shape[3])[None]).view(b, 1, 1, -1)
    idx = torch.arange(b).view(b, 1, 1, 1)
    return padded[idx, torch.arange(c).view(1, c, 1, 1), rows, cols]


def accuracy(
    model: Classifier, images: torch.Tensor, labels: torch.Tensor, batch: int = 1000
) -> float:
    """Share of uint8 ``images`` (N, C, H, W) classified as ``labels`` (N,), in [0, 1]."""
    model.eval()
    with torch.no_grad():
        correct = sum(
            int(
                (
                    model(images[i : i + batch].float() / 255).argmax(1) == labels[i : i + batch]
                ).sum()
            )
            for i in range(0, len(images), batch)
        )
    return correct / len(images)


def train_classifier(
    data: Dataset, epochs: int = 12, seed: int = 0, log=print
) -> tuple[Classifier, float]:
    """Train on train+valid with random shifts (Adam 1e-3, cosine schedule, batch 128);
    returns the model and its test accuracy. Every draw comes from ``seed`` by purpose
    (:mod:`deepgen.seeds`); the shipped weights were trained with deepgen 0.1.0's earlier
    seeding, so retraining gives a network of the same recipe, not the same bytes."""
    g = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Classifier(data.num_classes or 10, data.data_shape[0])
    images = torch.cat([data["train"].x, data["valid"].x])
    labels = torch.cat([data["train"].labels, data["valid"].labels])
    steps = epochs * (len(images) // 128)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    for epoch in range(epochs):
        model.train()
        perm = torch.randperm(len(images), generator=g)
        for b in range(len(images) // 128):
            idx = perm[b * 128 : (b + 1) * 128]
            x = _shift(images[idx].float() / 255, g)
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(
                    derive(seed, "classifier", "dropout", epoch, b)
                )  # reproducible masks
                loss = nn.functional.cross_entropy(model(x), labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        log(
            f"epoch {epoch + 1}/{epochs}: test accuracy {accuracy(model, data['test'].x, data['test'].labels):.4f}"
        )
    return model.eval(), accuracy(model, data["test"].x, data["test"].labels)


def save_classifier(
    model: Classifier, name: str, test_accuracy: float, path: Path | None = None
) -> Path:
    """Write the weights as safetensors (metadata: dataset, test accuracy) atomically, to
    ``path`` or :func:`user_weights_path` (the folder is made)."""
    meta = {"dataset": name, "test_accuracy": f"{test_accuracy:.4f}", "features": str(FEATURES)}
    blob = st_save({k: v.contiguous() for k, v in model.state_dict().items()}, metadata=meta)
    path = Path(path or user_weights_path(name))
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_bytes(path, blob)


def load_classifier(name: str, path: Path | None = None) -> tuple[Classifier, str]:
    """The classifier of dataset ``name`` (eval mode; by default the shipped one, else the
    user's: :func:`classifier_path`) and the sha256 of its weights.

    Raises:
        CheckpointError: no weights for ``name`` (with the command that trains them), or
            an unreadable file.
    """
    path = Path(path or classifier_path(name))
    try:
        blob = path.read_bytes()
    except OSError:
        raise CheckpointError(
            f"no feature classifier for {name!r} at {path}; "
            f"train it with `deepgen classifier train {name}`"
        ) from None
    try:
        state = st_load(blob)
        model = Classifier(state["head.2.weight"].shape[0], state["body.0.weight"].shape[1])
        model.load_state_dict(state)
    except (SafetensorError, KeyError, RuntimeError) as err:
        raise CheckpointError(f"{path} is not a deepgen classifier: {err}") from None
    return model.eval(), sha256_bytes(blob)


def classifier_outputs(
    model: Classifier, images: torch.Tensor, batch: int = 1000
) -> tuple[torch.Tensor, torch.Tensor]:
    """(features (N, 128), class probabilities (N, classes)) of images (N, C, H, W), either
    uint8 in [0, 255] or float in [0, 1]. Batches are split over ranks under torchrun."""

    def one_batch(index: int, start: int, stop: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = images[start:stop]
        f = model.features(x.float() / 255 if x.dtype == torch.uint8 else x.float())
        return f, torch.softmax(model.head(f), dim=1)

    with torch.no_grad():
        return distributed.map_batches(one_batch, len(images), batch)


def _checked_outputs(images: torch.Tensor, dataset: str) -> tuple[torch.Tensor, torch.Tensor]:
    if not isinstance(images, torch.Tensor) or images.dim() != 4:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ConfigError(f"images must be a tensor (N, C, H, W), not {shape}")
    model, _ = load_classifier(dataset)
    channels = model.body[0].in_channels
    if images.shape[1:] != (channels, 28, 28):
        raise ConfigError(
            f"the {dataset} feature network reads images ({channels}, 28, 28), not "
            f"{tuple(images.shape[1:])}"
        )
    if images.dtype != torch.uint8 and (images.min() < 0 or images.max() > 1):
        raise ConfigError("float images must lie in [0, 1] (or give uint8 in [0, 255])")
    return classifier_outputs(model, images.cpu())


def features(images: torch.Tensor, dataset: str) -> torch.Tensor:
    """The 128-d features of ``dataset``'s feature network (the shipped classifier, or the
    one `deepgen classifier train DATASET` wrote), which `deepgen eval` feeds to
    :func:`~deepgen.metrics.fid`, :func:`~deepgen.metrics.kid` and
    :func:`~deepgen.metrics.precision_recall`.

    Args:
        images: (N, C, H, W), uint8 in [0, 255] or float in [0, 1], the dataset's shape
            (e.g. (N, 1, 28, 28) for mnist, (N, 3, 28, 28) for mnist-m).
        dataset: a dataset with a feature network: mnist, fashion-mnist, mnist-m, optdigits.

    Returns: (N, 128) float features.

    Raises:
        ConfigError: images not (N, C, H, W) of the network's shape, or floats outside [0, 1].
        CheckpointError: no feature network for ``dataset``.
    """
    return _checked_outputs(images, dataset)[0]


def class_probabilities(images: torch.Tensor, dataset: str) -> torch.Tensor:
    """p(y | x) (N, classes) of ``dataset``'s feature network, what
    :func:`~deepgen.metrics.inception_score` takes; ``images`` and errors as :func:`features`."""
    return _checked_outputs(images, dataset)[1]

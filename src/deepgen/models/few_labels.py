"""What every family that learns from a few labels shares (m1, m2, m1+m2, ssgan and the
supervised baseline): two streams cut from one labelled dataset, the classes taken from
the data, test error on the labelled stream, and no selection on validation labels.

The streams are ``labelled`` (N training examples of every class, chosen by seed) and
``unlabelled`` (the rest of the training split, its labels dropped); see
:func:`deepgen.data.streams.take_part`.
"""

from __future__ import annotations

from typing import Any

import torch

from .. import losses
from ..config import DataConfig
from ..errors import ConfigError, option
from .capabilities import Classifier


def streams_of_parts(data: DataConfig, family: str) -> dict[str, DataConfig]:
    """The unlabelled and labelled parts of the dataset ``data`` asks for.

    Raises:
        ConfigError: no number of labels per class was given.
    """
    if data.labels_per_class is None:
        raise ConfigError(
            f"the {family} family learns from a few labels: give {option('labels_per_class')} "
            "N (e.g. 10 for 100 MNIST labels)"
        )
    return {
        "unlabelled": data.model_copy(update={"part": "unlabelled"}),
        "labelled": data.model_copy(update={"part": "labelled"}),
    }


class FewLabels(Classifier):
    """A family that learns from a few labels (listed before ``GenerativeModel`` in its
    bases, so these defaults win). Its config has ``num_classes``; it implements
    ``class_logits``."""

    streams = ("unlabelled", "labelled")
    reads = ("images",)
    accuracy_stream = "labelled"
    summary = ("labelled/error", "fraction of test images misclassified")

    @classmethod
    def default_streams(cls, data: DataConfig) -> dict[str, DataConfig]:
        """The labelled and unlabelled parts of the dataset asked for (raises ConfigError
        without ``--labels-per-class``)."""
        return {
            name: part
            for name, part in streams_of_parts(data, cls.family).items()
            if name in cls.streams
        }

    @classmethod
    def configure(cls, values: dict[str, Any], streams) -> dict[str, Any]:
        """The number of classes from the labelled stream's data."""
        if values.get("num_classes") is None:
            values = dict(values) | {"num_classes": streams["labelled"].num_classes}
        return values

    @property
    def num_classes(self) -> int:
        return self.config.num_classes

    def classification(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """``error`` (0 or 1) and ``cross_entropy`` (nats), each (B,), of the classifier on
        inputs x with labels y (B,)."""
        return losses.classification_terms(self.class_logits(x), y)

    def selection(self) -> dict[str, str]:
        return {}  # choosing by validation labels would use more labels than the setting has

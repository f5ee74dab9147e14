"""Metrics: likelihood bounds, Parzen windows, feature-space and mode-coverage metrics.

From images to numbers in Python::

    real = metrics.features(test_images, "mnist")   # (N, 128), the feature network's
    fake = metrics.features(samples, "mnist")
    metrics.fid(real, fake), metrics.kid(real, fake)
    metrics.inception_score(metrics.class_probabilities(samples, "mnist"))
"""

from .classifier import class_probabilities, features
from .feature_space import (
    density_coverage,
    fid,
    frechet_distance,
    inception_score,
    kid,
    kid_full,
    precision_recall,
)

__all__ = [
    "class_probabilities",
    "density_coverage",
    "features",
    "fid",
    "frechet_distance",
    "inception_score",
    "kid",
    "kid_full",
    "precision_recall",
]

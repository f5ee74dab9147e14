"""Metrics: likelihood bounds, Parzen windows, feature-space and mode-coverage metrics."""

from .features import (
    density_coverage,
    fid,
    frechet_distance,
    inception_score,
    kid,
    precision_recall,
)

__all__ = [
    "density_coverage",
    "fid",
    "frechet_distance",
    "inception_score",
    "kid",
    "precision_recall",
]

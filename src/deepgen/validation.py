"""The per-split evaluation the Trainer runs on the validation split after every epoch and
on the test split at the end (numbers in ``metrics.jsonl`` and ``results.json``)."""

from __future__ import annotations

import torch

from . import distributed
from .data.datasets import Dataset
from .models.base import Batch, GenerativeModel
from .stats import mean_stderr

EVAL_BATCH = 1000


def evaluate_split(model: GenerativeModel, dataset: Dataset, split: str, seed: int,
                   device: torch.device) -> dict[str, dict[str, float]]:
    """Mean and standard error of ``model.evaluate`` over a split, with its own fixed
    randomness (``seed``), so training randomness is untouched. Returns {} if the model
    reports nothing. Batches of 1,000 images are split over ranks under torchrun, each with
    its own generator, so the numbers do not depend on the number of processes."""
    data = dataset[split]

    def one_batch(index: int, start: int, stop: int) -> dict[str, torch.Tensor]:
        gen = distributed.batch_generator(seed, index, device)
        x = data.images[start:stop].to(device)
        y = None if data.labels is None else data.labels[start:stop].to(device)
        return {k: v.double() for k, v in model.evaluate(Batch(model.preprocess(x, gen), y), gen).items()}

    was_training = model.training
    model.eval()
    with torch.no_grad():
        values = distributed.map_batches(one_batch, len(data), EVAL_BATCH)
    model.train(was_training)
    return {key: mean_stderr(v) for key, v in values.items()}

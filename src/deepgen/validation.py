"""The per-split evaluation the Trainer runs on the validation split after every epoch and
on the test split at the end (numbers in ``metrics.jsonl`` and ``results.json``)."""

from __future__ import annotations

import torch

from . import distributed
from .data.datasets import Dataset
from .errors import ConfigError
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


class BestWeights:
    """Validation-based model selection and early stopping (``--keep-best``, ``--patience``).

    Each player is selected on its own validation metric (``model.selection()``, lower is
    better, e.g. ``neg_elbo`` in nats): after every epoch a player whose metric improved has
    its weights copied; at the end :meth:`restore` loads each player's best copy, as Pyro's
    CVAE example selects its baseline and its CVAE separately. ``stale`` counts the epochs
    since any player last improved; with ``patience`` the Trainer stops once it reaches it.
    The copies and the record travel in checkpoints (:meth:`tensors`, :meth:`state`), so a
    resumed run selects exactly as an uninterrupted one.

    Raises:
        ConfigError: the model reports no validation metric to select on, or the dataset
            has no ``valid`` split.
    """

    def __init__(self, model: GenerativeModel, players, dataset: Dataset, patience: int | None):
        self.selection = model.selection()
        if not self.selection:
            raise ConfigError(f"--keep-best/--patience select weights by a validation metric, and a "
                              f"{model.family} reports none; train without them")
        if "valid" not in dataset.splits:
            raise ConfigError(f"--keep-best/--patience need a validation split, and {dataset.name} has none")
        self.modules = {p.name: p.module for p in players if p.name in self.selection}
        self.patience = patience
        self.record: dict[str, dict] = {}  # player -> {"metric", "value", "epoch"}
        self.stale = 0
        self.copies: dict[str, dict[str, torch.Tensor]] = {}

    def update(self, stats: dict[str, dict[str, float]], epoch: float) -> None:
        """Take the epoch's validation ``stats`` (from :func:`evaluate_split`)."""
        improved = False
        for name, metric in self.selection.items():
            if metric not in stats:
                raise ConfigError(f"the {name} player is selected on {metric!r}, which the validation "
                                  f"split did not report (it has {sorted(stats)})")
            value = stats[metric]["mean"]
            if name not in self.record or value < self.record[name]["value"]:
                self.record[name] = {"value": value, "epoch": epoch, "metric": metric}
                self.copies[name] = {k: v.detach().clone() for k, v in self.modules[name].state_dict().items()}
                improved = True
        self.stale = 0 if improved else self.stale + 1

    @property
    def should_stop(self) -> bool:
        """True once ``stale`` reaches ``patience`` (never without patience)."""
        return self.patience is not None and self.stale >= self.patience

    def restore(self) -> str:
        """Load every player's best weights; returns a line saying which epochs they are from."""
        _load_copies(self.modules, self.copies)
        return "kept " + ", ".join(f"{name} from epoch {r['epoch']:.3g} (valid {r['metric']} {r['value']:.4g})"
                                   for name, r in self.record.items())

    def state(self) -> dict:
        """For the checkpoint JSON: each player's best {"metric", "value", "epoch"}; ``stale``."""
        return {"record": self.record, "stale": self.stale}

    def tensors(self) -> dict[str, torch.Tensor]:
        """The best copies as checkpoint tensors ``best/<player>/<parameter>`` on the CPU."""
        return {f"best/{name}/{k}": v.cpu() for name, copy in self.copies.items() for k, v in copy.items()}

    def load(self, state: dict, tensors: dict[str, torch.Tensor]) -> None:
        """Take back what :meth:`state` and :meth:`tensors` saved (nothing if absent)."""
        self.record, self.stale = dict(state.get("record", {})), int(state.get("stale", 0))
        self.copies = saved_copies(tensors)


def saved_copies(tensors: dict[str, torch.Tensor]) -> dict[str, dict[str, torch.Tensor]]:
    """Player name -> its best weights, from a checkpoint's tensors ({} for a run without
    ``--keep-best``)."""
    copies: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("best/"):
            _, name, param = key.split("/", 2)
            copies.setdefault(name, {})[param] = value
    return copies


def load_selected(model: GenerativeModel, tensors: dict[str, torch.Tensor]) -> None:
    """Give each player of ``model`` its best weights saved in a checkpoint's ``tensors``
    (a ``--keep-best`` run's checkpoints hold the training weights, for an exact resume,
    and these copies beside them)."""
    _load_copies({p.name: p.module for p in model.players()}, saved_copies(tensors))


def _load_copies(modules: dict, copies: dict[str, dict[str, torch.Tensor]]) -> None:
    for name, copy in copies.items():
        modules[name].load_state_dict(copy)

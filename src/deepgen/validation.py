"""The per-split evaluation the Trainer runs on the validation split after every epoch and
on the test split at the end (numbers in ``metrics.jsonl`` and ``results.json``)."""

from __future__ import annotations

from collections.abc import Mapping

import torch

from . import distributed
from .data.datasets import Dataset
from .data.streams import check_streams
from .errors import ConfigError, option
from .models.contract import Batch, GenerativeModel
from .seeds import batch_generator, derive
from .stats import mean_stderr

EVAL_BATCH = 1000


def as_streams(model: GenerativeModel, data: Dataset | Mapping[str, Dataset]) -> dict[str, Dataset]:
    """``data`` as stream name -> Dataset for ``model``: a lone Dataset is the stream of a
    one-stream family.

    Raises:
        ConfigError: the names differ from the model's streams.
    """
    if isinstance(data, Dataset):
        if len(model.streams) != 1:
            raise ConfigError(
                f"a {model.family} trains on the streams {', '.join(model.streams)}; "
                "pass a dict of stream name -> dataset"
            )
        return {model.streams[0]: data}
    check_streams(model.streams, dict(data), model.family)
    return {name: data[name] for name in model.streams}


def evaluate_split(
    model: GenerativeModel,
    streams: Dataset | Mapping[str, Dataset],
    split: str,
    seed: int,
    device: torch.device,
    limit: int = 0,
) -> dict[str, dict[str, float]]:
    """Mean and standard error of ``model.evaluate`` over a split of every stream (a lone
    Dataset: the one stream of a one-stream family), with its own fixed randomness
    (``seed``; the Trainer uses ``derive(run seed, "valid")`` and ``"test"``), so training
    randomness is untouched. A family with several streams reports ``STREAM/key``. Returns
    {} if the model reports nothing. Batches of 1,000 examples are split over ranks under
    torchrun, each with its own generator, so the numbers do not depend on the number of
    processes. ``limit`` > 0: only the split's first ``limit`` examples of each stream (the
    Trainer's per-epoch validation, ``--valid-images``)."""
    streams = as_streams(model, streams)
    was_training = model.training
    model.eval()
    out: dict[str, dict[str, float]] = {}
    for name in model.streams:
        data = streams[name][split]
        prefix = f"{name}/" if len(model.streams) > 1 else ""
        stream_seed = seed if len(model.streams) == 1 else derive(seed, "stream", name)

        def one_batch(
            index: int, start: int, stop: int, data=data, name=name, stream_seed=stream_seed
        ):
            gen = batch_generator(stream_seed, index, device)
            move = lambda t: None if t is None else t[start:stop].to(device)
            batch = Batch.of(
                model.preprocess(move(data.x), gen),
                move(data.labels),
                lengths=move(data.lengths),
                stream=name,
            )
            return {k: v.double() for k, v in model.evaluate(batch, gen).items()}

        with torch.no_grad():
            size = min(len(data), limit) if limit > 0 else len(data)
            values = distributed.map_batches(one_batch, size, EVAL_BATCH)
        out.update({prefix + key: mean_stderr(v) for key, v in values.items()})
    model.train(was_training)
    return out


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

    def __init__(
        self, model: GenerativeModel, players, streams: Mapping[str, Dataset], patience: int | None
    ):
        self.selection = model.selection()
        if not self.selection:
            raise ConfigError(
                f"{option('keep_best')}/{option('patience')} select weights by a validation "
                "metric, and a "
                f"{model.family} reports none; train without them"
            )
        for dataset in streams.values():
            if "valid" not in dataset.splits:
                raise ConfigError(
                    f"{option('keep_best')}/{option('patience')} need a validation split, and "
                    f"{dataset.name} has none"
                )
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
                raise ConfigError(
                    f"the {name} player is selected on {metric!r}, which the validation "
                    f"split did not report (it has {sorted(stats)})"
                )
            value = stats[metric]["mean"]
            if name not in self.record or value < self.record[name]["value"]:
                self.record[name] = {"value": value, "epoch": epoch, "metric": metric}
                self.copies[name] = {
                    k: v.detach().clone() for k, v in self.modules[name].state_dict().items()
                }
                improved = True
        self.stale = 0 if improved else self.stale + 1

    @property
    def should_stop(self) -> bool:
        """True once ``stale`` reaches ``patience`` (never without patience)."""
        return self.patience is not None and self.stale >= self.patience

    def restore(self) -> str:
        """Load every player's best weights; returns a line saying which epochs they are from."""
        _load_copies(self.modules, self.copies)
        return "kept " + ", ".join(
            f"{name} from epoch {r['epoch']:.3g} (valid {r['metric']} {r['value']:.4g})"
            for name, r in self.record.items()
        )

    def state(self) -> dict:
        """For the checkpoint JSON: each player's best {"metric", "value", "epoch"}; ``stale``."""
        return {"record": self.record, "stale": self.stale}

    def tensors(self) -> dict[str, torch.Tensor]:
        """The best copies as checkpoint tensors ``best/<player>/<parameter>`` on the CPU."""
        return {
            f"best/{name}/{k}": v.cpu()
            for name, copy in self.copies.items()
            for k, v in copy.items()
        }

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

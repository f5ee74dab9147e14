"""The contract between a model family and everything else: batches, players, the model
base class and the registry.

A family is a subclass of :class:`GenerativeModel` that says what it trains on
(``streams``), how it trains (``players()``: each optimised party with its per-example
loss), and what it can do, by inheriting the capability classes of
:mod:`deepgen.models.capabilities`::

    @register_model
    class VAE(LatentSpace, Encoder, ImportanceWeighted, GenerativeModel): ...

The Trainer runs its players on batches of its streams; every other tool asks for a
capability. See docs/contract.md for a worked example of adding a family.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from ..config import DataConfig
from ..data.batches import PREPROCESS
from ..errors import ConfigError
from ..registry import Registry

DEFAULT_STREAM = "data"


@dataclass
class StreamBatch:
    """One stream's rows of a batch.

    ``x``: images (B, C, H, W) float (preprocessed), points (B, D) float, or token ids
    (B, T) int64 padded; ``y`` (B,) int64 labels or None; ``lengths`` (B,) int64 sequence
    lengths or None. ``shard`` = (rank, world size): under torchrun a rank holds rows
    ``rank*B : (rank+1)*B`` of a global batch of ``world*B`` (see :mod:`deepgen.distributed`).
    """

    x: torch.Tensor
    y: torch.Tensor | None = None
    lengths: torch.Tensor | None = None
    shard: tuple[int, int] = (0, 1)

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def randn(
        self, *dims: int, generator: torch.Generator | None = None, dtype: torch.dtype | None = None
    ) -> torch.Tensor:
        """Standard normal noise (B, *dims) for these rows, on their device.

        Models draw per-example training noise (z of a GAN, eps of a VAE) here, not with
        ``torch.randn``: the global batch's noise is drawn and this shard's rows are kept,
        so N processes draw what one process draws for the combined batch.
        """
        return self._draw(torch.randn, dims, generator, dtype)

    def rand(
        self, *dims: int, generator: torch.Generator | None = None, dtype: torch.dtype | None = None
    ) -> torch.Tensor:
        """Uniform [0, 1) noise (B, *dims), sharded like :meth:`randn`."""
        return self._draw(torch.rand, dims, generator, dtype)

    def _draw(self, fn, dims, generator, dtype) -> torch.Tensor:
        rank, world = self.shard
        b = len(self)
        if dtype is None:
            dtype = self.x.dtype if self.x.is_floating_point() else torch.get_default_dtype()
        eps = fn((b * world, *dims), generator=generator, device=self.x.device, dtype=dtype)
        return eps if world == 1 else eps[rank * b : (rank + 1) * b]


@dataclass
class Batch:
    """The streams a player asked for, by name, the Trainer's iteration count (for
    schedules such as KL warm-up; 0 outside training) and ``progress``, the fraction of the
    run's iterations done before this one, in [0, 1) (DANN's lambda schedule).

    A single-stream family reads ``batch.x``, ``batch.y``, ``batch.randn(...)``: these
    are its one stream's. A family with several streams reads ``batch["source"].x``.
    """

    streams: dict[str, StreamBatch]
    iteration: int = 0
    progress: float = 0.0

    @classmethod
    def of(
        cls,
        x: torch.Tensor,
        y: torch.Tensor | None = None,
        *,
        lengths: torch.Tensor | None = None,
        stream: str = DEFAULT_STREAM,
        iteration: int = 0,
        shard: tuple[int, int] = (0, 1),
    ) -> Batch:
        """A batch of one stream."""
        return cls({stream: StreamBatch(x, y, lengths, shard)}, iteration)

    def __getitem__(self, name: str) -> StreamBatch:
        try:
            return self.streams[name]
        except KeyError:
            raise ConfigError(
                f"this batch has no stream {name!r}; it has {', '.join(self.streams)}"
            ) from None

    @property
    def only(self) -> StreamBatch:
        """The batch's one stream (raises ConfigError when it has several)."""
        if len(self.streams) != 1:
            raise ConfigError(
                f"this batch has streams {', '.join(self.streams)}; name one, e.g. "
                f"batch[{next(iter(self.streams))!r}]"
            )
        return next(iter(self.streams.values()))

    x = property(lambda self: self.only.x)
    y = property(lambda self: self.only.y)
    lengths = property(lambda self: self.only.lengths)

    def __len__(self) -> int:
        return len(self.only)

    def randn(
        self, *dims: int, generator: torch.Generator | None = None, dtype: torch.dtype | None = None
    ) -> torch.Tensor:
        """The one stream's :meth:`StreamBatch.randn`."""
        return self.only.randn(*dims, generator=generator, dtype=dtype)

    def rand(
        self, *dims: int, generator: torch.Generator | None = None, dtype: torch.dtype | None = None
    ) -> torch.Tensor:
        """The one stream's :meth:`StreamBatch.rand`."""
        return self.only.rand(*dims, generator=generator, dtype=dtype)


LossFn = Callable[[Batch, torch.Generator], dict[str, torch.Tensor]]


@dataclass
class Player:
    """One optimised party of a model.

    Attributes:
        name: used as the prefix of its logged values ("vae", "discriminator", ...).
        module: the parameters this player's optimiser updates.
        loss: ``loss(batch, generator)`` -> dict with key ``"loss"`` (B,) to minimise and
            other (B,) or scalar values to log. Units are the loss function's.
        make_optimizer: params -> torch optimiser.
        steps: steps this player takes per iteration (Goodfellow et al.'s k for D).
        uses_data: whether each step draws a new batch (False: reuse the last one, e.g.
            the generator, which only samples noise of the batch's size).
        streams: the streams each of its batches holds; None: every stream of the model.
        after_step: called after each optimiser step (e.g. WGAN's weight clipping).
        active: ``active(progress)`` -> whether it steps in an iteration begun at
            ``progress`` (the fraction of the run done, [0, 1)); None: always. Stages of a
            method (ADDA: a source classifier, then adaptation) are players active in turn.
        lr_scale: ``lr_scale(progress)`` -> the factor (>= 0) on its optimiser's learning
            rate in that iteration (DANN's annealing, CycleGAN's linear decay); None: 1.
            It multiplies ``--lr-decay``'s factor.
    """

    name: str
    module: nn.Module
    loss: LossFn
    make_optimizer: Callable[[Any], torch.optim.Optimizer]
    steps: int = 1
    uses_data: bool = True
    streams: tuple[str, ...] | None = None
    after_step: Callable[[], None] | None = None
    active: Callable[[float], bool] | None = None
    lr_scale: Callable[[float], float] | None = None


class GenerativeModel(nn.Module):
    """Base class of model families. Subclasses set ``family`` and ``Config``, implement
    ``players()`` (or the :class:`ClosedForm` capability) and inherit their capabilities.

    Class attributes a family may set:
        title: one line saying what it is, for `deepgen train --help`.
        streams: the names of the data streams it trains on, the first being the one whose
            passes count as epochs (``epoch_stream``) and whose data samples imitate.
        reads: the kinds of data (``Dataset.kind``: "images", "points", "sequences") the
            family reads; a run on another kind stops with a ConfigError before training.
        summary: (test metric key, unit) of the headline number in results.json.
        units: the unit of each key ``evaluate`` returns.
        evaluate_protocol: how the test numbers are computed, in words.
        report_curves: (title, y-axis label, [(metrics key, legend label)]); a key prefixed
            ``valid:`` is read from the validation records, others from the training records.
    """

    family: ClassVar[str]
    title: ClassVar[str] = ""
    Config: ClassVar[type]
    streams: ClassVar[tuple[str, ...]] = (DEFAULT_STREAM,)
    reads: ClassVar[tuple[str, ...]] = ("images", "points")
    summary: ClassVar[tuple[str, str]] = ("", "")
    units: ClassVar[dict[str, str]] = {}
    evaluate_protocol: ClassVar[str] = ""
    report_curves: ClassVar[list[tuple[str, str, list[tuple[str, str]]]]] = []

    def __init__(self, config):
        super().__init__()
        missing = [s for s in self.streams if s not in (config.shapes or {})]
        if missing:
            raise ConfigError(
                f"a {self.family} needs the shape of stream(s) {', '.join(missing)}; "
                "build it with shape=... or from a dataset"
            )
        self.config = config

    @classmethod
    def default_streams(cls, data: DataConfig) -> dict[str, DataConfig]:
        """The streams a run asking for dataset ``data`` trains on, before any given by name
        (``--stream NAME=DATASET``): by default ``data`` is the first stream and the others
        must be given. A family that cuts its streams from one dataset (a labelled and an
        unlabelled part) overrides this.

        Raises:
            ConfigError: ``data`` asks for a labelled subset, which only such a family uses.
        """
        if data.labels_per_class is not None and data.part == "all":
            raise ConfigError(
                "labels per class apply to families that learn from a few labels (m1, m2, ssgan, supervised); "
                f"a {cls.family} trains on all of its data"
            )
        return {cls.streams[0]: data}

    @classmethod
    def configure(cls, values: dict[str, Any], streams: Mapping[str, Any]) -> dict[str, Any]:
        """The model config ``values`` completed from the data it will train on (stream ->
        Dataset), before the model is built; by default unchanged (the example shapes are
        filled in by ``build_model``). A grammar model takes the data's grammar here."""
        return values

    def check_data(self, streams: Mapping[str, Any]) -> None:
        """Raise ConfigError unless ``streams`` (stream -> Dataset) is data this model reads:
        each stream must be a kind the family ``reads`` with the model's example shape."""
        for name, dataset in streams.items():
            if dataset.kind not in self.reads:
                raise ConfigError(
                    f"a {self.family} reads {' or '.join(self.reads)}; stream {name!r} holds "
                    f"{dataset.kind}"
                )
            if tuple(self.shape(name)) != tuple(dataset.data_shape):
                raise ConfigError(
                    f"the model takes examples of shape {self.shape(name)} in stream {name!r}, "
                    f"the data has {dataset.data_shape}"
                )

    @property
    def epoch_stream(self) -> str:
        """The stream whose passes count as epochs: the first of ``streams``."""
        return self.streams[0]

    def shape(self, stream: str | None = None) -> tuple[int, ...]:
        """The shape of one example of ``stream`` (default: the first): (C, H, W) of
        images, (D,) of points, (T,) of token sequences."""
        return tuple(self.config.shapes[stream or self.streams[0]])

    @property
    def data_shape(self) -> tuple[int, ...]:
        """The first stream's example shape (see :meth:`shape`)."""
        return self.shape()

    @property
    def is_image(self) -> bool:
        """True when the first stream holds images (C, H, W)."""
        return len(self.data_shape) == 3

    @property
    def device(self) -> torch.device:
        """Where the model's tensors live (parameters, or buffers for models without any)."""
        for tensor in itertools.chain(self.parameters(), self.buffers()):
            return tensor.device
        return torch.device("cpu")

    @property
    def grid_nrow(self) -> int:
        """Images per row of sample grids (a class-conditional model: one class per column)."""
        return 8

    def preprocess(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """uint8 images -> model inputs, by the config's ``preprocess``; float data (points)
        and integer token ids are used as they are."""
        if x.dtype != torch.uint8:
            return x
        return PREPROCESS[self.config.preprocess](x, generator)

    def players(self) -> list[Player]:
        """The optimised parties, stepped in order each iteration; [] for a family fitted in
        closed form (the :class:`ClosedForm` capability)."""
        raise NotImplementedError

    def selection(self) -> dict[str, str]:
        """Player name -> the validation metric (lower is better) that ``--keep-best``
        selects its weights on; by default every player on the ``summary`` metric, and {}
        (nothing to select on) for a family without one."""
        key = self.summary[0]
        return {p.name: key for p in self.players()} if key else {}

    def evaluate(self, batch: Batch, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """Per-example (B,) quantities reported on validation and test splits. The batch
        holds one stream's rows (each stream's split is evaluated in turn); the keys of a
        family with several streams are reported as ``STREAM/key``."""
        return {}

    def preview(
        self, held_out: Mapping[str, torch.Tensor], n: int, generator: torch.Generator | None = None
    ) -> torch.Tensor | None:
        """What the run folder's sample grids show: ``n`` samples (a :class:`Sampler`'s
        default), or for a model that needs inputs, e.g. completions of held-out examples
        (``held_out``: stream -> uint8 images or data, at least ``n``); None: nothing to show."""
        return None

    def save(self, path) -> Path:
        """Write this model to the new folder ``path`` for ``deepgen.load(path)`` (see
        :func:`deepgen.api.save`); returns the path."""
        from ..saved import save_model

        return save_model(self, path)

    def withheld(self) -> dict[type, str]:
        """Capabilities this family's class has but this configuration lacks -> why."""
        return {}


MODELS: Registry[type[GenerativeModel]] = Registry("model family")


def register_model(cls: type[GenerativeModel]) -> type[GenerativeModel]:
    """Class decorator: make a family available to the CLI, the loader and the shared tests."""
    MODELS.register(cls.family, cls)
    return cls

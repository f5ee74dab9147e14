"""Configs as data: pydantic models that validate and round-trip through JSON.

A run folder's ``config.json`` holds a :class:`RunConfig`; it is all that is needed to
rebuild the model (``deepgen.load``) or continue training (``--resume``).
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .errors import ConfigError


class Config(BaseModel):
    """Base for every config: unknown keys are errors, assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())


def format_validation_error(err: ValidationError, prefix: str = "") -> str:
    """One line naming each bad field, the problem and the value given."""
    parts = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"] if p not in ("__root__",))
        name = f"{prefix}{loc}" if loc else prefix.rstrip(".") or "config"
        given = f" (got {e['input']!r})" if "input" in e and not isinstance(e["input"], dict) else ""
        parts.append(f"{name}: {e['msg']}{given}")
    return "; ".join(parts)


def validate(cls: type[Config], data: dict[str, Any], prefix: str = "") -> Config:
    """Build ``cls`` from ``data``, turning pydantic's errors into one-line ConfigErrors."""
    try:
        return cls.model_validate(data)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, prefix)) from None


class DataConfig(Config):
    """Which dataset to train on and where to look for it."""

    name: str = Field("mnist", description="dataset name (see `deepgen data list`)")
    data_dir: str | None = Field(None, description="directory searched first for the data")
    image_size: int = Field(64, ge=4, le=1024, description="imagefolder: side of the square images, pixels")
    image_channels: Literal[1, 3] = Field(3, description="imagefolder: 1 (grey) or 3 (RGB)")
    on_bad_file: Literal["stop", "skip"] = Field("stop", description="imagefolder: an unreadable file")

    def load(self, log=None):
        """The dataset this config names, loaded with its options."""
        from .data import load_dataset

        return load_dataset(self.name, self.data_dir, image_size=self.image_size, channels=self.image_channels,
                            on_bad_file=self.on_bad_file, log=log)


class TrainConfig(Config):
    """How long and how to train. Length is in epochs or in images seen, not both."""

    epochs: int | None = Field(None, ge=1, description="passes over the training split")
    images: int | None = Field(None, ge=1, description="training images seen (alternative to epochs)")
    batch_size: int = Field(128, ge=1, le=65536, description="images per batch")
    seed: int = Field(0, ge=0, description="seed of every random draw in the run")
    device: str = Field("auto", description="auto, cpu, cuda or cuda:N")
    log_every: int = Field(50, ge=1, description="iterations between metrics.jsonl records")
    keep_checkpoints: int = Field(2, ge=1, description="checkpoints kept in the run folder")
    on_divergence: Literal["stop", "rollback"] = Field(
        "stop", description="on a NaN/inf loss or an exploding gradient: stop, or roll back to the "
                            "last checkpoint and lower every learning rate")
    rollback_lr_factor: float = Field(0.5, gt=0, lt=1, description="learning-rate factor per rollback")
    max_rollbacks: int = Field(3, ge=0, description="rollbacks before giving up")
    max_grad_norm: float | None = Field(None, gt=0, description="a gradient norm above this counts as divergence")
    lr_decay: Literal["constant", "linear"] = Field(
        "constant", description="learning rates: constant, or linear decay to 0 over the run")
    keep_best: bool = Field(False, description="end with the weights of the epoch with the best validation "
                            "metric, each player on its own (model.selection())")
    patience: int | None = Field(None, ge=1, description="stop when the validation metric has not improved "
                                 "for this many epochs (early stopping; implies keep_best)")
    compile: bool = Field(False, description="compile each network with torch.compile (slow first steps)")
    channels_last: bool = Field(False, description="hold conv weights and image batches channels-last")

    @model_validator(mode="after")
    def _one_length(self) -> TrainConfig:
        if self.epochs is not None and self.images is not None:
            raise ValueError("give the training length as epochs or as images, not both")
        return self

    def length(self) -> tuple[str, int]:
        """('epochs', N) or ('images', N); 10 epochs when neither is set."""
        if self.images is not None:
            return "images", self.images
        return "epochs", self.epochs if self.epochs is not None else 10


class RunConfig(Config):
    """Everything that defines a run: model family and its config, data and training."""

    family: str
    model: dict[str, Any]
    data: DataConfig = DataConfig()
    train: TrainConfig = TrainConfig()
    deepgen_version: str = ""

    def to_json(self) -> str:
        return json.dumps(self.model_dump(mode="json"), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str, source: str = "config") -> RunConfig:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ConfigError(f"{source} is not valid JSON: {err}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{source} must hold a JSON object, not {type(data).__name__}")
        return validate(cls, data)  # type: ignore[return-value]

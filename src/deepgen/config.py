"""Configs as data: pydantic models that validate and round-trip through JSON.

A run folder's ``config.json`` holds a :class:`RunConfig`; it is all that is needed to
rebuild the model (``deepgen.load``) or continue training (``--resume``).
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .errors import ConfigError
from .fileio import parse_json


class Config(BaseModel):
    """Base for every config: unknown keys are errors, assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())


def format_validation_error(err: ValidationError, prefix: str = "") -> str:
    """One line naming each bad field, the problem and the value given."""
    parts = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"] if p not in ("__root__",))
        name = f"{prefix}{loc}" if loc else prefix.rstrip(".") or "config"
        given = (
            f" (got {e['input']!r})" if "input" in e and not isinstance(e["input"], dict) else ""
        )
        parts.append(f"{name}: {e['msg']}{given}")
    return "; ".join(parts)


def validate(cls: type[Config], data: dict[str, Any], prefix: str = "") -> Config:
    """Build ``cls`` from ``data``, turning pydantic's errors into one-line ConfigErrors."""
    try:
        return cls.model_validate(data)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, prefix)) from None


class DataConfig(Config):
    """One data stream: which dataset, where to look for it, its options, which part of it,
    and (once a run has trained on it) what it held.

    ``sha256`` and ``sizes`` are recorded when a run starts; loading the stream again for
    resume, report or eval checks them, so a run never silently uses other data.
    """

    name: str = Field("mnist", description="dataset name (see `deepgen data list`)")
    data_dir: str | None = Field(
        None,
        description="directory searched first for the data (a file for "
        "arrays; relative to the run folder for stored data)",
    )
    options: dict[str, Any] = Field(
        {}, description="the dataset's own options, e.g. imagefolder's image_size"
    )
    part: Literal["all", "labelled", "unlabelled"] = Field(
        "all",
        description="all of the training split; only the labelled subset (labels_per_class of "
        "each class, chosen by subset_seed); or the rest of it without labels",
    )
    labels_per_class: int | None = Field(
        None, ge=1, description="labelled / unlabelled: labels kept per class"
    )
    subset_seed: int | None = Field(
        None, ge=0, description="seed of the labelled subset; default the run's seed"
    )
    sha256: str | None = Field(
        None, description="content hash of the stream's arrays, recorded at training"
    )
    sizes: dict[str, int] | None = Field(
        None, description="examples per split, recorded at training"
    )
    source: str | None = Field(
        None, description="where the data was read from (folder or file), recorded at training"
    )

    @model_validator(mode="before")
    @classmethod
    def _legacy_options(cls, data: Any) -> Any:
        """Configs written before dataset options held imagefolder's settings at the top level."""
        if isinstance(data, dict) and any(k in data for k in LEGACY_IMAGEFOLDER):
            data = dict(data)
            moved = {k: data.pop(k) for k in LEGACY_IMAGEFOLDER if k in data}
            if data.get("name") == "imagefolder":
                data["options"] = moved | dict(data.get("options") or {})
        return data

    @model_validator(mode="after")
    def _part_needs_labels(self) -> DataConfig:
        if self.part != "all" and self.labels_per_class is None:
            raise ValueError(f"part {self.part} needs labels_per_class")
        return self

    def request(self) -> DataConfig:
        """This config without what training recorded (content hash, sizes, source)."""
        return self.model_copy(update={"sha256": None, "sizes": None, "source": None})


LEGACY_IMAGEFOLDER = ("image_size", "image_channels", "on_bad_file")


class TrainConfig(Config):
    """How long and how to train. Length is in epochs or in images seen, not both."""

    epochs: int | None = Field(None, ge=1, description="passes over the training split")
    images: int | None = Field(
        None, ge=1, description="training images seen (alternative to epochs)"
    )
    batch_size: int = Field(128, ge=1, le=65536, description="images per batch")
    seed: int = Field(0, ge=0, le=2**63 - 1, description="seed of every random draw in the run")
    device: str = Field("auto", description="auto, cpu, cuda or cuda:N")
    log_every: int = Field(50, ge=1, description="iterations between metrics.jsonl records")
    keep_checkpoints: int = Field(2, ge=1, description="checkpoints kept in the run folder")
    on_divergence: Literal["stop", "rollback"] = Field(
        "stop",
        description="on a NaN/inf loss or an exploding gradient: stop, or roll back to the "
        "last checkpoint and lower every learning rate",
    )
    rollback_lr_factor: float = Field(
        0.5, gt=0, lt=1, description="learning-rate factor per rollback"
    )
    max_rollbacks: int = Field(3, ge=0, description="rollbacks before giving up")
    max_grad_norm: float | None = Field(
        None, gt=0, description="a gradient norm above this counts as divergence"
    )
    lr_decay: Literal["constant", "linear", "cosine"] = Field(
        "constant",
        description="learning rates: constant, or decayed to 0 over the run, linearly or by a "
        "half cosine",
    )
    keep_best: bool = Field(
        False,
        description="end with the weights of the epoch with the best validation "
        "metric, each player on its own (model.selection())",
    )
    patience: int | None = Field(
        None,
        ge=1,
        description="stop when the validation metric has not improved "
        "for this many epochs (early stopping; implies keep_best)",
    )
    compile: bool = Field(
        False, description="compile each network with torch.compile (slow first steps)"
    )
    channels_last: bool = Field(
        False, description="hold conv weights and image batches channels-last"
    )
    valid_images: int = Field(
        2000,
        ge=0,
        description="validation images evaluated after each epoch: the split's first N, with "
        "the same randomness every epoch, so epochs compare on the same draws (0: all)",
    )

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
    """Everything that defines a run: model family and its config, data and training.

    ``data`` is the dataset asked for; ``streams`` holds every stream the model trains on
    (for most families one, named "data"), resolved from ``data`` by the family when the run
    starts and recorded with each stream's content hash. A stream given in ``streams``
    before the run starts (``--stream NAME=DATASET``) is used as given.
    """

    family: str
    model: dict[str, Any]
    data: DataConfig = DataConfig()
    streams: dict[str, DataConfig] = {}
    train: TrainConfig = TrainConfig()
    deepgen_version: str = ""
    history: list[dict[str, Any]] = Field(
        [], description="what each resume changed: iteration, time and option -> [before, after]"
    )

    @model_validator(mode="before")
    @classmethod
    def _legacy_cvae(cls, data: Any) -> Any:
        """Before the two CVAEs were two families, family cvae took condition=quadrants."""
        if (
            isinstance(data, dict)
            and data.get("family") == "cvae"
            and isinstance(data.get("model"), dict)
        ):
            model = dict(data["model"])
            if model.pop("condition", "label") == "quadrants":
                data = data | {"family": "cvae-quadrants"}
                model.pop("num_classes", None)
            else:
                for key in ("quadrants", "k"):
                    model.pop(key, None)
            data = data | {"model": model}
        return data

    @model_validator(mode="before")
    @classmethod
    def _legacy_validation(cls, data: Any) -> Any:
        """A run saved before ``valid_images`` existed validated on the whole split; it
        resumes so (a run's saved config has ``deepgen_version``, a user's config file not)."""
        if isinstance(data, dict) and data.get("deepgen_version"):
            train = data.get("train")
            if isinstance(train, dict) and "valid_images" not in train:
                data = data | {"train": train | {"valid_images": 0}}
        return data

    def to_json(self) -> str:
        return json.dumps(self.model_dump(mode="json"), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str, source: str = "config") -> RunConfig:
        data = parse_json(text, ConfigError, source)
        if not isinstance(data, dict):
            raise ConfigError(f"{source} must hold a JSON object, not {type(data).__name__}")
        return validate(cls, data)  # type: ignore[return-value]


def parse_run_config(text: str, path: str) -> RunConfig:
    """The RunConfig in ``text``, read as the format the suffix of ``path`` (where the text
    came from; named in errors) says: TOML (``.toml``), YAML (``.yaml``/``.yml``, with
    PyYAML installed) or else JSON (a run's config.json).

    Raises:
        ConfigError: not valid TOML/YAML/JSON, YAML without PyYAML, or not a valid run
            config."""
    import tomllib

    if path.endswith(".toml"):
        try:
            values = tomllib.loads(text)
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(f"{path} is not valid TOML: {err}") from None
    elif path.endswith((".yaml", ".yml")):
        values = _yaml(text, path)
    else:
        return RunConfig.from_json(text, source=path)
    if not isinstance(values, dict):
        raise ConfigError(f"{path} holds a {type(values).__name__}, not a run config's mapping")
    return validate(RunConfig, values, prefix="")


def _yaml(text: str, path: str):
    """The value of YAML ``text`` (safe_load: plain data only, no Python objects)."""
    try:
        import yaml
    except ImportError:
        raise ConfigError(
            f"{path}: reading YAML needs PyYAML; pip install 'deepgen[yaml]', or give the "
            "config as JSON or TOML"
        ) from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        first = " ".join(str(err).split())
        raise ConfigError(f"{path} is not valid YAML: {first}") from None

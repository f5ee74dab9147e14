"""Named run configs shipped with deepgen: ``deepgen train FAMILY --preset NAME`` starts from
``FAMILY-NAME.toml`` in this folder, as ``--config`` starts from a file. Each file says what
it reaches, where and in how long, and the benchmark that measures it."""

from __future__ import annotations

from importlib import resources
from typing import TYPE_CHECKING

from ..errors import ConfigError

if TYPE_CHECKING:
    from ..config import RunConfig


def names(family: str) -> list[str]:
    """The presets shipped for ``family``, sorted."""
    prefix = f"{family}-"
    files = resources.files(__name__).iterdir()
    return sorted(f.name[len(prefix) : -5] for f in files if _is_preset(f.name, prefix))


def text(family: str, name: str) -> str:
    """The TOML text of ``family``'s preset ``name``.

    Raises:
        ConfigError: no such preset for that family (the message lists the ones there are)."""
    if name not in names(family):
        have = ", ".join(names(family)) or "none"
        raise ConfigError(f"{family} has no preset {name!r} (its presets: {have})")
    return resources.files(__name__).joinpath(f"{family}-{name}.toml").read_text("utf-8")


def load(family: str, name: str) -> RunConfig:
    """``family``'s preset ``name`` as a RunConfig.

    Raises:
        ConfigError: no such preset (as :func:`text`), or the file is not a valid run config
            of ``family``."""
    from ..config import parse_run_config

    config = parse_run_config(text(family, name), f"{family}-{name}.toml")
    if config.family != family:
        raise ConfigError(f"preset {family}-{name}.toml configures a {config.family}")
    return config


def _is_preset(filename: str, prefix: str) -> bool:
    return filename.startswith(prefix) and filename.endswith(".toml")

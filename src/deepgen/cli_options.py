"""`deepgen train`'s model options, generated from the registered model configs, so a new
family brings its own flags (``--latent-dim``, ``--net``, ``--loss``, ...)."""

from __future__ import annotations

import types
import typing
from typing import Any, Literal

import click


def _click_type(annotation) -> tuple[Any, list[str]]:
    """click type and Literal choices for a pydantic field annotation."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType) and len(args) == 1:
        return _click_type(args[0])
    if origin is Literal:
        return str, [str(a) for a in typing.get_args(annotation)]
    if annotation in (int, float, str, bool):
        return annotation, []
    return None, []


def model_options() -> dict[str, dict[str, Any]]:
    """Every model-config field of every registered family: name -> type, choices, help, families."""
    from .models import MODELS

    fields: dict[str, dict[str, Any]] = {}
    for family, cls in MODELS.items():
        for name, info in cls.Config.model_fields.items():
            if (info.json_schema_extra or {}).get(
                "cli"
            ) is False:  # set from the data, not by a flag
                continue
            ctype, choices = _click_type(info.annotation)
            if ctype is None:
                continue
            entry = fields.setdefault(
                name, {"type": ctype, "choices": [], "help": {}, "families": []}
            )
            entry["choices"] += [c for c in choices if c not in entry["choices"]]
            entry["families"].append(family)
            entry["help"][family] = f"{info.description or name} (default {info.default})"
    return fields


def add_model_options(command):
    """Decorator: one ``--name`` option per model-config field of every registered family."""
    for name, entry in sorted(model_options().items(), reverse=True):
        ctype = click.Choice(entry["choices"]) if entry["choices"] else entry["type"]
        text = "; ".join(f"{fam}: {h}" for fam, h in entry["help"].items())
        flag = f"--{name.replace('_', '-')}"
        if ctype is bool:  # a switch: --feature-matching / --no-feature-matching
            flag, ctype = f"{flag}/--no-{flag[2:]}", None
        command = click.option(flag, name, type=ctype, default=None, help=f"[model] {text}")(
            command
        )
    return command


def device_option(command):
    """Decorator: ``--device``, by default ``auto`` (CUDA when there is one, else the CPU)."""
    return click.option(
        "--device",
        default="auto",
        show_default=True,
        help="auto (CUDA when available, else CPU), cpu, cuda or cuda:N",
    )(command)

"""`deepgen train`'s model options, generated from the registered model configs, so a new
family brings its own flags (``--latent-dim``, ``--net``, ``--loss``, ...)."""

from __future__ import annotations

import copy
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
    from ..models import MODELS

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
            shown = "" if info.default is None else f"  [default: {info.default}]"
            entry["help"][family] = f"{info.description or name}{shown}"
    return fields


class ModelOption(click.Option):
    """A model-config field's option: its help for each family that has the field."""

    def __init__(self, *args, family_help: dict[str, str], **kwargs):
        super().__init__(*args, **kwargs)
        self.family_help = family_help


def model_option_params() -> list[ModelOption]:
    """One ``--name`` option per model-config field of every registered family."""
    params = []
    for name, entry in sorted(model_options().items()):
        ctype = click.Choice(entry["choices"]) if entry["choices"] else entry["type"]
        text = "; ".join(f"{fam}: {h}" for fam, h in entry["help"].items())
        flag = f"--{name.replace('_', '-')}"
        if ctype is bool:  # a switch: --feature-matching / --no-feature-matching
            flag, ctype = f"{flag}/--no-{flag[2:]}", None
        params.append(
            ModelOption(
                [flag, name],
                type=ctype,
                default=None,
                help=f"[model] {text}",
                family_help=entry["help"],
            )
        )
    return params


class TrainCommand(click.Command):
    """`deepgen train`, whose help fits what is asked: `deepgen train FAMILY --help` lists
    only FAMILY's model options, with their help for FAMILY; `deepgen train --help` lists
    the families, one line each, instead of every family's options."""

    def get_params(self, ctx: click.Context) -> list[click.Parameter]:
        """The command's own options, then the families' model options, which are made
        (importing every family, so torch) only when the command is used: `deepgen --help`
        and the other commands start without them."""
        if not any(isinstance(p, ModelOption) for p in self.params):
            self.params.extend(model_option_params())
        return super().get_params(ctx)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta["train_family"] = next((a for a in args if not a.startswith("-")), None)
        return super().parse_args(ctx, args)

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        family = ctx.meta.get("train_family")
        records = []
        for param in self.get_params(ctx):
            if isinstance(param, ModelOption):
                if family not in param.family_help:
                    continue
                param = copy.copy(param)
                param.help = f"[model] {param.family_help[family]}"
            record = param.get_help_record(ctx)
            if record is not None:
                records.append(record)
        with formatter.section("Options"):
            formatter.write_dl(records)
        if family is None:
            from ..models import MODELS

            with formatter.section("Families (deepgen train FAMILY --help: its model options)"):
                formatter.write_dl(
                    [
                        (name, _capital(cls.title or summary(cls.__doc__)))
                        for name, cls in MODELS.items()
                    ]
                )


def summary(doc: str | None, width: int = 90) -> str:
    """The first sentence of a docstring, cut to ``width`` characters."""
    text = " ".join((doc or "").split())
    sentence = text.split(". ")[0].rstrip(".")
    return sentence if len(sentence) <= width else sentence[: width - 3].rstrip() + "..."


def device_option(command):
    """Decorator: ``--device``, by default ``auto`` (CUDA when there is one, else the CPU)."""
    return click.option(
        "--device",
        default="auto",
        show_default=True,
        help="auto (CUDA when available, else CPU), cpu, cuda or cuda:N",
    )(command)


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]

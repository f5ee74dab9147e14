"""The command line: parse, build a config, call the library. Nothing else lives here.

One module per group of commands, each registering its commands on :data:`cli` when
imported: :mod:`.train`; :mod:`.pictures` (sample, reconstruct, translate, latent);
:mod:`.measure` (eval, report, optimize, demo, lab); :mod:`.assets` (data, classifier);
:mod:`.web` (serve, study create, study results).
Model options (``--latent-dim``, ``--net``, ``--loss``, ...) are generated from the
registered model configs (:mod:`.options`), so a new family brings its own flags. Every
module imports only click at load, so `deepgen --help` starts without torch.
"""

from __future__ import annotations

import errno
import os
import signal
import sys

import click

from ..errors import FROM_COMMAND_LINE, ConfigError, DeepgenError
from . import assets, measure, pictures, train, web  # noqa: F401  (they register the commands)
from .group import cli

__all__ = ["cli", "main"]


# Commands that may run as several processes under torchrun (the others would race on files).
DISTRIBUTED_COMMANDS = ("train", "eval", "sample")


def _join_process_group(argv: list[str] | None) -> None:
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:  # distributed.launched(), before torch loads
        return
    from .. import distributed

    args = sys.argv[1:] if argv is None else argv
    command = next((a for a in args if not a.startswith("-")), None)
    if command not in DISTRIBUTED_COMMANDS:
        raise ConfigError(
            f"`deepgen {command}` runs in one process; under torchrun only "
            f"{', '.join(DISTRIBUTED_COMMANDS)} can run"
        )
    distributed.init_from_env()


# Options that answer without running a command, and so without torch.
_ANSWERED_BY_CLICK = ("--help", "-h", "--version")


def _import_torch_holding_ctrl_c(argv: list[str] | None) -> None:
    """Import numpy and torch for a command that will run, with Ctrl-C held until both are in.

    torch's C++ start-up imports numpy and, if that import fails, warns and carries on: a
    KeyboardInterrupt raised there is swallowed, and the command then ran to the end as if
    nothing had been pressed (or failed later on a half-imported ``numpy.linalg``). Here a
    Ctrl-C during the import is only noted, and raised as KeyboardInterrupt once torch is in.
    """
    args = sys.argv[1:] if argv is None else argv
    if not args or any(a in _ANSWERED_BY_CLICK for a in args):
        return
    if "torch" in sys.modules or signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        return  # already in, or someone else (a test runner, an embedding) owns Ctrl-C
    pressed: list[int] = []
    signal.signal(signal.SIGINT, lambda signum, frame: pressed.append(signum))
    try:
        import numpy  # noqa: F401
        import torch  # noqa: F401
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if pressed:
        raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """Entry point: one line on stderr and a non-zero exit for every expected error."""

    def error(msg: str) -> None:
        distributed = sys.modules.get("deepgen.distributed")  # loaded once torch is
        several = distributed is not None and distributed.world_size() > 1
        where = f"[rank {distributed.rank()}] " if several else ""
        click.echo(f"deepgen: {where}{msg}", err=True)

    command_line = FROM_COMMAND_LINE.set(True)  # errors name --flags, not Python arguments
    try:
        _import_torch_holding_ctrl_c(argv)
        _join_process_group(argv)
        rv = cli.main(args=argv, prog_name="deepgen", standalone_mode=False)
        return rv if isinstance(rv, int) else 0
    except click.UsageError as err:
        hint = f" (see `{err.ctx.command_path} --help`)" if err.ctx else ""
        error(f"error: {err.format_message()}{hint}")
        return 2
    except click.ClickException as err:
        error(f"error: {err.format_message()}")
        return err.exit_code
    except DeepgenError as err:
        error(f"error: {err}")
        return err.exit_code
    except (KeyboardInterrupt, click.Abort):
        error("interrupted")
        return 130
    except OSError as err:  # the machine refused: a read-only or full disk, a missing folder, ...
        if err.errno is None:
            raise
        error(f"error: {os_error_message(err)}")
        return 1
    finally:
        FROM_COMMAND_LINE.reset(command_line)
        distributed = sys.modules.get("deepgen.distributed")
        if distributed is not None:
            distributed.shutdown()


def os_error_message(err: OSError) -> str:
    """One line for an error of the operating system: what failed, on which file, and
    what to do (finished checkpoints are never touched by a failed write)."""
    where = f" ({err.filename})" if err.filename else ""
    text = f"{err.strerror or err}{where}"
    if err.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return (
            f"{text}: the disk (or the file-size limit) is full; the checkpoints written "
            "before are intact: free some space and continue with `deepgen train --resume RUN`"
        )
    if err.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return (
            f"{text}: cannot write there; choose a writable place (--out, -o) or fix the "
            "permissions"
        )
    return text


if __name__ == "__main__":
    sys.exit(main())

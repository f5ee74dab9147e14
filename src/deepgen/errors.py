"""Error types. Every error deepgen raises on bad input is a :class:`DeepgenError`.

The command line prints ``deepgen: error: <message>`` for these and exits non-zero,
without a traceback, so messages must say what was wrong and what to do. A message that
names a setting names it through :func:`option`, so the command line reads ``--batch-size``
and Python reads ``batch_size``, the argument each of them takes.
"""

from contextvars import ContextVar

FROM_COMMAND_LINE: ContextVar[bool] = ContextVar("deepgen_from_command_line", default=False)


def option(name: str, value: object = None) -> str:
    """The setting ``name`` (a Python argument or config field, e.g. ``batch_size``) as the
    caller wrote it: ``--batch-size`` under the command line, ``batch_size`` from Python;
    with ``value``, the setting given that value (``--loss nonsaturating`` /
    ``loss="nonsaturating"``)."""
    if FROM_COMMAND_LINE.get():
        flag = "--" + name.replace("_", "-")
        return flag if value is None else f"{flag} {value}"
    return name if value is None else f"{name}={value!r}"


class DeepgenError(Exception):
    """Base class for every error deepgen raises on purpose."""

    exit_code = 1


class ConfigError(DeepgenError, ValueError):
    """A configuration value or command-line option is invalid."""

    exit_code = 2


class DataError(DeepgenError):
    """A dataset is missing, corrupt, truncated or of the wrong shape."""


class CheckpointError(DeepgenError):
    """A run folder or checkpoint is missing, incomplete or corrupt."""


class TrainingDiverged(DeepgenError):
    """A loss or gradient became NaN or infinite during training."""


class Interrupted(DeepgenError):
    """Training was stopped by SIGINT/SIGTERM after a checkpoint was written."""

    exit_code = 130

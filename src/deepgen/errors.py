"""Error types. Every error deepgen raises on bad input is a :class:`DeepgenError`.

The command line prints ``deepgen: error: <message>`` for these and exits non-zero,
without a traceback, so messages must say what was wrong and what to do.
"""


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

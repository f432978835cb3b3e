"""Errors the user can fix. The command-line tools print their message alone (no traceback) and exit non-zero.

Every message names the file or config key at fault and says what to do. Library-specific errors subclass
:class:`UserError` as well as the built-in type they have always been (``ValueError``, ``FileNotFoundError``…),
so existing ``except`` clauses keep working.
"""

from __future__ import annotations


class UserError(Exception):
    """A problem with the input (config, data, weights file) rather than a bug; ``exit_code`` and ``kind`` (the word
    in ``<tool>: <kind>: <message>``) for the CLI."""

    exit_code = 2
    kind = "error"


class ConfigError(UserError, ValueError):
    """A config value is unknown, of the wrong type or out of range; the message names the key and the fix."""

    kind = "config error"


class MissingPathError(UserError, FileNotFoundError):
    """A file or folder named by a config key does not exist; the message names the key."""

    kind = "missing path"


class CheckpointError(UserError, ValueError):
    """A checkpoint cannot be read (truncated, corrupt, unsafe content) or does not fit the model."""

    kind = "checkpoint error"


class DataFileError(UserError, OSError):
    """A dataset file (image, map, fixation file) cannot be read; the message names it. The data loaders raise
    nothing else for a bad file, whatever its bytes."""


class InvalidDatasetError(UserError, ValueError):
    """The data check found errors and ``data.skip_invalid`` is off; the message lists them."""

    kind = "invalid dataset"

    exit_code = 1


class ExportError(UserError, RuntimeError):
    """An export that would not compute what the PyTorch model computes (the parity check failed); nothing is
    written."""

    kind = "export error"

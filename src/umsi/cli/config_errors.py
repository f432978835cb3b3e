"""User errors of the command-line tools as one line: ``<tool>: <kind>: <message>`` on stderr and the error's exit
code; OmegaConf's errors become one line naming the full key. Nothing here imports torch."""

from __future__ import annotations

import sys
from typing import NoReturn

from omegaconf.errors import (
    ConfigAttributeError,
    ConfigKeyError,
    InterpolationResolutionError,
    MissingMandatoryValue,
    OmegaConfBaseException,
)

from umsi.errors import UserError

CONFIG_ERRORS = (UserError, ConfigAttributeError, ConfigKeyError, InterpolationResolutionError, MissingMandatoryValue)


def tool_name(config_name: str) -> str:
    """``train`` → ``umsi-train``, ``data_check`` → ``umsi-data-check``."""
    return "umsi-" + config_name.replace("_", "-")


def first_line(text: str) -> str:
    return next((line.strip() for line in str(text).splitlines() if line.strip()), "")


def describe_error(err: BaseException) -> tuple[str, str]:
    """``(kind, message)`` of a user error; OmegaConf errors become one line naming the full key."""
    if isinstance(err, UserError):
        return err.kind, str(err)
    if isinstance(err, OmegaConfBaseException):
        key = getattr(err, "full_key", None) or ""
        detail = first_line(getattr(err, "msg", None) or str(err))
        if isinstance(err, MissingMandatoryValue):
            return "config error", f"{key} is not set (???): give it on the command line, e.g. {key}=…"
        if isinstance(err, InterpolationResolutionError):
            return "config error", f"{key}: cannot resolve its interpolation ({detail}): fix the ${{…}} reference"
        if key:
            return "config error", f"unknown key '{key}' ({detail}): fix the spelling, or add it with '+{key}=…'"
        return "config error", detail
    return "error", str(err)


def report_error(tool: str, err: BaseException) -> NoReturn:
    """Print ``<tool>: <kind>: <message>`` on stderr (a several-line message is kept whole) and exit with the
    error's ``exit_code`` (2 for OmegaConf errors)."""
    kind, message = describe_error(err)
    print(f"{tool}: {kind}: {message}", file=sys.stderr)
    sys.exit(getattr(err, "exit_code", 2))

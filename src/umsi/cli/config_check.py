"""Config errors as one-line messages, before Hydra makes a run folder, and user errors without a traceback.

``@hydra_cli("train", config_dir=CONFIG_DIR)`` replaces ``@hydra.main`` in the command-line tools:

* before Hydra starts, :func:`~umsi.cli.overrides.check_command_line` lets Hydra and OmegaConf judge the command
  line (:mod:`umsi.cli.overrides`; hints for keys of another tool in :mod:`umsi.cli.hints`);
* ``precheck(cfg)`` runs on that composed config, still before any run folder exists, with Hydra initialised on
  the config directory (so it can ``compose`` other configs);
* inside the job, ``check(cfg)`` runs before the task; a :class:`~umsi.errors.UserError`, or an OmegaConf error about
  a key, ends the tool with ``<tool>: <kind>: <message>`` on stderr and the error's exit code
  (:mod:`umsi.cli.config_errors`). Any other exception (a bug) keeps its traceback;
* a plain ``--help`` is answered by :mod:`umsi.cli.help_page`.

Nothing here imports torch.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
from collections.abc import Callable
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from umsi.cli.config_errors import CONFIG_ERRORS, describe_error, report_error, tool_name
from umsi.cli.help_page import about_text, config_groups, help_page, is_plain_help
from umsi.cli.overrides import check_command_line, check_overrides, composer, parse_command_line, typed_config

__all__ = [
    "check_command_line",
    "check_overrides",
    "config_groups",
    "describe_error",
    "hydra_cli",
    "report_error",
    "tool_name",
    "typed_config",
]

log = logging.getLogger(__name__)

TaskFunction = Callable[[DictConfig], Any]


def hydra_cli(
    config_name: str,
    *,
    config_dir: str,
    tool: str | None = None,
    check: Callable[[DictConfig], None] | None = None,
    precheck: Callable[[DictConfig], None] | None = None,
) -> Callable[[TaskFunction], Callable[..., Any]]:
    """``@hydra.main(config_path=config_dir, config_name=config_name)`` with one-line config errors: the
    command line is checked first (:func:`check_command_line`) and ``precheck(cfg)`` runs on the composed config
    (first value of each sweep), both before Hydra makes a run folder; in the job, ``check(cfg)`` runs before the
    task. User errors are reported by :func:`report_error`. ``main(cfg)`` still calls the task directly."""
    name = tool or tool_name(config_name)

    def decorate(task: TaskFunction) -> Callable[..., Any]:
        @functools.wraps(task)
        def job(cfg: DictConfig) -> Any:
            try:
                if check is not None:
                    check(cfg)
                return task(cfg)
            except CONFIG_ERRORS as err:
                report_error(name, err)

        hydra_main = hydra.main(version_base="1.3", config_path=config_dir, config_name=config_name)(job)

        @functools.wraps(task)
        def entry(cfg_passthrough: DictConfig | None = None) -> Any:
            if cfg_passthrough is None and is_plain_help(args := parse_command_line(sys.argv[1:])):
                try:
                    page = help_page(config_name, config_dir, args.overrides, name, about_text(task))
                except Exception:  # e.g. a wrong override: Hydra's own help reports it
                    log.debug("fast --help failed", exc_info=True)
                else:
                    print(page, end="")
                    return None
            if cfg_passthrough is None:
                try:
                    composed = check_command_line(config_name, config_dir, sys.argv[1:], name)
                    if composed is not None and precheck is not None:
                        with composer(config_dir):  # a precheck may compose other configs (the pipeline's stages)
                            precheck(composed)
                except CONFIG_ERRORS as err:
                    report_error(name, err)
                except Exception:  # a flaw of the check itself must not stop a valid command: Hydra decides
                    if os.environ.get("HYDRA_FULL_ERROR") == "1":
                        raise
                    log.debug("command-line check failed", exc_info=True)
                finally:
                    HydraConfig.instance().cfg = None
            return hydra_main(cfg_passthrough)

        return entry

    return decorate

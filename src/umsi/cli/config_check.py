"""Config errors as one-line messages, before Hydra makes a run folder, and user errors without a traceback.

``@hydra_cli("train", config_dir=CONFIG_DIR)`` replaces ``@hydra.main`` in the command-line tools:

* before Hydra starts, :func:`check_overrides` lets Hydra and OmegaConf judge the command line: Hydra composes the
  config-group choices (and refuses an unknown option), then every value override, each value of a sweep, is set
  on a struct-mode copy of the composed defaults whose values carry the type of their default
  (:func:`typed_config`), so OmegaConf refuses an unknown key or a value that does not convert. The errors come
  out as one line with the closest key or option;
* ``precheck(cfg)`` runs on that composed config, still before any run folder exists, with Hydra initialised on
  the config directory (so it can ``compose`` other configs);
* inside the job, ``check(cfg)`` runs before the task; a :class:`~umsi.errors.UserError`, or an OmegaConf error about
  a key, ends the tool with ``<tool>: <kind>: <message>`` on stderr and the error's exit code. Any other exception
  (a bug) keeps its traceback.

Nothing here imports torch.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import functools
import io
import itertools
import logging
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn

import hydra
from hydra import compose, initialize_config_dir
from hydra.core.config_loader import ConfigLoader
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, Glob, IntervalSweep, Override, QuotedString, RangeSweep
from hydra.errors import HydraException
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import (
    ConfigAttributeError,
    ConfigKeyError,
    InterpolationResolutionError,
    MissingMandatoryValue,
    OmegaConfBaseException,
    ValidationError,
)
from omegaconf.nodes import AnyNode, BooleanNode, FloatNode, IntegerNode, Node, StringNode

from umsi.errors import ConfigError, UserError

__all__ = [
    "check_command_line",
    "check_overrides",
    "describe_error",
    "hydra_cli",
    "report_error",
    "tool_name",
    "typed_config",
]

log = logging.getLogger(__name__)

TaskFunction = Callable[[DictConfig], Any]
CONFIG_ERRORS = (UserError, ConfigAttributeError, ConfigKeyError, InterpolationResolutionError, MissingMandatoryValue)
# keys that legitimately take several types (Lightning: 1, [0, 1] or "auto"; umsi-predict: a path or a list)
ANY_TYPE_KEYS = frozenset({"trainer.devices", "input"})
# what a value must be, by the type of the default OmegaConf refused it for (bool before int: True is an int)
EXPECTED = {
    bool: "must be true or false",
    int: "must be an integer",
    float: "must be a number",
    list: "must be a list, e.g. [a,b]",
    dict: "must be a group of keys, e.g. {key: value}",
}
_ABSENT = object()
_MAX_SWEEP_VALUES = 100  # values of one sweep whose types are checked


def tool_name(config_name: str) -> str:
    """``train`` → ``umsi-train``, ``data_check`` → ``umsi-data-check``."""
    return "umsi-" + config_name.replace("_", "-")


# ---------------------------------------------------------------------------------------------------------------
# reporting


def _first_line(text: str) -> str:
    return next((line.strip() for line in str(text).splitlines() if line.strip()), "")


def describe_error(err: BaseException) -> tuple[str, str]:
    """``(kind, message)`` of a user error; OmegaConf errors become one line naming the full key."""
    if isinstance(err, UserError):
        return err.kind, str(err)
    if isinstance(err, OmegaConfBaseException):
        key = getattr(err, "full_key", None) or ""
        detail = _first_line(getattr(err, "msg", None) or str(err))
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


# ---------------------------------------------------------------------------------------------------------------
# the command-line check


@contextlib.contextmanager
def _composer(config_dir: str) -> Iterator[ConfigLoader]:
    """A Hydra initialised on ``config_dir`` for ``compose``; an already initialised one is put back after."""
    global_hydra = GlobalHydra.instance()
    saved = global_hydra.hydra
    global_hydra.clear()
    try:
        with initialize_config_dir(config_dir=os.path.abspath(config_dir), version_base="1.3"):
            yield GlobalHydra.instance().config_loader()
    finally:
        GlobalHydra.instance().clear()
        if saved is not None:
            GlobalHydra.instance().hydra = saved


def _plain(value: Any) -> Any:
    """A parsed override element as a Python value (quoted strings unquoted)."""
    if isinstance(value, QuotedString):
        return value.text
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {_plain(k): _plain(v) for k, v in value.items()}
    return value


def _values(override: Override) -> list[Any]:
    """Every value an override gives its key: one, or those of a sweep (the bounds of an interval)."""
    value = override.value()
    if isinstance(value, ChoiceSweep):
        return [_plain(v) for v in value.list]
    if isinstance(value, RangeSweep):
        return list(itertools.islice(override.sweep_iterator(), _MAX_SWEEP_VALUES))
    if isinstance(value, IntervalSweep):
        return [value.start, value.end]
    if isinstance(value, Glob):
        return []
    return [value]


def _first_value_override(override: Override, group_options: list[str]) -> str | None:
    """The override with a sweep reduced to its first value (``loss.cc=-3,-1`` → ``loss.cc=-3``); ``None`` when
    nothing is left (a glob that matches no option)."""
    value = override.value()
    if override.is_delete() or not override.is_sweep_override():
        return override.input_line
    if isinstance(value, Glob):
        first = next(iter(value.filter(group_options)), _ABSENT)
    elif isinstance(value, IntervalSweep):
        first = value.start
    else:
        first = next(iter(override.sweep_iterator()), _ABSENT)
    if first is _ABSENT:
        return None
    return f"{override.get_key_element()}={Override._get_value_element_as_str(first)}"


def _one_line(err: BaseException) -> str:
    """A Hydra composition error as one line (without its config search path listing)."""
    text = str(err).split("Config search path")[0]
    message = " ".join(line.strip() for line in text.splitlines() if line.strip())
    cause = err.__cause__
    if cause is not None and _first_line(str(cause)) and _first_line(str(cause)) not in message:
        message += f" ({_first_line(str(cause))})"
    return message


def _typed_node(value: Any, key: str = "") -> Node | DictConfig | ListConfig:
    if isinstance(value, dict):
        return DictConfig(
            {k: _typed_node(v, f"{key}.{k}".lstrip(".")) for k, v in value.items()}, ref_type=dict[str, Any]
        )
    if isinstance(value, list):
        return ListConfig([_typed_node(v) for v in value], ref_type=list[Any])
    if value is None or key in ANY_TYPE_KEYS or (isinstance(value, str) and "${" in value):
        return AnyNode(value)
    for python_type, node_type in ((bool, BooleanNode), (int, IntegerNode), (float, FloatNode), (str, StringNode)):
        if isinstance(value, python_type):
            return node_type(value, is_optional=True)
    return AnyNode(value)


def typed_config(defaults: DictConfig) -> DictConfig:
    """A struct-mode copy of ``defaults`` in which every value has the type of its default (an integer stays an
    integer, a list a list …; ``null`` defaults, interpolations and ``ANY_TYPE_KEYS`` take anything), so OmegaConf
    itself refuses unknown keys (``ConfigAttributeError``) and values that do not convert (``ValidationError``)."""
    typed = _typed_node(OmegaConf.to_container(defaults, resolve=False))
    OmegaConf.set_struct(typed, True)
    return typed  # type: ignore[return-value]


def _all_keys(tree: Any, prefix: str = "") -> Iterator[str]:
    if isinstance(tree, dict):
        for name, value in tree.items():
            key = f"{prefix}{name}"
            yield key
            yield from _all_keys(value, key + ".")


def _suggestion(tree: dict[str, Any], key: str) -> str | None:
    """A close existing key: each unknown part replaced by its closest sibling, else a key elsewhere with the
    same last part (``trainer.batch_size`` → ``data.batch_size``)."""
    parts = key.split(".")
    node: Any = tree
    fixed: list[str] = []
    for part in parts:
        if not isinstance(node, dict):
            break
        if part not in node:
            close = difflib.get_close_matches(part, [str(k) for k in node], n=1, cutoff=0.6)
            if not close:
                break
            part = close[0]
        fixed.append(part)
        node = node[part]
    else:
        return ".".join(fixed)
    last = parts[-1]
    keys = list(_all_keys(tree))
    same = [k for k in keys if k.rsplit(".", 1)[-1] == last]
    if same:
        return same[0]
    close = difflib.get_close_matches(last, [k.rsplit(".", 1)[-1] for k in keys], n=1, cutoff=0.8)
    return next((k for k in keys if close and k.rsplit(".", 1)[-1] == close[0]), None)


def _unknown_key(defaults: DictConfig, key: str, tool: str, config_name: str, delete: bool) -> ConfigError:
    parent = OmegaConf.select(defaults, key.rsplit(".", 1)[0], default=None) if "." in key else defaults
    if parent is not None and not OmegaConf.is_config(parent):
        where = f"'{key.rsplit('.', 1)[0]}' is a value, not a group of keys."
    else:
        tree = OmegaConf.to_container(defaults, resolve=False)
        suggestion = _suggestion({k: v for k, v in tree.items() if k != "hydra"}, key)  # type: ignore[union-attr]
        where = (
            f"did you mean '{suggestion}'?"
            if suggestion
            else f"not in the {config_name} config (list its keys with `{tool} --cfg job`)."
        )
    fix = (
        "Fix the spelling (there is nothing to delete)"
        if delete
        else f"Fix the spelling, or add a new key with '+{key}=…'"
    )
    return ConfigError(f"unknown key '{key}' — {where} {fix}")


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if value is None:
        return "null"
    if isinstance(value, str):
        return repr(value)
    return str(value)


def _has(defaults: DictConfig, key: str) -> bool:
    return OmegaConf.select(defaults, key, default=_ABSENT, throw_on_resolution_failure=False) is not _ABSENT


def _default(defaults: DictConfig, key: str) -> Any:
    """The default of ``key`` as a plain value (an interpolation resolved where it can be, ``None`` if not)."""
    value = OmegaConf.select(defaults, key, default=None, throw_on_resolution_failure=False)
    return OmegaConf.to_container(value, resolve=False) if OmegaConf.is_config(value) else value


def _type_message(defaults: DictConfig, full_key: str, value: Any) -> str:
    """``key=value must be … (default …)`` for a value OmegaConf refused for the type of its default."""
    default = _default(defaults, full_key)
    expected = next((text for kind, text in EXPECTED.items() if isinstance(default, kind)), "has the wrong type")
    return f"{full_key}={_show(value)} {expected} (default {_show(default)})"


def _set_values(typed: DictConfig, override: Override, defaults: DictConfig, tool: str, config_name: str) -> None:
    """Set each value of ``override`` on the typed config; OmegaConf's refusal becomes a one-line ConfigError."""
    key = override.key_or_group
    for value in _values(override):
        try:
            OmegaConf.update(typed, key, value, merge=True)
        except ValidationError as err:
            full_key = err.full_key or key
            refused = value
            for part in full_key.removeprefix(key).strip(".").split(".") if full_key != key else ():
                refused = refused[part] if isinstance(refused, dict) and part in refused else refused
            raise ConfigError(_type_message(defaults, full_key, refused)) from None
        except (ConfigAttributeError, ConfigKeyError) as err:
            raise _unknown_key(defaults, err.full_key or key, tool, config_name, delete=False) from None


def _compose_checked(config_name: str, overrides: list[str]) -> DictConfig:
    """Hydra's compose with its refusal as one ConfigError line; the hydra node is kept and made current, so that
    ``${hydra:…}`` interpolations resolve for the prechecks."""
    try:
        cfg = compose(config_name, overrides=overrides, return_hydra_config=True)
    except (HydraException, OmegaConfBaseException) as err:
        raise ConfigError(_one_line(err)) from None
    HydraConfig.instance().set_config(cfg)
    return cfg


def _check_group_choice(override: Override, options: list[str]) -> None:
    group = override.key_or_group
    visible = [o for o in options if not o.startswith("_")]
    for choice in _values(override):
        if choice is None or (isinstance(choice, str) and choice in options):
            continue
        close = difflib.get_close_matches(str(choice), visible, n=1)
        hint = f"did you mean '{close[0]}'? Choose" if close else "choose"
        raise ConfigError(
            f"unknown option {_show(choice)} for the config group '{group}' — {hint} one of: {', '.join(visible)}"
        )


def check_overrides(config_name: str, overrides: Sequence[str], config_dir: str, tool: str | None = None) -> DictConfig:
    """Raise :class:`~umsi.errors.ConfigError` when a command-line override names an unknown key or config-group
    option, or gives a value that does not convert to the type of the key's default in the chosen config groups;
    return the composed config (with its ``hydra`` node; the first value of each sweep).

    Sweeps (``loss.cc=-3,-1``, ``range(…)``, ``interval(…)``) are composed with their first value and every
    value's type is checked; ``hydra.*`` and ``hydra/…`` overrides are left to Hydra (and not in the result)."""
    tool = tool or tool_name(config_name)
    parser = OverridesParser.create()
    parsed = []
    for line in overrides:
        try:
            parsed += parser.parse_overrides([line])
        except HydraException as err:
            detail = _one_line(err).replace(f"Error parsing override '{line}' ", "")
            raise ConfigError(f"cannot read the override '{line}': {detail}") from None
    with _composer(config_dir) as loader:
        options = {o.key_or_group: loader.get_group_options(o.key_or_group) for o in parsed}
        first = {id(o): _first_value_override(o, options[o.key_or_group]) for o in parsed}
        groups = [o for o in parsed if options[o.key_or_group] and not o.is_hydra_override()]
        for override in groups:
            if not override.is_delete():
                _check_group_choice(override, options[override.key_or_group])
        defaults = _compose_checked(config_name, [line for o in groups if (line := first[id(o)])])
        typed = typed_config(defaults)
        added: list[str] = []
        for override in parsed:
            key = override.key_or_group
            if override in groups or override.is_hydra_override() or override.package is not None:
                continue
            if any(key == a or key.startswith(a + ".") for a in added):
                continue
            if override.is_add():
                if _has(defaults, key):
                    raise ConfigError(
                        f"'{key}' already exists: set it without '+' ({key}=…), or replace it with '++{key}=…'"
                    )
                added.append(key)
            elif override.is_delete():
                if not _has(defaults, key):
                    raise _unknown_key(defaults, key, tool, config_name, delete=True)
            elif override.is_force_add() and not _has(defaults, key):
                added.append(key)
            else:
                _set_values(typed, override, defaults, tool, config_name)
        return _compose_checked(
            config_name, [first[id(o)] for o in parsed if first[id(o)] and not o.is_hydra_override()]
        )


def _parse_command_line(argv: Sequence[str]) -> argparse.Namespace | None:
    """Hydra's own reading of the command line; ``None`` when it does not parse (Hydra reports that)."""
    from hydra._internal.utils import get_args_parser

    try:
        with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
            return get_args_parser().parse_args(list(argv))
    except SystemExit:
        return None


def check_command_line(
    config_name: str, config_dir: str, argv: Sequence[str], tool: str | None = None
) -> DictConfig | None:
    """:func:`check_overrides` on the overrides of a run or multirun command line (``-m`` included); returns the
    composed config. Skipped (``None``) for what Hydra answers itself (``--help``, ``--cfg``, ``--info``…) and for
    another config directory."""
    args = _parse_command_line(argv)
    if args is None or _other_command(args) or args.config_path is not None or args.config_dir is not None:
        return None
    return check_overrides(args.config_name or config_name, args.overrides, config_dir, tool)


def _other_command(args: argparse.Namespace) -> bool:
    return bool(
        args.help
        or args.hydra_help
        or args.cfg
        or args.info
        or args.shell_completion
        or args.experimental_rerun
        or args.resolve
    )


# ---------------------------------------------------------------------------------------------------------------
# --help without Hydra's listing of the config groups


def is_plain_help(args: argparse.Namespace | None) -> bool:
    """``--help`` alone (no other Hydra flag, no other config directory, no ``hydra.*`` override)."""
    if args is None or not args.help or args.config_path is not None or args.config_dir is not None:
        return False
    others = (args.hydra_help, args.cfg, args.info, args.shell_completion, args.experimental_rerun, args.resolve)
    return not any(others) and not any(o.lstrip("+~").startswith("hydra") for o in args.overrides)


def config_groups(config_dir: str) -> dict[str, list[str]]:
    """``{group: [options]}`` of the application's config groups (every folder of ``config_dir`` holding
    ``.yaml`` files, ``hydra/`` excepted), read from the folder: what Hydra's help lists, without its
    per-group re-reading of the whole config repository."""
    root = Path(config_dir)
    groups = {}
    for folder in sorted(p for p in root.rglob("*") if p.is_dir()):
        group = folder.relative_to(root).as_posix()
        options = sorted(f.stem for f in folder.glob("*.yaml"))
        if options and group.split("/")[0] != "hydra":
            groups[group] = options
    return groups


def help_page(config_name: str, config_dir: str, overrides: Sequence[str], tool: str, about: str = "") -> str:
    """The ``--help`` page in Hydra's layout: the config groups and the config composed with ``overrides``
    (unresolved). Hydra's own help builds the same page but re-reads the config repository once per config
    group (116 times for umsi-predict, seconds); this reads the folder once and composes once."""
    with _composer(config_dir):
        cfg = compose(config_name, overrides=list(overrides))
    lines = [
        f"{tool}: {about}" if about else tool,
        "",
        "== Configuration groups ==",
        "Compose your configuration from those groups (group=option)",
        "",
    ]
    lines += [f"{group}: {', '.join(options)}" for group, options in config_groups(config_dir).items()]
    lines += ["", "", "== Config ==", "Override anything in the config (foo.bar=value)", ""]
    lines += [OmegaConf.to_yaml(cfg), "", "Powered by Hydra (https://hydra.cc)"]
    lines += ["Use --hydra-help to view Hydra specific help", ""]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------------
# the decorator


def _about(task: Callable[..., Any]) -> str:
    """The first sentence of the tool module's docstring, without reST markup."""
    doc = (sys.modules[task.__module__].__doc__ or "").strip()
    first = " ".join(doc.split("\n\n")[0].split())
    return first.split(": ", 1)[-1].replace("``", "") if ": " in first else first.replace("``", "")


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
            if cfg_passthrough is None and is_plain_help(args := _parse_command_line(sys.argv[1:])):
                try:
                    page = help_page(config_name, config_dir, args.overrides, name, _about(task))
                except Exception:  # e.g. a wrong override: Hydra's own help reports it
                    log.debug("fast --help failed", exc_info=True)
                else:
                    print(page, end="")
                    return None
            if cfg_passthrough is None:
                try:
                    composed = check_command_line(config_name, config_dir, sys.argv[1:], name)
                    if composed is not None and precheck is not None:
                        with _composer(config_dir):  # a precheck may compose other configs (the pipeline's stages)
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

"""Config errors as one-line messages: check the command line before Hydra runs, report user errors without a traceback.

``@hydra_cli("train", config_dir=CONFIG_DIR)`` replaces ``@hydra.main`` in the command-line tools:

* before Hydra starts, :func:`check_overrides` composes the config with the command-line overrides (the first
  value of each sweep) and rejects unknown keys (with a close match as suggestion), unknown config-group
  options and values whose type does not fit the default (an integer key given ``abc`` or ``1.5``…);
* inside the job, ``check`` (e.g. :func:`check_train_paths`) runs on the composed config, and a
  :class:`~umsi.errors.UserError`, or an OmegaConf error about a key, ends the tool with
  ``<tool>: <kind>: <message>`` on stderr and the error's exit code. Any other exception (a bug) keeps its
  traceback.

Nothing here imports torch: the check costs two config compositions (~0.2 s).
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
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, Glob, IntervalSweep, Override, QuotedString, RangeSweep
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import (
    ConfigAttributeError,
    ConfigKeyError,
    InterpolationResolutionError,
    MissingMandatoryValue,
    OmegaConfBaseException,
)

from umsi.errors import ConfigError, MissingPathError, UserError

__all__ = [
    "check_command_line",
    "check_overrides",
    "check_train_paths",
    "describe_error",
    "hydra_cli",
    "report_error",
    "tool_name",
]

log = logging.getLogger(__name__)

TaskFunction = Callable[[DictConfig], Any]
CONFIG_ERRORS = (UserError, ConfigAttributeError, ConfigKeyError, InterpolationResolutionError, MissingMandatoryValue)
# keys whose default is an int but which legitimately take other types (Lightning: 1, [0, 1] or "auto")
ANY_TYPE_KEYS = frozenset({"trainer.devices"})
# what a UserError is called in the one-line message, by class name along its MRO (first match wins)
KINDS = {
    "ConfigError": "config error",
    "DatasetConfigError": "config error",
    "PredictError": "config error",
    "MissingPathError": "missing path",
    "CheckpointError": "checkpoint error",
    "InvalidDatasetError": "invalid dataset",
    "DatasetLayoutError": "dataset error",
    "ConversionError": "conversion error",
}
SYNTHETIC_HINT = "or generate the synthetic one with `umsi-make-synthetic --out data/synthetic`"
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
        kind = next((KINDS[c.__name__] for c in type(err).__mro__ if c.__name__ in KINDS), "error")
        return kind, str(err)
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


def _lookup(tree: Any, key: str) -> tuple[bool, Any]:
    """``(found, value)`` of a dotted key in a config container (list items by index)."""
    node = tree
    for part in key.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return False, None
    return True, node


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


def _unknown_key(tree: dict[str, Any], key: str, tool: str, config_name: str, delete: bool) -> ConfigError:
    found, parent = _lookup(tree, key.rsplit(".", 1)[0]) if "." in key else (True, tree)
    if found and parent is not None and not isinstance(parent, dict | list):
        where = f"'{key.rsplit('.', 1)[0]}' is a value, not a group of keys."
    else:
        suggestion = _suggestion(tree, key)
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


def _type_problem(value: Any, default: Any) -> str | None:
    """What ``value`` should be, judged by the type of the default; ``None`` when it fits. ``null`` and
    interpolations always fit; str and null defaults take anything."""
    if value is None or (isinstance(value, str) and "${" in value):
        return None
    if isinstance(default, bool):
        return None if isinstance(value, bool) else "must be true or false"
    if isinstance(default, int):
        return None if isinstance(value, int) and not isinstance(value, bool) else "must be an integer"
    if isinstance(default, float):
        return None if isinstance(value, int | float) and not isinstance(value, bool) else "must be a number"
    if isinstance(default, list):
        return None if isinstance(value, list) else "must be a list, e.g. [a,b]"
    if isinstance(default, dict):
        return None if isinstance(value, dict) else "must be a group of keys, e.g. {key: value}"
    return None


def _typed_default(defaults: DictConfig, key: str, raw: Any) -> Any:
    """The default as a plain value; an interpolation is resolved where it can be (``None`` if not)."""
    if isinstance(raw, str) and ("${" in raw or raw == "???"):
        value = OmegaConf.select(defaults, key, default=None, throw_on_resolution_failure=False)
        return OmegaConf.to_container(value, resolve=False) if OmegaConf.is_config(value) else value
    return raw


def _check_type(defaults: DictConfig, tree: dict[str, Any], key: str, values: list[Any]) -> None:
    if key in ANY_TYPE_KEYS:
        return
    found, raw = _lookup(tree, key)
    if not found:
        return
    default = _typed_default(defaults, key, raw)
    for value in values:
        if isinstance(value, dict) and isinstance(default, dict):  # a group of keys: check the keys it sets
            for name, item in value.items():
                _check_type(defaults, tree, f"{key}.{name}", [item])
            continue
        problem = _type_problem(value, default)
        if problem:
            raise ConfigError(f"{key}={_show(value)} {problem} (default {_show(default)})")


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


def check_overrides(config_name: str, overrides: Sequence[str], config_dir: str, tool: str | None = None) -> None:
    """Raise :class:`~umsi.errors.ConfigError` when a command-line override names an unknown key or config-group
    option, or gives a value whose type does not fit the key's default in the chosen config groups.

    Sweeps (``loss.cc=-3,-1``, ``range(…)``, ``interval(…)``) are composed with their first value and every
    value's type is checked; ``hydra.*`` and ``hydra/…`` overrides are left to Hydra."""
    tool = tool or tool_name(config_name)
    parser = OverridesParser.create()
    parsed = []
    for line in overrides:
        try:
            parsed += parser.parse_overrides([line])
        except HydraException as err:
            detail = _one_line(err).replace(f"Error parsing override '{line}' ", "")
            raise ConfigError(f"cannot read the override '{line}': {detail}") from None
    parsed = [o for o in parsed if not o.is_hydra_override()]
    with _composer(config_dir) as loader:
        group_options = {o.key_or_group: loader.get_group_options(o.key_or_group) for o in parsed}
        groups = [o for o in parsed if group_options[o.key_or_group]]
        group_ids = {id(o) for o in groups}
        for override in groups:
            if not override.is_delete():
                _check_group_choice(override, group_options[override.key_or_group])
        first = {id(o): _first_value_override(o, group_options[o.key_or_group]) for o in parsed}
        try:
            defaults = compose(config_name, overrides=[first[id(o)] for o in groups if first[id(o)]])
        except (HydraException, OmegaConfBaseException) as err:
            raise ConfigError(_one_line(err)) from None
        tree: dict[str, Any] = OmegaConf.to_container(defaults, resolve=False)  # type: ignore[assignment]
        added: list[str] = []
        for override in parsed:
            key = override.key_or_group
            if id(override) in group_ids or override.package is not None:
                continue
            if any(key == a or key.startswith(a + ".") for a in added):
                continue
            found, _ = _lookup(tree, key)
            if override.is_add():
                if found:
                    raise ConfigError(
                        f"'{key}' already exists: set it without '+' ({key}=…), or replace it with '++{key}=…'"
                    )
                added.append(key)
            elif override.is_force_add():
                added.append(key)
                _check_type(defaults, tree, key, _values(override))
            elif not found:
                raise _unknown_key(tree, key, tool, config_name, delete=override.is_delete())
            elif not override.is_delete():
                _check_type(defaults, tree, key, _values(override))
        try:  # anything else Hydra would refuse, as one line
            compose(config_name, overrides=[line for o in parsed if (line := first[id(o)])])
        except (HydraException, OmegaConfBaseException) as err:
            if "HydraConfig was not set" in str(err.__cause__ or err):
                return  # an artefact of composing outside a run (the ${hydra:…} resolver); Hydra decides
            raise ConfigError(_one_line(err)) from None


def _parse_command_line(argv: Sequence[str]) -> argparse.Namespace | None:
    """Hydra's own reading of the command line; ``None`` when it does not parse (Hydra reports that)."""
    from hydra._internal.utils import get_args_parser

    try:
        with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
            return get_args_parser().parse_args(list(argv))
    except SystemExit:
        return None


def check_command_line(config_name: str, config_dir: str, argv: Sequence[str], tool: str | None = None) -> None:
    """:func:`check_overrides` on the overrides of a run or multirun command line (``-m`` included). Skipped for
    what Hydra answers itself (``--help``, ``--cfg``, ``--info``…) and for another config directory."""
    args = _parse_command_line(argv)
    if args is None or _other_command(args) or args.config_path is not None or args.config_dir is not None:
        return
    check_overrides(args.config_name or config_name, args.overrides, config_dir, tool)


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
# umsi-train: the files and folders the config names


def _path_value(cfg: DictConfig, key: str) -> Any:
    return OmegaConf.select(cfg, key, default=None)


def check_train_paths(cfg: DictConfig) -> None:
    """The dataset folders (``data.root``, ``data.salicon_root``) and the files named by ``init_ckpt``,
    ``model.pretrained_file`` and ``ckpt_path`` (other than ``last``) must exist; raises
    :class:`~umsi.errors.MissingPathError` (or :class:`~umsi.errors.ConfigError` for an unset root)."""
    data = cfg.get("data")
    for name in ("root", "salicon_root"):
        if data is None or name not in data:
            continue
        key = f"data.{name}"
        value = _path_value(cfg, key)
        fix = f"point {key} or paths.datasets_dir at the dataset, {SYNTHETIC_HINT}"
        if not value:
            raise ConfigError(f"{key} is not set: {fix}")
        path = Path(str(value))
        if not path.exists():
            raise MissingPathError(f"{key}={path} does not exist — {fix}")
        if not path.is_dir():
            raise MissingPathError(f"{key}={path} is a file, not a dataset folder — {fix}")
    files = {
        "init_ckpt": "the weights to start from (a run's checkpoints/*.ckpt or umsi-convert-keras output)",
        "model.pretrained_file": "a local timm weights file for the encoder",
        "ckpt_path": "a Lightning checkpoint to resume from, or ckpt_path=last for this run folder's last.ckpt",
    }
    for key, what in files.items():
        value = _path_value(cfg, key)
        if not value or (key == "ckpt_path" and value == "last"):
            continue
        if not Path(str(value)).is_file():
            raise MissingPathError(f"{key}={value}: no such file — give the path of {what}, or set {key}=null")


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
) -> Callable[[TaskFunction], Callable[..., Any]]:
    """``@hydra.main(config_path=config_dir, config_name=config_name)`` with one-line config errors: the
    command line is checked first (:func:`check_command_line`); in the job, ``check(cfg)`` runs before the task,
    and user errors are reported by :func:`report_error`. ``main(cfg)`` still calls the task directly."""
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
                    check_command_line(config_name, config_dir, sys.argv[1:], name)
                except UserError as err:
                    report_error(name, err)
                except Exception:  # a flaw of the check itself must not stop a valid command: Hydra decides
                    if os.environ.get("HYDRA_FULL_ERROR") == "1":
                        raise
                    log.debug("command-line check failed", exc_info=True)
            return hydra_main(cfg_passthrough)

        return entry

    return decorate

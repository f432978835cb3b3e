"""The command-line check of the Hydra tools: Hydra and OmegaConf judge the overrides before Hydra makes a run folder.

Hydra composes the config-group choices (and refuses an unknown option), then every value override, each value of
a sweep, is set on a struct-mode copy of the composed defaults whose values carry the type of their default
(:func:`typed_config`), so OmegaConf refuses an unknown key or a value that does not convert. The errors come out as
one :class:`~umsi.errors.ConfigError` line with the closest key or option, or, for a key of another tool or one the
model file sets, what to do instead (:mod:`umsi.cli.hints`). Nothing here imports torch.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import io
import itertools
import os
from collections.abc import Iterator, Sequence
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.core.config_loader import ConfigLoader
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, Glob, IntervalSweep, Override, QuotedString, RangeSweep
from hydra.errors import HydraException
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException, ValidationError
from omegaconf.nodes import AnyNode, BooleanNode, FloatNode, IntegerNode, Node, StringNode

from umsi.cli.config_errors import first_line, tool_name
from umsi.cli.hints import foreign_key_hint
from umsi.errors import ConfigError

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


@contextlib.contextmanager
def composer(config_dir: str) -> Iterator[ConfigLoader]:
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
    if cause is not None and first_line(str(cause)) and first_line(str(cause)) not in message:
        message += f" ({first_line(str(cause))})"
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


def _unknown_key(
    defaults: DictConfig, key: str, tool: str, config_name: str, delete: bool, given: str | None = None
) -> ConfigError:
    """The error for an unknown ``key`` (``given``: the key as the override wrote it, when OmegaConf names only its
    first unknown part): what to do instead when it belongs to another tool or the model file, else the closest key."""
    hint = foreign_key_hint(config_name, given or key)
    if hint is not None:
        return ConfigError(f"unknown key '{given or key}' — {hint}")
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
            raise _unknown_key(defaults, err.full_key or key, tool, config_name, delete=False, given=key) from None


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
    with composer(config_dir) as loader:
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


def parse_command_line(argv: Sequence[str]) -> argparse.Namespace | None:
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
    args = parse_command_line(argv)
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

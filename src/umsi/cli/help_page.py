"""``--help`` of the Hydra tools in Hydra's layout, without Hydra's slow listing of the config groups."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from hydra import compose
from omegaconf import OmegaConf

from umsi.cli.overrides import composer


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
    with composer(config_dir):
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


def about_text(task: Callable[..., Any]) -> str:
    """The first sentence of the tool module's docstring, without reST markup."""
    doc = (sys.modules[task.__module__].__doc__ or "").strip()
    first = " ".join(doc.split("\n\n")[0].split())
    return first.split(": ", 1)[-1].replace("``", "") if ": " in first else first.replace("``", "")

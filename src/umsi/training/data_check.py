"""The data check ``umsi-train`` runs before training (the same one as ``umsi-data-check``).

Errors stop the run with the list of problems (``data.skip_invalid=false``, the default), or the items whose
image, map or fixation file is at fault are left out and each is logged (``data.skip_invalid=true``). Problems
that are not about one item (a missing folder, a class mapping or split file that disagrees with the folders)
cannot be skipped and always stop the run. The full report goes to ``<stage folder>/data_check.txt``.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from umsi.data.check import Problem, format_report, layout_kind, scan_dataset
from umsi.data.layouts import IMAGE_SUFFIXES, IMP1K_SPLIT_FILE
from umsi.errors import InvalidDatasetError
from umsi.utils.io import atomic_write

log = logging.getLogger(__name__)

REPORT_NAME = "data_check.txt"
_ITEM_FILE_SUFFIXES = (*IMAGE_SUFFIXES, ".mat", ".npy", ".csv")
_HOW_TO_GO_ON = (
    "Fix or remove these files (README: 'When your data is broken'), or train without the items they belong to "
    "with data.skip_invalid=true (each one is logged), or skip the check with data.validate=false."
)


def _layout_options(entry: Mapping[str, Any]) -> str:
    """A registered layout's options (its config keys but the root) as sorted JSON: part of the scan's key."""
    plain = {k: OmegaConf.to_container(v, resolve=True) if OmegaConf.is_config(v) else v for k, v in entry.items()}
    return json.dumps({k: v for k, v in plain.items() if k != "root"}, sort_keys=True, default=str)


def _mix_trees(data: Mapping[str, Any]) -> list[tuple[str, str, str | None, str | None, str]]:
    """The trees of a ``data=mix`` (every entry that applies to ``data.stage``) or of one registered dataset."""
    stage = data.get("stage")
    entries = data.get("datasets")
    if entries is None:  # one registered dataset (RegistryDataModule): its own keys are the layout's options
        entries = [{**data, "name": data.get("name") or data.get("layout")}]
    trees = []
    for entry in entries:
        if entry.get("stages") and stage is not None and stage not in entry["stages"]:
            continue
        kind = str(entry.get("layout") or entry.get("name"))
        if kind == "imp1k":
            trees.append((kind, str(entry["root"]), None, entry.get("split_file", IMP1K_SPLIT_FILE), ""))
        elif kind in ("salicon", "gdi"):
            trees.append((kind, str(entry["root"]), None, None, ""))
        else:
            trees.append((kind, str(entry["root"]), None, None, _layout_options({"seed": data.get("seed"), **entry})))
    return trees


def _trees(data: Mapping[str, Any]) -> list[tuple[str, str, str | None, str | None, str]]:
    """(layout, root, class mapping, split file, layout options) of every tree a training datamodule reads: Imp1k
    also mixes in SALICON; a mix reads each of its datasets."""
    if data.get("datasets") is not None or data.get("layout"):
        return _mix_trees(data)
    kind = layout_kind(data)
    if kind == "salicon":
        return [("salicon", str(data.get("root")), None, None, "")]
    if kind == "imp1k":
        split_file = data.get("split_file", IMP1K_SPLIT_FILE)
        imp1k = ("imp1k", str(data.get("root")), data.get("class_mapping"), split_file, "")
        return [imp1k, ("salicon", str(data.get("salicon_root")), None, None, "")]
    return []  # GDI is evaluation-only; its datamodule refuses to train


_SCANS: dict[tuple[Any, ...], tuple[list[Problem], int]] = {}


def _file_stamps(*paths: str | None) -> int:
    """A hash of the path, size and modification time of every file under ``paths`` (folders or files)."""
    files: list[str] = []
    for path in filter(None, paths):
        if os.path.isdir(path):
            files += [os.path.join(folder, name) for folder, _, names in os.walk(path) for name in names]
        elif os.path.isfile(path):
            files.append(path)
    return hash(tuple(sorted((f, (st := os.stat(f)).st_size, st.st_mtime_ns) for f in files)))


def _scan_once(tree: tuple[str, str, str | None, str | None, str], progress: bool) -> tuple[list[Problem], int]:
    """:func:`scan_dataset` of ``tree``, reused in this process while none of its files changed: a pipeline's
    finetuning mixes in the SALICON tree that pretraining has just checked."""
    kind, root, class_mapping, split_file, options = tree
    key = (*tree, _file_stamps(root, class_mapping))
    if key not in _SCANS:
        if options:
            layout = {"layout": kind, **json.loads(options)}
            _SCANS[key] = scan_dataset(layout, root, progress=progress)
        else:
            _SCANS[key] = scan_dataset(
                kind, root, class_mapping=class_mapping, split_file=split_file, progress=progress
            )
    return _SCANS[key]


def is_skippable(problem: Problem) -> bool:
    """Whether leaving out one item fixes ``problem``: it names an image, map or fixation file."""
    return problem.severity == "error" and problem.path.suffix.lower() in _ITEM_FILE_SUFFIXES


def check_training_data(data: Mapping[str, Any], output_dir: str | Path, progress: bool = True) -> list[str]:
    """Check the trees ``data`` trains on; the files to leave out (empty when everything is fine).

    Raises :class:`~umsi.errors.InvalidDatasetError` listing the errors unless ``data.skip_invalid`` is set
    and every error is about a single item. Writes the whole report to ``output_dir/data_check.txt`` when
    there is anything to report.
    """
    if not data.get("validate", True):
        log.info("data check skipped (data.validate=false)")
        return []
    problems: list[Problem] = []
    files = 0
    for tree in _trees(data):
        found, checked = _scan_once(tree, progress)
        problems += found
        files += checked
    problems.sort(key=lambda p: p.severity != "error")
    errors = [p for p in problems if p.severity == "error"]
    if problems:
        report = Path(output_dir) / REPORT_NAME
        atomic_write(report, lambda tmp: tmp.write_text(format_report(problems, files, max_shown=None) + "\n"))
        log.info("data check report: %s", report)
    if not errors:
        log.info("data check: %d files, no errors, %d warnings", files, len(problems))
        return []
    if not data.get("skip_invalid", False):
        raise InvalidDatasetError(f"the data check found errors:\n{format_report(problems, files)}\n{_HOW_TO_GO_ON}")
    fatal = [p for p in errors if not is_skippable(p)]
    if fatal:
        raise InvalidDatasetError(
            "data.skip_invalid=true leaves out single items, but these problems are not about one item:\n"
            + "\n".join(f"  {p.line()}" for p in fatal)
        )
    for problem in errors:
        log.warning("skipping the item of %s: %s (data.skip_invalid=true)", problem.path, problem.message)
    skipped = sorted({str(p.path) for p in errors})
    log.warning("data check: %d files left out of %d checked; see %s", len(skipped), files, REPORT_NAME)
    return skipped

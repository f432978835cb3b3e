"""umsi-data-check: every fault of a broken dataset tree is reported with its path and severity."""

from __future__ import annotations

import logging
import math
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
import scipy.io
from hydra import compose, initialize_config_dir
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from omegaconf import DictConfig
from PIL import Image

from conftest import tiny_overrides
from umsi.cli.data_check import main, run
from umsi.data.check import (
    DatasetConfigError,
    Problem,
    _check_fixations,
    _check_image,
    _check_map,
    check_dataset,
)
from umsi.data.datasets import SaliencyDataset, read_image_bgr, read_map
from umsi.data.layouts import SaliencyItem, read_salicon_fixations
from umsi.data.synthetic import IMP1K_CLASSES
from umsi.data.transforms import SampleTransform
from umsi.errors import DataFileError, InvalidDatasetError
from umsi.paths import CONFIG_DIR
from umsi.training.data_check import check_training_data
from umsi.training.runner import build_datamodule
from umsi.training.runner import run as run_training


def _check_cfg(*overrides: str) -> DictConfig:
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(config_name="data_check", overrides=["progress=false", *overrides])


def _find(problems: list[Problem], path: Path, severity: str, text: str = "") -> Problem:
    hits = [p for p in problems if p.path == path and p.severity == severity and text in p.message]
    assert hits, f"no {severity} {text!r} for {path}; got:\n" + "\n".join(p.line() for p in problems)
    return hits[0]


@pytest.fixture
def faulty(synthetic_root: Path, tmp_path: Path) -> dict[str, Path]:
    """Copies of the synthetic SALICON and Imp1k trees with exactly one instance of each fault; name → path."""
    shutil.copytree(synthetic_root / "salicon", tmp_path / "salicon")
    shutil.copytree(synthetic_root / "imp1k", tmp_path / "imp1k")
    salicon = tmp_path / "salicon"
    images = sorted((salicon / "images" / "train").iterdir())
    maps = sorted((salicon / "maps" / "train").iterdir())
    mats = sorted((salicon / "fixations" / "train").iterdir())
    faults: dict[str, Path] = {"salicon": salicon, "imp1k": tmp_path / "imp1k"}

    maps[0].unlink()
    faults["missing_map"] = images[0]
    orphan = salicon / "maps" / "train" / "COCO_orphan.png"
    shutil.copy(maps[1], orphan)
    faults["orphan_map"] = orphan
    data = images[2].read_bytes()
    images[2].write_bytes(data[: len(data) // 2])
    faults["truncated"] = images[2]
    images[3].write_bytes(b"this is not a JPEG\n" * 20)
    faults["not_image"] = images[3]
    with Image.open(images[4]) as image:
        image.convert("CMYK").save(images[4], format="JPEG")
    faults["cmyk"] = images[4]
    saliency = cv2.imread(str(maps[5]), cv2.IMREAD_GRAYSCALE)
    cv2.imwrite(str(maps[5]), saliency.astype(np.uint16) * 257)
    faults["map16"] = maps[5]
    cv2.imwrite(str(maps[6]), np.zeros_like(saliency))
    faults["zero_map"] = maps[6]
    cv2.imwrite(str(maps[7]), cv2.resize(saliency, (saliency.shape[1] // 2, saliency.shape[0] // 2)))
    faults["small_map"] = maps[7]
    scipy.io.savemat(str(mats[8]), {"something_else": np.arange(3)})
    faults["bad_mat"] = mats[8]

    mapping = tmp_path / "mapping.txt"
    kept = [*IMP1K_CLASSES[1:], "natural_images"]
    mapping.write_text("".join(f"{name} {i}\n" for i, name in enumerate(kept)))
    faults["mapping"] = mapping
    faults["unmapped_class"] = tmp_path / "imp1k" / "imgs" / IMP1K_CLASSES[0]
    return faults


def test_every_fault_is_reported_with_path_and_severity(faulty: dict[str, Path]) -> None:
    problems = check_dataset("salicon", faulty["salicon"])
    _find(problems, faulty["missing_map"], "error", "has no map")
    _find(problems, faulty["orphan_map"], "error", "has no image")
    _find(problems, faulty["truncated"], "error", "truncated")
    _find(problems, faulty["not_image"], "error", "cannot be decoded")
    _find(problems, faulty["cmyk"], "warning", "CMYK")
    _find(problems, faulty["map16"], "warning", "16-bit")
    _find(problems, faulty["zero_map"], "error", "all zero")
    size = _find(problems, faulty["small_map"], "warning", "resized")
    assert "×2 in width, ×2 in height" in size.message
    _find(problems, faulty["bad_mat"], "error", "fixation")
    assert all(p.fix and p.line().startswith(p.severity.upper()) for p in problems)
    assert [p.severity for p in problems] == sorted((p.severity for p in problems), key=lambda s: s != "error")

    imp1k = check_dataset("imp1k", faulty["imp1k"], class_mapping=str(faulty["mapping"]))
    _find(imp1k, faulty["unmapped_class"], "error", "not in the class mapping")
    assert [p.severity for p in imp1k] == ["error"]


def test_imp1k_split_file_naming_missing_images(synthetic_root: Path, tmp_path: Path) -> None:
    root = shutil.copytree(synthetic_root / "imp1k", tmp_path / "imp1k")
    victim = sorted((root / "imgs" / IMP1K_CLASSES[0]).iterdir())[0]
    victim.unlink()
    problems = check_dataset("imp1k", root)
    _find(problems, root / "train_test_split_imp1k.json", "error", victim.name)
    _find(problems, root / "maps" / IMP1K_CLASSES[0] / f"{victim.stem}.png", "error", "has no image")


@pytest.mark.parametrize("kind", ["salicon", "imp1k", "gdi"])
def test_clean_synthetic_tree_has_no_problems(synthetic_root: Path, kind: str) -> None:
    assert check_dataset(kind, synthetic_root / kind) == []


def test_exit_codes(
    synthetic_root: Path, faulty: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(_check_cfg("data=gdi", f"data.root={synthetic_root / 'gdi'}")) == 0
    assert "files checked: 0 errors, 0 warnings" in capsys.readouterr().out

    assert run(_check_cfg(f"data.root={faulty['salicon']}", "max_problems_shown=2")) == 1
    out = capsys.readouterr().out
    assert f"ERROR {faulty['missing_map']}: image has no map — add " in out
    assert "more errors" in out and "files checked: 6 errors, 3 warnings" in out

    assert run(_check_cfg(f"data.root={tmp_path / 'nowhere'}")) == 2
    assert "data.root" in capsys.readouterr().err


def test_cli_missing_root_exits_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", ["umsi-data-check", "data=imp1k", f"data.root={tmp_path / 'nowhere'}"])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2


def test_bad_config_raises_config_error(tmp_path: Path) -> None:
    with pytest.raises(DatasetConfigError, match="unknown dataset layout"):
        check_dataset("coco", tmp_path)
    with pytest.raises(DatasetConfigError, match=r"data\.class_mapping"):
        check_dataset("imp1k", tmp_path, class_mapping=str(tmp_path / "missing.txt"))


_HEADERS = [b"", b"\xff\xd8\xff\xe0", b"\x89PNG\r\n\x1a\n", b"GIF89a", b"MATLAB 5.0 MAT-file", b"\x00\x00\x00\x00"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(header=st.sampled_from(_HEADERS), body=st.binary(max_size=512), suffix=st.sampled_from([".jpg", ".png"]))
def test_random_bytes_are_reported_never_raised(header: bytes, body: bytes, suffix: str) -> None:
    checks: list[tuple[str, Callable[[Path, list[Problem]], object]]] = [
        (suffix, _check_image),
        (suffix, _check_map),
        (".mat", _check_fixations),
    ]
    with tempfile.TemporaryDirectory() as folder:
        for file_suffix, check in checks:
            path = Path(folder) / f"random{file_suffix}"
            path.write_bytes(header + body)
            problems: list[Problem] = []
            check(path, problems)
            assert problems and all(p.path == path for p in problems)


@pytest.mark.parametrize(
    ("mode", "as_map", "severity", "text"),
    [
        ("L", False, "warning", "grayscale"),
        ("RGBA", False, "warning", "alpha"),
        ("P", False, "warning", "palette"),
        ("RGB", True, "warning", "converted to grayscale"),
        ("const", True, "warning", "constant"),
        ("no-eoi", False, "error", "truncated"),
    ],
)
def test_convertible_modes_and_missing_eoi(tmp_path: Path, mode: str, as_map: bool, severity: str, text: str) -> None:
    pixels = (np.random.default_rng(0).random((24, 32, 3)) * 255).astype(np.uint8)
    path = tmp_path / ("file.jpg" if mode == "no-eoi" else "file.png")
    if mode == "const":
        Image.fromarray(np.full((24, 32), 7, np.uint8)).save(path)
    elif mode == "no-eoi":
        Image.fromarray(pixels).save(path, quality=90)
        path.write_bytes(path.read_bytes()[:-2])
    else:
        Image.fromarray(pixels).convert(mode).save(path)
    problems: list[Problem] = []
    (_check_map if as_map else _check_image)(path, problems)
    _find(problems, path, severity, text)


# ------------------------------------------------------------------------ the loaders training uses


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(header=st.sampled_from(_HEADERS), body=st.binary(max_size=512), suffix=st.sampled_from([".jpg", ".png"]))
def test_loaders_raise_only_data_file_error_on_random_bytes(header: bytes, body: bytes, suffix: str) -> None:
    """``read_image_bgr`` / ``read_map`` / ``read_salicon_fixations`` and a dataset item built on such files
    either load or raise :class:`DataFileError` naming the file, never another exception type."""
    with tempfile.TemporaryDirectory() as folder:
        image, saliency, mat = (Path(folder) / f"random{s}" for s in (suffix, ".png", ".mat"))
        for path in (image, saliency, mat):
            path.write_bytes(header + body)
        for read, path in ((read_image_bgr, image), (read_map, saliency), (read_salicon_fixations, mat)):
            try:
                read(path)
            except DataFileError as err:
                assert str(path) in str(err)
        dataset = SaliencyDataset([SaliencyItem(image, saliency, mat, 0)], SampleTransform((16, 20)))
        try:
            dataset[0]
        except DataFileError as err:
            assert folder in str(err)


# ------------------------------------------------------------------ the check when training starts

_ERROR_FAULTS = ("missing_map", "orphan_map", "truncated", "not_image", "zero_map", "bad_mat")


def _train_cfg(hydra_conf, faulty: dict[str, Path], run_dir: Path, *extra: str) -> tuple[DictConfig, list[str]]:
    overrides = [*tiny_overrides(faulty["salicon"].parent, run_dir), "stage=pretrain", *extra]
    return hydra_conf(overrides), overrides


def test_training_refuses_a_broken_tree_listing_every_error(
    hydra_conf, faulty: dict[str, Path], tmp_path: Path
) -> None:
    cfg, overrides = _train_cfg(hydra_conf, faulty, tmp_path / "run")
    with pytest.raises(InvalidDatasetError) as info:
        run_training(cfg, overrides)
    message = str(info.value)
    for fault in _ERROR_FAULTS:
        assert f"ERROR {faulty[fault]}: " in message, fault
    assert "data.skip_invalid=true" in message and "6 errors, 3 warnings" in message
    report = (tmp_path / "run" / "data_check.txt").read_text()
    assert f"WARNING {faulty['cmyk']}: CMYK" in report and f"ERROR {faulty['bad_mat']}" in report
    assert not (tmp_path / "run" / "checkpoints").exists()  # refused before anything was trained or saved


def test_skip_invalid_leaves_out_exactly_the_faulty_items(
    hydra_conf, faulty: dict[str, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    run_dir = tmp_path / "run"
    cfg, overrides = _train_cfg(hydra_conf, faulty, run_dir, "data.skip_invalid=true")
    skipped = check_training_data(cfg.data, run_dir, progress=False)
    assert skipped == sorted(str(faulty[f]) for f in _ERROR_FAULTS)

    train_images = sorted((faulty["salicon"] / "images" / "train").iterdir())
    faulty_stems = {Path(path).stem for path in skipped} - {"COCO_orphan"}
    expected = [p for p in train_images if p.stem not in faulty_stems]
    assert len(expected) == len(train_images) - 5  # missing map, truncated, not an image, zero map, bad .mat
    datamodule = build_datamodule(cfg, skipped)
    assert [item.image for item in datamodule.train_set.items] == expected
    assert len(datamodule.val_set) == len(list((faulty["salicon"] / "images" / "val").iterdir()))

    with caplog.at_level(logging.WARNING, logger="umsi.training.data_check"):
        summary = run_training(cfg, overrides)
    assert math.isfinite(summary["model"]["cc"]) and (run_dir / "summary.json").is_file()  # trained without them
    logged = "\n".join(r.getMessage() for r in caplog.records)
    for fault in _ERROR_FAULTS:
        assert f"skipping the item of {faulty[fault]}: " in logged, fault


def test_skip_invalid_cannot_skip_problems_of_the_whole_tree(
    hydra_conf, faulty: dict[str, Path], tmp_path: Path
) -> None:
    cfg, overrides = _train_cfg(
        hydra_conf,
        faulty,
        tmp_path / "run",
        "stage=finetune",
        "data=imp1k",
        "data.skip_invalid=true",
        f"data.class_mapping={faulty['mapping']}",
        "model.num_classes=5",
    )
    with pytest.raises(InvalidDatasetError, match="not about one item") as info:
        run_training(cfg, overrides)
    assert f"ERROR {faulty['unmapped_class']}: class folder is not in the class mapping" in str(info.value)
    assert str(faulty["truncated"]) not in str(info.value)  # the skippable ones are not what stops it


def test_umsi_train_cli_refuses_with_the_list_and_no_traceback(
    faulty: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from umsi.cli.train import main as train_main

    run_dir = tmp_path / "cli"
    argv = [*tiny_overrides(faulty["salicon"].parent, run_dir), "stage=pretrain", f"hydra.run.dir={run_dir}"]
    monkeypatch.setattr(sys, "argv", ["umsi-train", *argv])
    with pytest.raises(SystemExit) as exit_info:
        train_main()
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and f"ERROR {faulty['truncated']}: truncated image" in err

"""Tests for the synthetic SALICON / Imp1k / GDI generator (tiny counts, a few seconds)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import scipy.io

from umsi.cli.make_synthetic import main
from umsi.data import synthetic
from umsi.data.synthetic import IMP1K_CLASSES, SALICON_CLASS, generate

TINY = dict(
    salicon_train=4, salicon_val=2, imp1k_per_class=6, imp1k_val_per_class=2, gdi_train=4, gdi_val=3, progress=False
)
GDI_NAME = re.compile(r"^\d{6}_\d{10}_[0-9a-f]{10}_m$")


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate(tmp_path_factory.mktemp("syn") / "a", seed=0, **TINY)


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


def _stems(folder: Path) -> list[str]:
    return sorted(p.stem for p in folder.iterdir())


def test_constants() -> None:
    assert SALICON_CLASS == "natural_images"
    assert IMP1K_CLASSES == ("advertisements", "infographics", "mobile_uis", "movie_posters", "webpages")


def test_salicon_tree(data: Path) -> None:
    root = data / "salicon"
    assert sorted(p.name for p in root.iterdir()) == ["fixations", "images", "maps"]
    for split, n in (("train", 4), ("val", 2)):
        images = sorted((root / "images" / split).iterdir())
        assert len(images) == n
        assert all(p.suffix == ".jpg" and p.name.startswith(f"COCO_{split}2014_") for p in images)
        assert all(len(p.stem.rsplit("_", 1)[1]) == 12 for p in images)
        stems = _stems(root / "images" / split)
        assert _stems(root / "maps" / split) == stems
        assert _stems(root / "fixations" / split) == stems
        assert {p.suffix for p in (root / "maps" / split).iterdir()} == {".png"}
        assert {p.suffix for p in (root / "fixations" / split).iterdir()} == {".mat"}


def test_imp1k_tree_and_split(data: Path) -> None:
    root = data / "imp1k"
    assert sorted(p.name for p in (root / "imgs").iterdir()) == list(IMP1K_CLASSES)
    assert sorted(p.name for p in (root / "maps").iterdir()) == list(IMP1K_CLASSES)
    train, test = json.loads((root / "train_test_split_imp1k.json").read_text())
    all_images = []
    for cls in IMP1K_CLASSES:
        images = sorted((root / "imgs" / cls).iterdir())
        ext = ".png" if cls in ("mobile_uis", "webpages") else ".jpg"
        assert len(images) == 6 and {p.suffix for p in images} == {ext}
        assert all(p.stem.startswith(f"{cls}_") for p in images)
        assert _stems(root / "maps" / cls) == _stems(root / "imgs" / cls)
        assert {p.suffix for p in (root / "maps" / cls).iterdir()} == {".png"}
        all_images += [f"{cls}/{p.name}" for p in images]
        assert sum(rel.startswith(f"{cls}/") for rel in test) == 2
    assert sorted(train + test) == sorted(all_images)
    assert len(set(train + test)) == len(train) + len(test)


def test_gdi_tree_and_lists(data: Path) -> None:
    root = data / "gdi"
    assert sorted(p.name for p in root.iterdir()) == [
        "gd_imp_train",
        "gd_imp_val",
        "gd_train",
        "gd_val",
        "train.txt",
        "valid.txt",
    ]
    all_stems = []
    for split, list_file, n in (("train", "train.txt", 4), ("val", "valid.txt", 3)):
        images = sorted((root / f"gd_{split}").iterdir())
        assert len(images) == n and {p.suffix for p in images} == {".jpg"}
        assert all(GDI_NAME.match(p.stem) for p in images)
        assert _stems(root / f"gd_imp_{split}") == _stems(root / f"gd_{split}")
        assert {p.suffix for p in (root / f"gd_imp_{split}").iterdir()} == {".png"}
        text = (root / list_file).read_text()
        assert text.endswith("\n") and "." not in text  # names without extension
        assert sorted(text.split()) == _stems(root / f"gd_{split}")
        all_stems += text.split()
    assert len(set(all_stems)) == len(all_stems) == 7


def test_maps_single_channel_same_size(data: Path) -> None:
    pairs = [
        (p, data / "salicon" / "maps" / p.parent.name / f"{p.stem}.png")
        for p in (data / "salicon" / "images").rglob("*.jpg")
    ]
    pairs += [
        (p, data / "imp1k" / "maps" / p.parent.name / f"{p.stem}.png") for p in (data / "imp1k" / "imgs").rglob("*.*")
    ]
    pairs += [
        (p, p.parent.with_name(p.parent.name.replace("gd_", "gd_imp_")) / f"{p.stem}.png")
        for p in (data / "gdi").glob("gd_*/*.jpg")
    ]
    assert len(pairs) == 6 + 6 * 5 + 7
    for image_path, map_path in pairs:
        image = cv2.imread(str(image_path), cv2.IMREAD_UNCHANGED)
        sal = cv2.imread(str(map_path), cv2.IMREAD_UNCHANGED)
        assert image.ndim == 3 and image.shape[2] == 3
        assert sal.ndim == 2 and sal.dtype == np.uint8 and sal.max() == 255
        assert sal.shape == image.shape[:2]
    salicon_shapes = {cv2.imread(str(p)).shape[:2] for p in (data / "salicon" / "images").rglob("*.jpg")}
    assert salicon_shapes == {(240, 320)}


def test_fixation_mat_files(data: Path) -> None:
    mats = sorted((data / "salicon" / "fixations").rglob("*.mat"))
    assert len(mats) == 6
    for path in mats:
        mat = scipy.io.loadmat(str(path))
        assert str(mat["image"][0]) == path.stem
        h, w = mat["resolution"].reshape(-1).tolist()
        assert (h, w) == (240, 320)
        gaze = mat["gaze"]
        assert gaze.dtype.names == ("location", "timestamp", "fixations")
        assert gaze.shape[1] == 1 and 10 <= gaze.shape[0] <= 15
        for entry in gaze.flat:
            fix, loc, ts = entry["fixations"], entry["location"], entry["timestamp"]
            assert fix.ndim == 2 and fix.shape[1] == 2 and 3 <= len(fix) <= 8
            assert loc.shape[1] == 2 and ts.shape == (len(loc), 1) and np.all(np.diff(ts[:, 0]) > 0)
            for pts in (fix, loc):
                assert np.all(pts >= 1) and np.all(pts[:, 0] <= w) and np.all(pts[:, 1] <= h)


def test_fixations_follow_saliency(data: Path) -> None:
    """Fixations land on salient pixels far more often than uniform points would."""
    on_map, uniform = [], []
    for path in (data / "salicon" / "fixations").rglob("*.mat"):
        sal = cv2.imread(str(data / "salicon" / "maps" / path.parent.name / f"{path.stem}.png"), 0)
        fix = np.concatenate([e["fixations"] for e in scipy.io.loadmat(str(path))["gaze"].flat]).astype(int) - 1
        on_map.append(sal[fix[:, 1], fix[:, 0]].mean())
        uniform.append(sal.mean())
    assert np.mean(on_map) > 2 * np.mean(uniform)


def test_deterministic(data: Path, tmp_path: Path) -> None:
    same = generate(tmp_path / "b", seed=0, **TINY)
    other = generate(tmp_path / "c", seed=1, **TINY)
    files = [p.relative_to(data) for p in _files(data)]
    assert files == [p.relative_to(same) for p in _files(same)]
    for rel in files:
        if rel.suffix in (".png", ".mat", ".json", ".jpg", ".txt"):
            assert (data / rel).read_bytes() == (same / rel).read_bytes(), rel
    for path in (data / "salicon" / "fixations").rglob("*.mat"):
        a = scipy.io.loadmat(str(path))["gaze"]
        b = scipy.io.loadmat(str(same / path.relative_to(data)))["gaze"]
        for ea, eb in zip(a.flat, b.flat, strict=True):
            for field in a.dtype.names:
                np.testing.assert_array_equal(ea[field], eb[field])
    maps = [p.relative_to(data) for p in _files(data) if p.suffix == ".png" and "maps" in p.parts]
    assert any((data / rel).read_bytes() != (other / rel).read_bytes() for rel in maps)
    assert all((data / rel).read_bytes() != (other / rel).read_bytes() for rel in maps if "salicon" in rel.parts)
    for list_file in ("train.txt", "valid.txt"):
        assert set((data / "gdi" / list_file).read_text().split()).isdisjoint(
            (other / "gdi" / list_file).read_text().split()
        )


def test_gdi_items_do_not_depend_on_the_other_counts(data: Path, tmp_path: Path) -> None:
    fewer = generate(
        tmp_path / "f",
        seed=0,
        **{**TINY, "salicon_train": 0, "imp1k_per_class": 0, "imp1k_val_per_class": 0, "gdi_train": 2},
    )
    first_two = (data / "gdi" / "train.txt").read_text().split()[:2]
    assert (fewer / "gdi" / "train.txt").read_text().split() == first_two
    assert (fewer / "gdi" / "valid.txt").read_bytes() == (data / "gdi" / "valid.txt").read_bytes()
    for stem in first_two:
        for rel in (f"gd_train/{stem}.jpg", f"gd_imp_train/{stem}.png"):
            assert (fewer / "gdi" / rel).read_bytes() == (data / "gdi" / rel).read_bytes()


def _class_stats(root: Path, cls: str, size: tuple[int, int] = (64, 64)) -> tuple[np.ndarray, np.ndarray]:
    maps = [
        cv2.resize(cv2.imread(str(p), 0), size, interpolation=cv2.INTER_AREA).astype(np.float64)
        for p in sorted((root / "maps" / cls).iterdir())
    ]
    colours = [cv2.imread(str(p)).reshape(-1, 3).mean(0) for p in sorted((root / "imgs" / cls).iterdir())]
    return np.mean(maps, 0), np.mean(colours, 0)


def test_class_dependence(data: Path) -> None:
    stats = {cls: _class_stats(data / "imp1k", cls) for cls in IMP1K_CLASSES}
    poster_map, poster_colour = stats["movie_posters"]
    web_map, web_colour = stats["webpages"]
    assert np.corrcoef(poster_map.ravel(), web_map.ravel())[0, 1] < 0.9
    # dark posters, light web pages, vivid ads
    assert np.abs(poster_colour - web_colour).max() > 60
    assert np.abs(stats["advertisements"][1] - web_colour).max() > 30
    for a in IMP1K_CLASSES:
        for b in IMP1K_CLASSES:
            if a < b:
                assert np.corrcoef(stats[a][0].ravel(), stats[b][0].ravel())[0, 1] < 0.95, (a, b)


def test_complete_marker_and_no_rewrite(tmp_path: Path) -> None:
    tiny = {**TINY, "salicon_train": 1, "salicon_val": 1, "imp1k_per_class": 2, "imp1k_val_per_class": 1}
    out = generate(tmp_path / "d", **tiny)
    assert (out / ".complete").is_file() and (out / ".complete").stat().st_size == 0
    mtimes = {p: p.stat().st_mtime_ns for p in _files(out)}
    assert generate(out, **tiny) == out
    assert {p: p.stat().st_mtime_ns for p in _files(out)} == mtimes
    # overwrite with fewer items: regenerated and stale files of this generator removed
    generate(out, **{**tiny, "imp1k_per_class": 1, "imp1k_val_per_class": 0}, overwrite=True)
    assert len(list((out / "imp1k" / "imgs" / "webpages").iterdir())) == 1
    assert len(list((out / "imp1k" / "maps" / "webpages").iterdir())) == 1
    assert not list(out.rglob(".*.tmp"))


def test_missing_gdi_part_is_added_without_touching_the_rest(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "g"
    shutil.copytree(data, out)  # a finished tree, then made to look like one from before GDI existed
    shutil.rmtree(out / "gdi")
    (out / "salicon" / "extra.txt").write_text("user file")
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in _files(out)}
    assert generate(out, seed=0, **TINY) == out
    assert {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in _files(out) if "gdi" not in p.parts} == before
    added = [p.relative_to(out) for p in _files(out / "gdi")]
    assert added == [p.relative_to(data) for p in _files(data / "gdi")]
    assert all((out / rel).read_bytes() == (data / rel).read_bytes() for rel in added)
    # a GDI part cut short (no list files yet) is completed; a complete one is left alone
    (out / "gdi" / "valid.txt").unlink()
    next((out / "gdi" / "gd_val").iterdir()).unlink()
    generate(out, seed=0, **TINY)
    assert all((out / rel).read_bytes() == (data / rel).read_bytes() for rel in added)
    mtimes = {p: p.stat().st_mtime_ns for p in _files(out)}
    generate(out, seed=0, **TINY)
    assert {p: p.stat().st_mtime_ns for p in _files(out)} == mtimes


def test_progress_bar_counts_every_item(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, int] = {"total": 0, "updates": 0}

    class Bar:
        def __init__(self, total: int, **_: object) -> None:
            seen["total"] = total

        def __enter__(self) -> Bar:
            return self

        def __exit__(self, *_: object) -> None:
            pass

        def update(self, n: int = 1) -> None:
            seen["updates"] += n

    monkeypatch.setattr(synthetic, "tqdm", Bar)
    generate(tmp_path / "h", **{**TINY, "imp1k_per_class": 1, "imp1k_val_per_class": 0})
    assert seen == {"total": 4 + 2 + 5 + 4 + 3, "updates": 4 + 2 + 5 + 4 + 3}


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = [
        "--out",
        str(tmp_path / "e"),
        "--salicon-train",
        "1",
        "--salicon-val",
        "1",
        "--imp1k-per-class",
        "2",
        "--imp1k-val-per-class",
        "1",
        "--gdi-train",
        "2",
        "--gdi-val",
        "1",
        "--salicon-size",
        "48",
        "64",
        "--no-progress",
    ]
    main(argv)
    out = capsys.readouterr().out
    assert "SALICON (natural_images): 1 train / 1 val" in out and "GDI: 2 train / 1 val" in out
    assert len(list((tmp_path / "e" / "gdi" / "gd_train").iterdir())) == 2
    assert cv2.imread(str(next((tmp_path / "e" / "salicon" / "images" / "val").iterdir()))).shape[:2] == (
        48,
        64,
    )

"""The dataset registry: every registered layout is found, checked (umsi-data-check data=<name>) and read as its
owners ship it; a broken copy of each is reported per file, with no traceback."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from dataset_trees import MAKERS, SIZE, make_folder, make_osie, make_ueyes
from umsi.cli.data_check import run
from umsi.data.fixations import fixation_map_from_points, read_fixations
from umsi.data.layouts import NATURAL_IMAGES, DatasetLayoutError
from umsi.data.registry import find_items, materialise
from umsi.paths import CONFIG_DIR


def _check_cfg(*overrides: str) -> DictConfig:
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(config_name="data_check", overrides=["progress=false", *overrides])


@pytest.fixture(scope="module")
def trees(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("registry")
    return {name: make(base / name) for name, make in MAKERS.items()}


@pytest.mark.parametrize("name", sorted(MAKERS))
def test_data_check_passes_on_each_layout(trees: dict[str, Path], name: str, capsys: pytest.CaptureFixture) -> None:
    assert run(_check_cfg(f"data={name}", f"data.root={trees[name]}")) == 0
    out = capsys.readouterr().out
    assert " 0 errors, 0 warnings" in out, out


def _break(name: str, root: Path) -> list[Path]:
    """Break one image, one map (or the fixation source) and one fixation file of a copy; the paths broken."""
    broken = []
    if name == "ueyes":
        image, heat = root / "images" / "web_0.png", root / "saliency_maps" / "heatmaps_7s" / "mobile_1.png"
        fix = root / "saliency_maps" / "fixmaps_7s" / "poster_0.png"
    elif name == "mit1003":
        image, heat, fix = (
            root / "ALLSTIMULI" / "i1000.jpeg",
            root / "ALLFIXATIONMAPS" / "i1001_fixMap.jpg",
            root / "ALLFIXATIONMAPS" / "i1002_fixPts.jpg",
        )
    elif name == "cat2000":
        image, heat, fix = (
            root / "Stimuli" / "Action" / "001.jpg",
            root / "FIXATIONMAPS" / "Affective" / "002.jpg",
            root / "FIXATIONLOCS" / "Action" / "003.mat",
        )
    elif name == "osie":
        image, heat, fix = root / "data" / "stimuli" / "1001.jpg", None, root / "data" / "eye" / "fixations.mat"
    else:
        image, heat = root / "images" / "ads" / "ads0.jpg", root / "maps" / "charts" / "charts3.png"
        fix = root / "fixations" / "ads" / "ads1.csv"
    for path in filter(None, (image, heat, fix)):
        path.write_bytes(b"\x89PNG\r\n\x1a\n not really" if path.suffix != ".csv" else b"x,y\n1,two\n")
        broken.append(path)
    return broken


@pytest.mark.parametrize("name", sorted(MAKERS))
def test_broken_copy_is_reported_per_file_without_traceback(
    trees: dict[str, Path], name: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    copy = tmp_path / name
    shutil.copytree(trees[name], copy)
    broken = _break(name, copy)
    assert run(_check_cfg(f"data={name}", f"data.root={copy}", "max_problems_shown=-1")) == 1
    captured = capsys.readouterr()
    assert "Traceback" not in captured.out + captured.err
    for path in broken:
        assert f"ERROR {path}:" in captured.out, captured.out


def test_missing_pair_is_an_error_naming_the_image(trees: dict[str, Path], tmp_path: Path, capsys) -> None:
    copy = tmp_path / "mit"
    shutil.copytree(trees["mit1003"], copy)
    (copy / "ALLFIXATIONMAPS" / "i1003_fixMap.jpg").unlink()
    assert run(_check_cfg("data=mit1003", f"data.root={copy}")) == 1
    assert f"ERROR {copy / 'ALLSTIMULI' / 'i1003.jpeg'}: image has no i1003_fixMap.jpg" in capsys.readouterr().out
    with pytest.raises(DatasetLayoutError, match="i1003_fixMap"):
        find_items("mit1003", copy).raise_errors()


def test_ueyes_duration_categories_and_splits(trees: dict[str, Path], tmp_path: Path) -> None:
    root = trees["ueyes"]
    found = find_items("ueyes", root, {"duration": "3s"})
    assert {it.saliency.parent.name for it in found.items} == {"heatmaps_3s"}
    assert {it.fixations.parent.name for it in found.items} == {"fixmaps_3s"}
    assert {it.category for it in found.items} == {"desktop", "mobile", "poster", "web"}
    official = {it.key for it in found.part("val")}
    assert official == {"desktop_2", "mobile_2", "poster_2", "web_2"}
    blocks = find_items("ueyes", root, {"split": "blocks", "test_blocks": [53]})
    assert {it.key for it in blocks.part("val")} == official
    blocks = find_items("ueyes", root, {"split": "blocks", "test_blocks": [1]})
    assert {it.key for it in blocks.part("val")} == {"desktop_0", "desktop_1"}
    names = tmp_path / "test.txt"
    names.write_text("web_0.png\nposter_1\n")
    listed = find_items("ueyes", root, {"split": "list", "split_list": str(names)})
    assert {it.key for it in listed.part("val")} == {"web_0", "poster_1"} and str(names) in listed.source
    with pytest.raises(DatasetLayoutError, match=r"data\.duration"):
        find_items("ueyes", root, {"duration": "5s"})


def test_cat2000_category_is_the_domain_and_holdout_is_per_category(trees: dict[str, Path]) -> None:
    found = find_items("cat2000", trees["cat2000"], {"val_fraction": 0.25, "seed": 1})
    assert {it.category for it in found.items} == {"Action", "Affective"}
    assert sorted(it.category for it in found.part("val")) == ["Action", "Affective"]
    same = find_items("cat2000", trees["cat2000"], {"val_fraction": 0.25, "seed": 1})
    assert [it.key for it in same.part("val")] == [it.key for it in found.part("val")]


def test_fixation_formats_give_the_points_written(tmp_path: Path) -> None:
    points = np.array([[3, 4], [20, 10], [40, 30]], np.float32)
    np.save(tmp_path / "p.npy", points)
    (tmp_path / "p.csv").write_text("x,y\n" + "\n".join(f"{x:g},{y:g}" for x, y in points))
    binary = np.zeros(SIZE, np.uint8)
    binary[points[:, 1].astype(int), points[:, 0].astype(int)] = 255
    import cv2

    cv2.imwrite(str(tmp_path / "p.png"), binary)
    blobs = cv2.dilate(binary, np.ones((3, 3), np.uint8))  # UEyes fixmaps: a small blob per fixation
    cv2.imwrite(str(tmp_path / "blobs.png"), blobs)
    scipy.io.savemat(tmp_path / "p.mat", {"fixLocs": (binary > 0).astype(np.uint8)})
    for name in ("p.npy", "p.csv", "p.png", "blobs.png", "p.mat"):
        got = read_fixations(tmp_path / name, SIZE)
        np.testing.assert_allclose(got[np.lexsort(got.T[::-1])], points[np.lexsort(points.T[::-1])], err_msg=name)
    outside = read_fixations(tmp_path / "p.npy", (20, 30))  # only (3, 4) and (20, 10) lie inside 30×20
    assert len(outside) == 2


def test_osie_maps_are_built_once_from_the_fixations(tmp_path: Path) -> None:
    root = make_osie(tmp_path / "osie", n=3)
    found = find_items("osie", root, {"val_fraction": 0.0})
    assert [it.category for it in found.items] == [NATURAL_IMAGES] * 3 and all(
        it.saliency is None for it in found.items
    )
    derived = tmp_path / "derived"
    items = materialise(found, found.items, ["ads", NATURAL_IMAGES], derived, sigma=4.0)
    assert all(it.saliency.parent == derived / "osie-sigma4" / "maps" for it in items)
    assert all(it.label == 1 for it in items)
    mat = scipy.io.loadmat(root / "data" / "eye" / "fixations.mat")["fixations"].flatten()
    first = mat[0][0, 0]["subjects"].flatten()
    expected = (
        np.concatenate([np.stack([s[0, 0]["fix_x"].flatten(), s[0, 0]["fix_y"].flatten()], 1) for s in first]) - 1
    )
    np.testing.assert_allclose(np.sort(read_fixations(items[0].fixations), 0), np.sort(expected, 0))
    import cv2

    built = cv2.imread(str(items[0].saliency), cv2.IMREAD_GRAYSCALE)
    np.testing.assert_array_equal(built, fixation_map_from_points(expected, SIZE, 4.0))
    stamps = [it.saliency.stat().st_mtime_ns for it in items]
    again = materialise(found, found.items, ["ads", NATURAL_IMAGES], derived, sigma=4.0)
    assert [it.saliency.stat().st_mtime_ns for it in again] == stamps  # written once


def test_folder_classes_formats_and_split_list(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "mine")
    found = find_items("folder", root, {"split": "list"})
    assert {it.category for it in found.items} == {"ads", "charts"}
    assert {it.key for it in found.part("val")} == {"ads/ads0", "charts/charts1"}
    items = materialise(found, found.items, ["ads", "charts", NATURAL_IMAGES], tmp_path / "derived", sigma=3.0)
    assert all(it.saliency.is_file() for it in items)
    assert {it.label for it in items} == {0, 1}
    unlabelled = find_items("folder", root, {"category": None})
    assert {it.category for it in unlabelled.items} == {"ads", "charts"}  # sub-folders win


def test_ueyes_without_info_csv_is_an_error(tmp_path: Path, capsys) -> None:
    root = make_ueyes(tmp_path / "ueyes", per_category=1)
    (root / "info.csv").unlink()
    assert run(_check_cfg("data=ueyes", f"data.root={root}")) == 1
    assert f"ERROR {root / 'info.csv'}: info.csv is missing" in capsys.readouterr().out


def test_data_check_of_a_mix_checks_every_dataset(
    trees: dict[str, Path], synthetic_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    copy = Path(shutil.copytree(trees["osie"], tmp_path / "osie"))
    (copy / "data" / "stimuli" / "1002.jpg").write_bytes(b"not an image")
    entries = (
        f"data.datasets=[{{name:salicon,root:'{synthetic_root / 'salicon'}'}},"
        f"{{name:ueyes,root:'{trees['ueyes']}'}},{{name:osie,root:'{copy}'}}]"
    )
    assert run(_check_cfg("data=mix", entries)) == 1
    out = capsys.readouterr().out
    assert f"ERROR {copy / 'data' / 'stimuli' / '1002.jpg'}:" in out and " 1 error, 0 warnings" in out


def test_ueyes_style_numbers_of_a_perfect_prediction(trees: dict[str, Path]) -> None:
    import cv2

    from umsi.evaluation.registered import ueyes_style

    found = find_items("ueyes", trees["ueyes"])
    items = materialise(found, found.part("val"), [], None)
    perfect = [cv2.imread(str(it.saliency), cv2.IMREAD_GRAYSCALE).astype(np.float32) / 255 for it in items]
    style = ueyes_style(items, perfect)
    assert abs(style["kl_reversed"]) < 1e-6 and style["nss_heat"] > 0.3 and style["auc_heat"] > 0.9
    flipped = ueyes_style(items, [p[::-1, ::-1].copy() for p in perfect])
    assert (
        flipped["kl_reversed"] > 0.1
        and flipped["auc_heat"] < style["auc_heat"]
        and flipped["nss_heat"] < style["nss_heat"]
    )

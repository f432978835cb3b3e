"""Faults of real fixation data (issue 13, items 2, 3, 4 and 6), each turned into the right value.

* fixations outside the image: one rule everywhere (data check, training targets, NSS/AUC/sAUC, sAUC negatives);
* ground-truth maps at another resolution than the image: fixations, maps and negatives in the scored frame;
* augmentation: the map resampled exactly like the image, fixations kept on their pixel;
* an image without a fixation inside it: a warning; it trains on its map and is left out of NSS/AUC.

The right values come from pysaliency (``NSS``; ``create_nonfixations``' rescaling of other images' fixations,
transcribed in NumPy) and the MIT benchmark / SALICON rule for points outside the stimulus (pysaliency's
``remove_out_of_stimulus_fixations``: keep 0 <= x < width and 0 <= y < height after the 1-based → 0-based shift).
"""

from __future__ import annotations

import shutil
import warnings
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import pytest
import scipy.io
import torch

from conftest import tiny_overrides
from umsi.data.check import check_dataset
from umsi.data.datasets import SaliencyDataset
from umsi.data.layouts import read_salicon_fixations, salicon_items
from umsi.data.transforms import SampleTransform, build_augmentation, fixation_map
from umsi.evaluation.runner import summarize
from umsi.evaluation.scoring import ScoringSettings, score
from umsi.metrics import functional as M
from umsi.training.data_check import check_training_data

with warnings.catch_warnings():  # pysaliency imports pkg_resources (deprecated) at import time
    warnings.simplefilter("ignore")
    import pysaliency.metrics as psm

H, W = 48, 64  # the synthetic SALICON images of conftest.TINY_DATA
SETTINGS = ScoringSettings(progress=False, borji_splits=5)


def _salicon_copy(synthetic_root: Path, tmp_path: Path) -> Path:
    root = tmp_path / "salicon"
    shutil.copytree(synthetic_root / "salicon", root)
    return root


def _write_mat(path: Path, points_1based: np.ndarray, resolution: tuple[int, int] | None = None) -> None:
    """A SALICON 2017 ``.mat`` with the points split over two subjects; ``resolution`` (H, W) only when given
    (files converted from other eye-tracking sets often lack it)."""
    points = np.asarray(points_1based, dtype=np.float64).reshape(-1, 2)
    gaze = np.empty((2, 1), dtype=[("location", object), ("timestamp", object), ("fixations", object)])
    for s, part in enumerate(np.array_split(points, 2)):
        gaze[s, 0] = (part, np.arange(len(part), dtype=np.float64)[:, None], part)
    content = {"image": path.stem, "gaze": gaze}
    if resolution is not None:
        content["resolution"] = np.array([resolution], dtype=np.uint16)
    scipy.io.savemat(str(path), content)


def _problems_of(problems: Sequence, path: Path) -> list:
    return [p for p in problems if p.path == path]


def _pixels(fixation_map: torch.Tensor) -> set[tuple[int, int]]:
    """(row, col) of the fixated pixels of an (H, W) or (1, H, W) map."""
    return {tuple(rc) for rc in torch.nonzero(fixation_map.reshape(fixation_map.shape[-2:])).tolist()}


def _nss_pysaliency(pred: torch.Tensor, points: np.ndarray) -> float:
    """pysaliency's NSS of an (H, W) map, averaged over the fixated *pixels*: umsi scores binary fixation maps, as
    the official evaluation does, so duplicate points (pysaliency's ``x_int``, ``y_int``) count once."""
    pixels = np.unique(np.asarray(points, dtype=np.float64).astype(int), axis=0)
    return float(psm.NSS(pred.numpy(), pixels[:, 0], pixels[:, 1]).mean())


# ------------------------------------------------------------------------------ 2. fixations outside the image

INSIDE_1B = np.array([[1, 1], [W, H], [10, 20], [30, 5]])  # corners included: x = W, y = H are the last pixels
OUTSIDE_1B = np.array([[W + 1, 10], [10, H + 1], [-3, 7], [0, 5], [W + 1, H + 1]])
KEPT = (INSIDE_1B - 1).astype(np.float32)  # 0-based, converted once


def test_fixations_outside_the_image_are_dropped_everywhere(synthetic_root: Path, tmp_path: Path) -> None:
    root = _salicon_copy(synthetic_root, tmp_path)
    items = salicon_items(root, "val", label=0)
    victim = items[0].fixations
    _write_mat(victim, np.concatenate([INSIDE_1B, OUTSIDE_1B]))  # no `resolution` field

    # the data check: no error, one warning with the count dropped from this file
    problems = check_dataset("salicon", root)
    assert [p for p in problems if p.severity == "error"] == []
    [warning] = _problems_of(problems, victim)
    assert warning.severity == "warning" and "5 of 9 fixations" in warning.message and f"{W}×{H}" in warning.message

    # the reader, given the image's own size
    np.testing.assert_array_equal(read_salicon_fixations(victim, image_hw=(H, W)), KEPT)

    # training targets: exactly the four pixels, with and without augmentation (a flip mirrors the columns)
    expected = {(int(y), int(x)) for x, y in KEPT}
    plain = SaliencyDataset(items, SampleTransform((H, W), 1.0, "official"))
    assert _pixels(plain[0]["fixations"]) == expected
    flip = build_augmentation(flip_p=1.0, affine_p=0.0, crop_pad_p=0.0)
    flipped = SaliencyDataset(items, SampleTransform((H, W), 1.0, "official", flip))
    assert _pixels(flipped[0]["fixations"]) == {(r, W - 1 - c) for r, c in expected}

    # evaluation: NSS on the kept points (pysaliency), sAUC with the kept points among the other images' negatives
    records = score(items, SampleTransform((H, W), 1.0, "official"), None, SETTINGS)
    centre = M.center_bias_map(H, W).double()
    assert records[0]["umsi/nss"] == pytest.approx(_nss_pysaliency(centre, KEPT), rel=1e-9)
    own = read_salicon_fixations(items[1].fixations)
    negatives = np.concatenate([KEPT, *(read_salicon_fixations(it.fixations) for it in items[2:])])
    expected_sauc = M.sauc(centre[None], [own], [negatives], seed=0, n_splits=5, step=0.1)
    assert records[1]["umsi/sauc"] == pytest.approx(expected_sauc.item(), rel=1e-12)


def test_fixations_are_checked_against_the_image_even_when_resolution_says_otherwise(
    synthetic_root: Path, tmp_path: Path
) -> None:
    """A ``resolution`` field that disagrees with the image (the file was recorded for a larger copy) is reported,
    and the image's own size decides which points are dropped, in the check and in the reader."""
    root = _salicon_copy(synthetic_root, tmp_path)
    victim = salicon_items(root, "val", label=0)[0].fixations
    _write_mat(victim, np.concatenate([INSIDE_1B, [[2 * W, 2 * H], [W + 5, 3]]]), resolution=(2 * H, 2 * W))
    found = _problems_of(check_dataset("salicon", root), victim)
    assert sorted(p.severity for p in found) == ["warning", "warning"]
    assert any(f"'resolution' says {2 * W}×{2 * H} but the image is {W}×{H}" in p.message for p in found)
    assert any(f"2 of 6 fixations lie outside the {W}×{H} image" in p.message for p in found)
    np.testing.assert_array_equal(read_salicon_fixations(victim, image_hw=(H, W)), KEPT)
    assert len(read_salicon_fixations(victim)) == 6  # without the image, the file's own resolution decides


# ------------------------------------------------------------------ 3. maps at another resolution than the image


def _resize(path: Path, hw: tuple[int, int], flags: int) -> None:
    pixels = cv2.imread(str(path), flags)
    cv2.imwrite(str(path), cv2.resize(pixels, (hw[1], hw[0]), interpolation=cv2.INTER_LINEAR))


@pytest.mark.parametrize("frame", ["original", "letterbox"])
@pytest.mark.parametrize("map_scale", [1.0, 2.0, 0.5])
def test_maps_at_another_resolution_are_scored_in_their_own_frame(
    synthetic_root: Path, tmp_path: Path, map_scale: float, frame: str
) -> None:
    """Maps at 1×, 2× and 0.5× their image, and one image at twice the others' size: every image's fixations and
    its sAUC negatives (the other images' fixations, rescaled from each one's own size as pysaliency's
    ``create_nonfixations`` does: x · W_this / W_other) land in the frame the image is scored in."""
    root = _salicon_copy(synthetic_root, tmp_path)
    items = salicon_items(root, "val", label=0)
    points = [read_salicon_fixations(item.fixations) for item in items]
    image_hw = [(H, W)] * len(items)
    big = len(items) - 1  # this image (and its fixations) at twice the size
    _resize(items[big].image, (2 * H, 2 * W), cv2.IMREAD_COLOR)
    points[big] = points[big] * 2
    image_hw[big] = (2 * H, 2 * W)
    _write_mat(items[big].fixations, points[big] + 1, resolution=image_hw[big])
    map_hw = [(round(h * map_scale), round(w * map_scale)) for h, w in image_hw]
    for item, hw in zip(items, map_hw, strict=True):
        _resize(item.saliency, hw, cv2.IMREAD_GRAYSCALE)

    output = (H, W)  # same aspect as every image: the letterbox fills the canvas, no bars
    settings = ScoringSettings(frame=frame, progress=False, borji_splits=5)
    records = score(items, SampleTransform(output, 1.0, "official"), None, settings)
    for i, record in enumerate(records):
        others = [j for j in range(len(items)) if j != i]
        if frame == "original":  # the map's own frame; the centre-bias prediction at the map's size
            target_hw = map_hw[i]
            own = points[i] * (target_hw[1] / image_hw[i][1], target_hw[0] / image_hw[i][0])
            negatives = np.concatenate(
                [points[j] * (target_hw[1] / image_hw[j][1], target_hw[0] / image_hw[j][0]) for j in others]
            )
            fixated, nonfixated = [own], [negatives]
        else:  # the network's output frame: rescaled to this image, then placed as its letterbox places it
            target_hw = output
            in_image = [points[j] * (image_hw[i][1] / image_hw[j][1], image_hw[i][0] / image_hw[j][0]) for j in others]
            fixated = torch.from_numpy(fixation_map(points[i], image_hw[i], output))[None]
            nonfixated = torch.from_numpy(fixation_map(np.concatenate(in_image), image_hw[i], output))[None]
            own = np.array([[c, r] for r, c in sorted(_pixels(fixated))], dtype=np.float64)
        centre = M.center_bias_map(*target_hw).double()
        assert record["umsi/nss"] == pytest.approx(_nss_pysaliency(centre, own), rel=1e-9), i
        expected = M.sauc(centre[None], fixated, nonfixated, seed=0, n_splits=5, step=0.1)
        assert record["umsi/sauc"] == pytest.approx(expected.item(), rel=1e-12), i


# ------------------------------------------------------------------------------ 4. augmentation of the target


BACKGROUND = 60


def _marker_scene(rng: np.random.Generator, count: int = 24, hw: tuple[int, int] = (96, 128)) -> tuple:
    """(image BGR, map, fixations (N, 2) 0-based, codes): 5×5 markers, well apart, each centred on one fixation,
    on a grey background (60) that tells the image from padding (0); R = B = 255 on every marker and G = the
    marker's own code; the map is the image's R channel."""
    height, width = hw
    points: list[tuple[int, int]] = []
    while len(points) < count:
        x, y = int(rng.integers(3, width - 3)), int(rng.integers(3, height - 3))
        if all(max(abs(x - px), abs(y - py)) >= 10 for px, py in points):
            points.append((x, y))
    image = np.full((height, width, 3), BACKGROUND, np.uint8)
    codes = 40 + 8 * np.arange(count)
    for (x, y), code in zip(points, codes, strict=True):
        image[y - 2 : y + 3, x - 2 : x + 3] = (255, code, 255)
    return image, image[..., 2].copy(), np.array(points, np.float32), codes


def test_augmentation_resamples_the_map_like_the_image_and_keeps_fixations_on_their_marker() -> None:
    image, saliency, points, codes = _marker_scene(np.random.default_rng(0))
    height, width = saliency.shape
    transform = SampleTransform((height, width), 1.0, "timm", build_augmentation(seed=0))  # no resize: 1:1 frame
    worst = 0.0
    for _ in range(30):
        sample = transform(image, saliency, points)
        red, green, _ = (sample["image"].numpy() * 0.5 + 0.5) * 255.0  # timm normalisation undone: R, G, B
        worst = max(worst, float(np.abs(sample["saliency"][0].numpy() * 255.0 - red).max()))
        code_of = np.abs(green[..., None] - codes).argmin(-1)
        interior = (red >= 250) & (np.abs(green[..., None] - codes).min(-1) <= 1)  # marker pixels, codes exact
        on: list[int] = []
        for r, c in sorted(_pixels(sample["fixations"])):
            assert red[r, c] >= 128, f"the fixation at (row, col) = {(r, c)} left its marker"
            window = np.zeros_like(interior)
            window[max(r - 1, 0) : r + 2, max(c - 1, 0) : c + 2] = True
            near = (red >= 250) & (np.abs(green[..., None] - codes).min(-1) <= 1) & window  # which marker
            on.append(int(np.bincount(code_of[near]).argmax()) if near.any() else -1)
        assert len(set(on)) == len(on), "two fixations on one marker"
        # a marker at least 3 px away from the frame's edges and from padding is whole: its fixation is kept
        edge = np.pad(red < BACKGROUND / 2, 1, constant_values=True)  # padding (or the affine's border), frame
        edge = cv2.dilate(edge.astype(np.uint8), np.ones((7, 7), np.uint8))[1:-1, 1:-1] > 0
        whole = set(code_of[interior].tolist()) - set(code_of[interior & edge].tolist())
        assert whole <= set(on), f"fixations of whole markers {sorted(whole - set(on))} were dropped"
    assert worst <= 1.0, f"the map differs from the identically transformed image by {worst:.0f} grey levels"


# ------------------------------------------------------------------ 6. an image without a fixation inside it


def test_an_image_without_fixations_inside_trains_and_is_left_out_of_fixation_metrics(
    hydra_conf, synthetic_root: Path, tmp_path: Path
) -> None:
    root = _salicon_copy(synthetic_root, tmp_path)
    train = salicon_items(root, "train", label=0)
    val = salicon_items(root, "val", label=0)
    _write_mat(train[0].fixations, OUTSIDE_1B, resolution=(H, W))  # every point outside the image
    _write_mat(val[0].fixations, OUTSIDE_1B)  # the same, in a file without `resolution`

    problems = check_dataset("salicon", root)
    assert [p for p in problems if p.severity == "error"] == []
    for item in (train[0], val[0]):
        [warning] = _problems_of(problems, item.fixations)
        assert warning.severity == "warning" and "no fixation inside" in warning.message
        assert "5 of 5 fixations" in warning.message and "NSS" in warning.message

    run_dir = tmp_path / "run"
    cfg = hydra_conf([*tiny_overrides(root.parent, run_dir), "stage=pretrain"])
    assert check_training_data(cfg.data, run_dir, progress=False) == []  # training starts, nothing left out
    sample = SaliencyDataset(train, SampleTransform((H, W), 1.0, "official"))[0]
    assert sample["fixations"].sum() == 0 and sample["saliency"].max() > 0  # it trains on its map

    records = score(val, SampleTransform((H, W), 1.0, "official"), None, SETTINGS)
    assert not any(key.endswith(("/nss", "/auc_judd", "/sauc")) for key in records[0])
    summary = summarize(records, ["natural_images"])
    assert summary["n_images"] == 4 and summary["n_without_fixations"] == 1
    assert summary["n_scored"]["nss"] == summary["n_scored"]["auc_judd"] == 3
    centre = M.center_bias_map(H, W).double()
    expected = np.mean([_nss_pysaliency(centre, read_salicon_fixations(item.fixations)) for item in val[1:]])
    assert summary["umsi"]["nss"] == pytest.approx(expected, rel=1e-9)

"""umsi-predict and the Python API: original sizes, awkward image files, failures, no half-written results."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from PIL import Image

import umsi
from umsi.checkpoints.loading import save_model
from umsi.inference.predict import run_predict
from umsi.models import UMSI
from umsi.paths import CONFIG_DIR

CLASSES = ["advertisements", "infographics", "mobile_uis", "movie_posters", "webpages", "natural_images"]
SIZES = {"odd.png": (37, 53), "wide.jpg": (6, 400), "tall.png": (401, 7), "square.jpg": (64, 64)}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A umsi checkpoint of a seeded random UMSI() at a 32×40 input (what load_model reads)."""
    folder = tmp_path_factory.mktemp("ckpt")
    torch.manual_seed(0)
    model = UMSI()
    path = folder / "tiny.ckpt"
    save_model(path, model, (32, 40), CLASSES)
    yield path
    for file in folder.iterdir():
        file.unlink()


def _rgb(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


@pytest.fixture
def images(tmp_path: Path) -> Path:
    """Odd sizes and extreme aspect ratios, and every awkward file kind, in a folder with a sub-folder."""
    folder = tmp_path / "in"
    (folder / "kinds").mkdir(parents=True)
    for i, (name, (h, w)) in enumerate(SIZES.items()):
        Image.fromarray(_rgb(h, w, i)).save(folder / name)
    rgb = _rgb(30, 45, 9)
    Image.fromarray(rgb[..., 0]).save(folder / "kinds" / "gray.png")
    Image.fromarray(np.dstack([rgb, np.full((30, 45), 128, np.uint8)])).save(folder / "kinds" / "rgba.png")
    Image.fromarray(rgb).convert("P", palette=Image.ADAPTIVE).save(folder / "kinds" / "palette.png")
    cv2.imwrite(str(folder / "kinds" / "deep16.png"), (rgb.astype(np.uint16) * 257))
    Image.fromarray(rgb).convert("CMYK").save(folder / "kinds" / "cmyk.jpg")
    Image.fromarray(rgb).save(folder / "kinds" / "anim.gif")  # OpenCV cannot read GIF: Pillow fallback
    return folder


def _cfg(**values: object):
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        overrides = [f"{k}={v}" for k, v in {"progress": "false", "num_workers": 0, **values}.items()]
        return compose(config_name="predict", overrides=overrides)


def test_every_image_comes_back_at_its_own_size(checkpoint: Path, images: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert run_predict(_cfg(ckpt=checkpoint, input=images, batch_size=3), out) == 0
    rows = list(csv.DictReader((out / "predictions.csv").open()))
    assert len(rows) == len(SIZES) + 6
    for row in rows:
        heatmap = cv2.imread(str(out / row["heatmap"]), cv2.IMREAD_UNCHANGED)
        overlay = cv2.imread(str(out / row["overlay"]))
        expected = (int(row["height"]), int(row["width"]))
        assert heatmap.dtype == np.uint8 and heatmap.shape == expected and overlay.shape[:2] == expected
        assert abs(sum(float(row[f"p_{c}"]) for c in CLASSES) - 1) < 1e-4 and row["class"] in CLASSES
    by_name = {Path(r["file"]).name: (int(r["height"]), int(r["width"])) for r in rows}
    assert all(by_name[name] == hw for name, hw in SIZES.items())
    assert (out / "kinds" / "cmyk_heatmap.png").is_file()  # the folder structure is kept


def test_a_corrupt_file_is_reported_and_the_rest_written(checkpoint: Path, images: Path, tmp_path: Path) -> None:
    (images / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    out = tmp_path / "out"
    env = {**os.environ, "WANDB_MODE": "disabled"}
    cmd = [sys.executable, "-m", "umsi.cli.predict", f"ckpt={checkpoint}", f"input={images}", f"output={out}"]
    result = subprocess.run(
        [*cmd, "progress=false", "num_workers=1"], capture_output=True, text=True, env=env, timeout=300
    )
    assert result.returncode == 1, result.stderr[-2000:]
    assert "broken.jpg" in result.stderr and "1 failed" in result.stderr
    assert f"{len(SIZES) + 6} of {len(SIZES) + 7} images written" in result.stdout
    report = json.loads((out / "predictions.json").read_text())
    assert [Path(f["file"]).name for f in report["failed"]] == ["broken.jpg"]
    assert not list(out.rglob("broken*")) and not list(out.rglob(".*"))  # no partial or temporary files


def test_existing_results_need_overwrite(checkpoint: Path, images: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    target = out / "odd_heatmap.png"
    target.parent.mkdir()
    target.write_bytes(b"keep me")
    with pytest.raises(ValueError, match="overwrite=true"):
        run_predict(_cfg(ckpt=checkpoint, input=images / "odd.png"), out)
    assert target.read_bytes() == b"keep me"
    assert run_predict(_cfg(ckpt=checkpoint, input=images / "odd.png", overwrite="true"), out) == 0
    assert cv2.imread(str(target), cv2.IMREAD_UNCHANGED).shape == SIZES["odd.png"]


def test_glob_input_and_bad_keys(checkpoint: Path, images: Path, tmp_path: Path) -> None:
    assert run_predict(_cfg(ckpt=checkpoint, input=f"'{images}/*.jpg'"), tmp_path / "g") == 0
    assert sorted(p.name for p in (tmp_path / "g").glob("*_heatmap.png")) == ["square_heatmap.png", "wide_heatmap.png"]
    with pytest.raises(ValueError, match=r"input=.*no such file"):
        run_predict(_cfg(ckpt=checkpoint, input=tmp_path / "nothing"), tmp_path / "x")
    with pytest.raises(ValueError, match=r"colormap=.rainbowz."):
        run_predict(_cfg(ckpt=checkpoint, input=images, colormap="rainbowz"), tmp_path / "x")
    with pytest.raises(FileNotFoundError, match=r"ckpt=.*no such file"):
        run_predict(_cfg(ckpt=tmp_path / "missing.ckpt", input=images), tmp_path / "x")


def test_python_api_on_each_input_kind(checkpoint: Path, images: Path) -> None:
    predictor = umsi.load(checkpoint)
    rgb = np.asarray(Image.open(images / "odd.png").convert("RGB"))
    from_path = predictor.predict(images / "odd.png")
    from_pil = predictor.predict(Image.open(images / "odd.png"))
    from_array = predictor.predict(rgb)
    for prediction in (from_path, from_pil, from_array):
        assert prediction.heatmap.shape == SIZES["odd.png"] and prediction.heatmap.dtype == np.float32
        assert prediction.heatmap.min() >= 0.0 and prediction.heatmap.max() <= 1.0
        assert prediction.label in CLASSES and abs(prediction.probabilities.sum() - 1) < 1e-5
    np.testing.assert_allclose(from_path.heatmap, from_pil.heatmap, atol=1e-6)
    np.testing.assert_allclose(from_path.heatmap, from_array.heatmap, atol=1e-6)
    gray16 = (rgb[..., 0].astype(np.uint16) * 257, rgb.astype(np.float32) / 255.0)  # 16-bit gray, float RGB
    batch = predictor.predict([*gray16, str(images / "tall.png")], batch_size=2)
    assert [p.heatmap.shape for p in batch] == [SIZES["odd.png"], SIZES["odd.png"], SIZES["tall.png"]]
    np.testing.assert_allclose(batch[1].heatmap, from_array.heatmap, atol=2e-2)  # float → 8-bit rounding
    blurred = predictor.predict(rgb, blur_sigma=3)
    assert np.abs(blurred.heatmap - from_array.heatmap).max() > 1e-3


def test_cli_heatmap_is_the_api_heatmap(checkpoint: Path, images: Path, tmp_path: Path) -> None:
    run_predict(_cfg(ckpt=checkpoint, input=images / "wide.jpg"), tmp_path / "o")
    png = cv2.imread(str(tmp_path / "o" / "wide_heatmap.png"), cv2.IMREAD_UNCHANGED)
    api = umsi.load(checkpoint).predict(images / "wide.jpg").heatmap
    assert np.abs(png.astype(np.float32) - api * 255).max() <= 0.5 + 1e-3


def test_predict_runs_an_exported_onnx_model(checkpoint: Path, images: Path, tmp_path: Path) -> None:
    from umsi.checkpoints.exported import export_metadata, export_model
    from umsi.checkpoints.loading import load_model

    loaded = load_model(checkpoint)
    onnx_path = export_model(
        loaded.model, tmp_path / "tiny.onnx", "onnx", (32, 40), export_metadata(loaded.card, checkpoint, (32, 40))
    )
    exported, torch_model = umsi.load(onnx_path), umsi.load(checkpoint)
    assert exported.class_names == CLASSES and exported.input_size == (32, 40)
    files = [images / "odd.png", images / "kinds" / "rgba.png"]
    for a, b in zip(exported.predict(files), torch_model.predict(files), strict=True):
        assert a.heatmap.shape == b.heatmap.shape
        np.testing.assert_allclose(a.heatmap, b.heatmap, atol=1e-4)
        np.testing.assert_allclose(a.probabilities, b.probabilities, atol=1e-5)
    assert run_predict(_cfg(ckpt=onnx_path, input=images / "tall.png"), tmp_path / "o") == 0
    assert cv2.imread(str(tmp_path / "o" / "tall_heatmap.png"), cv2.IMREAD_UNCHANGED).shape == SIZES["tall.png"]


# ------------------------------------------------------------------ one output per input (issue 13, item 1)


def _two_posters(root: Path) -> list[Path]:
    """``in/shop_a/poster.png`` and ``in/shop_b/poster.png``: two different images with one file name."""
    files = []
    for seed, shop in enumerate(("shop_a", "shop_b")):
        (root / shop).mkdir(parents=True)
        Image.fromarray(_rgb(30 + 10 * seed, 40, seed)).save(root / shop / "poster.png")
        files.append(root / shop / "poster.png")
    return files


def test_predict_never_writes_two_inputs_to_one_file(checkpoint: Path, tmp_path: Path) -> None:
    from umsi.inference.predict import find_inputs, plan_jobs

    posters = _two_posters(tmp_path / "in")
    Image.fromarray(_rgb(20, 20, 7)).save(tmp_path / "in" / "poster.png")  # a third poster.png, one level up
    out = tmp_path / "out"
    assert run_predict(_cfg(ckpt=checkpoint, input=f"'{tmp_path}/in/*/poster.png'"), out) == 0
    rows = list(csv.DictReader((out / "predictions.csv").open()))
    assert sorted(r["heatmap"] for r in rows) == ["shop_a/poster_heatmap.png", "shop_b/poster_heatmap.png"]
    model = umsi.load(checkpoint)
    for row in rows:  # each file holds its own input's map
        written = cv2.imread(str(out / row["heatmap"]), cv2.IMREAD_UNCHANGED).astype(np.float32)
        assert np.abs(written - model.predict(row["file"]).heatmap * 255).max() <= 0.5 + 1e-3
    # every input form: a file list, a folder, a glob, and a mix of them (a file named twice counts once)
    forms = {
        "file list": [str(p) for p in posters],
        "folder": str(tmp_path / "in"),
        "glob": str(tmp_path / "in" / "**" / "poster.png"),
        "mixed": [str(tmp_path / "in" / "shop_a"), str(posters[1]), str(tmp_path / "in" / "*.png"), str(posters[0])],
    }
    for form, spec in forms.items():
        files, root = find_inputs(spec)
        heatmaps = [job.heatmap.relative_to(out).as_posix() for job in plan_jobs(files, root, out)]
        expected = {"shop_a/poster_heatmap.png", "shop_b/poster_heatmap.png"}
        if form != "file list":
            expected.add("poster_heatmap.png")
        assert sorted(heatmaps) == sorted(expected), form


def test_predict_refuses_outputs_that_would_still_collide(checkpoint: Path, tmp_path: Path) -> None:
    # a.png and a.jpg keep their suffix (a_png, a_jpg), which a_png.jpg also is: refused before anything is written
    folder = tmp_path / "in"
    folder.mkdir()
    for seed, name in enumerate(("a.png", "a.jpg", "a_png.jpg")):
        Image.fromarray(_rgb(20, 24, seed)).save(folder / name)
    out = tmp_path / "out"
    with pytest.raises(ValueError, match=r"input: .*a\.png and .*a_png\.jpg would both be written to .*a_png_heatmap"):
        run_predict(_cfg(ckpt=checkpoint, input=folder), out)
    assert not out.exists()

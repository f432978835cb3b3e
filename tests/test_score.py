"""umsi-score: another tool's maps scored with umsi's metrics; given the maps umsi-predict wrote for a model, it
reproduces umsi-eval's numbers for that model, and it names every missing or wrong-size map."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir

from umsi.checkpoints.loading import save_model
from umsi.evaluation.external import MapFolderError, score_maps
from umsi.evaluation.runner import evaluate
from umsi.inference.predict import run_predict
from umsi.models import UMSI
from umsi.paths import CONFIG_DIR

CLASSES = ["advertisements", "infographics", "mobile_uis", "movie_posters", "webpages", "natural_images"]


@pytest.fixture(scope="module")
def predicted(tmp_path_factory: pytest.TempPathFactory, synthetic_root: Path) -> Iterator[tuple[Path, Path]]:
    """(checkpoint of a seeded random UMSI at 32×40, the folder of the maps umsi-predict wrote for SALICON val)."""
    folder = tmp_path_factory.mktemp("score")
    torch.manual_seed(0)
    checkpoint = folder / "tiny.ckpt"
    save_model(checkpoint, UMSI(), (32, 40), CLASSES)
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        overrides = [f"ckpt={checkpoint}", f"input={synthetic_root / 'salicon' / 'images' / 'val'}", "progress=false"]
        assert (
            run_predict(compose(config_name="predict", overrides=[*overrides, "num_workers=0"]), folder / "maps") == 0
        )
    yield checkpoint, folder / "maps"


def _score_cfg(*overrides: str):
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(config_name="score", overrides=["progress=false", *overrides])


def test_umsi_score_reproduces_umsi_eval_on_the_maps_umsi_predict_wrote(
    predicted: tuple[Path, Path], synthetic_root: Path, tmp_path: Path
) -> None:
    checkpoint, maps = predicted
    salicon = synthetic_root / "salicon"
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        eval_cfg = compose(
            config_name="eval",
            overrides=[
                f"checkpoints=[{checkpoint}]",
                "names=[tiny]",
                f"datasets.salicon={salicon}",
                "datasets.gdi=null",
                "datasets.imp1k=null",
                "examples=0",
                "report.html=false",
                "progress=false",
                "logger.wandb=false",
            ],
        )
        evaluated = evaluate(eval_cfg, tmp_path / "eval")["datasets"]["salicon"]["models"]["tiny"]["umsi"]
    scored = score_maps(_score_cfg(f"maps={maps}", "name=tiny", f"data.root={salicon}"), tmp_path / "score")
    ours = scored["datasets"]["salicon"]["models"]["tiny"]["umsi"]
    # the PNGs hold the prediction min-max scaled to 8 bits: CC, NSS and AUC-Judd are invariant to that scaling
    # (up to the quantisation), KL and SIM move with the shift by the minimum
    for metric in ("cc", "nss", "auc_judd"):
        assert ours[metric] == pytest.approx(evaluated[metric], abs=0.01), metric
    for metric in ("kl", "sim"):
        assert ours[metric] == pytest.approx(evaluated[metric], abs=0.1), metric
    text = (tmp_path / "score" / "tables.md").read_text()
    assert "## salicon" in text and "## Models × datasets" in text and "| tiny |" in text


def test_umsi_score_names_every_missing_and_wrong_size_map(
    predicted: tuple[Path, Path], synthetic_root: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    _, maps = predicted
    broken = Path(shutil.copytree(maps, tmp_path / "maps"))
    pngs = sorted(broken.rglob("*_heatmap.png"))
    pngs[0].unlink()
    cv2.imwrite(str(pngs[1]), np.zeros((5, 7), np.uint8))
    cfg = _score_cfg(f"maps={broken}", f"data.root={synthetic_root / 'salicon'}")
    with pytest.raises(MapFolderError) as err:
        score_maps(cfg, tmp_path / "out")
    text = str(err.value)
    image = synthetic_root / "salicon" / "images" / "val" / pngs[0].name.replace("_heatmap.png", "")
    assert f"missing: no map for {image}" in text
    assert f"wrong size: {pngs[1]} is 7×5" in text and "2 of the" in text
    from umsi.cli.score import main

    monkeypatch.setattr(sys, "argv", ["umsi-score", f"maps={broken}", f"data.root={synthetic_root / 'salicon'}"])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2 and "Traceback" not in capsys.readouterr().err

"""Issue 13, items 7–10: a pipeline that fails after pretraining, lost metric history on resume, two runs in one
folder, tiny inputs. (Item 1, prediction outputs that collide, is in test_predict.py.)"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from umsi.paths import CONFIG_DIR

# ------------------------------------------------------------ item 8: a resumed run keeps its CSV history


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as file:
        return [{k: v for k, v in row.items() if v} for row in csv.DictReader(file)]


def test_resumed_run_keeps_its_csv_metric_history(tiny_cfg, tmp_path: Path) -> None:
    from umsi.training.runner import run

    common = ("stage=pretrain", "logger=csv", "trainer.log_every_n_steps=1")
    cfg, overrides = tiny_cfg(*common)
    run(cfg, overrides)
    metrics = tmp_path / "run" / "csv" / "metrics.csv"
    epoch0 = _rows(metrics)
    steps = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)["global_step"]
    assert {r["epoch"] for r in epoch0} == {"0"} and steps == 3
    # what a run killed during epoch 1 leaves behind: a row after the checkpoint's step, trained again on resume
    with metrics.open("a", newline="") as file:
        csv.DictWriter(file, fieldnames=list(csv.DictReader(metrics.open()).fieldnames)).writerow(
            {"epoch": 1, "step": steps, "train/loss_step": 999.0}
        )
    cfg, overrides = tiny_cfg(*common, "ckpt_path=last", "trainer.max_epochs=2")
    run(cfg, overrides)
    rows = _rows(metrics)
    assert rows[: len(epoch0)] == epoch0  # the history before the checkpoint, unchanged
    assert {r["epoch"] for r in rows[len(epoch0) :]} == {"1"}
    assert [int(r["step"]) for r in rows if "train/loss_step" in r] == list(range(2 * steps))
    assert all(r.get("train/loss_step") != "999.0" for r in rows)  # replaced by the resumed run's own row
    logged = [(r["step"], k) for r in rows for k in r if k not in ("step", "epoch")]
    assert len(logged) == len(set(logged))  # no metric twice at one step


# ------------------------------------------------------------ item 10: tiny inputs


def test_tiny_inputs_get_a_value_error_naming_the_minimum_size(tmp_path: Path) -> None:
    from umsi.models import UMSI
    from umsi.models.encoder import min_input_size

    model = UMSI().eval()
    assert model.min_input_size == min_input_size("legacy_xception") == 7
    with torch.no_grad():
        for size in ((6, 64), (64, 6), (1, 1)):
            with pytest.raises(ValueError, match=r"input of \d+×\d+ px is too small: .* at least 7×7 px"):
                model(torch.zeros(1, 3, *size))
            if min(size) == 6:  # the check is not stricter than the network: without it, PyTorch fails there
                with pytest.raises(RuntimeError, match="Kernel size can't be greater than actual input size"):
                    model.encoder(torch.zeros(1, 3, *size))
        assert model(torch.zeros(1, 3, 7, 7)).saliency.shape == (1, 1, 14, 14)


def test_tiny_images_predict_at_their_own_size(tmp_path: Path) -> None:
    import umsi
    from umsi.inference.predict import run_predict
    from umsi.models import UMSI

    torch.manual_seed(0)
    checkpoint = tmp_path / "tiny.ckpt"
    classes = ["advertisements", "infographics", "mobile_uis", "movie_posters", "webpages", "natural_images"]
    torch.save(
        {
            "state_dict": {f"model.{k}": v for k, v in UMSI().state_dict().items()},
            "hyper_parameters": {
                "model": {"_target_": "umsi.models.UMSI"},
                "class_names": classes,
                "data": {"input_size": [32, 40], "preprocessing": "official"},
            },
        },
        checkpoint,
    )
    sizes = {"dot.png": (1, 1), "line.png": (1, 60), "speck.png": (3, 2)}
    (tmp_path / "in").mkdir()
    for i, (name, hw) in enumerate(sizes.items()):
        Image.fromarray(np.random.default_rng(i).integers(0, 256, (*hw, 3), dtype=np.uint8)).save(
            tmp_path / "in" / name
        )
    model = umsi.load(checkpoint)
    for name, hw in sizes.items():
        assert model.predict(tmp_path / "in" / name).heatmap.shape == hw
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose("predict", [f"ckpt={checkpoint}", f"input={tmp_path / 'in'}", "progress=false", "num_workers=0"])
    assert run_predict(cfg, tmp_path / "out") == 0
    for name, hw in sizes.items():
        heatmap = Image.open(tmp_path / "out" / name.replace(".png", "_heatmap.png"))
        assert heatmap.size[::-1] == hw

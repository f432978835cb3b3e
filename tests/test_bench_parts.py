"""The benchmark modules run end to end on tiny inputs and report finite, positive numbers (no speed asserted)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from umsi.bench.data_pipeline import bench_data_pipeline, letterbox_from, reduction_factor
from umsi.bench.metrics import METRICS, bench_metrics, metrics_table


def _positive(x: object) -> bool:
    return isinstance(x, int | float) and math.isfinite(x) and x > 0


def test_reduction_factor_and_letterbox_from_match_the_full_geometry() -> None:
    import numpy as np

    from umsi.data.transforms import letterbox

    assert reduction_factor((480, 640), (240, 320)) == 2
    assert reduction_factor((480, 640), (480, 640)) == 1
    assert reduction_factor((1920, 2560), (240, 320)) == 8
    image = np.full((48, 60, 3), 200, np.uint8)
    full = letterbox(image, (24, 40))
    assert np.array_equal(letterbox_from(image[::2, ::2], (48, 60), (24, 40)) > 0, full > 0)


def test_data_pipeline_bench_on_generated_images() -> None:
    result = bench_data_pipeline(
        None, n_images=8, input_size=(24, 32), workers=(0, 1), image_size=(48, 64), batch_size=4
    )
    json.dumps(result)  # plain JSON
    assert {"machine", "data", "config", "decode", "sample", "loader", "workers_needed", "seconds"} <= result.keys()
    assert result["data"]["n_images"] == 8 and result["machine"]["cpu_count"] >= 1
    assert result["decode"]["reduction_factors"] == [2]
    for name, decoder in result["decode"]["decoders"].items():
        if decoder["status"] != "ok":
            assert name == "simplejpeg" and decoder["status"] == "not installed"
            continue
        for mode in ("memory", "disk", "reduced_memory", "reduced_disk"):
            assert _positive(decoder[mode]["images_per_s"]), (name, mode)
        assert decoder["reduced_shape_of_first"] == [24, 32], name
        diff = decoder["reduced_memory_letterbox_vs_reference"]["mean_abs_diff_levels"]
        assert math.isfinite(diff) and diff >= 0
    sample = result["sample"]
    for key in ("no_augmentation", "augmentation", "reduced_decode_no_augmentation"):
        assert _positive(sample[key]["images_per_s"]), key
    assert all(_positive(v) for v in sample["stages_ms_per_image"].values())
    settings = {(r["num_workers"], r["pin_memory"], r["persistent_workers"]) for r in result["loader"]}
    assert settings == {(0, False, False), (0, True, False)} | {(1, p, q) for p in (False, True) for q in (False, True)}
    assert all(_positive(rate) for r in result["loader"] for rate in r["epoch_images_per_s"])
    needed = result["workers_needed"]
    assert needed["no_augmentation"]["208"] >= 1 and needed["augmentation"]["208"] >= 1
    assert (
        _positive(needed["per_worker_images_per_s"]["loader_1_worker_steady"]) and needed["loader_1_worker"]["208"] >= 1
    )
    assert "collate" in sample["stages_ms_per_image"]


def test_data_pipeline_bench_on_a_plain_jpeg_folder_decodes_only(synthetic_root: Path) -> None:
    folder = synthetic_root / "salicon" / "images" / "train"
    result = bench_data_pipeline(folder, n_images=3, input_size=(24, 32), workers=())
    assert result["data"]["layout"].startswith("jpeg folder") and result["data"]["n_images"] == 3
    assert result["sample"] is None and result["loader"] is None and result["workers_needed"] is None
    assert _positive(result["decode"]["decoders"]["opencv"]["memory"]["images_per_s"])


def test_data_pipeline_bench_rejects_a_folder_without_jpegs(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no JPEG"):
        bench_data_pipeline(tmp_path, n_images=2)


def test_metrics_bench_on_tiny_maps() -> None:
    result = bench_metrics(n_maps=4, size=(48, 64), device="cpu", n_fixations=20, repeats=1, scoring_maps=2)
    json.dumps(result)
    assert {"machine", "config", "metrics", "overall", "scoring", "load_average", "setup_s", "seconds"} <= result.keys()
    assert set(result["metrics"]) == set(METRICS)
    for name, entry in result["metrics"].items():
        for key in ("torch_s", "reference_s", "pysaliency_s", "speedup", "speedup_vs_reference"):
            assert _positive(entry[key]), (name, key)
        assert entry["max_abs_diff"] < 1e-6, name  # same inputs, conventions that equal pysaliency
        assert entry["max_rel_diff_vs_reference"] < 1e-6, name  # the fast path's contract
    overall = result["overall"]
    assert _positive(overall["speedup"]) and overall["target_speedup"] == 3 and overall["min_metric_speedup"] == 1
    assert overall["slowest_metric"] in METRICS and result["speedup_overall"] == overall["speedup"]
    assert isinstance(overall["meets_target"], bool)
    scoring = result["scoring"]  # umsi-eval's per-image scoring, previous and fast functions
    assert scoring["n_maps"] == 2 and scoring["values_per_map"] == 20 and scoring["max_rel_diff"] < 1e-6
    assert _positive(scoring["fast_s"]) and _positive(scoring["reference_s"])
    other = result["independent"]  # the independent input set: one call, convention="mit"
    assert set(other["metrics"]) == set(METRICS) and other["config"]["batch_size"] == 4
    for name, entry in other["metrics"].items():
        assert _positive(entry["torch_s"]) and _positive(entry["pysaliency_s"]), name
        assert entry["max_rel_diff_vs_reference"] < 1e-6, name
        # "mit" NSS z-scores with the N − 1 std, pysaliency with N: a relative difference of about 1/(2N)
        assert entry["max_abs_diff"] < (1e-3 if name == "nss" else 1e-6), name
    assert isinstance(result["meets_target_on_both"], bool)
    table = metrics_table(result)
    assert all(name in table for name in METRICS) and "umsi-eval scoring (2 maps" in table and "load average" in table
    assert "Independent input set (4 maps of 48×64" in table


def test_discovery_bench_finds_every_item_of_its_trees(tmp_path: Path) -> None:
    from umsi.bench.discovery import bench_discovery, discovery_markdown

    result = bench_discovery(tmp_path, salicon=(30, 10), ueyes=20, repeats=2)
    assert result["salicon"]["items"] == 40 and result["ueyes"]["items"] == 20
    assert len(result["salicon"]["all_seconds"]) == 2 and result["salicon"]["seconds"] > 0
    assert "| ueyes | 20 |" in "\n".join(discovery_markdown(result))

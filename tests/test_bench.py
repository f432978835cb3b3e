"""make bench's code runs end to end at tiny sizes (numbers are never asserted, only that they exist)."""

from __future__ import annotations

import json
import math
from pathlib import Path

from umsi.cli.bench import main


def test_bench_quick_writes_both_reports(tmp_path: Path) -> None:
    parts = "training,inference,data,metrics"  # the serve part has its own test (tests/test_serve.py)
    assert main(["--quick", "--device", "cpu", "--out", str(tmp_path), "--parts", parts]) == 0
    results = json.loads((tmp_path / "bench.json").read_text())
    training = results["training"]
    for path in ("lightning", "plain_loop"):
        assert training[path]["images_per_second"] > 0 and training[path]["steps"] == 4
    assert math.isfinite(training["ratio"]) and training["ratio"] > 0
    assert set(results["inference"]) >= {"fp32", "bf16", "fp32+channels_last"}
    assert results["inference"]["fp32"]["1"]["ms_per_batch"] > 0
    assert results["memory"]["host_rss_gib"] > 0
    assert {"data_pipeline", "metrics"} <= set(results)
    targets = {row["target"]: row for row in results["targets"]}
    assert all(row["met"] is None for name, row in targets.items() if "GPU" in name or "H100" in name)
    report = (tmp_path / "bench.md").read_text()
    assert "## Targets" in report and "Ratio (same run)" in report


def test_bench_encoders_times_every_swept_preset(tmp_path: Path) -> None:
    from umsi.bench.encoders import bench_encoders, encoders_markdown, sweep_presets
    from umsi.paths import CONFIG_DIR

    presets = sweep_presets(CONFIG_DIR)
    assert presets == ["umsi", "convnext_tiny", "efficientnet_b3", "resnet50", "deit_small"]
    results = bench_encoders(CONFIG_DIR, ["umsi", "deit_small"], (32, 40), repeats=1)
    assert results["umsi"]["parameters"] == 29_850_799 and results["umsi"]["output_stride"] == 8
    assert results["deit_small"]["encoder"] == "deit_small_patch16_224" and results["deit_small"]["output_stride"] == 16
    assert all(r["ms_per_image"] > 0 for r in results.values())
    table = encoders_markdown(results, (32, 40), 1)
    assert table[1].startswith("## Encoders (forward pass at 32×40")
    assert table[-2].startswith("| umsi | legacy_xception | 8 | 29,850,799 |")

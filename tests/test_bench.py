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

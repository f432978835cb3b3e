"""scripts/bench_keras.py (PyTorch vs Keras/TF side by side): the parts that run without TensorFlow."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "bench_keras.py"


def _script():
    spec = importlib.util.spec_from_file_location("bench_keras", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_skips_cleanly_without_the_tensorflow_venv(tmp_path: Path) -> None:
    missing = tmp_path / "no-venv" / "bin" / "python"
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--tf-python", str(missing), "--out", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("bench-keras: skipped: no TensorFlow venv") and "make tf-venv" in result.stdout
    assert not (tmp_path / "out").exists()


def _per(predict: float, network: float, keras: float) -> dict:
    names = ("umsi.load(...).predict", "PyTorch network", "Keras/TF network")
    seconds = dict(zip(names, (predict, network, keras), strict=True))
    return {
        "seconds_per_image": seconds,
        "min_seconds_per_image": seconds,
        "cpu_seconds_per_image": seconds,
        "calls": dict.fromkeys(names, 2),
        "ratio_keras_over_predict": keras / predict,
        "ratio_keras_over_network": keras / network,
        "map_max_abs_diff_over_range": 7e-6,
        "map_range": 1.0,
        "probability_max_abs_diff": 1e-7,
    }


def test_targets_and_report() -> None:
    bench = _script()
    results = {"batches": {"1": _per(0.40, 0.38, 0.92), "8": _per(0.45, 0.43, 0.80)}}
    rows = bench._targets(results)
    assert [r["met"] for r in rows] == [True, True, False]  # 2.3×, 1.8×; but batch 8 slower per image than 1
    assert rows[0]["goal_met"] and not rows[1]["goal_met"]
    results.update(
        threads=2,
        input_size=[240, 320],
        targets=rows,
        machine={
            "date": "2026-11-30T00:00:00",
            "cpu_count": 2,
            "torch": "2.14.1",
            "tf_tensorflow": "2.21.0",
            "tf_keras": "3.15.1",
            "tf_onednn_opts": "default (on)",
            "tf_intra_op_threads": 2,
            "tf_inter_op_threads": 1,
            "weights": "synthetic",
            "umsi_weights": "the .h5's, converted",
            "load_average": [0.5, 0.5, 0.5],
            "load_average_after": [0.6, 0.5, 0.5],
        },
    )
    report = bench.markdown(results)
    assert "Keras weights: synthetic; umsi weights: the .h5's, converted." in report
    assert "| 1 | 2.30× | 2.42× | 7.0e-06 | 1.0e-07 |" in report
    assert "| predict per image at batch 8 ≤ at batch 1 | 0.450 s vs 0.400 s | **no** |" in report

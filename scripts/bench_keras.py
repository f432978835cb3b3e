"""CPU inference side by side: ``umsi.load(...).predict`` and its network against the released UMSI in Keras/TF.

``make bench`` runs this after ``umsi-bench``; ``make bench-keras`` runs it alone. It needs the TensorFlow venv
(``make tf-venv`` → ``.venv-tf``) and skips with a message (exit 0) when that is missing. One run, this process and
one TensorFlow worker (``scripts/keras_umsi.py --serve``, the released graph from umsi-reference §1 with the weights
of the same ``.h5``), both on the same number of threads. The weights are those of ``--h5`` (the released file
when you have it) converted with ``umsi.official.convert``; by default a synthetic ``.h5`` in the exact released
layout with random weights (``tests/keras_h5.py``): the timing does not depend on the values.

Contenders, alternated call by call within each round (the order rotates every round), for batch 1 and 8 at
240×320:

* ``umsi.load(...).predict``: the whole prediction (letterbox, normalise, network, un-letterbox, min–max) of B
  images of the input size — fp32, bf16 (``precision="bf16"``: CPU autocast, oneDNN bf16 kernels) and int8 (the
  ``umsi-export quantize=int8`` file, ONNX Runtime);
* the networks alone: ``Predictor.forward`` on the preprocessed batch (PyTorch fp32, PyTorch bf16, int8 ONNX);
* the Keras/TF network alone (``tf.function``) on the same batch, NHWC.

The low-precision paths are checked against fp32 the way ``umsi-export`` checks an int8 file
(``umsi.inference.quantize.accuracy_report``): on held-out images of the calibration folder (``--calibration-images``;
by default synthetic Imp1k designs from ``umsi.data.synthetic``), map CC ≥ 0.99 and KL ≤ 0.01 on every image and the
same class on ≥ 99 %. ``--ckpt`` times a trained model (e.g. ``make train``'s) instead of the ``.h5``'s weights; the
Keras side then still runs the ``.h5`` (its time does not depend on the values) and its maps are not compared.

Reported: wall seconds per image (median of every timed call; the best too), CPU seconds of the process per image
(what each side used; on a loaded machine the wall time also depends on how its threads wait for each other), the
Keras/PyTorch ratio of the wall times (> 1: PyTorch faster) and the largest difference of the maps (relative to the
Keras map's range) and of the class probabilities. Targets (performance issue): PyTorch at least as fast as Keras
at batch 1 and 8 (goal 2×), ``predict`` no slower per image at batch 8 than at batch 1, and the fastest ``predict``
that passes the accuracy check ≥ 2× Keras at batch 1 and 8. Written to ``<out>/keras.json`` and ``keras.md``.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import umsi

ROOT = Path(__file__).resolve().parent.parent
WORKER = ROOT / "scripts" / "keras_umsi.py"
DEFAULT_TF_PYTHON = ROOT / ".venv-tf" / "bin" / "python"
TARGET_RATIO, GOAL_RATIO = 1.0, 2.0
PREDICT, NETWORK, KERAS = "umsi.load(...).predict", "PyTorch network", "Keras/TF network"
# the predict contender and the network contender of each precision
PATHS = {
    "fp32": (PREDICT, NETWORK),
    "bf16": ("umsi.load(..., precision=bf16).predict", "PyTorch network bf16"),
    "int8": ("umsi.load(int8 .onnx).predict", "int8 network (ONNX Runtime)"),
}


class KerasWorker:
    """The TensorFlow process: ``forward(batch NHWC, repeats)`` → (seconds per call, maps, probabilities)."""

    def __init__(self, python: Path, h5: Path, threads: int, input_size: tuple[int, int], log: Path) -> None:
        import numpy as np

        self._np = np
        self._log = open(log, "wb")  # noqa: SIM115 (open for the worker's lifetime)
        command = [str(python), str(WORKER), "--serve", "--h5", str(h5), "--threads", str(threads)]
        command += ["--input-size", *map(str, input_size)]
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log)
        line = self.process.stdout.readline()
        if not line:
            self.close()
            raise RuntimeError(f"the TensorFlow worker did not start; its log: {log}")
        self.info = json.loads(line)

    def forward(self, batch, repeats: int):
        """→ ([(wall s, CPU s) per call], maps (B, 2H, 2W), probabilities (B, K))."""
        np = self._np
        buffer = io.BytesIO()
        np.save(buffer, batch, allow_pickle=False)
        payload = buffer.getvalue()
        request = {"cmd": "forward", "repeats": repeats, "nbytes": len(payload)}
        self.process.stdin.write((json.dumps(request) + "\n").encode() + payload)
        self.process.stdin.flush()
        header = json.loads(self.process.stdout.readline())
        maps, probabilities = (np.load(io.BytesIO(self.process.stdout.read(n))) for n in header["nbytes"])
        return list(zip(header["seconds"], header["cpu_seconds"], strict=True)), maps, probabilities

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                self.process.stdin.write(b'{"cmd": "quit"}\n')
                self.process.stdin.flush()
                self.process.wait(timeout=30)
            except (BrokenPipeError, subprocess.TimeoutExpired):
                self.process.kill()
        self._log.close()


def _synthetic_h5(folder: Path) -> Path:
    sys.path.insert(0, str(ROOT / "tests"))
    from keras_h5 import write_keras_h5

    path = folder / "umsi_synthetic_full.h5"
    write_keras_h5(path, seed=0)
    return path


def _images(n: int, size: tuple[int, int]):
    """n smooth random RGB uint8 images of (H, W) = size (the input size: letterboxing is a plain resize)."""
    import cv2
    import numpy as np

    rng = np.random.default_rng(0)
    noise = rng.uniform(0, 255, (n, size[0] // 8, size[1] // 8, 3)).astype(np.float32)
    smooth = [cv2.resize(img, (size[1], size[0]), interpolation=cv2.INTER_CUBIC) for img in noise]
    return [img.clip(0, 255).astype(np.uint8) for img in smooth]


def run(args: argparse.Namespace) -> dict:
    import torch

    from umsi.inference.predictor import as_bgr
    from umsi.official import convert

    torch.set_num_threads(args.threads)
    size = tuple(args.input_size)
    results: dict = {"threads": args.threads, "input_size": list(size), "batches": {}}
    with tempfile.TemporaryDirectory(prefix="umsi-bench-keras-") as tmp:
        h5 = args.h5 or _synthetic_h5(Path(tmp))
        ckpt = args.ckpt
        if ckpt is None:
            ckpt = Path(tmp) / "umsi_official.ckpt"
            convert(h5, ckpt)
        predictors, results["accuracy"] = _low_precision(ckpt, Path(tmp), args)
        worker = KerasWorker(args.tf_python, h5, args.threads, size, Path(args.out) / "keras_worker.log")
        try:
            results["machine"] = {
                "date": datetime.now().isoformat(timespec="seconds"),
                "cpu_count": os.cpu_count(),
                "load_average": list(os.getloadavg()),
                "torch": torch.__version__,
                "weights": str(h5) if args.h5 else "synthetic .h5 in the released layout (random weights)",
                "umsi_weights": str(args.ckpt) if args.ckpt else "the .h5's, converted",
                **{f"tf_{k}": v for k, v in worker.info.items()},
            }
            images = _images(max(args.batches), size)
            for batch_size in args.batches:
                results["batches"][str(batch_size)] = _compare(predictors, worker, images[:batch_size], args, as_bgr)
        finally:
            worker.close()
    results["machine"]["load_average_after"] = list(os.getloadavg())
    results["targets"] = _targets(results)
    return results


def _low_precision(ckpt: Path, tmp: Path, args: argparse.Namespace) -> tuple[dict, dict]:
    """The fp32, bf16 and int8 predictors of ``ckpt`` and the accuracy reports of bf16 and int8 against fp32.

    int8 is made by ``umsi-export quantize=int8`` itself (its report is the one stored in the file), with the
    thresholds opened so that a failing model is still timed; ``passed`` is then judged at the default
    thresholds, as for bf16, on the same held-out images."""
    from hydra import compose, initialize_config_dir

    from umsi.checkpoints.exported import load_exported
    from umsi.inference.export import export_from_config
    from umsi.inference.quantize import AccuracyThresholds, accuracy_report, load_images, passes, split_images
    from umsi.paths import CONFIG_DIR

    folder = args.calibration_images
    if folder is None:
        from umsi.data.synthetic import generate

        per_class = -(-(args.n + args.n_check) // 5)  # five design classes
        sizes = dict(salicon_train=1, salicon_val=1, gdi_train=1, gdi_val=1, imp1k_val_per_class=0)
        root = generate(tmp / "synthetic", seed=0, imp1k_per_class=per_class, progress=False, **sizes)
        folder = root / "imp1k" / "imgs"  # the design images (not their importance maps)
    int8 = tmp / "umsi_int8.onnx"
    size = [int(v) for v in args.input_size]
    overrides = [f"ckpt={ckpt}", f"output={int8}", "quantize=int8", f"calibration_images={folder}"]
    overrides += [f"n={args.n}", f"n_check={args.n_check}", "min_cc=-1", "max_kl=1e30", "min_class_agreement=0"]
    overrides += [f"input_size=[{size[0]},{size[1]}]"]  # the bench's size, whatever size the model was trained at
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        export_from_config(compose("export", overrides))
    predictors = {
        "fp32": umsi.load(ckpt),
        "bf16": umsi.load(ckpt, precision="bf16"),
        "int8": umsi.load(int8),
    }
    for predictor in (predictors["fp32"], predictors["bf16"]):
        # a model trained at another size (make train's demo: 48×64) predicts at the bench's: the network is fully
        # convolutional, and the int8 file above is exported at that size
        predictor.input_size = (size[0], size[1])
    thresholds = AccuracyThresholds()
    int8_report = load_exported(int8).metadata["quantization"]["accuracy_check"]
    _, check = split_images(folder, args.n, None, args.n_check)
    images = load_images(check, predictors["fp32"].input_size, predictors["fp32"].preprocessing)
    names = [str(f.relative_to(folder)) for f in check]
    bf16_report = accuracy_report(predictors["fp32"].forward(images), predictors["bf16"].forward(images), names)
    accuracy = {"int8": {**int8_report, "passed": passes(int8_report, thresholds)}, "bf16": bf16_report}
    for report in accuracy.values():
        report["thresholds"] = dataclasses.asdict(thresholds)
    accuracy["calibration"] = {"folder": str(folder), "n": args.n, "n_check": len(check)}
    return predictors, accuracy


def _compare(predictors: dict, worker: KerasWorker, images: list, args: argparse.Namespace, as_bgr) -> dict:
    """Time the contenders on one batch, alternating; check that the outputs agree."""
    import numpy as np
    import torch

    predictor = predictors["fp32"]
    batch = torch.stack([predictor.preprocess(as_bgr(image)) for image in images])
    nhwc = np.ascontiguousarray(batch.permute(0, 2, 3, 1).numpy())
    n = len(images)

    def timed(call) -> tuple[float, float]:
        start, cpu_start = time.perf_counter(), time.process_time()
        call()
        return time.perf_counter() - start, time.process_time() - cpu_start

    def predict(p) -> tuple[float, float]:
        return timed(lambda: p.predict(images, batch_size=n))

    def forward(p) -> tuple[float, float]:
        return timed(lambda: p.forward(batch))

    contenders = {KERAS: lambda: worker.forward(nhwc, args.repeats)[0]}
    for key, (predict_name, network_name) in PATHS.items():
        p = predictors[key]
        contenders[predict_name] = lambda p=p: [predict(p) for _ in range(args.repeats)]
        contenders[network_name] = lambda p=p: [forward(p) for _ in range(args.repeats)]
    # warm-up (first calls: allocations, TF graph tracing) and the agreement checks
    outputs = {key: p.forward(batch) for key, p in predictors.items()}
    torch_maps, torch_probabilities = outputs["fp32"]
    _, keras_maps, keras_probabilities = worker.forward(nhwc, 1)
    for p in predictors.values():
        predict(p)
    timings: dict[str, list[tuple[float, float]]] = {name: [] for name in contenders}
    names = list(contenders)
    for round_index in range(args.rounds):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            timings[name] += contenders[name]()
    per_image = {name: statistics.median(wall for wall, _ in values) / n for name, values in timings.items()}
    keras_range = float(keras_maps.max() - keras_maps.min())
    fp32_range = float(torch_maps.max() - torch_maps.min())
    same_weights = args.ckpt is None
    return {
        "seconds_per_image": per_image,
        "min_seconds_per_image": {name: min(wall for wall, _ in values) / n for name, values in timings.items()},
        "cpu_seconds_per_image": {
            name: statistics.median(cpu for _, cpu in values) / n for name, values in timings.items()
        },
        "calls": {name: len(values) for name, values in timings.items()},
        "ratio_keras_over_predict": per_image[KERAS] / per_image[PREDICT],
        "ratio_keras_over_network": per_image[KERAS] / per_image[NETWORK],
        "ratios_keras_over": {
            key: {"predict": per_image[KERAS] / per_image[a], "network": per_image[KERAS] / per_image[b]}
            for key, (a, b) in PATHS.items()
        },
        "map_max_abs_diff_over_range": (
            float(np.abs(torch_maps.numpy() - keras_maps).max()) / max(keras_range, 1e-30) if same_weights else None
        ),
        "map_range": keras_range,
        "probability_max_abs_diff": (
            float(np.abs(torch_probabilities.numpy() - keras_probabilities).max()) if same_weights else None
        ),
        "low_precision_map_max_abs_diff_over_range": {
            key: float((maps - torch_maps).abs().max()) / max(fp32_range, 1e-30)
            for key, (maps, _) in outputs.items()
            if key != "fp32"
        },
    }


def _targets(results: dict) -> list[dict]:
    b = results["batches"]
    rows = []
    for key, per in b.items():
        ratio = per["ratio_keras_over_predict"]
        rows.append(
            {
                "target": f"predict at batch {key} at least as fast as Keras (goal {GOAL_RATIO:.0f}×)",
                "measured": round(ratio, 2),
                "met": ratio >= TARGET_RATIO,
                "goal_met": ratio >= GOAL_RATIO,
            }
        )
    accuracy = results.get("accuracy")
    for key, per in b.items() if accuracy else ():
        passing = [k for k in PATHS if k == "fp32" or accuracy[k]["passed"]]
        best = max(passing, key=lambda k: per["ratios_keras_over"][k]["predict"])
        ratio = per["ratios_keras_over"][best]["predict"]
        rows.append(
            {
                "target": f"fastest predict passing the accuracy check ≥ {GOAL_RATIO:.0f}× Keras at batch {key}",
                "measured": f"{ratio:.2f}× ({best})",
                "met": ratio >= GOAL_RATIO,
            }
        )
    if "1" in b and "8" in b:
        one = b["1"]["seconds_per_image"]["umsi.load(...).predict"]
        eight = b["8"]["seconds_per_image"]["umsi.load(...).predict"]
        rows.append(
            {
                "target": "predict per image at batch 8 ≤ at batch 1",
                "measured": f"{eight:.3f} s vs {one:.3f} s",
                "met": eight <= one,
            }
        )
    return rows


def markdown(results: dict) -> str:
    m = results["machine"]
    lines = [
        f"# PyTorch vs Keras/TF on the CPU — {m['date']}",
        "",
        f"{m['cpu_count']} CPU cores, {results['threads']} threads each; torch {m['torch']}, TensorFlow "
        f"{m['tf_tensorflow']} (Keras {m['tf_keras']}, oneDNN {m['tf_onednn_opts']}, intra-op "
        f"{m['tf_intra_op_threads']}, inter-op {m['tf_inter_op_threads']}). Input "
        f"{results['input_size'][0]}×{results['input_size'][1]}; Keras weights: {m['weights']}; umsi weights: "
        f"{m['umsi_weights']}. Load average "
        f"before {m['load_average'][0]:.2f}, after {m['load_average_after'][0]:.2f}.",
        "",
        "| batch | contender | s per image (median) | best | CPU s per image | calls |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for key, per in results["batches"].items():
        for name, value in per["seconds_per_image"].items():
            best, cpu = per["min_seconds_per_image"][name], per["cpu_seconds_per_image"][name]
            lines.append(f"| {key} | {name} | {value:.3f} | {best:.3f} | {cpu:.3f} | {per['calls'][name]} |")
    lines += ["", "| batch | Keras / predict | Keras / network | map diff / range | probability diff |"]
    lines += ["| --- | --- | --- | --- | --- |"]
    for key, per in results["batches"].items():
        lines.append(
            f"| {key} | {per['ratio_keras_over_predict']:.2f}× | {per['ratio_keras_over_network']:.2f}× | "
            f"{_number(per['map_max_abs_diff_over_range'])} | {_number(per['probability_max_abs_diff'])} |"
        )
    accuracy = results.get("accuracy")
    if accuracy:
        lines += ["", "| batch | path | Keras / predict | Keras / network | map diff / fp32 range |"]
        lines += ["| --- | --- | --- | --- | --- |"]
        for key, per in results["batches"].items():
            for path, ratios in per["ratios_keras_over"].items():
                diff = per["low_precision_map_max_abs_diff_over_range"].get(path)
                lines.append(
                    f"| {key} | {path} | {ratios['predict']:.2f}× | {ratios['network']:.2f}× | {_number(diff)} |"
                )
        calibration = accuracy["calibration"]
        lines += [
            "",
            f"Accuracy against fp32 on {calibration['n_check']} held-out images of {calibration['folder']} (int8 "
            f"calibrated on {calibration['n']} others):",
            "",
            "| path | map CC worst (image) | CC mean | KL worst (image) | KL mean | class agreement | passed |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for path in ("bf16", "int8"):
            r = accuracy[path]
            lines.append(
                f"| {path} | {r['cc']['worst']:.4f} ({r['cc']['worst_image']}) | {r['cc']['mean']:.4f} | "
                f"{r['kl']['worst']:.4f} ({r['kl']['worst_image']}) | {r['kl']['mean']:.4f} | "
                f"{r['class_agreement']:.1%} | {'yes' if r['passed'] else '**no**'} |"
            )
    lines += ["", "| target | measured | met |", "| --- | --- | --- |"]
    for row in results["targets"]:
        met = "yes" if row["met"] else "**no**"
        if row.get("goal_met"):
            met += " (goal met)"
        lines.append(f"| {row['target']} | {row['measured']} | {met} |")
    return "\n".join(lines) + "\n"


def _number(value: float | None) -> str:
    return "—" if value is None else f"{value:.1e}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tf-python", type=Path, default=DEFAULT_TF_PYTHON, help="the TensorFlow venv's python")
    parser.add_argument("--h5", type=Path, default=None, help="the released .h5 (default: a synthetic one)")
    parser.add_argument(
        "--ckpt", type=Path, default=None, help="a trained umsi checkpoint to time instead of the .h5's weights"
    )
    parser.add_argument(
        "--calibration-images", type=Path, default=None, help="int8 calibration / check images (default: synthetic)"
    )
    parser.add_argument("--n", type=int, default=100, help="int8 calibration images")
    parser.add_argument("--n-check", type=int, default=50, help="held-out images of the accuracy check")
    parser.add_argument("--threads", type=int, default=None, help="threads for both (default: torch's default)")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--rounds", type=int, default=3, help="alternation rounds")
    parser.add_argument("--repeats", type=int, default=2, help="timed calls per contender and round")
    parser.add_argument("--input-size", type=int, nargs=2, default=(240, 320), metavar=("H", "W"))
    parser.add_argument("--out", type=Path, default=Path("outputs") / "bench" / datetime.now().strftime("%Y-%m-%d"))
    args = parser.parse_args(argv)
    if not args.tf_python.exists():
        print(
            f"bench-keras: skipped: no TensorFlow venv ({args.tf_python} is missing). "
            "Create it with `make tf-venv` (scripts/make_tf_venv.sh), then run `make bench-keras`."
        )
        return 0
    import torch

    args.threads = args.threads or torch.get_num_threads()
    args.out.mkdir(parents=True, exist_ok=True)
    results = run(args)
    report = markdown(results)
    from umsi.utils.io import atomic_write, write_json

    write_json(args.out / "keras.json", results)
    atomic_write(args.out / "keras.md", lambda tmp: tmp.write_text(report))
    print(report)
    print(f"wrote {args.out / 'keras.json'} and {args.out / 'keras.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

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
  images of the input size;
* the PyTorch network alone: ``Predictor.forward`` on the preprocessed batch;
* the Keras/TF network alone (``tf.function``) on the same batch, NHWC.

Reported: wall seconds per image (median of every timed call; the best too), CPU seconds of the process per image
(what each side used; on a loaded machine the wall time also depends on how its threads wait for each other), the
Keras/PyTorch ratio of the wall times (> 1: PyTorch faster) and the largest difference of the maps (relative to the
Keras map's range) and of the class probabilities. Targets (performance issue): PyTorch at least as fast as Keras
at batch 1 and 8 (goal 2×), and ``predict`` no slower per image at batch 8 than at batch 1. Written to
``<out>/keras.json`` and ``keras.md``.
"""

from __future__ import annotations

import argparse
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
        ckpt = Path(tmp) / "umsi_official.ckpt"
        convert(h5, ckpt)
        predictor = umsi.load(ckpt)
        worker = KerasWorker(args.tf_python, h5, args.threads, size, Path(args.out) / "keras_worker.log")
        try:
            results["machine"] = {
                "date": datetime.now().isoformat(timespec="seconds"),
                "cpu_count": os.cpu_count(),
                "load_average": list(os.getloadavg()),
                "torch": torch.__version__,
                "weights": str(h5) if args.h5 else "synthetic .h5 in the released layout (random weights)",
                **{f"tf_{k}": v for k, v in worker.info.items()},
            }
            images = _images(max(args.batches), size)
            for batch_size in args.batches:
                results["batches"][str(batch_size)] = _compare(predictor, worker, images[:batch_size], args, as_bgr)
        finally:
            worker.close()
    results["machine"]["load_average_after"] = list(os.getloadavg())
    results["targets"] = _targets(results)
    return results


def _compare(predictor, worker: KerasWorker, images: list, args: argparse.Namespace, as_bgr) -> dict:
    """Time the three contenders on one batch, alternating; check that the outputs agree."""
    import numpy as np
    import torch

    batch = torch.stack([predictor.preprocess(as_bgr(image)) for image in images])
    nhwc = np.ascontiguousarray(batch.permute(0, 2, 3, 1).numpy())
    n = len(images)

    def timed(call) -> tuple[float, float]:
        start, cpu_start = time.perf_counter(), time.process_time()
        call()
        return time.perf_counter() - start, time.process_time() - cpu_start

    def predict() -> tuple[float, float]:
        return timed(lambda: predictor.predict(images, batch_size=n))

    def forward() -> tuple[float, float]:
        return timed(lambda: predictor.forward(batch))

    contenders = {
        "umsi.load(...).predict": lambda: [predict() for _ in range(args.repeats)],
        "PyTorch network": lambda: [forward() for _ in range(args.repeats)],
        "Keras/TF network": lambda: worker.forward(nhwc, args.repeats)[0],
    }
    # warm-up (first calls: allocations, TF graph tracing) and the agreement check
    torch_maps, torch_probabilities = predictor.forward(batch)
    _, keras_maps, keras_probabilities = worker.forward(nhwc, 1)
    predict()
    timings: dict[str, list[tuple[float, float]]] = {name: [] for name in contenders}
    names = list(contenders)
    for round_index in range(args.rounds):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            timings[name] += contenders[name]()
    per_image = {name: statistics.median(wall for wall, _ in values) / n for name, values in timings.items()}
    keras_range = float(keras_maps.max() - keras_maps.min())
    return {
        "seconds_per_image": per_image,
        "min_seconds_per_image": {name: min(wall for wall, _ in values) / n for name, values in timings.items()},
        "cpu_seconds_per_image": {
            name: statistics.median(cpu for _, cpu in values) / n for name, values in timings.items()
        },
        "calls": {name: len(values) for name, values in timings.items()},
        "ratio_keras_over_predict": per_image["Keras/TF network"] / per_image["umsi.load(...).predict"],
        "ratio_keras_over_network": per_image["Keras/TF network"] / per_image["PyTorch network"],
        "map_max_abs_diff_over_range": float(np.abs(torch_maps.numpy() - keras_maps).max()) / max(keras_range, 1e-30),
        "map_range": keras_range,
        "probability_max_abs_diff": float(np.abs(torch_probabilities.numpy() - keras_probabilities).max()),
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
        f"{results['input_size'][0]}×{results['input_size'][1]}; weights: {m['weights']}. Load average "
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
            f"{per['map_max_abs_diff_over_range']:.1e} | {per['probability_max_abs_diff']:.1e} |"
        )
    lines += ["", "| target | measured | met |", "| --- | --- | --- |"]
    for row in results["targets"]:
        met = "yes" if row["met"] else "**no**"
        if row.get("goal_met"):
            met += " (goal met)"
        lines.append(f"| {row['target']} | {row['measured']} | {met} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tf-python", type=Path, default=DEFAULT_TF_PYTHON, help="the TensorFlow venv's python")
    parser.add_argument("--h5", type=Path, default=None, help="the released .h5 (default: a synthetic one)")
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

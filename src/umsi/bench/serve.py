"""``make bench``'s serve part: ``umsi-serve`` on the CPU against the in-process ``Predictor.predict`` of the same
image and checkpoint, in one run.

The model is a seeded random ``UMSI()`` (the released architecture; speed does not depend on the weights) at the
bench's input size; the image a JPEG of ``image_size``. The in-process calls and the 1-client requests alternate,
so both see the same machine load. Then 8 clients (threads, each sending its requests one after another) load
the server at once. Latency is the wall time of one ``POST /predict`` (multipart upload → JSON with the heatmap
PNG), requests per second the number answered over the wall time of the whole burst.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from umsi.models.card import DEFAULT_INPUT_SIZE

TARGET_RATIO = 1.2  # served p50 at 1 client / in-process Predictor.predict p50 (issue: umsi-serve)


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def _summary(seconds: list[float], wall: float) -> dict[str, Any]:
    return {
        "requests": len(seconds),
        "requests_per_second": len(seconds) / wall,
        "p50_ms": 1000 * statistics.median(seconds),
        "p95_ms": 1000 * _percentile(seconds, 95),
    }


def _write_inputs(folder: Path, input_size: tuple[int, int], image_size: tuple[int, int]) -> tuple[Path, Path]:
    from umsi.checkpoints.loading import save_model
    from umsi.models import UMSI

    torch.manual_seed(0)
    checkpoint = folder / "bench_umsi.ckpt"
    save_model(checkpoint, UMSI(), input_size, display_name="UMSI (random weights, bench)")
    height, width = image_size
    yy, xx = np.mgrid[0:height, 0:width]
    image = np.stack([xx * 255 // width, yy * 255 // height, (xx + yy) * 127 // (width + height)], -1).astype(np.uint8)
    cv2.circle(image, (width // 3, height // 2), min(height, width) // 5, (40, 200, 250), -1)
    cv2.putText(image, "umsi bench", (width // 2, height // 3), cv2.FONT_HERSHEY_DUPLEX, 1.2, (255, 255, 255), 2)
    path = folder / "bench_image.jpg"
    cv2.imwrite(str(path), image, [cv2.IMWRITE_JPEG_QUALITY, 90])
    return checkpoint, path


def bench_serve(
    input_size: tuple[int, int] = DEFAULT_INPUT_SIZE,
    image_size: tuple[int, int] = (480, 640),
    repeats: int = 10,
    clients: int = 8,
    requests_per_client: int = 2,
) -> dict[str, Any]:
    """Served latency / throughput at 1 and ``clients`` concurrent clients and the in-process p50, on the CPU."""
    import requests

    from umsi.inference.predictor import load
    from umsi.serving.process import start_server, stop_server

    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="umsi-bench-serve-") as tmp:
        checkpoint, image = _write_inputs(Path(tmp), input_size, image_size)
        data = image.read_bytes()
        predictor = load(checkpoint, device="cpu")
        server = start_server(
            [f"ckpt={checkpoint}", "device=cpu", "timeout=-1", "log_level=warning"], Path(tmp) / "umsi-serve.log"
        )
        try:
            url = server.url + "/predict"

            def request() -> float:
                began = time.perf_counter()
                response = requests.post(url, files={"image": (image.name, data, "image/jpeg")}, timeout=600)
                response.raise_for_status()
                response.json()
                return time.perf_counter() - began

            request(), predictor.predict(image)  # warm-up: first calls allocate
            in_process, served = [], []
            for _ in range(repeats):  # alternate, so that both see the same load
                began = time.perf_counter()
                predictor.predict(image)
                in_process.append(time.perf_counter() - began)
                served.append(request())
            single_wall = sum(served)
            with ThreadPoolExecutor(max_workers=clients) as pool:
                began = time.perf_counter()
                burst = list(pool.map(lambda _: [request() for _ in range(requests_per_client)], range(clients)))
                burst_wall = time.perf_counter() - began
        finally:
            code = stop_server(server)
    in_p50 = 1000 * statistics.median(in_process)
    one = _summary(served, single_wall)
    return {
        "model": "UMSI() random weights (released architecture)",
        "input_size": list(input_size),
        "image_size": list(image_size),
        "torch_threads": torch.get_num_threads(),
        "in_process": {"calls": len(in_process), "p50_ms": in_p50, "p95_ms": 1000 * _percentile(in_process, 95)},
        "clients": {"1": one, str(clients): _summary([s for c in burst for s in c], burst_wall)},
        "ratio_p50_1_client": one["p50_ms"] / in_p50,
        "server_exit_code": code,
        "seconds": time.perf_counter() - start,
    }


def serve_target(result: dict[str, Any] | None) -> dict[str, Any]:
    """The issue's target as a row of ``bench.md``'s target table."""
    ratio = None if result is None else result["ratio_p50_1_client"]
    return {
        "target": f"umsi-serve p50 at 1 client ≤ {TARGET_RATIO}× in-process Predictor.predict (CPU)",
        "measured": None if ratio is None else round(ratio, 3),
        "met": None if ratio is None else ratio <= TARGET_RATIO,
    }


def serve_markdown(result: dict[str, Any]) -> list[str]:
    """``bench.md``'s serving section."""
    h, w = result["image_size"]
    lines = [
        "",
        f"## Serving on the CPU (umsi-serve, {h}×{w} JPEG → {result['input_size'][0]}×{result['input_size'][1]} "
        f"input, {result['torch_threads']} torch threads)",
        "",
        "| clients | requests | requests/s | p50 ms | p95 ms |",
        "| --- | --- | --- | --- | --- |",
    ]
    for clients, row in result["clients"].items():
        lines.append(
            f"| {clients} | {row['requests']} | {row['requests_per_second']:.2f} | {row['p50_ms']:.0f} | "
            f"{row['p95_ms']:.0f} |"
        )
    inner = result["in_process"]
    lines += [
        "",
        f"In-process `Predictor.predict` of the same image: p50 {inner['p50_ms']:.0f} ms ({inner['calls']} calls, "
        f"alternating with the 1-client requests). Served / in-process p50: **{result['ratio_p50_1_client']:.3f}** "
        f"(target ≤ {TARGET_RATIO}).",
    ]
    return lines


def serve_sizes(quick: bool) -> dict[str, Any]:
    """``bench_serve`` arguments: the bench's CPU inference size, or tiny ones with ``--quick``."""
    if quick:
        return dict(input_size=(48, 64), image_size=(96, 128), repeats=2, clients=8, requests_per_client=1)
    return dict(input_size=DEFAULT_INPUT_SIZE, image_size=(480, 640), repeats=10, clients=8, requests_per_client=2)

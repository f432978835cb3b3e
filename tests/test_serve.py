"""umsi-serve: the real server in a child process on 127.0.0.1, spoken to over HTTP.

One server (a seeded random UMSI at a 64×80 input) serves the whole module, in file order: /health, every answer
against umsi-predict's files for the same images, every bad input, 32 concurrent mixed requests, the page in
headless Chromium, and last SIGTERM. Bad inputs and config mistakes are also checked without a server.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import requests
import torch
from hydra import compose, initialize_config_dir
from PIL import Image

from umsi.checkpoints.loading import save_model
from umsi.inference.predict import run_predict
from umsi.models import UMSI
from umsi.paths import CONFIG_DIR
from umsi.serving.process import ServerProcess, descendants, get_json, peak_rss_mb, start_server, stop_server
from umsi.serving.uploads import UploadError, answer_kind, check_image, clean_name, image_from_json, media_type

CLASSES = ["advertisements", "infographics", "mobile_uis", "movie_posters", "webpages", "natural_images"]
MAX_UPLOAD_MB = 1
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
SCREENSHOT_ENV = "UMSI_SERVE_SCREENSHOT"  # also copy the browser test's screenshot here (docs/serve_page.png)


def _rgb(height: int, width: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def design_picture(height: int = 360, width: int = 480) -> np.ndarray:
    """A poster-like RGB test picture: a title, a photo block, body text lines and a button (drawn at 360×480)."""
    canvas = np.full((360, 480, 3), 246, np.uint8)
    cv2.rectangle(canvas, (0, 0), (480, 64), (32, 58, 120), -1)
    cv2.putText(canvas, "SUMMER SALE", (24, 46), cv2.FONT_HERSHEY_DUPLEX, 1.3, (255, 255, 255), 2, cv2.LINE_AA)
    yy, xx = np.mgrid[0:170, 0:200]
    canvas[90:260, 24:224] = np.stack([120 + xx // 3, 170 - yy // 2, 90 + (xx + yy) // 6], -1).astype(np.uint8)
    cv2.circle(canvas, (124, 160), 40, (250, 210, 60), -1)
    for i, words in enumerate(["New arrivals every week", "Free delivery over $50", "Members save 20% more"]):
        cv2.putText(canvas, words, (244, 120 + 34 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (40, 40, 40), 1, cv2.LINE_AA)
    cv2.rectangle(canvas, (244, 226), (420, 266), (232, 89, 12), -1)
    cv2.putText(canvas, "SHOP NOW", (282, 254), cv2.FONT_HERSHEY_DUPLEX, 0.7, (255, 255, 255), 1, cv2.LINE_AA)
    cv2.putText(canvas, "umsi-serve test picture", (24, 330), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (120, 120, 120), 1)
    return (
        canvas if (height, width) == (360, 480) else cv2.resize(canvas, (width, height), interpolation=cv2.INTER_AREA)
    )


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A umsi checkpoint of a seeded random UMSI() at a 64×80 input (what load_model reads)."""
    folder = tmp_path_factory.mktemp("serve_ckpt")
    torch.manual_seed(0)
    path = folder / "tiny.ckpt"
    save_model(path, UMSI(), (64, 80), CLASSES)
    yield path
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Odd sizes, extreme aspect ratios, EXIF rotation and every awkward file kind umsi-predict reads."""
    folder = tmp_path_factory.mktemp("serve_images")
    Image.fromarray(design_picture()).save(folder / "poster.png")
    Image.fromarray(_rgb(37, 53, 1)).save(folder / "odd.png")
    Image.fromarray(_rgb(6, 400, 2)).save(folder / "wide.jpg", quality=90)
    Image.fromarray(_rgb(401, 7, 3)).save(folder / "tall.png")
    Image.fromarray(_rgb(1, 1, 4)).save(folder / "pixel.png")
    rotated = Image.fromarray(design_picture(120, 160))
    exif = rotated.getexif()
    exif[0x0112] = 6  # rotate 90° clockwise: OpenCV applies it, so the heatmap is 160×120
    rotated.save(folder / "rotated.jpg", exif=exif, quality=92)
    rgb = _rgb(30, 45, 9)
    Image.fromarray(rgb[..., 0]).save(folder / "gray.png")
    Image.fromarray(np.dstack([rgb, np.full((30, 45), 128, np.uint8)])).save(folder / "rgba.png")
    cv2.imwrite(str(folder / "deep16.png"), rgb.astype(np.uint16) * 257)
    Image.fromarray(rgb).convert("CMYK").save(folder / "cmyk.jpg")
    Image.fromarray(rgb).save(folder / "anim.gif")
    Image.fromarray(rgb).save(folder / "photo.webp")
    return folder


@dataclass
class Reference:
    """What umsi-predict wrote for one image."""

    heatmap: bytes
    overlay: bytes
    row: dict[str, Any]


@pytest.fixture(scope="module")
def reference(checkpoint: Path, images: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Reference]:
    """umsi-predict (run_predict, what the command runs) on every image, keyed by file name."""
    out = tmp_path_factory.mktemp("serve_reference")
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose("predict", [f"ckpt={checkpoint}", f"input={images}", "progress=false", "num_workers=0"])
    assert run_predict(cfg, out) == 0
    rows = json.loads((out / "predictions.json").read_text())["predictions"]
    return {
        Path(row["file"]).name: Reference((out / row["heatmap"]).read_bytes(), (out / row["overlay"]).read_bytes(), row)
        for row in rows
    }


@pytest.fixture(scope="module")
def server(checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    log = tmp_path_factory.mktemp("serve_log") / "umsi-serve.log"
    overrides = [f"ckpt={checkpoint}", f"max_upload_mb={MAX_UPLOAD_MB}", "max_megapixels=50", "timeout=900"]
    running = start_server(overrides, log)  # a queue wait of 900 s: a loaded 2-core CPU must not answer 504
    yield running
    stop_server(running)


def _post(server: ServerProcess, query: str = "", **kwargs: Any) -> requests.Response:
    return requests.post(f"{server.url}/predict{query}", timeout=300, **kwargs)


def _upload(path: Path) -> dict[str, Any]:
    return {"files": {"image": (path.name, path.read_bytes())}}


def _assert_matches(answer: dict[str, Any], ref: Reference) -> None:
    assert base64.b64decode(answer["heatmap_png"]) == ref.heatmap  # the same PNG file, byte for byte
    assert answer["class"] == ref.row["class"]
    assert answer["input_size"] == {"height": ref.row["height"], "width": ref.row["width"]}
    assert list(answer["probabilities"]) == CLASSES
    for name, p in answer["probabilities"].items():
        assert abs(p - ref.row[f"p_{name}"]) <= 1e-6, name  # the CSV/JSON keep 6 decimals


# ----------------------------------------------------------------------------------------------------------------
# without a server: the upload checks and config mistakes


def test_upload_checks_name_what_was_wrong() -> None:
    assert media_type("multipart/form-data; boundary=x") == "multipart/form-data"
    assert media_type("Application/JSON") == "application/json"
    assert answer_kind({}) == "json" and answer_kind({"format": "png"}) == "png"
    assert answer_kind({"overlay": "true"}) == "overlay" and answer_kind({"overlay": "0"}) == "json"
    cases = [
        (lambda: media_type("text/plain"), 415, "Content-Type 'text/plain' is not accepted"),
        (lambda: media_type(None), 415, "no Content-Type"),
        (lambda: answer_kind({"formt": "png"}), 400, "unknown query parameter 'formt'"),
        (lambda: answer_kind({"format": "gif"}), 400, "format=gif"),
        (lambda: answer_kind({"overlay": "maybe"}), 400, "overlay=maybe"),
        (lambda: answer_kind({"format": "png", "overlay": "true"}), 400, "ask for one"),
        (lambda: image_from_json(b"{nope"), 400, "does not parse"),
        (lambda: image_from_json(b'{"img": "x"}'), 400, "no 'image' string"),
        (lambda: image_from_json(b'{"image": "@@@"}'), 400, "not valid base64"),
        (lambda: check_image(b"", "a.png", 100), 400, "a.png is empty (0 bytes)"),
        (lambda: check_image(b"hello world", "a.png", 100), 415, "a.png is not an image"),
    ]
    for call, status, text in cases:
        with pytest.raises(UploadError, match=text.replace("(", r"\(").replace(")", r"\)")) as info:
            call()
        assert info.value.status == status and "\n" not in str(info.value)
    data, name = image_from_json(json.dumps({"image": "data:image/png;base64,aGk=", "name": "x.png"}).encode())
    assert (data, name) == (b"hi", "x.png")
    assert clean_name("C:\\shots\\evil\nname.png") == "evil_name.png" and clean_name("../../") == "upload"


def test_config_mistakes_end_with_one_line(tmp_path: Path) -> None:
    from omegaconf import OmegaConf

    from umsi.errors import ConfigError
    from umsi.serving.settings import check_serve_config

    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        defaults = compose("serve", ["paths.root_dir=."])
    check_serve_config(defaults)
    for override, text in {
        "host": ("example.org", "host=example.org: use 127.0.0.1"),
        "device": ("gpu", "device=gpu: use cpu, cuda, cuda:N or auto"),
        "max_megapixels": (-1, "max_megapixels=-1: must be a positive number"),
        "overlay_alpha": (1.5, "overlay_alpha=1.5: must be in [0, 1]"),
    }.items():
        cfg = OmegaConf.merge(defaults, {override: text[0]})
        with pytest.raises(ConfigError, match=re.escape(text[1])):
            check_serve_config(cfg)
    env = {**os.environ, "WANDB_MODE": "disabled"}
    for override, text in {  # the command itself: one line on stderr, exit code 2, before any model loads
        "port=80": "umsi-serve: config error: port=80: use a port from 1024 to 65535",
        f"ckpt={tmp_path / 'missing.ckpt'}": "umsi-serve: missing path: ckpt=",
    }.items():
        result = subprocess.run(
            [sys.executable, "-m", "umsi.cli.serve", override], capture_output=True, text=True, env=env, timeout=300
        )
        assert result.returncode == 2, (override, result.stderr[-2000:])
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith(text), (override, lines)


def test_a_bad_upload_in_a_dynamic_batch_leaves_the_others_alone(
    checkpoint: Path, images: Path, reference: dict[str, Reference]
) -> None:
    """LitServe fails a whole batch when one request raises; undecodable bytes are a value instead."""
    from umsi.serving.api import UMSIServeAPI

    api = UMSIServeAPI(str(checkpoint), max_batch_size=4)
    api.setup("cpu")
    names = ["poster.png", "broken", "odd.png", "rotated.jpg"]
    payloads = [
        {"data": (images / n).read_bytes() if n != "broken" else (images / "wide.jpg").read_bytes()[:300]}
        | {"name": n, "format": "JPEG" if n == "broken" else "image", "answer": "json"}
        for n in names
    ]
    responses = [api.encode_response(out) for out in api.predict([api.decode_request(p) for p in payloads])]
    assert [r.status_code for r in responses] == [200, 400, 200, 200]
    assert json.loads(responses[1].body)["detail"] == (
        "broken: the JPEG data does not decode (truncated or corrupt): send the complete file"
    )
    for name, response in zip(names, responses, strict=True):
        if name == "broken":
            continue
        answer, ref = json.loads(response.body), reference[name]
        served = cv2.imdecode(np.frombuffer(base64.b64decode(answer["heatmap_png"]), np.uint8), cv2.IMREAD_UNCHANGED)
        expected = cv2.imdecode(np.frombuffer(ref.heatmap, np.uint8), cv2.IMREAD_UNCHANGED)
        # a batch of 4 rounds differently from umsi-predict's batch of 1: at most one grey level, in few pixels
        assert served.shape == expected.shape and np.abs(served.astype(int) - expected).max() <= 1
        assert answer["class"] == ref.row["class"]


def test_one_failing_item_fails_alone_in_a_dynamic_batch(
    checkpoint: Path, images: Path, reference: dict[str, Reference], monkeypatch: pytest.MonkeyPatch
) -> None:
    """LitServe issue #340: an exception for one item used to make every answer of its batch a 500. Here one item
    fails in preprocessing, one in the batch's forward pass (which is then run image by image) and one in encoding;
    each gets its own answer, and the others of the batch are answered as umsi-predict answers them."""
    import umsi.serving.api as api_module
    from umsi.data.transforms import ImageShapeError
    from umsi.serving.api import UMSIServeAPI

    api = UMSIServeAPI(str(checkpoint), max_batch_size=4)
    api.setup("cpu")
    predictor = api.predictor
    marks = {"odd.png": 37, "tall.png": 401}  # each image's height marks it below
    preprocess, forward, overlay_jpeg = predictor.preprocess, predictor.forward, api_module.overlay_jpeg

    def failing_preprocess(image: np.ndarray) -> Any:
        if image.shape[0] == marks["odd.png"]:
            raise RuntimeError("preprocess broke")
        return preprocess(image)

    def failing_forward(batch: torch.Tensor) -> Any:
        if any(torch.equal(row, wide_input) for row in batch):  # the batch, then wide.jpg alone
            raise RuntimeError("forward broke")
        return forward(batch)

    def failing_overlay(image: np.ndarray, *args: Any) -> bytes:
        if image.shape[0] == marks["tall.png"]:
            raise ValueError("encode broke")
        return overlay_jpeg(image, *args)

    wide_input = preprocess(cv2.imread(str(images / "wide.jpg")))
    monkeypatch.setattr(predictor, "preprocess", failing_preprocess)
    monkeypatch.setattr(predictor, "forward", failing_forward)
    monkeypatch.setattr(api_module, "overlay_jpeg", failing_overlay)
    names = ["poster.png", "odd.png", "wide.jpg", "tall.png"]
    payloads = [
        {"data": (images / n).read_bytes(), "name": n, "format": "image", "answer": "overlay"}
        if n in ("poster.png", "tall.png")
        else {"data": (images / n).read_bytes(), "name": n, "format": "image", "answer": "json"}
        for n in names
    ]
    responses = [api.encode_response(out) for out in api.predict([api.decode_request(p) for p in payloads])]
    assert [r.status_code for r in responses] == [200, 500, 500, 500]
    details = [json.loads(r.body)["detail"] for r in responses[1:]]
    for name, detail, why in zip(names[1:], details, ("preprocess", "forward", "encode"), strict=True):
        assert detail.startswith(f"{name}: the server failed on this image (") and f"{why} broke" in detail, detail
        assert "other requests are not affected" in detail and "\n" not in detail
    assert responses[0].body == reference["poster.png"].overlay  # the batch's good image, byte for byte
    # a user error of one item (an ImageShapeError) keeps its own 4xx
    shape_error = api_module.rejection("x.png", ImageShapeError("x.png is 1×200000 pixels: …", 413))
    assert (shape_error.status, shape_error.message) == (413, "x.png is 1×200000 pixels: …")


def test_bench_serve_part_measures_server_and_in_process_in_one_run(tmp_path: Path) -> None:
    """make bench's serve part at its --quick sizes (numbers are never asserted, only that they exist)."""
    from umsi.bench.run import write_benchmarks

    report, out = write_benchmarks(tmp_path, device="cpu", quick=True, parts=["serve"])
    serve = json.loads((out / "bench.json").read_text())["serve"]
    assert serve["clients"]["1"]["requests"] == 2 and serve["clients"]["8"]["requests"] == 8
    for row in serve["clients"].values():
        assert row["requests_per_second"] > 0 and 0 < row["p50_ms"] <= row["p95_ms"]
    assert serve["in_process"]["p50_ms"] > 0 and serve["ratio_p50_1_client"] > 0 and serve["server_exit_code"] == 0
    assert "## Serving on the CPU" in report and "umsi-serve p50 at 1 client ≤ 1.2× in-process" in report
    strip = serve["extreme_aspect"]  # issue 23's section: a 1×40,000 PNG while another client's requests run
    assert strip["status"] == 200 and len(strip["others_ms"]) == 3 and strip["ratio_slowest_to_alone_p50"] > 0
    assert "A 1×40000 PNG" in report and "a 1×40,000 PNG in flight" in report


# ----------------------------------------------------------------------------------------------------------------
# the real server


def test_health_names_the_model_and_its_checkpoint(server: ServerProcess, checkpoint: Path) -> None:
    status, health = get_json(server.url + "/health")
    assert status == 200
    assert health["checkpoint_sha256"] == hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    assert health["model"] == "tiny" and health["class_names"] == CLASSES and health["device"] == "cpu"
    assert health["input_size"] == [64, 80] and health["max_batch_size"] == 1 and health["workers_ready"] == 1


def test_every_answer_equals_umsi_predict(server: ServerProcess, images: Path, reference: dict[str, Reference]) -> None:
    assert len(reference) == len(list(images.iterdir())) == 12
    for name, ref in reference.items():
        response = _post(server, **_upload(images / name))
        assert response.status_code == 200, (name, response.text)
        _assert_matches(response.json(), ref)
    for name in ("poster.png", "rotated.jpg", "anim.gif"):
        path, ref = images / name, reference[name]
        png = _post(server, "?format=png", **_upload(path))
        assert png.status_code == 200 and png.headers["content-type"] == "image/png"
        assert png.content == ref.heatmap, name
        assert png.headers["content-disposition"] == f'inline; filename="{path.stem}_heatmap.png"'
        overlay = _post(server, "?overlay=true", **_upload(path))
        assert overlay.status_code == 200 and overlay.headers["content-type"] == "image/jpeg"
        assert overlay.content == ref.overlay, name
    encoded = base64.b64encode((images / "rotated.jpg").read_bytes()).decode()
    for text in (encoded, f"data:image/jpeg;base64,{encoded}"):  # the JSON body: base64, or a browser's data URL
        response = _post(server, json={"image": text, "name": "rotated.jpg"})
        assert response.status_code == 200, response.text
        _assert_matches(response.json(), reference["rotated.jpg"])
        assert response.json()["file"] == "rotated.jpg"


def _png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def bad_requests(images: Path) -> dict[str, tuple[dict[str, Any], str, int, str]]:
    """name → (requests.post arguments, query, expected status, text the one-line detail contains)."""
    jpeg = (images / "wide.jpg").read_bytes()
    bomb = _png_bytes(Image.new("1", (20000, 20000)))  # 400 megapixels in ~50 kB
    big = _png_bytes(Image.new("1", (10000, 6000)))  # 60 megapixels: over max_megapixels=50, under Pillow's limit
    oversize = np.random.default_rng(0).integers(0, 256, int(1.5 * MAX_UPLOAD_MB * 2**20), dtype=np.uint8).tobytes()

    def chunked():  # no Content-Length: the limit is enforced while reading
        for start in range(0, len(oversize), 2**16):
            yield oversize[start : start + 2**16]

    multipart = {"Content-Type": "multipart/form-data; boundary=b"}
    return {
        "not an image": (
            {"files": {"image": ("notes.jpg", b"this is a text file, not a JPEG")}},
            "",
            415,
            "notes.jpg is not an image",
        ),
        "truncated JPEG": (
            {"files": {"image": ("cut.jpg", jpeg[: len(jpeg) // 2])}},
            "",
            400,
            "cut.jpg: the JPEG data does not decode",
        ),
        "0 bytes": ({"files": {"image": ("empty.png", b"")}}, "", 400, "empty.png is empty (0 bytes)"),
        "empty body": ({"data": b"", "headers": multipart}, "", 400, "the request body is empty"),
        "over max_upload_mb": ({"files": {"image": ("big.bin", oversize)}}, "", 413, "over 1 MB (max_upload_mb)"),
        "over max_upload_mb, chunked": (
            {"data": chunked(), "headers": multipart},
            "",
            413,
            "over 1 MB (max_upload_mb)",
        ),
        "20000×20000 decompression bomb": ({"files": {"image": ("bomb.png", bomb)}}, "", 413, "a decompression bomb?"),
        "over max_megapixels": ({"files": {"image": ("wall.png", big)}}, "", 413, "10000×6000 = 60,000,000 pixels"),
        "wrong content type": (
            {"data": jpeg, "headers": {"Content-Type": "image/jpeg"}},
            "",
            415,
            "Content-Type 'image/jpeg' is not accepted",
        ),
        "form-urlencoded": ({"data": {"image": "x"}}, "", 415, "Content-Type 'application/x-www-form-urlencoded'"),
        "multipart without a file": ({"data": {"image": "x"}, "files": {"note": (None, "hi")}}, "", 400, "has no file"),
        "broken multipart": (
            {"data": b"--b\r\nxx", "headers": {"Content-Type": "multipart/form-data"}},
            "",
            400,
            "the multipart body does not parse",
        ),
        "JSON that does not parse": (
            {"data": b"{nope", "headers": {"Content-Type": "application/json"}},
            "",
            400,
            "does not parse",
        ),
        "JSON without an image": ({"json": {"picture": "x"}}, "", 400, "no 'image' string"),
        "JSON with bad base64": ({"json": {"image": "%%%"}}, "", 400, "not valid base64"),
        "unknown query parameter": (
            {"files": {"image": ("a.jpg", jpeg)}},
            "?formt=png",
            400,
            "unknown query parameter 'formt'",
        ),
        "unknown format": ({"files": {"image": ("a.jpg", jpeg)}}, "?format=gif", 400, "format=gif"),
    }


@pytest.fixture(scope="module")
def bad(images: Path) -> dict[str, tuple[dict[str, Any], str, int, str]]:
    return bad_requests(images)


def test_every_bad_input_gets_a_4xx_with_one_line(server: ServerProcess, bad: dict, reference: dict) -> None:
    for name, (kwargs, query, status, text) in bad.items():
        response = _post(server, query, **kwargs)
        assert response.status_code == status, (name, response.status_code, response.text)
        detail = response.json()["detail"]
        assert isinstance(detail, str) and "\n" not in detail and text in detail, (name, detail)
    assert get_json(server.url + "/health")[0] == 200
    assert _post(server, "?format=png", files={"image": ("poster.png", b"")}).status_code == 400
    assert requests.get(f"{server.url}/predict", timeout=60).status_code == 405


def test_32_concurrent_requests_mixed_good_and_bad(
    server: ServerProcess, images: Path, bad: dict, reference: dict[str, Reference]
) -> None:
    good = [("good", name) for name in reference]
    wrong = [("bad", name) for name in bad if "chunked" not in name]  # a generator body can be sent once
    jobs = [(good + wrong)[i % (len(good) + len(wrong))] for i in range(32)]

    def send(job: tuple[str, str]) -> tuple[tuple[str, str], requests.Response]:
        kind, name = job
        if kind == "good":
            return job, _post(server, "?format=png", **_upload(images / name))
        kwargs, query, _, _ = bad[name]
        return job, _post(server, query, **kwargs)

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(send, jobs))
    assert sum(kind == "good" for kind, _ in jobs) >= 12 and sum(kind == "bad" for kind, _ in jobs) >= 12
    for (kind, name), response in results:
        if kind == "good":
            assert response.status_code == 200 and response.content == reference[name].heatmap, name
        else:
            assert response.status_code == bad[name][2], (name, response.status_code, response.text)
    assert get_json(server.url + "/health")[0] == 200


# ----------------------------------------------------------------------------------------------------------------
# issue 23: faults replayed against the server


def test_extreme_aspect_ratio_is_served_in_o_of_its_pixels(server: ServerProcess) -> None:
    """A valid 1×40,000 PNG (a few hundred bytes) is answered at its own size without the 30,000×40,000 canvas the
    old un-letterboxing made (about 5 GB): the server's peak memory grows < 500 MB. A 1×200,000 PNG (no overlay
    JPEG can hold it) is a one-line 413, and the server keeps serving."""
    strip = _png_bytes(Image.fromarray(_rgb(1, 40_000, 5)))
    before = peak_rss_mb(server.process.pid)
    response = _post(server, files={"image": ("banner.png", strip)})
    assert response.status_code == 200, response.text[-500:]
    assert response.json()["input_size"] == {"height": 1, "width": 40_000}
    heatmap = cv2.imdecode(np.frombuffer(base64.b64decode(response.json()["heatmap_png"]), np.uint8), -1)
    assert heatmap.shape == (1, 40_000)
    overlay = _post(server, "?overlay=true", files={"image": ("banner.png", strip)})
    assert overlay.status_code == 200 and overlay.content[:2] == b"\xff\xd8"
    grown = peak_rss_mb(server.process.pid) - before
    assert grown < 500, f"peak memory grew {grown:.0f} MB"
    huge = _post(server, files={"image": ("ribbon.png", _png_bytes(Image.fromarray(_rgb(1, 200_000, 6))))})
    assert huge.status_code == 413, huge.text[-500:]
    assert huge.json()["detail"] == (
        "ribbon.png is 200000×1 pixels: a side over 65,535 pixels has no overlay JPEG; crop or downscale it"
    )
    assert get_json(server.url + "/health")[0] == 200


NON_LATIN_NAMES = ["плакат.png", "αφίσα.png", "海报.png", "ポスター.png", "ملصق.png"]


def test_non_latin_file_names_get_an_ascii_name_and_rfc5987_filename(server: ServerProcess, images: Path) -> None:
    """Cyrillic, Greek, Chinese, Japanese and Arabic upload names: the PNG and overlay answers carry an ASCII
    ``filename`` and the original as ``filename*=utf-8''…`` (RFC 5987/6266), which decodes back to it."""
    from urllib.parse import unquote

    data = (images / "poster.png").read_bytes()
    for name in NON_LATIN_NAMES:
        stem = Path(name).stem
        for query, suffix in (("?format=png", "_heatmap.png"), ("?overlay=true", "_overlay.jpg")):
            response = _post(server, query, files={"image": (name, data)})
            assert response.status_code == 200, (name, query, response.text[-300:])
            header = response.headers["content-disposition"]
            header.encode("ascii")  # what a Latin-1 header line can carry
            plain, star = header.split("; filename*=")
            assert re.fullmatch(r'inline; filename="[A-Za-z0-9._-]+"', plain), header
            assert star.startswith("utf-8''") and unquote(star[len("utf-8''") :]) == stem + suffix


def test_deeply_nested_json_is_a_400(server: ServerProcess) -> None:
    """``[`` × 100,000 or an object nested 5,000 deep overflowed the JSON parser's recursion (500)."""
    bodies = {"array": b"[" * 100_000, "object": b'{"a":' * 5_000 + b"1" + b"}" * 5_000}
    for kind, body in bodies.items():
        response = _post(server, data=body, headers={"Content-Type": "application/json"})
        assert response.status_code == 400, (kind, response.status_code, response.text[-300:])
        assert response.json()["detail"] == 'the JSON body is nested too deeply to parse: send {"image": "<base64>"}'
    assert get_json(server.url + "/health")[0] == 200


def _chrome(profile: Path) -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not Path(path).exists()]
    assert not missing, f"{missing} missing: apt-get install -y chromium chromium-driver (make test installs them)"
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1280,860",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


def test_the_page_shows_overlay_heatmap_and_classes(
    server: ServerProcess, images: Path, reference: dict[str, Reference], tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    page = requests.get(server.url + "/", timeout=60)
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "http://" not in page.text and "https://" not in page.text  # nothing fetched from elsewhere
    profile = tmp_path / "chromium-profile"
    profile.mkdir()
    driver = _chrome(profile)
    try:
        driver.get(server.url + "/")
        assert "tiny" in driver.find_element(By.ID, "model").text
        driver.find_element(By.ID, "file").send_keys(str(images / "poster.png"))
        WebDriverWait(driver, 300).until(
            lambda d: (
                d.find_element(By.ID, "overlay").get_attribute("data-ready") == "true"
                or "error" in (d.find_element(By.ID, "status").get_attribute("class") or "")
            )
        )
        status = driver.find_element(By.ID, "status")
        assert status.get_attribute("class") != "error", status.text
        ref = reference["poster.png"]
        assert driver.find_element(By.ID, "label").text == ref.row["class"].replace("_", " ")
        assert len(driver.find_elements(By.CSS_SELECTOR, "#probabilities .bar")) == len(CLASSES)
        link = driver.find_element(By.ID, "download")
        assert link.get_attribute("download") == "poster_heatmap.png"
        href = link.get_attribute("href")
        assert href.startswith("data:image/png;base64,") and base64.b64decode(href.split(",", 1)[1]) == ref.heatmap
        size = driver.execute_script("const c = document.getElementById('overlay'); return [c.width, c.height];")
        assert size == [ref.row["width"], ref.row["height"]]
        pixel = (
            "return Array.from(document.getElementById('overlay').getContext('2d').getImageData(60, 150, 1, 1).data);"
        )
        before = driver.execute_script(pixel)
        driver.execute_script(
            "const s = document.getElementById('opacity'); s.value = 90; s.dispatchEvent(new Event('input'));"
        )
        assert driver.execute_script(pixel) != before  # the slider redraws the overlay
        driver.execute_script(
            "const s = document.getElementById('opacity'); s.value = 50; s.dispatchEvent(new Event('input'));"
        )
        shot = tmp_path / "serve_page.png"
        assert driver.save_screenshot(str(shot))
    finally:
        driver.quit()
    assert Image.open(shot).size[0] >= 1000
    if os.environ.get(SCREENSHOT_ENV):
        shutil.copyfile(shot, os.environ[SCREENSHOT_ENV])


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_sigterm_stops_the_server_cleanly(server: ServerProcess) -> None:
    """Last in the module: the server's children (HTTP server, inference worker, queue manager) end with it."""
    children = descendants(server.process.pid)
    assert len(children) >= 3, children
    assert stop_server(server, timeout=180) == 0, server.log_tail()
    deadline = time.monotonic() + 30  # multiprocessing's resource tracker leaves once its pipe closes
    while any(_running(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [pid for pid in children if _running(pid)]
    port = int(server.url.rsplit(":", 1)[1])
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0  # nothing listens any more
    log = server.log_tail(200_000)
    assert "Traceback" not in log and "KeyboardInterrupt received" in log, log[-4000:]

"""What ``umsi-serve`` does: load and describe the model, build the LitServe server, run it until SIGINT / SIGTERM.

Routes: ``POST /predict`` (:mod:`umsi.serving.api`), ``GET /health`` (model name, checkpoint SHA-256, class names,
device), ``GET /`` (the drop-an-image page, ``page.html``: plain HTML and JS, nothing fetched from elsewhere).
LitServe's own readiness probe moves to ``GET /ready``; ``/info`` and ``/docs`` stay as LitServe makes them.

The model is loaded once in this process (on the CPU) before any worker starts, so a bad checkpoint ends the
command with one line instead of a failed worker; each inference worker then loads its own copy on its device.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import signal
from importlib import resources
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from omegaconf import DictConfig

from umsi.errors import ConfigError, MissingPathError
from umsi.serving.settings import accelerator, batch_size
from umsi.visualize import colormap_code

log = logging.getLogger(__name__)


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(2**20), b""):
            digest.update(block)
    return digest.hexdigest()


def describe_model(checkpoint: Path, precision: str, calibration: str = "none") -> dict[str, Any]:
    """What ``GET /health`` answers about the model; loads it on the CPU to check the file (raises its
    :class:`~umsi.errors.CheckpointError` / :class:`~umsi.errors.MissingPathError`) and the ``calibration``
    choice (:class:`~umsi.errors.ConfigError` for a domain the model has no calibration for)."""
    from umsi.inference.predictor import load

    predictor = load(checkpoint, device="cpu")
    try:
        predictor.calibration_for(calibration, None)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    return {
        "status": "ok",
        "model": predictor.name,
        "checkpoint": str(checkpoint.resolve()),
        "checkpoint_sha256": file_sha256(checkpoint),
        "class_names": predictor.class_names,
        "precision": precision,
        "input_size": list(predictor.input_size),
        "calibration": calibration,
        "calibrated_domains": sorted(predictor.calibrations),
    }


def colormap_table(name: str) -> list[list[int]]:
    """OpenCV's colour map as 256 [r, g, b] rows (level 0 … 255), for the page to colour the grey heatmap."""
    levels = np.arange(256, dtype=np.uint8)[:, None]
    return cv2.applyColorMap(levels, colormap_code(name))[:, 0, ::-1].astype(int).tolist()


def render_page(info: dict[str, Any], colormap: str, overlay_alpha: float, max_upload_mb: float) -> str:
    """``page.html`` with the model's name and classes, the colour map and the opacity to start from."""
    config = {
        "model": info["model"],
        "class_names": info["class_names"],
        "colormap": colormap_table(colormap),
        "overlay_alpha": overlay_alpha,
        "max_upload_mb": max_upload_mb,
    }
    page = resources.files("umsi.serving").joinpath("page.html").read_text(encoding="utf-8")
    return page.replace("__UMSI_CONFIG__", json.dumps(config).replace("</", "<\\/"))


def build_server(cfg: DictConfig, checkpoint: Path, info: dict[str, Any]) -> Any:
    """The ``LitServer`` for ``cfg`` (conf/serve.yaml), not yet running."""
    import litserve as ls
    from fastapi.responses import HTMLResponse, JSONResponse
    from litserve.utils import WorkerSetupStatus

    from umsi.serving.api import UMSIServeAPI, UploadLimits

    accelerator_name, devices = accelerator(str(cfg.device))
    if accelerator_name == "auto":
        import torch

        accelerator_name = "cuda" if torch.cuda.is_available() else "cpu"
    api = UMSIServeAPI(
        str(checkpoint),
        precision=str(cfg.precision),
        blur_sigma=cfg.blur_sigma,
        calibration=str(cfg.calibration),
        colormap=str(cfg.colormap),
        overlay_alpha=float(cfg.overlay_alpha),
        max_batch_size=batch_size(cfg, accelerator_name),
        batch_timeout=float(cfg.batch_timeout),
    )
    server = ls.LitServer(
        api,
        accelerator=accelerator_name,
        devices=devices,
        workers_per_device=int(cfg.workers),
        timeout=float(cfg.timeout),
        healthcheck_path="/ready",
    )
    app = server.app
    app.state.upload_limits = UploadLimits(
        max_bytes=int(float(cfg.max_upload_mb) * 2**20), max_pixels=int(float(cfg.max_megapixels) * 1_000_000)
    )
    app.router.routes[:] = [route for route in app.router.routes if getattr(route, "path", None) != "/"]
    page = render_page(info, str(cfg.colormap), float(cfg.overlay_alpha), float(cfg.max_upload_mb))
    device = "cpu" if accelerator_name == "cpu" else f"cuda:{devices[0] if isinstance(devices, list) else 0}"
    info = {**info, "device": device, "max_batch_size": api.max_batch_size, "workers": int(cfg.workers)}

    async def index() -> HTMLResponse:
        return HTMLResponse(page)

    app.state.health = info

    async def health() -> JSONResponse:
        states = dict(server.workers_setup_status or {})
        ready = sum(state == WorkerSetupStatus.READY for state in states.values())
        body = {**info, "status": "ok" if ready else "starting", "workers_ready": ready}
        return JSONResponse(body, status_code=200 if ready else 503)

    app.add_api_route("/", index, methods=["GET"], response_class=HTMLResponse, include_in_schema=False)
    app.add_api_route("/health", health, methods=["GET"])
    return server


def _stop_on_sigterm() -> None:
    """SIGTERM → KeyboardInterrupt, which LitServe answers like Ctrl-C: it stops the HTTP servers (in-flight
    requests finish), the inference workers and its queue manager, and ``run`` returns. Later SIGTERMs are
    ignored so they cannot interrupt that shutdown. The HTTP server processes are forked from this one and
    inherit the handler: uvicorn re-raises the SIGTERM it handled when it is done, and there it ends the
    process quietly."""
    owner = os.getpid()

    def handler(signum: int, frame: Any) -> None:
        if os.getpid() != owner:
            raise SystemExit(0)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


def serve(cfg: DictConfig) -> None:
    """Resolve and check the model, then serve until stopped (Ctrl-C or SIGTERM); returns after a clean stop."""
    from umsi.checkpoints.loading import resolve_checkpoint

    try:
        checkpoint = resolve_checkpoint(cfg)
    except FileNotFoundError as err:
        raise MissingPathError(str(err)) from None
    info = describe_model(checkpoint, str(cfg.precision), str(cfg.calibration))
    server = build_server(cfg, checkpoint, info)
    device = server.app.state.health["device"]
    host = f"[{cfg.host}]" if ":" in str(cfg.host) else cfg.host
    print(
        f"umsi-serve: {info['model']} ({checkpoint}, sha256 {info['checkpoint_sha256'][:12]}…) on {device}, "
        f"batches of up to {server.lit_api.max_batch_size}: http://{host}:{cfg.port}/ (POST /predict, GET /health). "
        "Stop with Ctrl-C or SIGTERM.",
        flush=True,
    )
    _stop_on_sigterm()
    server.run(host=str(cfg.host), port=int(cfg.port), log_level=str(cfg.log_level), generate_client_file=False)

"""``POST /predict`` on LitServe: the HTTP checks in the API server process, the model in the inference workers.

Request flow:

1. :func:`read_upload` (a FastAPI dependency, so it runs in LitServe's API server process before anything is
   queued): Content-Type, body size, multipart or JSON parsing, the query string and the image header
   (:mod:`umsi.serving.uploads`). Whatever fails there is answered 4xx at once and never reaches a worker.
2. :class:`UMSIServeAPI` in each inference worker: ``decode_request`` decodes the bytes with
   :func:`umsi.data.readers.decode_image_bgr` (what ``umsi-predict`` does to a file); ``predict`` runs a batch
   through :class:`~umsi.inference.predictor.Predictor` (``preprocess`` → ``forward`` → ``postprocess``, as
   ``umsi-predict`` does); ``encode_response`` writes the PNG / JPEG with :mod:`umsi.visualize`, byte for byte
   what ``umsi-predict`` writes.

LitServe fails a whole dynamic batch when one of its requests raises (LitServe issue #340), so no step raises for
one item: a request whose bytes do not decode, or whose preprocessing, forward pass, post-processing or encoding
fails, becomes a :class:`Rejected` value (its own 4xx for a user error, 500 otherwise, with one line naming the
upload) and the other images of the batch are answered normally. A batch whose forward pass fails is run again
image by image, so only the image at fault fails.

No ``from __future__ import annotations`` here: LitServe reads ``decode_request``'s annotation at run time to
build the FastAPI route, and the ``Annotated[…, Depends(read_upload)]`` must be a real object.
"""

import base64
import logging
import unicodedata
from dataclasses import dataclass
from email.utils import encode_rfc2231
from pathlib import Path
from typing import Annotated, Any

import cv2
import litserve as ls
import numpy as np
from fastapi import Depends, HTTPException, Request, Response
from fastapi.responses import JSONResponse
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from umsi.data.readers import decode_image_bgr
from umsi.errors import DataFileError, UserError
from umsi.serving.uploads import (
    UploadError,
    answer_kind,
    check_body_size,
    check_image,
    clean_name,
    image_from_json,
    media_type,
)
from umsi.visualize import heatmap_png, overlay_jpeg


@dataclass(frozen=True)
class UploadLimits:
    """``max_upload_mb`` and ``max_megapixels`` in bytes and pixels (kept in ``app.state.upload_limits``)."""

    max_bytes: int
    max_pixels: int


log = logging.getLogger(__name__)
_CURL = "send the image as a file field, e.g. curl -F image=@photo.jpg"


async def _read_body(request: Request, max_bytes: int) -> bytes:
    """The body, refused (413) from its Content-Length or, without one, as soon as the bytes read pass the limit."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit():
        check_body_size(int(declared), max_bytes)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        check_body_size(len(body), max_bytes)
    return bytes(body)


async def _file_from_multipart(request: Request, body: bytes) -> tuple[bytes, str]:
    """The first file of a multipart body (any field name; ``image`` in the examples) → (bytes, file name)."""

    async def chunks():  # an async generator, as starlette's parser takes the body
        yield body

    try:
        form = await MultiPartParser(request.headers, chunks(), max_files=4, max_fields=16).parse()
    except MultiPartException as err:
        raise UploadError(400, f"the multipart body does not parse ({err.message}): {_CURL}") from None
    files = [value for _, value in form.multi_items() if isinstance(value, UploadFile)]
    if not files:
        raise UploadError(400, f"the multipart body has no file: {_CURL}")
    data = await files[0].read()
    return data, clean_name(files[0].filename)


async def read_upload(request: Request) -> dict[str, Any]:
    """FastAPI dependency of ``POST /predict``: the checked upload as a picklable dict for the workers
    (``data``, ``name``, ``format``, ``answer``). Raises ``HTTPException`` 400 / 413 / 415 with one line."""
    limits: UploadLimits = request.app.state.upload_limits
    try:
        answer = answer_kind(request.query_params)
        media = media_type(request.headers.get("content-type"))
        body = await _read_body(request, limits.max_bytes)
        if not body:
            raise UploadError(400, f"the request body is empty (0 bytes): {_CURL}")
        data, name = image_from_json(body) if media == "application/json" else await _file_from_multipart(request, body)
        upload = check_image(data, name, limits.max_pixels)
    except UploadError as err:
        raise HTTPException(err.status, str(err)) from None
    return {"data": upload.data, "name": upload.name, "format": upload.format, "answer": answer}


@dataclass
class Decoded:
    """An upload decoded to (H, W, 3) uint8 BGR, with what to answer."""

    image: np.ndarray
    name: str
    answer: str


@dataclass
class Rejected:
    """An upload refused in the worker (its bytes did not decode): answered ``status`` with ``message``."""

    status: int
    message: str


def rejection(name: str, err: BaseException) -> Rejected:
    """One item's failure as its own answer: a user error (a bad image) its status (``status``, else 400) and
    message; anything else 500, logged with its traceback, saying the other requests were not affected."""
    first = next((line.strip() for line in str(err).splitlines() if line.strip()), "")
    if isinstance(err, UserError):
        return Rejected(getattr(err, "status", 400), f"{name}: {first}" if not first.startswith(name) else first)
    log.error("%s failed in the inference worker", name, exc_info=err)
    return Rejected(
        500,
        f"{name}: the server failed on this image ({type(err).__name__}: {first or 'no message'}); other requests "
        "are not affected, and the log has the details",
    )


@dataclass
class Served:
    """A decoded upload and its prediction."""

    upload: Decoded
    heatmap: np.ndarray
    probabilities: np.ndarray


class UMSIServeAPI(ls.LitAPI):
    """The model behind ``POST /predict``: one :class:`~umsi.inference.predictor.Predictor` per inference worker.

    ``max_batch_size`` > 1 turns on LitServe's dynamic batching (requests arriving within ``batch_timeout``
    seconds share one forward pass). ``blur_sigma``, ``calibration``, ``colormap`` and ``overlay_alpha`` mean what
    they mean for ``umsi-predict``."""

    def __init__(
        self,
        checkpoint: str,
        precision: str = "32",
        blur_sigma: float | None = None,
        calibration: str = "none",
        colormap: str = "jet",
        overlay_alpha: float = 0.5,
        max_batch_size: int = 1,
        batch_timeout: float = 0.0,
    ) -> None:
        super().__init__(max_batch_size=max_batch_size, batch_timeout=batch_timeout, api_path="/predict")
        self.checkpoint = checkpoint
        self.precision = precision
        self.blur_sigma = blur_sigma
        self.calibration = calibration
        self.colormap = colormap
        self.overlay_alpha = overlay_alpha

    def setup(self, device: str) -> None:
        from umsi.inference.predictor import load

        self.predictor = load(self.checkpoint, device=device, precision=self.precision)

    def decode_request(self, request: Annotated[dict, Depends(read_upload)]) -> Decoded | Rejected:
        try:
            image = decode_image_bgr(request["data"], request["name"])
        except (DataFileError, cv2.error):
            return Rejected(
                400,
                f"{request['name']}: the {request['format']} data does not decode (truncated or corrupt): "
                "send the complete file",
            )
        except Exception as err:  # anything else fails this request only
            return rejection(request["name"], err)
        return Decoded(image, request["name"], request["answer"])

    def predict(self, x: Any) -> Any:
        """One decoded upload (no batching) or a list of them (batching) → the same shape of results."""
        if self.max_batch_size > 1:
            return self._predict_all(x)
        return self._predict_all([x])[0]

    def _predict_all(self, items: list[Decoded | Rejected]) -> list[Served | Rejected]:
        """Each item's result or its own :class:`Rejected`: a failure of one item never reaches the others."""
        results: list[Any] = list(items)
        good, inputs = [], []
        for i, item in enumerate(items):
            if isinstance(item, Decoded):
                try:
                    inputs.append(self.predictor.preprocess(item.image))
                    good.append(i)
                except Exception as err:
                    results[i] = rejection(item.name, err)
        for i, output in zip(good, self._forward(inputs), strict=True):
            item = items[i]
            try:
                if isinstance(output, Exception):
                    raise output
                maps, probabilities = output
                prediction = self.predictor.postprocess(
                    maps, probabilities, [item.image.shape[:2]], self.blur_sigma, self.calibration
                )[0]
                results[i] = Served(item, prediction.heatmap, prediction.probabilities)
            except Exception as err:
                results[i] = rejection(item.name, err)
        return results

    def _forward(self, inputs: list[Any]) -> list[tuple[Any, Any] | Exception]:
        """(1, sh, sw) map and (1, K) probabilities per (3, h, w) input, from one forward pass of the batch; when
        that fails, from one pass per input, each failure kept as that input's exception."""
        if not inputs:
            return []
        import torch

        try:
            maps, probabilities = self.predictor.forward(torch.stack(inputs))
            return [(maps[k : k + 1], probabilities[k : k + 1]) for k in range(len(inputs))]
        except Exception as err:
            if len(inputs) == 1:
                return [err]
        outputs: list[tuple[Any, Any] | Exception] = []
        for tensor in inputs:
            try:
                outputs.append(self.predictor.forward(tensor[None]))
            except Exception as err:
                outputs.append(err)
        return outputs

    def encode_response(self, output: Served | Rejected) -> Response:
        if isinstance(output, Rejected):
            return JSONResponse({"detail": output.message}, status_code=output.status)
        try:
            return self._encode(output)
        except Exception as err:  # this answer fails alone
            rejected = rejection(output.upload.name, err)
            return JSONResponse({"detail": rejected.message}, status_code=rejected.status)

    def _encode(self, output: Served) -> Response:
        upload, stem = output.upload, Path(output.upload.name).stem or "image"
        if upload.answer == "png":
            return _file_response(heatmap_png(output.heatmap), "image/png", f"{stem}_heatmap.png")
        if upload.answer == "overlay":
            jpeg = overlay_jpeg(upload.image, output.heatmap, self.overlay_alpha, self.colormap)
            return _file_response(jpeg, "image/jpeg", f"{stem}_overlay.jpg")
        names = self.predictor.class_names
        probabilities = {name: float(p) for name, p in zip(names, output.probabilities, strict=True)}
        return JSONResponse(
            {
                "model": self.predictor.name,
                "file": upload.name,
                "class": names[int(np.argmax(output.probabilities))],
                "probabilities": probabilities,
                "input_size": {"height": upload.image.shape[0], "width": upload.image.shape[1]},
                "heatmap_png": base64.b64encode(heatmap_png(output.heatmap)).decode("ascii"),
            }
        )


def content_disposition(filename: str) -> str:
    """``inline`` with an ASCII ``filename`` (letters outside ASCII decomposed or dropped, other characters ``_``)
    and, when that differs from ``filename``, the original as RFC 5987 / 6266 ``filename*=utf-8''…``: HTTP headers
    are Latin-1 on the wire, so a Cyrillic, Greek, CJK or Arabic name cannot be sent as it is."""
    ascii_name = unicodedata.normalize("NFKD", filename).encode("ascii", "ignore").decode("ascii")
    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in ascii_name)
    safe = f"image{safe}" if safe.startswith(".") else safe  # nothing left of the stem: not a hidden file
    header = f'inline; filename="{safe}"'
    return header if safe == filename else f"{header}; filename*={encode_rfc2231(filename, 'utf-8')}"


def _file_response(data: bytes, media: str, filename: str) -> Response:
    return Response(data, media_type=media, headers={"Content-Disposition": content_disposition(filename)})

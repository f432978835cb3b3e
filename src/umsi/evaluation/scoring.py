"""Score models (and the centre-bias baseline) on a list of items, one record of metrics per image.

By default each prediction is brought back to its ground-truth map's original size (``unletterbox``) before
scoring, as the official evaluation does; ``frame="letterbox"`` scores in the network's letterboxed output frame.
Every metric is computed under both conventions ("umsi" and "mit"); fixation metrics only for images that have a
fixation inside them (the others are counted: ``n_fixations`` = 0 in their record).

Frames (:class:`ScoringFrame`): fixations are read in their image's pixels (points outside the image dropped,
:func:`~umsi.data.layouts.inside_image`) and converted into the frame the image is scored in from each file's own
size: ×(map size / image size) in the original frame (the map may be stored at another resolution than the
image), the letterbox placement in the output frame. The sAUC negatives, other images' fixations, are first
rescaled from their own image's size to this one's (pysaliency's ``create_nonfixations``), then converted the same
way.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any, NamedTuple

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from umsi.calibration import apply_calibration, card_calibrations, choose_calibration
from umsi.checkpoints.loading import LoadedModel
from umsi.data.fixations import read_fixations
from umsi.data.layouts import SaliencyItem
from umsi.data.postprocess import postprocess_maps
from umsi.data.readers import read_image_bgr, read_map
from umsi.data.transforms import SampleTransform, fixation_pixels, letterbox
from umsi.inference.predictor import min_max
from umsi.metrics import functional as M

CONVENTIONS = ("umsi", "mit")
MAP_METRICS = ("r2", "rmse", "cc", "kl", "sim")
FIXATION_METRICS = ("nss", "auc_judd", "auc_borji", "sauc", "info_gain")
FRAMES = ("original", "letterbox")
CENTER_BIAS_DOC = (
    "centred Gaussian, std 0.25 × each side, over the image: the whole map in the original frame, the image's "
    "area inside the letterbox (zero on the bars) in the letterbox frame"
)


@dataclass
class ScoringSettings:
    """How to score: frame ("original" | "letterbox"), optional Gaussian blur σ (pixels of the network output) of
    the prediction, AUC-Borji splits/step/seed, loader settings and device. ``metrics``: the metric names to
    compute (of ``MAP_METRICS`` and ``FIXATION_METRICS``; ``None``: all of them)."""

    frame: str = "original"
    blur_sigma: float | None = None
    borji_splits: int = 100
    borji_step: float = 0.1
    seed: int = 0
    batch_size: int = 8
    num_workers: int = 0
    device: str = "cpu"
    progress: bool = True
    metrics: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.frame not in FRAMES:
            raise ValueError(f"frame={self.frame!r}: choose one of {FRAMES}")
        unknown = set(self.metrics or ()) - set(MAP_METRICS) - set(FIXATION_METRICS)
        if unknown:
            raise ValueError(f"metrics: unknown {sorted(unknown)}; choose from {MAP_METRICS + FIXATION_METRICS}")

    def wants(self, metric: str) -> bool:
        """Whether ``metric`` is computed."""
        return self.metrics is None or metric in self.metrics


class ScoringFrame(NamedTuple):
    """The frame one image is scored in, from its own files' sizes (each (height, width) in pixels):
    ``kind`` "original" (the ground-truth map's ``map_hw``) or "letterbox" (the network's ``output_hw``, where the
    image of ``image_hw`` is placed as the letterbox places it)."""

    kind: str
    image_hw: tuple[int, int]
    map_hw: tuple[int, int]
    output_hw: tuple[int, int]

    @property
    def hw(self) -> tuple[int, int]:
        """(H, W) of the maps scored in this frame."""
        return self.map_hw if self.kind == "original" else self.output_hw

    def counts(self, points: np.ndarray, points_hw: tuple[int, int]) -> torch.Tensor:
        """(H, W) float64 number of fixations per pixel of this frame.

        points: (N, 2) 0-based (x, y) inside an image of ``points_hw`` (this image's size for its own fixations,
        another image's for sAUC negatives, which are stretched to this image as pysaliency does: x · W / W_other).
        Original frame: x · (map W / W_other), truncated to the pixel (pysaliency's ``x_int``); letterbox frame:
        rescaled to this image, then placed with :func:`~umsi.data.transforms.fixation_pixels` (the training
        targets' rule). A point inside its image stays inside the frame."""
        points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        if self.kind == "original":
            scale = np.array([self.map_hw[1] / points_hw[1], self.map_hw[0] / points_hw[0]])
            return M.fixations_to_map([points * scale], *self.map_hw, binary=False)[0]
        scale = np.array([self.image_hw[1] / points_hw[1], self.image_hw[0] / points_hw[0]])
        rows, cols = fixation_pixels(points * scale, self.image_hw, self.output_hw)
        out = torch.zeros(self.output_hw[0] * self.output_hw[1], dtype=torch.float64)
        out.index_add_(0, torch.from_numpy(rows * self.output_hw[1] + cols), torch.ones(len(rows), dtype=out.dtype))
        return out.reshape(self.output_hw)


class _EvalDataset(Dataset):
    """Network input plus the originals: map (H, W) in [0, 1], the image's (H, W) and its fixation points (N, 2)
    0-based x, y in the image's pixels (points outside it dropped; None without a fixation file)."""

    def __init__(self, items: Sequence[SaliencyItem], transform: SampleTransform) -> None:
        self.items, self.transform = list(items), transform

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = self.items[index]
        image, saliency = read_image_bgr(item.image), read_map(item.saliency)
        image_hw = image.shape[:2]
        points = read_fixations(item.fixations, image_hw=image_hw) if item.fixations else None
        sample = self.transform(image, saliency, points if points is not None else np.zeros((0, 2), np.float32))
        sample.update(
            original_map=saliency.astype(np.float32) / 255.0,
            image_hw=image_hw,
            points=points,
            label=item.label,
            path=str(item.image),
            index=index,
        )
        return sample


def _collate(samples: list[dict[str, Any]]) -> dict[str, Any]:
    batch: dict[str, Any] = {k: torch.stack([s[k] for s in samples]) for k in ("image", "saliency", "fixations")}
    for key in ("original_map", "image_hw", "points", "label", "path", "index"):
        batch[key] = [s[key] for s in samples]
    return batch


class OtherFixations:
    """sAUC negatives: for the image scored, the pixels fixated in every *other* image, each rescaled from its own
    image's size (pysaliency's ``create_nonfixations``) and converted into the scoring frame.

    Built once per dataset (it decodes every image for its size and reads every fixation file) and shared by all
    the models scored on it. Per frame size the fixation counts of all images are summed once; an image's
    negatives are that sum minus its own counts, so scoring N images costs O(N + all fixations), not O(N²)."""

    _KEPT_FRAMES = 8  # summed count maps kept (a dataset has few distinct frame sizes)

    def __init__(self, items: Sequence[SaliencyItem]) -> None:
        self.points: list[np.ndarray] = []
        self.image_hw: list[tuple[int, int]] = []
        for item in items:
            if item.fixations is None:
                self.points.append(np.zeros((0, 2)))
                self.image_hw.append((1, 1))
                continue
            hw = read_image_bgr(item.image).shape[:2]
            self.points.append(read_fixations(item.fixations, image_hw=hw))
            self.image_hw.append(hw)
        self._totals: dict[tuple, torch.Tensor] = {}

    def _total(self, frame: ScoringFrame) -> torch.Tensor:
        # the original frame's scale (map / other image) does not depend on this image's size; the letterbox one does
        key = (frame.kind, frame.hw, frame.image_hw if frame.kind == "letterbox" else None)
        if key not in self._totals:
            if len(self._totals) >= self._KEPT_FRAMES:
                self._totals.pop(next(iter(self._totals)))
            total = torch.zeros(frame.hw, dtype=torch.float64)
            for points, hw in zip(self.points, self.image_hw, strict=True):
                if len(points):
                    total += frame.counts(points, hw)
            self._totals[key] = total
        return self._totals[key]

    def nonfixation_map(self, index: int, frame: ScoringFrame) -> torch.Tensor:
        """(H, W) float64 binary map, H×W = ``frame.hw``: 1 where at least one other image has a fixation."""
        own = frame.counts(self.points[index], self.image_hw[index]) if len(self.points[index]) else 0.0
        return ((self._total(frame) - own) > 0.5).double()


def image_metrics(
    pred: torch.Tensor,
    target: torch.Tensor,
    fixations: torch.Tensor | None,
    nonfixations: torch.Tensor | None,
    baseline: torch.Tensor,
    settings: ScoringSettings,
    functions: ModuleType = M,
) -> dict[str, float]:
    """All metrics of one (H, W) prediction under both conventions, keyed ``<convention>/<metric>``. ``functions``:
    the module whose metric functions are called (``umsi.metrics.reference`` times the previous implementation in
    ``make bench``); a metric the module lists in ``CONVENTION_FREE`` is computed once and reported under both."""
    p, g, b = pred[None], target[None], baseline[None]
    same_for_both = getattr(functions, "CONVENTION_FREE", frozenset())
    out: dict[str, float] = {}

    def put(conv: str, name: str, *args: torch.Tensor, **kwargs: Any) -> None:
        if not settings.wants(name):
            return
        first = f"{CONVENTIONS[0]}/{name}"
        if name in same_for_both and first in out:
            out[f"{conv}/{name}"] = out[first]
        else:
            out[f"{conv}/{name}"] = getattr(functions, name)(*args, convention=conv, **kwargs).item()

    for conv in CONVENTIONS:
        for name in MAP_METRICS:
            put(conv, name, p, g)
        if fixations is None or fixations.sum() == 0:
            continue
        f = fixations[None]
        sampling = {"n_splits": settings.borji_splits, "step": settings.borji_step, "seed": settings.seed}
        put(conv, "nss", p, f)
        put(conv, "auc_judd", p, f)
        put(conv, "auc_borji", p, f, **sampling)
        if nonfixations is not None and nonfixations.sum() > 0:
            put(conv, "sauc", p, f, nonfixations[None], **sampling)
        put(conv, "info_gain", p, f, b)
    return out


Predictor = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor | None]]


def score(
    items: Sequence[SaliencyItem],
    transform: SampleTransform,
    predict: Predictor | None,
    settings: ScoringSettings,
    others: OtherFixations | None = None,
    description: str = "score",
    given: Callable[[int], np.ndarray] | None = None,
    calibrate: Callable[[np.ndarray, int], np.ndarray] | None = None,
) -> list[dict[str, Any]]:
    """One record per item: path, label, predicted label and every metric. ``predict`` maps a (B, 3, h, w) input
    to (maps (B, 1, Ho, Wo), logits (B, K) or None); ``None`` scores the centre-bias baseline instead. ``others``
    (the sAUC negatives of these items) is built here when not given. ``given`` (``umsi-score``): item index →
    (H, W) float prediction already in the scored frame, used instead of ``predict``. ``calibrate`` (``umsi-eval
    calibration=…``): (prediction in the scored frame, predicted class index) → the calibrated prediction."""
    loader = DataLoader(
        _EvalDataset(items, transform),
        batch_size=settings.batch_size,
        num_workers=settings.num_workers,
        collate_fn=_collate,
    )
    if others is None:
        others = OtherFixations(items if settings.wants("sauc") else [])
    records = []
    for batch in tqdm(loader, desc=description, disable=not settings.progress, leave=False):
        maps, logits = (None, None) if predict is None else predict(batch["image"].to(settings.device))
        for i in range(len(batch["path"])):
            if given is not None:
                maps = {i: torch.from_numpy(np.asarray(given(batch["index"][i]), dtype=np.float32))}
            try:
                adjust = None
                if calibrate is not None and logits is not None:
                    predicted = int(logits[i].argmax())
                    adjust = lambda saliency, predicted=predicted: calibrate(saliency, predicted)  # noqa: E731
                record = _score_one(batch, i, maps, others, settings, adjust)
            except ValueError as err:
                raise ValueError(f"scoring {batch['path'][i]}: {err}") from err
            record["label"] = batch["label"][i]
            if logits is not None and batch["label"][i] >= 0:
                record["predicted_label"] = int(logits[i].argmax())
                record["correct"] = float(record["predicted_label"] == batch["label"][i])
            records.append(record)
    return records


def _score_one(
    batch: dict[str, Any],
    i: int,
    maps: torch.Tensor | dict[int, torch.Tensor] | None,
    others: OtherFixations,
    settings: ScoringSettings,
    adjust: Callable[[np.ndarray], np.ndarray] | None = None,
) -> dict[str, Any]:
    points, image_hw = batch["points"][i], batch["image_hw"][i]
    frame = ScoringFrame(settings.frame, image_hw, batch["original_map"][i].shape, tuple(batch["saliency"].shape[-2:]))
    hw = frame.hw
    target = torch.from_numpy(batch["original_map"][i]) if frame.kind == "original" else batch["saliency"][i, 0]
    # binary maps of the fixated pixels, as the official evaluation's fixation maps (the "umsi" convention's weights)
    fixations = (frame.counts(points, image_hw) > 0).double() if points is not None else None
    baseline = center_bias(frame)
    if maps is None:
        pred = baseline
    elif isinstance(maps, dict):  # a given prediction, already in this frame (umsi-score)
        pred = maps[i]
        if tuple(pred.shape) != tuple(hw):
            raise ValueError(f"the given map is {tuple(pred.shape)}, the frame {tuple(hw)}")
    else:
        size = hw if settings.frame == "original" else None  # None: stay in the letterboxed frame
        pred_map = postprocess_maps(maps[i : i + 1], [size], settings.blur_sigma)[0]
        pred = torch.from_numpy(adjust(pred_map) if adjust is not None else pred_map)
    wanted = points is not None and settings.wants("sauc")
    nonfix = others.nonfixation_map(batch["index"][i], frame) if wanted else None
    record: dict[str, Any] = {"path": batch["path"][i]}
    if points is not None:
        record["n_fixations"] = len(points)  # inside the image; 0: left out of the fixation metrics
    return {**record, **image_metrics(pred, target, fixations, nonfix, baseline, settings)}


def center_bias(frame: ScoringFrame) -> torch.Tensor:
    """The centre-bias baseline of one image in its scoring frame: (H, W) = ``frame.hw``, float32, max 1.

    The MIT benchmark's placement, as the official evaluation uses it: a centred anisotropic Gaussian with std
    0.25 × each side (:func:`~umsi.metrics.functional.center_bias_map`) over the image itself. In the original frame
    the image is the whole ground-truth map; in the letterbox frame it is the area the letterbox gives the image
    (zero on the bars), so the baseline never puts mass where no pixel of the image is. Used for the centre-bias
    rows of ``umsi-eval`` and of the end-of-run evaluation, and as the baseline of information gain."""
    if frame.kind == "original":
        return M.center_bias_map(*frame.hw)
    placed = letterbox(np.ones(frame.image_hw, np.float32), frame.hw) > 0
    rows, cols = np.nonzero(placed)
    out = torch.zeros(frame.hw)
    top, left = rows.min(), cols.min()
    out[top : rows.max() + 1, left : cols.max() + 1] = M.center_bias_map(rows.max() + 1 - top, cols.max() + 1 - left)
    return out


def model_calibration(loaded: LoadedModel, choice: str) -> Callable[[np.ndarray, int], np.ndarray] | None:
    """``calibration=<choice>`` (none | auto | a domain) of a loaded model as :func:`score`'s ``calibrate``: the
    stored calibration of the predicted class (:func:`umsi.calibration.choose_calibration`) applied to the map;
    None for ``none``. Raises ``ValueError`` for a choice the model's card cannot meet."""
    calibrations = card_calibrations(loaded.card.calibration)
    choose_calibration(calibrations, choice, None)
    if choice == "none":
        return None

    def calibrate(saliency: np.ndarray, predicted: int) -> np.ndarray:
        chosen = choose_calibration(calibrations, choice, loaded.class_names[predicted])
        return apply_calibration(min_max(saliency), chosen)  # as Predictor calibrates its min–max scaled map

    return calibrate


def model_predictor(loaded: LoadedModel) -> Predictor:
    """Wrap a loaded network as a ``Predictor`` (no gradients, eval mode)."""

    @torch.no_grad()
    def predict(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = loaded.model(images)
        return out.saliency.float(), out.logits.float()

    return predict

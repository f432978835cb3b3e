"""Score models (and the centre-bias baseline) on a list of items, one record of metrics per image.

By default each prediction is brought back to its ground-truth map's original size (``unletterbox``) before
scoring, as the official evaluation does; ``frame="letterbox"`` scores in the network's letterboxed output frame.
Every metric is computed under both conventions ("umsi" and "mit"); fixation metrics only for images that have
fixations.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from umsi.checkpoints.loading import LoadedModel
from umsi.data.layouts import SaliencyItem, read_salicon_fixations
from umsi.data.readers import read_image_bgr, read_map
from umsi.data.transforms import SampleTransform, letterbox, unletterbox
from umsi.metrics import functional as M

CONVENTIONS = ("umsi", "mit")
MAP_METRICS = ("r2", "rmse", "cc", "kl", "sim")
FIXATION_METRICS = ("nss", "auc_judd", "auc_borji", "sauc", "info_gain")
FRAMES = ("original", "letterbox")


@dataclass
class ScoringSettings:
    """How to score: frame ("original" | "letterbox"), optional Gaussian blur σ (pixels of the network output) of
    the prediction, AUC-Borji splits/step/seed, loader settings and device."""

    frame: str = "original"
    blur_sigma: float | None = None
    borji_splits: int = 100
    borji_step: float = 0.1
    seed: int = 0
    batch_size: int = 8
    num_workers: int = 0
    device: str = "cpu"
    progress: bool = True

    def __post_init__(self) -> None:
        if self.frame not in FRAMES:
            raise ValueError(f"frame={self.frame!r}: choose one of {FRAMES}")


class _EvalDataset(Dataset):
    """Network input plus the originals: map (H, W) in [0, 1] and fixation points (N, 2) 0-based x, y."""

    def __init__(self, items: Sequence[SaliencyItem], transform: SampleTransform) -> None:
        self.items, self.transform = list(items), transform

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = self.items[index]
        image, saliency = read_image_bgr(item.image), read_map(item.saliency)
        points = read_salicon_fixations(item.fixations) if item.fixations else None
        sample = self.transform(image, saliency, points if points is not None else np.zeros((0, 2), np.float32))
        if points is not None and saliency.shape != image.shape[:2]:  # scored at the map's own size
            points = points * np.array([saliency.shape[1] / image.shape[1], saliency.shape[0] / image.shape[0]])
        sample.update(
            original_map=saliency.astype(np.float32) / 255.0,
            points=points,
            label=item.label,
            path=str(item.image),
            index=index,
        )
        return sample


def _collate(samples: list[dict[str, Any]]) -> dict[str, Any]:
    batch: dict[str, Any] = {k: torch.stack([s[k] for s in samples]) for k in ("image", "saliency", "fixations")}
    for key in ("original_map", "points", "label", "path", "index"):
        batch[key] = [s[key] for s in samples]
    return batch


class OtherFixations:
    """sAUC negatives: every other image's fixations, in relative coordinates, rescaled to the image scored.
    Built once per dataset (it reads every fixation file) and shared by all the models scored on it."""

    def __init__(self, items: Sequence[SaliencyItem]) -> None:
        self.relative: list[np.ndarray] = []
        for item in items:
            if item.fixations is None:
                self.relative.append(np.zeros((0, 2)))
                continue
            height, width = read_map(item.saliency).shape
            self.relative.append(read_salicon_fixations(item.fixations) / np.array([width, height]))

    def map_for(self, index: int, hw: tuple[int, int]) -> torch.Tensor:
        others = [p for i, p in enumerate(self.relative) if i != index and len(p)]
        points = np.concatenate(others) * np.array([hw[1], hw[0]]) if others else np.zeros((0, 2))
        return M.fixations_to_map([points], *hw)[0]


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
) -> list[dict[str, Any]]:
    """One record per item: path, label, predicted label and every metric. ``predict`` maps a (B, 3, h, w) input
    to (maps (B, 1, Ho, Wo), logits (B, K) or None); ``None`` scores the centre-bias baseline instead. ``others``
    (the sAUC negatives of these items) is built here when not given."""
    loader = DataLoader(
        _EvalDataset(items, transform),
        batch_size=settings.batch_size,
        num_workers=settings.num_workers,
        collate_fn=_collate,
    )
    others = others if others is not None else OtherFixations(items)
    records = []
    for batch in tqdm(loader, desc=description, disable=not settings.progress, leave=False):
        maps, logits = (None, None) if predict is None else predict(batch["image"].to(settings.device))
        for i in range(len(batch["path"])):
            record = _score_one(batch, i, maps, others, settings)
            record["label"] = batch["label"][i]
            if logits is not None and batch["label"][i] >= 0:
                record["predicted_label"] = int(logits[i].argmax())
                record["correct"] = float(record["predicted_label"] == batch["label"][i])
            records.append(record)
    return records


def _score_one(
    batch: dict[str, Any], i: int, maps: torch.Tensor | None, others: OtherFixations, settings: ScoringSettings
) -> dict[str, Any]:
    points = batch["points"][i]
    if settings.frame == "original":
        target = torch.from_numpy(batch["original_map"][i])
        hw = tuple(target.shape)
        fixations = M.fixations_to_map([points], *hw)[0] if points is not None else None
    else:
        target, hw = batch["saliency"][i, 0], tuple(batch["saliency"].shape[-2:])
        fixations = batch["fixations"][i, 0] if points is not None else None
    baseline = _center_bias(batch, i, hw, settings)
    if maps is None:
        pred = baseline
    else:
        pred_map = maps[i, 0].float()
        if settings.blur_sigma:
            pred_map = M.gaussian_blur(pred_map[None], settings.blur_sigma)[0]
        pred_map = pred_map.cpu().numpy()
        pred = torch.from_numpy(unletterbox(pred_map, hw) if settings.frame == "original" else pred_map)
    nonfix = others.map_for(batch["index"][i], hw) if points is not None else None
    return {"path": batch["path"][i], **image_metrics(pred, target, fixations, nonfix, baseline, settings)}


def _center_bias(batch: dict[str, Any], i: int, hw: tuple[int, int], settings: ScoringSettings) -> torch.Tensor:
    """Centred Gaussian over the image: at its own size in the original frame; in the letterboxed frame, over the
    area the image occupies (zero on the bars)."""
    if settings.frame == "original":
        return M.center_bias_map(*hw)
    original_hw = batch["original_map"][i].shape
    placed = letterbox(np.ones(original_hw, np.float32), hw) > 0
    rows, cols = np.nonzero(placed)
    out = torch.zeros(hw)
    top, left = rows.min(), cols.min()
    out[top : rows.max() + 1, left : cols.max() + 1] = M.center_bias_map(rows.max() + 1 - top, cols.max() + 1 - left)
    return out


def model_predictor(loaded: LoadedModel) -> Predictor:
    """Wrap a loaded network as a ``Predictor`` (no gradients, eval mode)."""

    @torch.no_grad()
    def predict(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = loaded.model(images)
        return out.saliency.float(), out.logits.float()

    return predict

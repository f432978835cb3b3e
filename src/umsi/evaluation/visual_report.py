"""``report.html`` and its figures: the paper's Figure 1 (examples per dataset and class), Figures 3–4 (training
curves), Figures 5–7 (failure cases), a confusion matrix and per-class distributions of CC and KL.

Every figure is drawn in memory first (matplotlib, Agg canvas); only when all of them exist are the PNG files and
the self-contained ``report.html`` (Jinja2 template, figures embedded as data URIs) written, each atomically. A
figure that fails raises :class:`ReportFigureError` naming it, and nothing of the report is written.
"""

from __future__ import annotations

import base64
import logging
import re
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
import torch

from umsi.checkpoints.loading import LoadedModel
from umsi.data.layouts import SaliencyItem
from umsi.data.postprocess import postprocess_maps
from umsi.data.readers import read_image_bgr, read_map
from umsi.data.transforms import SampleTransform
from umsi.errors import ConfigError
from umsi.evaluation import figures as F
from umsi.evaluation.report import DATASET_TITLES, TABLES, paper_tables, registered_tables
from umsi.evaluation.training_log import stage_logs
from umsi.utils.io import atomic_write
from umsi.visualize import MAP_STYLES, PredictionRow, class_title, figure_png, prediction_grid, row_label

if TYPE_CHECKING:
    from matplotlib.figure import Figure

log = logging.getLogger(__name__)
REPORT_FILE = "report.html"
TEMPLATE = "report.html.j2"
FAILURE_KINDS = {
    "importance": ("Importance failures (paper Figure 5)", "CC in the lowest {q:.0%} (CC ≤ {t:.3f}), class right"),
    "classification": ("Classification failures (paper Figure 6)", "class wrong, CC above {t:.3f}"),
    "both": ("Both (paper Figure 7)", "class wrong and CC in the lowest {q:.0%} (CC ≤ {t:.3f})"),
}


class ReportFigureError(RuntimeError):
    """A report figure could not be drawn; the message names it. Nothing of ``report.html`` was written."""


@dataclass(frozen=True)
class ReportSettings:
    """``conf/eval.yaml``'s report keys: ``examples`` per dataset and class, ``failures`` per kind and dataset,
    ``low_cc_quantile`` (importance failure threshold), ``style`` (map | overlay), matplotlib ``colormap``,
    ``dpi`` of the PNG files, ``wandb_thumbnails`` (images in the W&B per-image table)."""

    examples: int = 4
    failures: int = 4
    low_cc_quantile: float = 0.25
    style: str = "map"
    colormap: str = "jet"
    dpi: int = 100
    wandb_thumbnails: bool = True

    def __post_init__(self) -> None:
        from matplotlib import colormaps

        if self.style not in MAP_STYLES:
            raise ConfigError(f"report.style={self.style!r}: choose one of {', '.join(MAP_STYLES)}")
        if self.colormap not in colormaps:
            raise ConfigError(f"report.colormap={self.colormap!r}: not a matplotlib colormap (e.g. jet, turbo)")
        if not 0 < self.low_cc_quantile <= 1:
            raise ConfigError(f"report.low_cc_quantile={self.low_cc_quantile}: give a fraction in (0, 1], e.g. 0.25")
        if self.dpi < 30:
            raise ConfigError(f"report.dpi={self.dpi}: give at least 30 (100 is the default)")

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> ReportSettings:
        """From the eval config (``examples`` and the ``report`` group)."""
        report = cfg.get("report") or {}
        keys = ("failures", "low_cc_quantile", "style", "colormap", "dpi", "wandb_thumbnails")
        return cls(examples=int(cfg.get("examples", 4)), **{k: report[k] for k in keys if k in report})


@dataclass
class ReportFigure:
    """A drawn figure: ``name`` (PNG file stem), ``title`` (also drawn on it), ``caption`` and the PNG bytes."""

    name: str
    title: str
    caption: str
    png: bytes

    @property
    def file(self) -> str:
        return f"{self.name}.png"

    @property
    def data_uri(self) -> str:
        return "data:image/png;base64," + base64.b64encode(self.png).decode("ascii")


@dataclass
class Group:
    """A titled block of a section: figures and notes (e.g. why a figure is absent)."""

    title: str
    figures: list[ReportFigure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class Section:
    id: str
    title: str
    intro: str
    groups: list[Group] = field(default_factory=list)


@dataclass
class Evaluated:
    """What one model was scored on: per dataset key, the items and their records (same order)."""

    model: LoadedModel
    items: dict[str, list[SaliencyItem]]
    records: dict[str, list[dict[str, Any]]]


class _Drawer:
    """Draws named figures; a failure becomes a :class:`ReportFigureError` naming the figure."""

    def __init__(self, dpi: int) -> None:
        self.dpi = dpi
        self.names: set[str] = set()

    def __call__(self, name: str, title: str, caption: str, draw: Callable[[], Figure]) -> ReportFigure:
        if name in self.names:
            raise ReportFigureError(f"report figure {name!r} would be drawn twice")
        self.names.add(name)
        try:
            png = figure_png(draw(), self.dpi)
        except Exception as err:
            raise ReportFigureError(f"report figure {name!r} ({title}) failed: {type(err).__name__}: {err}") from err
        return ReportFigure(name, title, caption, png)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "model"


def predicted_rows(
    loaded: LoadedModel,
    items: Sequence[SaliencyItem],
    labels: Sequence[str],
    blur_sigma: float | None = None,
    batch_size: int = 8,
) -> list[PredictionRow]:
    """Grid rows for ``items``: image, ground-truth map and the model's prediction brought back to the map's size
    (``unletterbox``, after the optional Gaussian blur of σ output pixels, as scored), labelled ``labels``."""
    transform = SampleTransform(loaded.input_size, loaded.output_scale, loaded.preprocessing)
    device = next(loaded.model.parameters()).device
    rows: list[PredictionRow] = []
    for start in range(0, len(items), batch_size):
        chunk = items[start : start + batch_size]
        images = [read_image_bgr(item.image) for item in chunk]
        targets = [read_map(item.saliency) for item in chunk]
        inputs = torch.stack(
            [transform(im, t, np.zeros((0, 2), np.float32))["image"] for im, t in zip(images, targets, strict=True)]
        )
        with torch.no_grad():
            maps = loaded.model(inputs.to(device)).saliency.float()
        preds = postprocess_maps(maps, [target.shape[:2] for target in targets], blur_sigma)
        for i, (image, target, pred) in enumerate(zip(images, targets, preds, strict=True)):
            rows.append(PredictionRow(image[..., ::-1], target, pred, labels[start + i]))
    return rows


def _label(record: Mapping[str, Any], class_names: Sequence[str]) -> str:
    label, predicted = record.get("label", -1), record.get("predicted_label")
    return row_label(
        Path(record["path"]).stem,
        record.get(F.CC_KEY),
        record.get(F.KL_KEY),
        class_title(class_names[label]) if label is not None and label >= 0 else None,
        class_title(class_names[predicted]) if predicted is not None else None,
    )


class _ReportBuilder:
    def __init__(self, evaluated: Sequence[Evaluated], settings: ReportSettings, blur_sigma: float | None) -> None:
        self.evaluated, self.settings, self.blur_sigma = evaluated, settings, blur_sigma
        self.draw = _Drawer(settings.dpi)
        self.many = len(evaluated) > 1

    def _name(self, ev: Evaluated, *parts: str) -> str:
        return "_".join([*parts, *([_slug(ev.model.name)] if self.many else [])])

    def _grid(self, ev: Evaluated, key: str, indices: Sequence[int], name: str, title: str, caption: str):
        items, records = ev.items[key], ev.records[key]
        labels = [_label(records[i], ev.model.class_names) for i in indices]
        full_title = f"{title} · {DATASET_TITLES[key]} · {ev.model.name}"

        def draw() -> Figure:
            rows = predicted_rows(ev.model, [items[i] for i in indices], labels, self.blur_sigma)
            return prediction_grid(rows, full_title, self.settings.style, self.settings.colormap)

        return self.draw(name, full_title, caption, draw)

    def examples(self) -> Section:
        n = self.settings.examples
        section = Section(
            "examples",
            "Examples (paper Figure 1)",
            f"Per dataset and class, {n} images spread evenly over the class's CC ranking (best first): the image, "
            "its ground truth and the prediction, both maps min–max scaled and drawn with one colour scale.",
        )
        for ev in self.evaluated:
            for key, records in ev.records.items():
                group = Group(f"{DATASET_TITLES[key]} · {ev.model.name}")
                by_class: dict[int, list[int]] = defaultdict(list)
                for i, record in enumerate(records):
                    by_class[record.get("label", -1)].append(i)
                for label in sorted(by_class):
                    chosen = F.select_examples(records, by_class[label], n)
                    if not chosen:
                        continue
                    cls = class_title(ev.model.class_names[label]) if label >= 0 else None
                    title = f"Examples · {cls}" if cls else "Examples"
                    name = self._name(ev, "examples", key, *([ev.model.class_names[label]] if label >= 0 else []))
                    caption = f"{len(chosen)} of {len(by_class[label])} images" + (f" of class {cls}" if cls else "")
                    group.figures.append(self._grid(ev, key, chosen, name, title, caption))
                if not group.figures:
                    group.notes.append("examples=0: no examples drawn.")
                section.groups.append(group)
        return section

    def failures(self) -> Section:
        s = self.settings
        section = Section(
            "failures",
            "Failure cases (paper Figures 5–7)",
            f"Per dataset: importance failures (CC in the dataset's lowest {s.low_cc_quantile:.0%}, class right or "
            "no class), classification failures (class wrong, CC not low) and both; lowest CC first, at most "
            f"{s.failures} each.",
        )
        for ev in self.evaluated:
            for key, records in ev.records.items():
                group = Group(f"{DATASET_TITLES[key]} · {ev.model.name}")
                found = F.select_failures(records, s.failures, s.low_cc_quantile)
                labelled = any("correct" in r for r in records)
                for kind, (title, rule) in FAILURE_KINDS.items():
                    if kind != "importance" and not labelled:
                        continue
                    chosen = getattr(found, kind)
                    rule = rule.format(q=found.quantile, t=found.cc_threshold)
                    if not labelled:
                        rule = rule.replace(", class right", "; the dataset has no classes")
                    if not chosen:
                        group.notes.append(f"{title}: none of the {len(records)} images ({rule}).")
                        continue
                    caption = f"{len(chosen)} of the {found.counts[kind]} images with {rule}"
                    group.figures.append(
                        self._grid(ev, key, chosen, self._name(ev, "failures", key, kind), title, caption)
                    )
                if not labelled:
                    group.notes.append(f"{DATASET_TITLES[key]} has no classes: classification failures do not apply.")
                section.groups.append(group)
        return section

    def classification(self) -> Section:
        section = Section(
            "classification",
            "Classification",
            "Confusion matrix over the model's classes on the class-labelled datasets (Imp1k val: design classes, "
            "SALICON val: natural images): counts and row-normalised (each row sums to 1).",
        )
        for ev in self.evaluated:
            used = [k for k, rs in ev.records.items() if any("predicted_label" in r for r in rs)]
            group = Group(ev.model.name)
            section.groups.append(group)
            if not used:
                group.notes.append("No class-labelled dataset was evaluated (SALICON val or Imp1k val).")
                continue
            pairs = [(r["label"], r["predicted_label"]) for k in used for r in ev.records[k] if "predicted_label" in r]
            labels, predicted = zip(*pairs, strict=True)
            datasets = " + ".join(DATASET_TITLES[k] for k in used)
            title = f"Confusion matrix · {datasets} · {ev.model.name}"
            titles = [class_title(c) for c in ev.model.class_names]
            counts = F.confusion_matrix(labels, predicted, len(titles))
            accuracy = np.trace(counts) / max(counts.sum(), 1)
            caption = f"{counts.sum()} images, accuracy {accuracy:.3f}"
            draw = partial(F.confusion_figure, counts, titles, title)
            group.figures.append(self.draw(self._name(ev, "confusion"), title, caption, draw))
        return section

    def distributions(self) -> Section:
        section = Section(
            "distributions",
            "Distributions",
            "CC and KL of every image per dataset and class (the spread behind the means of Tables 1–3).",
        )
        for ev in self.evaluated:
            groups: dict[str, dict[str, list[float]]] = {}
            for key, records in ev.records.items():
                for record in sorted(records, key=lambda r: r.get("label", -1)):
                    label = record.get("label", -1)
                    cls = class_title(ev.model.class_names[label]) if label >= 0 else None
                    values = groups.setdefault(
                        f"{DATASET_TITLES[key]}" + (f" · {cls}" if cls else ""), {"cc": [], "kl": []}
                    )
                    values["cc"].append(record[F.CC_KEY])
                    values["kl"].append(record[F.KL_KEY])
            group = Group(ev.model.name)
            section.groups.append(group)
            if not groups:
                group.notes.append("No dataset was evaluated.")
                continue
            title = f"CC and KL per dataset and class · {ev.model.name}"
            caption = f"{sum(len(v['cc']) for v in groups.values())} images in {len(groups)} groups"
            draw = partial(F.distributions_figure, groups, title)
            group.figures.append(self.draw(self._name(ev, "distributions"), title, caption, draw))
        return section

    def curves(self) -> Section:
        section = Section(
            "curves",
            "Training curves (paper Figures 3–4)",
            "Training and validation loss per epoch of each stage, read from the run's CSV log "
            "(<run>/<stage>/csv/metrics.csv), with the learning rate and the checkpoints handed on and evaluated.",
        )
        for ev in self.evaluated:
            group = Group(ev.model.name)
            section.groups.append(group)
            try:
                stages = stage_logs(ev.model.path)
            except (OSError, ValueError) as err:
                raise ReportFigureError(f"report figure 'curves' ({ev.model.name}): {err}") from err
            if not stages:
                group.notes.append(f"No CSV training log next to {ev.model.path} (converted weights or a copied file).")
                continue
            title = f"Training curves · {' → '.join(s.name for s in stages)} · {ev.model.name}"
            caption = " · ".join(str(s.csv) for s in stages)
            draw = partial(F.curves_figure, stages, title)
            group.figures.append(self.draw(self._name(ev, "curves"), title, caption, draw))
        return section

    def sections(self) -> list[Section]:
        return [self.examples(), self.failures(), self.classification(), self.distributions(), self.curves()]


def build_sections(
    evaluated: Sequence[Evaluated], settings: ReportSettings, blur_sigma: float | None = None
) -> list[Section]:
    """Draw every figure of the report in memory, in the order of the page. Raises :class:`ReportFigureError`."""
    return _ReportBuilder(evaluated, settings, blur_sigma).sections()


def render_html(results: Mapping[str, Any], sections: Sequence[Section]) -> str:
    """The page: run settings, Tables 1–4 and the sections, from the package's Jinja2 template."""
    from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

    env = Environment(
        loader=PackageLoader("umsi.evaluation", "templates"),
        autoescape=select_autoescape(["html", "j2"]),
        undefined=StrictUndefined,
    )
    datasets = [
        {"title": DATASET_TITLES[key], **results["datasets"][key]}
        for _, key, _, _ in TABLES
        if key in results["datasets"]
    ]
    datasets += [{"title": key, **entry} for key, entry in results["datasets"].items() if entry.get("registered")]
    return env.get_template(TEMPLATE).render(
        created=datetime.now().strftime("%Y-%m-%d %H:%M"),
        settings=results["settings"],
        models=results["models"],
        datasets=datasets,
        tables=[*paper_tables(results), *registered_tables(results)],  # + umsi-eval registered=[…]
        sections=sections,
    )


@dataclass
class WrittenReport:
    """Where :func:`write_visual_report` put the page and each figure."""

    html: Path
    figures: list[tuple[ReportFigure, Path]]


def write_visual_report(
    out_dir: Path,
    results: Mapping[str, Any],
    evaluated: Sequence[Evaluated],
    settings: ReportSettings,
    blur_sigma: float | None = None,
) -> WrittenReport:
    """Draw every figure, then write them as ``<name>.png`` and ``report.html`` into ``out_dir``, each atomically
    (report.html last). Raises :class:`ReportFigureError` (naming the figure) before anything is written when a
    figure fails."""
    sections = build_sections(evaluated, settings, blur_sigma)
    page = render_html(results, sections)
    written = []
    for figure in (f for s in sections for g in s.groups for f in g.figures):
        path = atomic_write(out_dir / figure.file, lambda tmp, png=figure.png: tmp.write_bytes(png))
        written.append((figure, path))
    html = atomic_write(out_dir / REPORT_FILE, lambda tmp: tmp.write_text(page, encoding="utf-8"))
    return WrittenReport(html, written)


def _thumbnail(path: Path, size: int = 128) -> np.ndarray:
    """(h, w, 3) uint8 RGB, the longer side ``size`` pixels."""
    image = read_image_bgr(path)[..., ::-1]
    scale = size / max(image.shape[:2])
    return cv2.resize(image, (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale))))


def _thumbnail_file(run: Any, model: str, key: str, number: int, image: Path) -> tuple[Path, str]:
    """Write ``image``'s thumbnail as a PNG among the run's own files (``<run.dir>/per_image/<model>/<dataset>/``,
    uploaded by ``wandb sync``) → (its path, its name relative to the run's files)."""
    relative = f"per_image/{_slug(model)}/{key}/{number:05d}_{_slug(image.stem)}.png"
    path = Path(run.dir) / relative
    png = cv2.imencode(".png", _thumbnail(image)[..., ::-1])[1].tobytes()
    atomic_write(path, lambda tmp: tmp.write_bytes(png))
    run.save(str(path), base_path=str(run.dir), policy="now")
    return path, relative


def log_to_wandb(run: Any, written: WrittenReport, evaluated: Sequence[Evaluated], settings: ReportSettings) -> None:
    """The report's figures as ``wandb.Image`` panels (``report/<name>``), the page as ``wandb.Html`` and, per
    model, a ``wandb.Table`` of per-image scores (dataset, image, class, predicted class, CC, KL, path, thumbnail
    file) whose filters find failure cases interactively.

    Thumbnails (``wandb_thumbnails``): in an offline run wandb (0.31, wandb issue #4611) writes a table's image
    cells as the string "Image" and no image file, so ``wandb sync`` has nothing to upload. Each thumbnail is
    therefore also a PNG among the run's own files (:func:`_thumbnail_file`), which the table's ``thumbnail file``
    column names; online, the ``image`` column shows it as well."""
    import wandb

    for figure, path in written.figures:
        run.log({f"report/{figure.name}": wandb.Image(str(path), caption=figure.title)})
    columns = ["dataset", "image", "class", "predicted class", "CC", "KL", "path", "thumbnail file"]
    for ev in evaluated:
        table = wandb.Table(columns=columns)
        names = ev.model.class_names
        for key, records in ev.records.items():
            for number, (item, r) in enumerate(zip(ev.items[key], records, strict=True)):
                label, predicted = r.get("label", -1), r.get("predicted_label")
                thumbnail, relative = None, None
                if settings.wandb_thumbnails:
                    path, relative = _thumbnail_file(run, ev.model.name, key, number, item.image)
                    thumbnail = wandb.Image(str(path))
                table.add_data(
                    DATASET_TITLES[key],
                    thumbnail,
                    class_title(names[label]) if label >= 0 else None,
                    class_title(names[predicted]) if predicted is not None else None,
                    r[F.CC_KEY],
                    r[F.KL_KEY],
                    r["path"],
                    relative,
                )
        run.log({f"per_image/{_slug(ev.model.name)}": table})
    run.log({"report_html": wandb.Html(written.html.read_text(encoding="utf-8"))})

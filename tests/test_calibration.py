"""Per-domain calibration (blur σ, centre-bias weight, exponent), the log-density, the class head choosing a
calibration, and umsi models inside pysaliency."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.ndimage import gaussian_filter
from scipy.special import logsumexp

from umsi.calibration import Calibration, apply_calibration, fit_calibration, log_density, mean_calibration
from umsi.inference.predictor import Predictor
from umsi.metrics import functional as M
from umsi.metrics.probabilistic import information_gain
from umsi.models.umsi import UMSIOutput

TRUTH = Calibration(sigma=0.05, center_bias=0.3, exponent=1.5)


def _smooth_maps(rng: np.random.Generator, count: int, hw: tuple[int, int]) -> list[np.ndarray]:
    """Random smooth maps in [0, 1] with a few peaks: stand-ins for a model's predictions."""
    maps = []
    for _ in range(count):
        x = gaussian_filter(rng.random(hw), max(hw) / 10)
        x = (x - x.min()) / (x.max() - x.min())
        maps.append(x**3)
    return maps


def _domain(seed: int, count: int, hw: tuple[int, int] = (60, 80)) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Predictions and ground-truth maps of a synthetic domain: the truth is the prediction blurred by TRUTH.sigma,
    mixed with the centre bias at TRUTH.center_bias and raised to TRUTH.exponent."""
    preds = _smooth_maps(np.random.default_rng(seed), count, hw)
    return preds, [np.exp(log_density(p, TRUTH)) for p in preds]


def _close(fitted: Calibration, truth: Calibration, rel: float) -> None:
    assert fitted.sigma == pytest.approx(truth.sigma, rel=rel)
    assert fitted.center_bias == pytest.approx(truth.center_bias, rel=rel)
    assert fitted.exponent == pytest.approx(truth.exponent, rel=rel)


def test_calibration_recovers_known_parameters_from_maps_and_improves_held_out_cc_and_kl() -> None:
    preds, truths = _domain(0, 50)
    fitted = fit_calibration(preds, targets=truths)
    _close(fitted, TRUTH, rel=0.10)
    held_preds, held_truths = _domain(1, 10, hw=(90, 70))  # other images, another size
    target = torch.from_numpy(np.stack(held_truths))
    before = torch.from_numpy(np.stack(held_preds))
    after = torch.from_numpy(np.stack([apply_calibration(p, fitted) for p in held_preds])).double()
    assert M.cc(after, target, convention="mit").mean() > M.cc(before, target, convention="mit").mean()
    assert M.kl(after, target, convention="mit").mean() < M.kl(before, target, convention="mit").mean()


def test_calibration_recovers_known_parameters_from_fixations() -> None:
    preds, truths = _domain(2, 50)
    rng = np.random.default_rng(3)
    points = []
    for truth in truths:  # 300 fixations per image drawn from the true density, as (x, y)
        flat = rng.choice(truth.size, 300, p=truth.ravel() / truth.sum())
        points.append(np.stack([flat % truth.shape[1], flat // truth.shape[1]], axis=1).astype(np.float64))
    fitted = fit_calibration(preds, fixations=points)
    assert fitted.objective == "fixations" and fitted.n_images == 50
    _close(fitted, TRUTH, rel=0.10)


def test_calibration_needs_ground_truth_for_every_image() -> None:
    preds, truths = _domain(4, 3)
    with pytest.raises(ValueError, match="fixations or ground-truth maps"):
        fit_calibration(preds)
    with pytest.raises(ValueError, match="3 predictions but 2 ground truths"):
        fit_calibration(preds, targets=truths[:2])
    with pytest.raises(ValueError, match="exponent > 0"):
        Calibration(exponent=0)


def test_log_density_is_normalised_and_finite_at_the_image_size() -> None:
    rng = np.random.default_rng(5)
    for saliency in (rng.random((37, 53)), np.zeros((8, 9)), np.eye(12)):
        for calibration in (None, TRUTH):
            out = log_density(saliency, calibration)
            assert out.shape == saliency.shape and np.isfinite(out).all()
            assert logsumexp(out) == pytest.approx(0.0, abs=1e-9)
    round_trip = Calibration.from_dict(TRUTH.to_dict())
    assert round_trip == TRUTH


# ------------------------------------------------------------------------- the class head picks the calibration

CLASSES = ["ads", "webpages", "posters"]
DOMAINS = {
    "ads": Calibration(sigma=0.1, center_bias=0.5, exponent=1.0),
    "webpages": Calibration(sigma=0.0, center_bias=0.0, exponent=2.0),
}


def _fake_network(images: torch.Tensor) -> UMSIOutput:
    """A stand-in network: an off-centre blob as the map (2× the input) and the class from the image's colour
    (channel 0, 1 or 2 brightest → class 0, 1 or 2)."""
    batch, _, height, width = images.shape
    ys, xs = torch.meshgrid(torch.arange(2 * height), torch.arange(2 * width), indexing="ij")
    blob = torch.exp(-(((ys - height / 2) ** 2) + (xs - 1.5 * width) ** 2) / (0.1 * height * width))
    logits = 10.0 * images.mean(dim=(2, 3))
    return UMSIOutput(blob.expand(batch, 1, -1, -1).float(), logits)


def _coloured(channel: int) -> np.ndarray:
    image = np.zeros((30, 50, 3), np.uint8)
    image[..., channel] = 255
    return image  # RGB


def test_auto_calibration_follows_the_predicted_class_and_falls_back_to_the_mean() -> None:
    predictor = Predictor(_fake_network, CLASSES, (16, 20), "timm", calibrations=DOMAINS)
    images = [_coloured(c) for c in range(3)]
    plain = predictor.predict(images)
    auto = predictor.predict(images, calibration="auto")
    assert [p.label for p in auto] == CLASSES
    expected = [DOMAINS["ads"], DOMAINS["webpages"], mean_calibration(list(DOMAINS.values()))]
    for raw, calibrated, calibration in zip(plain, auto, expected, strict=True):
        np.testing.assert_allclose(calibrated.heatmap, apply_calibration(raw.heatmap, calibration), atol=1e-6)
        assert not np.allclose(calibrated.heatmap, raw.heatmap, atol=1e-3)
    named = predictor.predict(images[0], calibration="webpages")
    np.testing.assert_allclose(named.heatmap, apply_calibration(plain[0].heatmap, DOMAINS["webpages"]), atol=1e-6)
    with pytest.raises(ValueError, match="choose none, auto or one of this model's domains"):
        predictor.predict(images[0], calibration="mobile")
    with pytest.raises(ValueError, match="no calibration"):
        Predictor(_fake_network, CLASSES, (16, 20), "timm").predict(images[0], calibration="auto")


# --------------------------------------------------------------------------------------------------- pysaliency


@pytest.fixture
def numpy_trapz(monkeypatch: pytest.MonkeyPatch) -> None:
    """pysaliency 0.2.22's ROC calls ``np.trapz``, which NumPy 2.4 removed; ``np.trapezoid`` is the same function."""
    if not hasattr(np, "trapz"):
        monkeypatch.setattr(np, "trapz", np.trapezoid, raising=False)


def test_pysaliency_scores_a_umsi_model_as_umsi_metrics_do(tmp_path: Path, numpy_trapz: None) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import pysaliency

        from umsi.integrations.pysaliency import UMSIModel, UMSISaliencyMapModel, file_stimuli
    from umsi.models import UMSI

    torch.manual_seed(0)
    predictor = Predictor(UMSI().eval(), [*CLASSES, "natural_images", "a", "b"], (32, 40))
    rng = np.random.default_rng(6)
    paths, xs, ys, ns, truths = [], [], [], [], []
    for i, (height, width) in enumerate([(30, 44), (41, 29), (36, 36)]):
        path = tmp_path / f"stimulus{i}.png"
        Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(path)
        paths.append(path)
        flat = rng.choice(height * width, 12, replace=False)  # distinct fixated pixels
        xs.append(flat % width)
        ys.append(flat // width)
        ns.append(np.full(12, i))
        truths.append(gaussian_filter(rng.random((height, width)), 3))
    stimuli = file_stimuli(paths)
    fixations = pysaliency.Fixations.create_without_history(np.concatenate(xs), np.concatenate(ys), np.concatenate(ns))
    map_model, density_model = UMSISaliencyMapModel(predictor), UMSIModel(predictor)

    class Truth(pysaliency.SaliencyMapModel):
        def _saliency_map(self, stimulus: object) -> np.ndarray:
            return truths[[s.shape[:2] for s in stimuli.stimuli].index(np.asarray(stimulus).shape[:2])]

    auc = map_model.AUC_per_image(stimuli, fixations, nonfixations="unfixated", thresholds="fixations")
    # 12 fixations per image: pysaliency's per-fixation average is the per-image average (its average="image"
    # needs pandas, which the extra does not install)
    nss = map_model.NSS(stimuli, fixations)
    cc = map_model.CC(stimuli, Truth())
    gain = density_model.information_gain(stimuli, fixations, pysaliency.UniformModel())

    maps = [p.heatmap for p in predictor.predict([Image.open(p) for p in paths])]
    points = [np.stack([x, y], axis=1).astype(np.float64) for x, y in zip(xs, ys, strict=True)]
    ours_auc = [M.auc_judd(torch.from_numpy(m)[None], [p]).item() for m, p in zip(maps, points, strict=True)]
    ours_nss = [M.nss(torch.from_numpy(m)[None], [p]).item() for m, p in zip(maps, points, strict=True)]
    ours_cc = [
        M.cc(torch.from_numpy(m)[None].double(), torch.from_numpy(t)[None]).item()
        for m, t in zip(maps, truths, strict=True)
    ]
    ours_gain = [
        information_gain(log_density(m), np.full(m.shape, -math.log(m.size)), p)
        for m, p in zip(maps, points, strict=True)
    ]
    np.testing.assert_allclose(ours_auc, auc, rtol=1e-6)
    assert np.mean(ours_nss) == pytest.approx(nss, rel=1e-6)
    assert np.mean(ours_cc) == pytest.approx(cc, rel=1e-6)
    assert np.mean(ours_gain) == pytest.approx(gain, rel=1e-6, abs=1e-9)


# ------------------------------------------------------------------------------------------- submission bundles


def _stimuli_folder(folder: Path, sizes: list[tuple[int, int]], prefix: str = "COCO_val2014_") -> Path:
    folder.mkdir()
    rng = np.random.default_rng(9)
    for i, (height, width) in enumerate(sizes):
        Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(folder / f"{prefix}{i:012d}.png")
    return folder


def test_benchmark_bundle_reads_back_through_pysaliency(tmp_path: Path) -> None:
    import h5py
    import yaml

    from umsi.integrations.benchmark import write_benchmark_bundle
    from umsi.models import UMSI

    torch.manual_seed(0)
    predictor = Predictor(UMSI().eval(), [*CLASSES, "natural_images", "a", "b"], (32, 40), name="tiny")
    sizes = [(30, 44), (41, 29), (36, 36)]
    stimuli = _stimuli_folder(tmp_path / "stimuli", sizes)
    bundle = write_benchmark_bundle(predictor, stimuli, tmp_path / "bundle")
    config = yaml.safe_load((bundle / "config.yaml").read_text())
    assert config["model"] == {"name": "tiny", "filename": "predictions.hdf5", "probabilistic": True}
    with h5py.File(bundle / "predictions.hdf5") as handle:
        stored = {key: handle[key][()] for key in handle}
    assert sorted(stored) == sorted(p.name for p in stimuli.iterdir())
    for i, (height, width) in enumerate(sizes):
        values = stored[f"COCO_val2014_{i:012d}.png"]
        assert values.shape == (height, width)
        assert abs(logsumexp(values)) <= 1e-3

    # a stimulus that cannot be read is named, and nothing is left at the destination
    (stimuli / "COCO_val2014_000000000099.png").write_bytes(b"not a png")
    with pytest.raises(Exception, match=r"COCO_val2014_000000000099\.png"):
        write_benchmark_bundle(predictor, stimuli, tmp_path / "broken")
    assert not (tmp_path / "broken").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".broken")] == []


def test_salicon_json_round_trips_to_the_same_pngs(tmp_path: Path) -> None:
    import base64
    import io
    import json

    from umsi.integrations.benchmark import encode_png, write_salicon_json
    from umsi.models import UMSI

    torch.manual_seed(0)
    predictor = Predictor(UMSI().eval(), [*CLASSES, "natural_images", "a", "b"], (32, 40))
    stimuli = _stimuli_folder(tmp_path / "stimuli", [(30, 44), (20, 25)])
    written = json.loads(write_salicon_json(predictor, stimuli, tmp_path / "results.json").read_text())
    assert [r["image_id"] for r in written] == [0, 1]
    for record, path in zip(written, sorted(stimuli.iterdir()), strict=True):
        heatmap = predictor.predict(path).heatmap
        assert record["saliency_map"] == encode_png(heatmap)
        decoded = np.asarray(Image.open(io.BytesIO(base64.b64decode(record["saliency_map"]))))
        np.testing.assert_array_equal(decoded, np.round(heatmap * 255).astype(np.uint8))


# ------------------------------------------------------------------------- a calibrated model file, every path


CLASSES_6 = ["advertisements", "infographics", "mobile_uis", "movie_posters", "webpages", "natural_images"]
DOMAINS_6 = {
    "advertisements": Calibration(sigma=0.08, center_bias=0.4, exponent=1.2),
    "webpages": Calibration(sigma=0.02, center_bias=0.1, exponent=2.0),
}


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny model file (random UMSI() at 32×40) with two stored domains, copied into an empty folder."""
    from umsi.checkpoints.loading import save_model, store_calibration
    from umsi.models import UMSI

    torch.manual_seed(0)
    original = save_model(tmp_path_factory.mktemp("calibrated") / "model.ckpt", UMSI(), (32, 40), CLASSES_6)
    for domain, calibration in DOMAINS_6.items():
        store_calibration(original, domain, calibration.to_dict())
    copy = tmp_path_factory.mktemp("elsewhere") / "copied.ckpt"
    copy.write_bytes(original.read_bytes())
    return copy


def _image(seed: int, hw: tuple[int, int] = (37, 53)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (*hw, 3), dtype=np.uint8)


def _expected(path: Path, image: np.ndarray) -> np.ndarray:
    """The calibrated heatmap by hand: the plain map with the stored calibration of the predicted class (the
    mean of the stored ones for a class without)."""
    import umsi

    plain = umsi.load(path).predict(image)
    chosen = DOMAINS_6.get(plain.label) or mean_calibration(list(DOMAINS_6.values()))
    return apply_calibration(plain.heatmap, chosen)


def test_a_copied_calibrated_file_gives_the_same_maps_through_load_predict_serve_and_onnx(
    calibrated: Path, tmp_path: Path
) -> None:
    import cv2
    from hydra import compose, initialize_config_dir

    import umsi
    from umsi.inference.export import export_from_config
    from umsi.inference.predict import run_predict
    from umsi.paths import CONFIG_DIR
    from umsi.serving.api import Decoded, UMSIServeAPI

    images = tmp_path / "images"
    images.mkdir()
    rgb = [_image(i) for i in range(3)]
    for i, image in enumerate(rgb):
        Image.fromarray(image).save(images / f"im{i}.png")
    expected = [_expected(calibrated, image) for image in rgb]
    loaded = umsi.load(calibrated)
    assert sorted(loaded.calibrations) == sorted(DOMAINS_6)

    # umsi.load(...).predict
    for image, want in zip(rgb, expected, strict=True):
        np.testing.assert_allclose(loaded.predict(image, calibration="auto").heatmap, want, atol=1e-6)

    # umsi-predict
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(
            config_name="predict",
            overrides=[f"ckpt={calibrated}", f"input={images}", "calibration=auto", "progress=false", "num_workers=0"],
        )
        export_cfg = compose(config_name="export", overrides=[f"ckpt={calibrated}", f"output={tmp_path / 'm.onnx'}"])
    assert run_predict(cfg, tmp_path / "predicted") == 0
    for i, want in enumerate(expected):
        written = cv2.imread(str(tmp_path / "predicted" / f"im{i}_heatmap.png"), cv2.IMREAD_GRAYSCALE)
        assert np.abs(written / 255.0 - want).max() <= 1 / 255 + 1e-6

    # umsi-serve: the API the server runs (decode → predict → encode), answering a PNG heatmap
    api = UMSIServeAPI(str(calibrated), calibration="auto")
    api.setup("cpu")
    for image, want in zip(rgb, expected, strict=True):
        response = api.encode_response(api.predict(Decoded(np.ascontiguousarray(image[..., ::-1]), "x.png", "png")))
        served = cv2.imdecode(np.frombuffer(response.body, np.uint8), cv2.IMREAD_GRAYSCALE)
        assert np.abs(served / 255.0 - want).max() <= 1 / 255 + 1e-6

    # an ONNX export carries the calibration in its card
    onnx = export_from_config(export_cfg)
    exported = umsi.load(onnx)
    assert sorted(exported.calibrations) == sorted(DOMAINS_6)
    for image, want in zip(rgb, expected, strict=True):
        assert np.abs(exported.predict(image, calibration="auto").heatmap - want).max() <= 1 / 255


def test_umsi_calibrate_fits_a_domain_stores_it_and_keeps_the_others(
    tmp_path: Path, synthetic_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from hydra import compose, initialize_config_dir

    from umsi.checkpoints.files import read_checkpoint
    from umsi.checkpoints.loading import read_card, save_model
    from umsi.evaluation.calibrate import calibrate_from_config
    from umsi.models import UMSI
    from umsi.paths import CONFIG_DIR

    torch.manual_seed(0)
    model = save_model(tmp_path / "model.ckpt", UMSI(), (32, 40), CLASSES_6)

    def calibrate(*extra: str) -> tuple[str, Calibration]:
        with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
            overrides = [f"ckpt={model}", f"paths.datasets_dir={synthetic_root}", "n=4", "held_out=2", "progress=false"]
            return calibrate_from_config(compose(config_name="calibrate", overrides=[*overrides, *extra]))

    domain, first = calibrate()
    assert first.n_images == 4 and len(first.images) == 4 and first.objective == "maps"
    assert set(first.scores["before"]) == {"cc", "kl"} and set(first.scores["after"]) == {"cc", "kl"}
    assert domain in CLASSES_6  # the class head's majority answer
    out = capsys.readouterr().out
    assert f"calibration[{domain}]" in out and "held-out cc" in out
    calibrate("domain=my_screenshots")
    card = read_card(read_checkpoint(model), model)
    assert sorted(card.calibration) == sorted({domain, "my_screenshots"})
    assert Calibration.from_dict(card.calibration[domain]) == first


def test_umsi_eval_scores_the_calibrated_maps_and_leaves_the_baseline(calibrated: Path, synthetic_root: Path) -> None:
    import json

    from conftest import eval_cfg
    from umsi.evaluation.runner import evaluate

    def model_rows(tmp: Path, calibration: str) -> dict:
        outputs = tmp / "outputs"
        cfg = eval_cfg(
            synthetic_root,
            outputs,
            f"checkpoints=[{calibrated}]",
            "names=[tiny]",
            f"calibration={calibration}",
            "datasets.gdi=null",
            "datasets.salicon=null",
            "report.html=false",
        )
        evaluate(cfg, tmp / calibration)
        return json.loads((tmp / calibration / "metrics.json").read_text())["datasets"]["imp1k"]["models"]

    tmp = calibrated.parent
    plain, auto = model_rows(tmp, "none"), model_rows(tmp, "auto")
    assert plain["tiny"]["umsi"]["cc"] != pytest.approx(auto["tiny"]["umsi"]["cc"], abs=1e-6)
    baseline = [k for k in plain if k != "tiny"]
    assert baseline and all(plain[k] == auto[k] for k in baseline)  # the centre-bias rows are not calibrated

"""N-way mixing (data=mix): the default finetuning mix draws the same items per epoch as the Imp1k + SALICON
datamodule did before the registry, per-dataset validation, split.json and the class union."""

from __future__ import annotations

from pathlib import Path

import pytest

from dataset_trees import UEYES_CATEGORIES, make_osie, make_ueyes
from umsi.data.datamodules import Imp1kDataModule
from umsi.data.datasets import MixingSampler
from umsi.data.layouts import NATURAL_IMAGES, DatasetLayoutError
from umsi.data.mix import MixDataModule
from umsi.data.synthetic import IMP1K_CLASSES

# MixingSampler(6 base, 10 pool, 3 per epoch) indices for epochs 0-2, recorded from the code before data=mix
# existed (commit 882d74d): the default finetuning mix must keep drawing exactly these.
RECORDED = {
    0: [[5, 1, 11, 3, 4, 15, 12, 2, 0], [2, 0, 4, 1, 15, 10, 14, 3, 5], [13, 6, 2, 5, 1, 0, 4, 3, 8]],
    42: [[2, 6, 3, 1, 5, 12, 0, 15, 4], [5, 10, 13, 0, 11, 1, 3, 2, 4], [3, 4, 14, 5, 1, 8, 2, 0, 7]],
}


def _epochs(sampler, epochs: int = 3) -> list[list[int]]:
    out = []
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        out.append(list(sampler))
    return out


def test_imp1k_plus_salicon_sampler_draws_the_recorded_items() -> None:
    for seed, expected in RECORDED.items():
        assert _epochs(MixingSampler(6, 10, 3, seed)) == expected


def _imp1k_paths(root: Path, seed: int) -> list[list[str]]:
    dm = Imp1kDataModule(
        root=str(root / "imp1k"),
        salicon_root=str(root / "salicon"),
        salicon_per_epoch=5,
        num_classes=6,
        seed=seed,
        num_workers=0,
    )
    dm.setup("fit")
    images = [it.image for ds in dm.train_set.datasets for it in ds.items]
    return [[str(images[i]) for i in epoch] for epoch in _epochs(dm.sampler)]


def test_default_finetuning_datamodule_mixes_salicon_per_epoch(synthetic_root: Path) -> None:
    epochs = _imp1k_paths(synthetic_root, seed=3)
    salicon = [[p for p in e if "/salicon/" in p] for e in epochs]
    assert all(len(s) == 5 for s in salicon) and salicon[0] != salicon[1]
    assert all(sum("/imp1k/" in p for p in e) == len(epochs[0]) - 5 for e in epochs)


def _mix_paths(root: Path, seed: int) -> tuple[list[list[str]], MixDataModule]:
    dm = MixDataModule(
        datasets=[
            {"name": "imp1k", "root": str(root / "imp1k")},
            {"name": "salicon", "root": str(root / "salicon"), "per_epoch": 5, "validate": False},
        ],
        num_classes=6,
        seed=seed,
        num_workers=0,
    )
    dm.setup("fit")
    images = [it.image for ds in dm.train_set.datasets for it in ds.items]
    return [[str(images[i]) for i in epoch] for epoch in _epochs(dm.sampler)], dm


def test_default_mix_draws_the_same_items_as_the_imp1k_datamodule(synthetic_root: Path) -> None:
    for seed in (0, 3):
        mixed, dm = _mix_paths(synthetic_root, seed)
        assert mixed == _imp1k_paths(synthetic_root, seed)
    before = Imp1kDataModule(
        root=str(synthetic_root / "imp1k"), salicon_root=str(synthetic_root / "salicon"), num_classes=6, num_workers=0
    )
    before.setup("fit")
    assert dm.class_names == before.class_names
    assert [(it.image, it.label) for it in dm.val_set.datasets[0].items] == [
        (it.image, it.label) for it in before.val_set.items
    ]
    assert dm.val_datasets == ["imp1k"]


def test_mix_classes_are_the_union_by_name(synthetic_root: Path, tmp_path: Path) -> None:
    ueyes, osie = make_ueyes(tmp_path / "ueyes", per_category=2), make_osie(tmp_path / "osie", n=4)
    dm = MixDataModule(
        datasets=[
            {"name": "imp1k", "root": str(synthetic_root / "imp1k")},
            {"name": "salicon", "root": str(synthetic_root / "salicon"), "per_epoch": 3},
            {"name": "ueyes", "root": str(ueyes), "per_epoch": 4},
            {"name": "osie", "root": str(osie), "val_fraction": 0.25, "stages": ["finetune"]},
            {"name": "mit", "layout": "mit1003", "root": str(tmp_path / "none"), "stages": ["pretrain"]},
        ],
        stage="finetune",
        derived_dir=str(tmp_path / "derived"),
        num_classes=10,
        num_workers=0,
    )
    dm.setup("fit")
    assert dm.class_names == [*sorted([*IMP1K_CLASSES, *UEYES_CATEGORIES]), NATURAL_IMAGES]
    assert dm.val_datasets == ["imp1k", "salicon", "ueyes", "osie"]
    labels = {
        name: {it.label for it in ds.items} for name, ds in zip(dm.val_datasets, dm.val_set.datasets, strict=True)
    }
    natural = dm.class_names.index(NATURAL_IMAGES)
    assert labels["salicon"] == labels["osie"] == {natural}
    assert labels["ueyes"] == {dm.class_names.index(c) for c in UEYES_CATEGORIES}
    assert set(dm.split) == {"imp1k", "salicon", "ueyes", "osie"}
    assert len(dm.sampler) == len(dm.train_set.datasets[0]) + 3 + 4 + len(dm.train_set.datasets[3])
    with pytest.raises(DatasetLayoutError, match=r"model\.num_classes=10"):
        MixDataModule(datasets=dm.entries, num_classes=4, num_workers=0).setup("fit")


def _mix_override(synthetic_root: Path, ueyes: Path, osie: Path) -> str:
    entries = [
        f"{{name:imp1k,root:'{synthetic_root / 'imp1k'}'}}",
        f"{{name:salicon,root:'{synthetic_root / 'salicon'}',per_epoch:4,val_items:4}}",
        f"{{name:ueyes,root:'{ueyes}',per_epoch:4}}",
        f"{{name:osie,root:'{osie}',val_fraction:0.34}}",
    ]
    return f"data.datasets=[{','.join(entries)}]"


@pytest.fixture(scope="module")
def mixed_run(tmp_path_factory: pytest.TempPathFactory, synthetic_root: Path) -> Path:
    """One 1-epoch finetuning run of data=mix on SALICON + Imp1k + UEyes + OSIE fixtures; its stage folder."""
    from hydra import compose, initialize_config_dir

    from conftest import tiny_overrides
    from umsi.paths import CONFIG_DIR
    from umsi.training.runner import run

    base = tmp_path_factory.mktemp("mixed")
    ueyes, osie = make_ueyes(base / "ueyes", per_category=2), make_osie(base / "osie", n=3)
    out = base / "run"
    overrides = [
        *(o for o in tiny_overrides(synthetic_root, out) if o != "logger=none"),
        "logger=csv",
        "stage=finetune",
        "data=mix",
        _mix_override(synthetic_root, ueyes, osie),
        "model.num_classes=10",
    ]
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        run(compose(config_name="train", overrides=overrides), overrides)
    return out


def test_mixed_run_logs_every_dataset_and_records_every_split(mixed_run: Path) -> None:
    import csv
    import json

    with open(mixed_run / "csv" / "metrics.csv") as handle:
        rows = list(csv.DictReader(handle))
    logged = {key for row in rows for key, value in row.items() if value}
    for dataset in ("imp1k", "salicon", "ueyes", "osie"):
        assert {f"val/{dataset}/{m}" for m in ("cc", "kl", "nss", "acc")} <= logged, sorted(logged)
    assert "val/loss" in logged
    split = json.loads((mixed_run / "split.json").read_text())
    assert set(split) == {"imp1k", "salicon", "ueyes", "osie"}
    assert len(split["salicon"]["val"]) == 4 and len(split["ueyes"]["val"]) == 4 and len(split["osie"]["val"]) == 1
    assert all(split[d]["train"] for d in split)


def test_umsi_pp_is_the_ueyes_recipe(hydra_conf) -> None:
    cfg = hydra_conf(["experiment=umsi_pp"])
    assert cfg.stage.name == "finetune" and cfg.data.layout == "ueyes" and cfg.seed == 1234
    assert list(cfg.data.input_size) == [256, 256] and cfg.model.output_scale == 2.0 and cfg.data.batch_size == 4
    loss = cfg.loss
    assert (loss.kl, loss.cc, loss.sim, loss.nss, loss.cls, loss.nss_target) == (10, -3, -1, -0.5, 0, "heatmap")
    assert cfg.optimizer.lr == 1e-4 and (cfg.scheduler.drop, cfg.scheduler.epochs_drop) == (0.1, 3)
    assert cfg.init_ckpt is None and cfg.model.pretrained and not cfg.data.augment


def test_umsi_ueyes_mixes_ueyes_into_finetuning_only(hydra_conf) -> None:
    from umsi.training.runner import stage_configs

    stages = stage_configs(hydra_conf(["experiment=umsi_ueyes"]), ["experiment=umsi_ueyes"])
    for name, expected in (("pretrain", ["salicon"]), ("finetune", ["imp1k", "salicon", "ueyes"])):
        cfg = stages[name]
        used = [e.name for e in cfg.data.datasets if not e.get("stages") or name in e.stages]
        assert cfg.data.stage == name and used == expected
    assert stages["finetune"].loss.cls == 5.0 and stages["finetune"].model.num_classes == 10


def test_umsi_pp_runs_on_ueyes_choosing_checkpoints_on_the_training_loss(
    tmp_path: Path, hydra_conf, synthetic_root: Path
) -> None:
    from conftest import tiny_overrides
    from umsi.training.runner import run

    make_ueyes(tmp_path / "data" / "ueyes", per_category=2)
    overrides = [
        "experiment=umsi_pp",
        *tiny_overrides(tmp_path / "data", tmp_path / "run"),
        "model.pretrained=false",
        "callbacks.model_checkpoint.monitor=train/loss",
    ]
    summary = run(hydra_conf(overrides), overrides)
    best = summary["checkpoint"]["path"]
    assert Path(best).is_file() and "last" not in Path(best).name
    assert summary["n_images"]["count"] == 4  # UEyes' official test images


def test_umsi_eval_scores_the_mixed_runs_lists_and_prints_the_cross_table(
    mixed_run: Path, synthetic_root: Path, tmp_path: Path
) -> None:
    import csv
    import json

    from hydra import compose, initialize_config_dir

    from umsi.evaluation.report import tables_markdown
    from umsi.evaluation.runner import evaluate
    from umsi.paths import CONFIG_DIR

    overrides = [
        f"checkpoints=[{mixed_run / 'checkpoints' / 'last.ckpt'}]",
        "names=[mix]",
        f"datasets.salicon={synthetic_root / 'salicon'}",
        f"datasets.imp1k={synthetic_root / 'imp1k'}",
        "datasets.gdi=null",
        "registered=[ueyes,osie]",
        f"registered_derived_dir={tmp_path / 'derived'}",
        f"paths.root_dir={tmp_path}",
        "examples=0",
        "report.failures=0",
        "report.dpi=30",
        "progress=false",
        "logger.wandb=false",
    ]
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        results = evaluate(compose(config_name="eval", overrides=overrides), tmp_path / "eval")
    split = json.loads((mixed_run / "split.json").read_text())
    with open(tmp_path / "eval" / "per_image.csv") as handle:
        rows = [r for r in csv.DictReader(handle) if r["model"] == "mix"]
    for dataset in ("imp1k", "ueyes", "osie"):
        recorded = [str(Path(split[dataset]["root"]) / p) for p in split[dataset]["val"]]
        assert [r["path"] for r in rows if r["dataset"] == dataset] == recorded
    assert results["datasets"]["ueyes"]["n_images"] == 4 and "KL(P‖GT)" in results["datasets"]["ueyes"]["note"]
    text = tables_markdown(results)
    assert (tmp_path / "eval" / "tables.md").read_text() == text
    cross = text[text.index("## Models × datasets") :]
    header = cross.splitlines()[2]
    for dataset in ("salicon", "imp1k", "ueyes", "osie"):
        assert f"{dataset} CC ↑" in header and f"{dataset} AUC-Judd ↑" in header and f"{dataset} SIM ↑" in header
    assert "| mix |" in cross and "| Center bias |" in cross
    assert "## ueyes" in text and "## osie" in text
    style = results["datasets"]["ueyes"]["models"]["mix"]["ueyes_style"]
    assert set(style) == {"kl_reversed", "nss_heat", "auc_heat"} and 0 <= style["auc_heat"] <= 1
    assert "UEyes-style numbers" in text and "ueyes_style" not in results["datasets"]["osie"]["models"]["mix"]
    page = (tmp_path / "eval" / "report.html").read_text()  # a section per registered dataset, and the cross table
    assert "<h3>ueyes</h3>" in page and "<h3>osie</h3>" in page and "Models × datasets" in page


def test_ddp_ranks_split_each_epochs_mix_without_duplicates(synthetic_root: Path, tmp_path: Path, monkeypatch) -> None:
    """As Lightning's data connector wraps a custom sampler under DDP: the ranks share each epoch's draw."""
    from lightning_fabric.utilities.distributed import DistributedSamplerWrapper

    monkeypatch.setenv("PL_GLOBAL_SEED", "0")
    ueyes = make_ueyes(tmp_path / "ueyes", per_category=3)
    entries = [
        {"name": "imp1k", "root": str(synthetic_root / "imp1k")},
        {"name": "salicon", "root": str(synthetic_root / "salicon"), "per_epoch": 5},
        {"name": "ueyes", "root": str(ueyes), "per_epoch": 3},
    ]
    dm = MixDataModule(datasets=entries, num_classes=10, num_workers=0)
    dm.setup("fit")
    wrappers = [DistributedSamplerWrapper(dm.sampler, num_replicas=2, rank=rank, shuffle=True) for rank in (0, 1)]
    for epoch in range(2):
        for wrapper in wrappers:
            wrapper.set_epoch(epoch)
        dm.sampler.set_epoch(epoch)
        drawn = list(dm.sampler)
        ranks = [list(w) for w in wrappers]
        assert not set(ranks[0]) & set(ranks[1]) and set(ranks[0]) | set(ranks[1]) == set(drawn)
        assert len(drawn) == len(dm.train_set.datasets[0]) + 5 + 3

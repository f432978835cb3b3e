"""Config errors of the command-line tools: one line naming the key and the fix, the exit code, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from umsi.cli.config_check import check_overrides, hydra_cli, report_error
from umsi.errors import ConfigError, InvalidDatasetError
from umsi.paths import CONFIG_DIR

VALID_TRAIN_OVERRIDES = [
    "stage=pretrain",
    "data=imp1k",
    "loss.cc=-3",
    "trainer.max_epochs=2",
    "+trainer.enable_model_summary=false",
    "~callbacks.progress_bar",
]


def _cli(
    main: Callable[[], Any],
    argv: list[str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> tuple[int, str]:
    """Run an entry point in-process from ``tmp_path``; returns (exit code, stderr) and checks there was no
    traceback anywhere."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as exit_info:
        main()
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return int(exit_info.value.code or 0), err


def _one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


@pytest.fixture
def train(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> Callable[..., Any]:
    """train(*overrides) → (exit code, the single stderr line) of ``umsi-train`` run in-process."""
    from umsi.cli.train import main

    def run(*overrides: str) -> tuple[int, str]:
        code, err = _cli(main, ["umsi-train", *overrides], monkeypatch, capsys, tmp_path)
        return code, _one_line(err)

    return run


def test_unknown_nested_key_suggests_the_spelling(train: Callable[..., Any]) -> None:
    assert train("data.batchsize=8") == (
        2,
        "umsi-train: config error: unknown key 'data.batchsize' — did you mean 'data.batch_size'? "
        "Fix the spelling, or add a new key with '+data.batchsize=…'",
    )


def test_unknown_key_in_the_wrong_section_suggests_where_it_is(train: Callable[..., Any]) -> None:
    code, line = train("stage=pretrain", "trainer.batch_size=2")
    assert code == 2 and "unknown key 'trainer.batch_size' — did you mean 'data.batch_size'?" in line


def test_unknown_top_level_key(train: Callable[..., Any]) -> None:
    code, line = train("max_epoch=3")
    assert code == 2
    assert line.startswith("umsi-train: config error: unknown key 'max_epoch' — ")
    assert "'+max_epoch=…'" in line
    code, line = train("colour=red")
    assert code == 2 and "not in the train config (list its keys with `umsi-train --cfg job`)" in line


def test_unknown_key_to_delete(train: Callable[..., Any]) -> None:
    code, line = train("~callbacks.progres_bar")
    assert code == 2 and "unknown key 'callbacks.progres_bar' — did you mean 'callbacks.progress_bar'?" in line


def test_adding_an_existing_key_says_to_drop_the_plus(train: Callable[..., Any]) -> None:
    code, line = train("+data.root=/elsewhere")
    assert code == 2 and "'data.root' already exists: set it without '+'" in line


def test_unknown_group_option_lists_the_options(train: Callable[..., Any]) -> None:
    assert train("data=salicn") == (
        2,
        "umsi-train: config error: unknown option 'salicn' for the config group 'data' — did you mean 'salicon'? "
        "Choose one of: cat2000, folder, gdi, imp1k, mit1003, mix, osie, salicon, ueyes",
    )
    code, line = train("stage=warmup")
    assert code == 2 and "config group 'stage'" in line and "finetune, pipeline, pretrain" in line


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("trainer.max_epochs=abc", "trainer.max_epochs='abc' must be an integer (default 15)"),
        ("trainer.max_epochs=1.5", "trainer.max_epochs=1.5 must be an integer (default 15)"),
        ("data.augment=maybe", "data.augment='maybe' must be true or false (default false)"),
        ("loss.kl=high", "loss.kl='high' must be a number (default 10.0)"),
        ("optimizer.lr=fast", "optimizer.lr='fast' must be a number (default 0.0001)"),
        ("data.input_size=320", "data.input_size=320 must be a list, e.g. [a,b] (default [240, 320])"),
        ("data.augmentation={rotate: lots}", "data.augmentation.rotate='lots' must be a number (default 15.0)"),
    ],
)
def test_wrong_types_name_the_key_and_the_default(train: Callable[..., Any], override: str, message: str) -> None:
    # experiment=reproduce: trainer.max_epochs 15 and data.input_size [240, 320] come from the chosen groups
    assert train("experiment=reproduce", override) == (2, f"umsi-train: config error: {message}")


def test_every_value_of_a_sweep_is_type_checked(train: Callable[..., Any]) -> None:
    code, line = train("-m", "loss.cc=-3,abc")
    assert code == 2 and line == "umsi-train: config error: loss.cc='abc' must be a number (default -3.0)"
    code, line = train("--multirun", "seed=1,2.5")
    assert code == 2 and "seed=2.5 must be an integer" in line
    code, line = train("-m", "data=salicon,salicn")
    assert code == 2 and "unknown option 'salicn'" in line


def test_a_bad_override_is_one_line(train: Callable[..., Any]) -> None:
    code, line = train("loss.cc=(")
    assert code == 2 and line.startswith("umsi-train: config error: cannot read the override 'loss.cc=('")


def test_valid_overrides_pass_the_check() -> None:
    check_overrides("train", VALID_TRAIN_OVERRIDES, CONFIG_DIR)
    # a float for a float weight, an int where a float is expected, null, interpolations, Lightning's "auto"
    check_overrides(
        "train",
        [
            "loss.kl=0.5",
            "loss.cls=5",
            "scheduler.drop=1",
            "loss=official",
            "loss.mse=0.25",
            "trainer.devices=auto",
            "trainer.max_epochs=null",
            "data.root=${paths.datasets_dir}/elsewhere",
            "data.input_size=[32,40]",
            "data.augmentation={flip_p: 0.2}",
            "stage.finetune_overrides=['data.val_salicon_items=4']",
            "experiment=reproduce",
            "model=umsi_official",
            "trainer=ddp",
            "++trainer.max_epochs=3",
            "++brand_new=1",
        ],
        CONFIG_DIR,
    )


def test_multirun_sweeps_pass_the_check() -> None:
    sweep = [
        "loss.cc=-3,-1",
        "loss.kl=choice(5,10.5)",
        "trainer.max_epochs=range(1,4)",
        "optimizer.lr=interval(1e-5,1e-3)",
        "data=salicon,imp1k",
        "model=glob(xception*)",
        "hparams_search=loss_weights",
        "hydra/launcher=basic",
        "hydra.sweeper.params.loss.kl=10",
    ]
    check_overrides("train", sweep, CONFIG_DIR)
    check_overrides("train", ["hparams_search=optuna", "hydra.sweeper.n_trials=2"], CONFIG_DIR)


def test_the_check_keeps_an_initialised_hydra(hydra_conf: Callable[..., Any]) -> None:
    from umsi.training.runner import compose_stage

    hydra_conf()
    with pytest.raises(ConfigError, match=r"unknown key 'data\.batchsize'"):
        check_overrides("train", ["data.batchsize=3"], CONFIG_DIR)
    assert compose_stage("pretrain", ["loss.kl=4"], []).loss.kl == 4  # the pipeline's re-composition still works


def test_missing_data_root(train: Callable[..., Any], tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    assert train("stage=pretrain", f"paths.datasets_dir={missing}", f"hydra.run.dir={tmp_path / 'run'}") == (
        2,
        f"umsi-train: missing path: the pretrain stage reads data.root={missing / 'salicon'}: no such folder — point "
        "data.root or "
        "paths.datasets_dir at the dataset, or generate the synthetic one with "
        "`umsi-make-synthetic --out data/synthetic`",
    )
    (missing / "imp1k").mkdir(parents=True)  # the finetune stage also reads SALICON
    code, line = train("stage=finetune", f"paths.datasets_dir={missing}", f"hydra.run.dir={tmp_path / 'run2'}")
    assert code == 2 and line.startswith(
        f"umsi-train: missing path: the finetune stage reads data.salicon_root={missing / 'salicon'}: "
    )


def test_missing_paths_are_refused_before_a_run_folder_exists(train: Callable[..., Any], tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    code, line = train("stage=pretrain", f"paths.datasets_dir={tmp_path / 'nowhere'}", f"hydra.run.dir={run_dir}")
    assert code == 2 and line.startswith("umsi-train: missing path: the pretrain stage reads data.root=")
    assert not run_dir.exists()


def test_precheck_runs_on_the_composed_config_before_hydra(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    seen: list[Any] = []

    def precheck(cfg: Any) -> None:
        seen.append((cfg.data.root, cfg.loss.kl, cfg.hydra.runtime.cwd))
        raise ConfigError("refused by the precheck")

    def task(cfg: Any) -> None:
        raise AssertionError("the task must not run")

    run_dir = tmp_path / "run"
    argv = ["umsi-train", "-m", "loss.kl=4,5", f"hydra.sweep.dir={run_dir}"]
    code, err = _cli(
        hydra_cli("train", config_dir=CONFIG_DIR, precheck=precheck)(task), argv, monkeypatch, capsys, tmp_path
    )
    assert code == 2 and _one_line(err) == "umsi-train: config error: refused by the precheck"
    assert seen == [(str(tmp_path / "data" / "synthetic" / "imp1k"), 4, str(tmp_path))]  # resolved, first value
    assert not run_dir.exists()


@pytest.mark.parametrize(
    ("key", "fix"),
    [("init_ckpt", "a run's checkpoints/*.ckpt"), ("ckpt_path", "a Lightning checkpoint to resume from")],
)
def test_missing_checkpoint_files(train: Callable[..., Any], tmp_path: Path, key: str, fix: str) -> None:
    (tmp_path / "datasets" / "salicon").mkdir(parents=True)
    missing = tmp_path / "nope.ckpt"
    code, line = train(
        "stage=pretrain", f"paths.datasets_dir={tmp_path / 'datasets'}", f"{key}={missing}", f"hydra.run.dir={tmp_path}"
    )
    assert code == 2
    assert (
        line.startswith(f"umsi-train: missing path: the pretrain stage needs {key}={missing} (the ")
        and f": no such file — give the path of {fix}" in line
    )
    assert line.endswith(f"or set {key}=null")


def test_umsi_eval(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from umsi.cli.eval import main

    code, err = _cli(main, ["umsi-eval", "checkpoint=[a.ckpt]"], monkeypatch, capsys, tmp_path)
    assert code == 2 and _one_line(err).startswith(
        "umsi-eval: config error: unknown key 'checkpoint' — did you mean 'checkpoints'?"
    )
    code, err = _cli(main, ["umsi-eval", "checkpoints=a.ckpt"], monkeypatch, capsys, tmp_path)
    assert (code, _one_line(err)) == (
        2,
        "umsi-eval: config error: checkpoints='a.ckpt' must be a list, e.g. [a,b] (default ['latest'])",
    )


def test_umsi_predict(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from umsi.cli.predict import main

    code, err = _cli(main, ["umsi-predict", "input=x.jpg", "colormapp=jet"], monkeypatch, capsys, tmp_path)
    assert code == 2 and _one_line(err).startswith(
        "umsi-predict: config error: unknown key 'colormapp' — did you mean 'colormap'?"
    )
    # input: ??? (mandatory): read inside the job, reported as one line naming the key
    argv = ["umsi-predict", f"hydra.run.dir={tmp_path}", f"output={tmp_path / 'out'}"]
    code, err = _cli(main, argv, monkeypatch, capsys, tmp_path)
    assert (code, _one_line(err)) == (
        2,
        "umsi-predict: config error: input is not set (???): give it on the command line, e.g. input=…",
    )


def test_umsi_export(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from umsi.cli.export import main

    code, err = _cli(main, ["umsi-export", "opsett=18"], monkeypatch, capsys, tmp_path)
    assert code == 2 and _one_line(err).startswith(
        "umsi-export: config error: unknown key 'opsett' — did you mean 'opset'?"
    )
    code, err = _cli(main, ["umsi-export", "tolerance=tight"], monkeypatch, capsys, tmp_path)
    assert (code, _one_line(err)) == (
        2,
        "umsi-export: config error: tolerance='tight' must be a number (default 0.0001)",
    )


def test_umsi_data_check(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from umsi.cli.data_check import main

    code, err = _cli(main, ["umsi-data-check", "data.rot=/data/salicon"], monkeypatch, capsys, tmp_path)
    assert code == 2 and _one_line(err).startswith(
        "umsi-data-check: config error: unknown key 'data.rot' — did you mean 'data.root'?"
    )
    code, err = _cli(main, ["umsi-data-check", "data=coco"], monkeypatch, capsys, tmp_path)
    assert code == 2 and "unknown option 'coco' for the config group 'data'" in _one_line(err)


def test_a_several_line_message_is_kept_whole(capsys: pytest.CaptureFixture[str]) -> None:
    message = "2 dataset problems:\n  ERROR a.jpg: no map — add it\n  ERROR b.png: empty map — regenerate it"
    with pytest.raises(SystemExit) as exit_info:
        report_error("umsi-train", InvalidDatasetError(message))
    assert exit_info.value.code == 1
    assert capsys.readouterr().err == f"umsi-train: invalid dataset: {message}\n"


def test_user_errors_in_the_job_are_one_line_and_bugs_keep_their_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    def user_error(cfg: Any) -> None:
        raise ConfigError("data.root=/x: wrong")

    def missing_key(cfg: Any) -> None:
        cfg.data.colour  # noqa: B018 - reading a key that does not exist

    def bug(cfg: Any) -> None:
        raise RuntimeError("a real bug")

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["umsi-data-check"])
    for task, code, expected in [
        (user_error, 2, "umsi-data-check: config error: data.root=/x: wrong\n"),
        (missing_key, 2, "umsi-data-check: config error: unknown key 'data.colour' "),
    ]:
        with pytest.raises(SystemExit) as exit_info:
            hydra_cli("data_check", config_dir=CONFIG_DIR)(task)()
        assert exit_info.value.code == code
        assert capsys.readouterr().err.startswith(expected)
    with pytest.raises(SystemExit) as exit_info:
        hydra_cli("data_check", config_dir=CONFIG_DIR)(bug)()
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "RuntimeError: a real bug" in err


def test_console_script_is_fast_and_light(tmp_path: Path) -> None:
    """The installed ``umsi-train``: one line on stderr, exit 2, and no torch import for the check."""
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "WANDB_MODE": "disabled"}
    result = subprocess.run(
        [str(bin_dir / "umsi-train"), "stage=pretrain", "trainer.max_epochs=abc"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr == "umsi-train: config error: trainer.max_epochs='abc' must be an integer (default 4)\n"
    assert not list(tmp_path.iterdir())  # refused before Hydra made a run folder
    code = "import sys, umsi.cli.train, umsi.cli.eval, umsi.cli.config_check; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=120)

"""`python -m src.sweep`: Optuna studies of in-process CLI runs on a SQLite storage."""

from __future__ import annotations

import csv
import subprocess
import sys

import optuna
import pytest
from optuna.pruners import ThresholdPruner
from optuna.trial import TrialState

from src.lightning_cli import cli_main
from src.sweep import main
from src.sweeps.study import Sweep
from tests.helpers.cli import REPO, error_lines, fast_cli_args, run_command

#: Every trial: one short epoch (a metric, a checkpoint and a saved config), no test.
SHORT = ["--trainer.max_epochs=1", "--trainer.limit_train_batches=2", "--trainer.limit_val_batches=2"]
SHORT += ["--test_after_fit=false"]
SPACE = """\
model.init_args.optimizer.init_args.lr: {type: float, low: 1.0e-4, high: 1.0e-1, log: true}
model.init_args.backbone.init_args.dropout: {type: float, low: 0.0, high: 0.5, step: 0.1}
data.init_args.batch_size: {type: categorical, choices: [16, 32]}
"""


@pytest.fixture
def sweep_args(fashion_mnist_root, tmp_path) -> list[str]:
    """`--config`, `--space` and the trial arguments of a quick sweep over the tiny FashionMNIST."""
    (tmp_path / "space.yaml").write_text(SPACE)
    config, *trial_args = fast_cli_args(fashion_mnist_root, tmp_path / "unused")[1:]
    return ["--config", config, "--space", str(tmp_path / "space.yaml"), *trial_args, *SHORT]


def study(tmp_path, name: str = "fashion_mnist") -> optuna.Study:
    return optuna.load_study(study_name=name, storage=f"sqlite:///{tmp_path / 'out' / 'study.db'}")


def test_a_sweep_writes_its_table_a_runnable_best_config_and_plots(sweep_args, tmp_path, capsys):
    out = tmp_path / "out"
    code, stdout, err = run_command(main, [*sweep_args, "--trials", 3, "--output", out, "--seed", 0], capsys)
    assert code == 0, err
    trials = study(tmp_path).trials
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 3
    with (out / "trials.csv").open() as file:
        rows = list(csv.DictReader(file))
    assert [int(r["number"]) for r in rows] == [0, 1, 2]
    assert [float(r["value"]) for r in rows] == pytest.approx([t.value for t in trials])
    assert {float(r["model.init_args.optimizer.init_args.lr"]) for r in rows} == {
        t.params["model.init_args.optimizer.init_args.lr"] for t in trials
    }
    best = max(trials, key=lambda t: t.value)
    assert f"Best trial: {best.number}, val/acc = {best.value:.4f}" in stdout
    assert (out / "history.png").stat().st_size > 0 and (out / "importances.png").stat().st_size > 0
    # The best config trains as it is, with the best trial's values, logging where a run of it would.
    cli = cli_main(["fit", "--config", str(out / "best.yaml"), f"--trainer.default_root_dir={tmp_path}/b"])
    optimizer = cli.model.optimizers().optimizer
    assert optimizer.defaults["lr"] == pytest.approx(best.params["model.init_args.optimizer.init_args.lr"])
    assert cli.datamodule.batch_size == best.params["data.init_args.batch_size"]
    assert cli.trainer.logger.log_dir == str(tmp_path / "b" / "best" / "version_0")


def test_an_interrupted_study_resumes_to_its_total(sweep_args, tmp_path, capsys):
    out = ["--output", tmp_path / "out"]
    assert run_command(main, [*sweep_args, "--trials", 1, *out], capsys)[0] == 0
    assert run_command(main, [*sweep_args, "--trials", 2, *out], capsys)[0] == 0
    assert [t.number for t in study(tmp_path).trials] == [0, 1]


def test_two_workers_share_one_study(sweep_args, tmp_path):
    command = [sys.executable, "-m", "src.sweep", *map(str, sweep_args), "--trials", "4"]
    command += ["--output", str(tmp_path / "out")]
    env = {"PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}
    workers = [
        subprocess.Popen(
            command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        for _ in range(2)
    ]
    outputs = [w.communicate(timeout=300)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0], outputs
    trials = study(tmp_path).trials
    assert sorted(t.number for t in trials) == [0, 1, 2, 3]  # disjoint, and the total asked for
    assert all(t.state == TrialState.COMPLETE for t in trials)
    assert sorted(p.name for p in (tmp_path / "out").glob("trial_*")) == [f"trial_{i:03d}" for i in range(4)]


def test_a_failing_trial_is_recorded_and_the_study_goes_on(sweep_args, tmp_path, capsys):
    # A learning rate that makes the loss NaN at the second step: FiniteLossCheck stops the run.
    (tmp_path / "space.yaml").write_text(
        "model.init_args.optimizer.init_args.lr: {type: categorical, choices: [1.0e+30]}"
    )
    code, _, err = run_command(main, [*sweep_args, "--trials", 2, "--output", tmp_path / "out"], capsys)
    assert [t.state for t in study(tmp_path).trials] == [TrialState.FAIL, TrialState.FAIL], err
    assert code == 1
    assert error_lines(err) == [
        "error: study fashion_mnist: no trial completed (see the table for their states)"
    ]


def test_an_unpromising_trial_is_pruned_after_its_first_epoch(sweep_args, tmp_path):
    config, space, args = sweep_args[1], sweep_args[3], [a for a in sweep_args[4:] if "max_epochs" not in a]
    sweep = Sweep(
        config, space, tmp_path / "out", [*args, "--trainer.max_epochs=3"], pruner=ThresholdPruner(lower=2.0)
    )
    trials = sweep.run(1).trials
    assert trials[0].state == TrialState.PRUNED
    assert list(trials[0].intermediate_values) == [0]  # stopped after epoch 0 of 3


@pytest.mark.parametrize(
    ("space", "message"),
    [
        ("model.init_args.optimizer.init_args.lrr: {type: float, low: 0.1, high: 0.2}", "lrr"),
        (
            "data.init_args.batch_size: {type: int, low: 64, high: 32}",
            "data.init_args.batch_size: low must be below high, got low=64, high=32",
        ),
        (
            "data.init_args.batch_size: {type: integer, low: 1, high: 2}",
            "data.init_args.batch_size: needs 'type: float'",
        ),
        (
            "model.init_args.optimizer.init_args.lr: {type: float, low: 0, high: 1, log: true}",
            "a log scale needs low > 0, got 0",
        ),
        ("data.init_args.batch_size: {type: categorical, choices: [16, big]}", "batch_size"),
        (
            "model.init_args.backbone.init_args.dropout: {type: float, low: 2.0, high: 3.0}",
            "dropout probability has to be between 0 and 1, but got 2.0",
        ),
    ],
)
def test_a_bad_space_is_one_error_line_before_any_trial(sweep_args, tmp_path, capsys, space, message):
    (tmp_path / "space.yaml").write_text(space + "\n")
    code, _, err = run_command(main, [*sweep_args, "--trials", 2, "--output", tmp_path / "out"], capsys)
    assert code == 1
    lines = error_lines(err)
    assert len(lines) == 1 and message in lines[0], err
    assert not list((tmp_path / "out").glob("trial_*"))


@pytest.mark.parametrize("name", sorted(p.stem for p in (REPO / "configs" / "sweeps").glob("*.yaml")))
def test_every_shipped_space_fits_its_config(name, fashion_mnist_root, tmp_path):
    args = [f"--data.data_dir={fashion_mnist_root}"] if name.startswith("fashion_mnist") else []
    sweep = Sweep(
        REPO / "configs" / f"{name}.yaml", REPO / "configs" / "sweeps" / f"{name}.yaml", tmp_path, args
    )
    sweep.check()  # every key exists and takes every choice and both ends of every range
    assert len(sweep.parameters) >= 3


def test_a_storage_that_cannot_be_opened_is_one_error_line(sweep_args, tmp_path, capsys):
    args = [*sweep_args, "--trials", 1, "--output", tmp_path / "out", "--storage", "nosuchdb://x"]
    code, _, err = run_command(main, args, capsys)
    assert code == 1
    (line,) = error_lines(err)
    assert line.startswith("error: --storage: cannot open the study fashion_mnist at nosuchdb://x (")

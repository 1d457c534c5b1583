"""The logger presets (`configs/logger/`): what each tracker receives, read back with its own client."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from lightning.pytorch.core.saving import load_hparams_from_yaml

from src.lightning_cli import cli_main
from tests.helpers.cli import REPO

QUICK = ["--trainer.max_epochs=2", "--trainer.limit_train_batches=2", "--trainer.limit_val_batches=2"]
QUICK += ["--test_after_fit=false"]


def fit(fast_args: list[str], preset: str):
    return cli_main(["fit", *fast_args, "--config", str(REPO / "configs" / "logger" / preset), *QUICK])


def test_csv_preset_writes_metrics_csv_and_the_best_checkpoint_in_the_run_folder(fast_args, tmp_path):
    cli = fit(fast_args, "csv.yaml")
    run = tmp_path / "fashion_mnist" / "version_0"  # named after the config, as with TensorBoard
    with (run / "metrics.csv").open() as file:
        rows = list(csv.DictReader(file))
    val_acc = [float(r["val/acc"]) for r in rows if r.get("val/acc")]
    assert len(val_acc) == 2  # one per epoch
    best = cli.trainer.checkpoint_callback
    assert max(val_acc) == float(best.best_model_score)
    hparams = load_hparams_from_yaml(str(run / "hparams.yaml"))
    assert hparams["best_checkpoint"] == best.best_model_path
    assert Path(best.best_model_path).parent == run / "checkpoints"
    assert hparams["optimizer"]["init_args"]["lr"] == 0.002
    # `--ckpt_path last` finds the run where the CSV logger put it.
    cli = cli_main(
        ["validate", *fast_args, "--config", str(REPO / "configs/logger/csv.yaml"), "--ckpt_path=last"]
    )
    assert cli.trainer.ckpt_path == str(run / "checkpoints" / "last.ckpt")


def test_mlflow_preset_records_params_metrics_and_the_best_checkpoint(fast_args, tmp_path):
    MlflowClient = pytest.importorskip("mlflow").MlflowClient  # the optional `trackers` group
    cli = fit(fast_args, "mlflow.yaml")
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    experiment = client.get_experiment_by_name("fashion_mnist")
    (run,) = client.search_runs([experiment.experiment_id])
    best = cli.trainer.checkpoint_callback
    assert run.info.status == "FINISHED"
    assert run.data.params["optimizer/init_args/lr"] == "0.002"
    assert run.data.params["best_checkpoint"] == best.best_model_path
    history = client.get_metric_history(run.info.run_id, "val/acc")
    assert len(history) == 2 and max(m.value for m in history) == float(best.best_model_score)
    assert (tmp_path / "fashion_mnist" / "version_0").is_dir()  # TensorBoard as always


def test_wandb_preset_runs_offline(fast_args, tmp_path, monkeypatch):
    wandb = pytest.importorskip("wandb")  # the optional `trackers` group
    monkeypatch.setenv("WANDB_SILENT", "true")
    cli = fit(fast_args, "wandb.yaml")
    run = cli.trainer.loggers[1].experiment  # W&B's own run object
    try:
        assert run.offline and run.project == "fashion_mnist"
        assert run.config["best_checkpoint"] == cli.trainer.checkpoint_callback.best_model_path
        assert run.config["optimizer"]["init_args"]["lr"] == 0.002
        assert (tmp_path / "wandb").is_dir() and list((tmp_path / "wandb").glob("offline-run-*"))
    finally:
        wandb.finish()

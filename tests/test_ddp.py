"""Data-parallel training with 2 CPU processes (DDP over gloo), as a user would launch it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from src.data import FashionMNISTDataModule
from src.models import ImageClassifier
from tests.helpers.cli import REPO, fast_cli_args

RECORD_METRICS = """
import json, sys
from src.lightning_cli import cli_main

cli = cli_main(sys.argv[1:])
metrics = {k: v.item() for k, v in cli.trainer.callback_metrics.items()}
sampler = cli.trainer.train_dataloader.sampler
metrics["sampler"] = {"type": type(sampler).__name__, "rank": getattr(sampler, "rank", None)}
metrics["sampler"]["indices"] = list(sampler)
path = f"{cli.trainer.default_root_dir}/rank{cli.trainer.global_rank}.json"
with open(path, "w") as f:
    json.dump(metrics, f)
"""

# LeNet has no batch norm, so every rank holds the same weights and buffers.
LENET = """
model:
  init_args:
    backbone: src.models.components.LeNet
"""


def test_ddp_two_cpu_processes_log_synchronised_metrics(fashion_mnist_root, tmp_path):
    script = tmp_path / "record_metrics.py"
    script.write_text(RECORD_METRICS)
    (tmp_path / "lenet.yaml").write_text(LENET)
    args = [
        "fit",
        *fast_cli_args(fashion_mnist_root, tmp_path),
        "--config",
        str(tmp_path / "lenet.yaml"),
        "--trainer.strategy=ddp",
        "--trainer.devices=2",
        "--trainer.max_epochs=1",
        "--trainer.limit_train_batches=2",
        "--trainer.num_sanity_val_steps=0",
        "--data.batch_size=20",
        "--data.sampler=balanced",
        "--test_after_fit=false",
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, str(script), *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]

    rank0 = json.loads((tmp_path / "rank0.json").read_text())
    rank1 = json.loads((tmp_path / "rank1.json").read_text())
    assert rank0["val/acc"] == rank1["val/acc"]
    assert rank0["val/loss"] == rank1["val/loss"]
    # Class-balanced sampling: Lightning keeps the sampler, and each process draws its own shard of one
    # draw over the 240 training images (120 each), as `ClassBalancedSampler` draws it.
    shards = [rank["sampler"] for rank in (rank0, rank1)]
    assert [s["type"] for s in shards] == ["ClassBalancedSampler"] * 2 and [s["rank"] for s in shards] == [
        0,
        1,
    ]
    assert [len(s["indices"]) for s in shards] == [120, 120] and shards[0]["indices"] != shards[1]["indices"]

    # Each rank saw half of the 80 validation images; the logged value is the accuracy over all 80.
    # The per-epoch summary is written once, by process 0, with the synchronised value.
    (summary,) = tmp_path.rglob("summary.csv")
    header, *rows = summary.read_text().splitlines()
    column = header.split(",").index("val/acc")
    assert len(rows) == 1 and float(rows[0].split(",")[column]) == rank0["val/acc"]

    last = next(tmp_path.rglob("last.ckpt"))
    model = ImageClassifier.load_from_checkpoint(last, map_location="cpu").eval()
    dm = FashionMNISTDataModule(
        data_dir=str(fashion_mnist_root), val_size=80, num_workers=0, download=False, in_memory=False
    )
    dm.setup("validate")
    x, y = next(iter(torch.utils.data.DataLoader(dm.val_set, batch_size=80)))
    with torch.no_grad():
        expected = (model(x).argmax(dim=1) == y).float().mean().item()
    assert rank0["val/acc"] == pytest.approx(expected, abs=1e-6)
    assert Path(last).parent.parent.name == "version_0"  # one run folder, written by rank 0 only

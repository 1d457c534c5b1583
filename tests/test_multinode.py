"""A real 2-node job on one machine: scripts/torchrun_multinode.sh launched twice (node rank 0 and 1, one
CPU process each, gloo over loopback), as on two machines."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.cli import REPO, fast_cli_args

# A callback the CLI loads with --trainer.callbacks+=: each process writes its metrics to a JSON file.
RECORDER = '''
import json
from pathlib import Path

from lightning.pytorch.callbacks import Callback


class RecordMetrics(Callback):
    """Write this process's final `callback_metrics` and its place in the job to `rank<global rank>.json`."""

    def on_fit_end(self, trainer, pl_module):
        record = {k: v.item() for k, v in trainer.callback_metrics.items()}
        record["_job"] = {
            "world_size": trainer.world_size,
            "node_rank": trainer.node_rank,
            "num_val_batches": trainer.num_val_batches[0],
        }
        path = Path(trainer.default_root_dir) / f"rank{trainer.global_rank}.json"
        path.write_text(json.dumps(record))
'''

# LeNet has no batch norm, so both processes hold the same weights and buffers.
LENET = "model:\n  init_args:\n    backbone: src.models.components.LeNet\n"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop(process: subprocess.Popen) -> None:
    """Kill a launcher and the training process it started (its own process group)."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@pytest.mark.skipif(shutil.which("bash") is None, reason="the launch script needs bash")
def test_two_nodes_over_loopback_finish_with_the_same_metrics(fashion_mnist_root, tmp_path):
    (tmp_path / "recorder.py").write_text(RECORDER)
    (tmp_path / "lenet.yaml").write_text(LENET)
    fast = fast_cli_args(fashion_mnist_root, tmp_path)
    assert fast[0] == "--config"
    args = [  # the script's arguments: the config, then the CLI's arguments
        *fast[1:],
        "--config",
        str(tmp_path / "lenet.yaml"),
        "--trainer.accelerator=cpu",
        "--trainer.devices=1",
        "--trainer.strategy=ddp",
        "--trainer.max_epochs=1",
        "--trainer.limit_train_batches=2",
        "--trainer.num_sanity_val_steps=0",
        "--trainer.callbacks+=recorder.RecordMetrics",
        "--data.batch_size=20",
        "--test_after_fit=false",
    ]
    port = free_port()
    (tmp_path / "tmp").mkdir()
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": os.pathsep.join([str(REPO), str(tmp_path)]),
        "OMP_NUM_THREADS": "1",
        "TMPDIR": str(tmp_path / "tmp"),  # torchrun's log folders
        "NNODES": "2",
        "NPROC_PER_NODE": "1",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(port),
    }
    nodes = []
    try:
        for rank in (0, 1):
            log = open(tmp_path / f"node{rank}.log", "w")  # noqa: SIM115 (closed below)
            command = ["bash", str(REPO / "scripts/torchrun_multinode.sh"), *args]
            process = subprocess.Popen(
                command,
                cwd=REPO,
                env={**env, "NODE_RANK": str(rank)},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            nodes.append((process, log))
        for process, _ in nodes:
            process.wait(timeout=300)
    finally:
        for process, log in nodes:
            stop(process)
            log.close()

    for rank, (process, _) in enumerate(nodes):
        output = (tmp_path / f"node{rank}.log").read_text()
        assert process.returncode == 0, f"node {rank} failed:\n{output[-3000:]}"

    rank0 = json.loads((tmp_path / "rank0.json").read_text())
    rank1 = json.loads((tmp_path / "rank1.json").read_text())
    assert rank0.pop("_job") == {"world_size": 2, "node_rank": 0, "num_val_batches": 2}
    assert rank1.pop("_job") == {"world_size": 2, "node_rank": 1, "num_val_batches": 2}
    # Each node validated half of the 80 images (2 batches of 20); the logged epoch metrics are over all
    # of them, the same on both nodes. Only per-step values (train/loss_step) are each process's own.
    for name in ["val/acc", "val/loss", "val/acc_best", "train/acc", "train/loss_epoch"]:
        assert rank0[name] == rank1[name], name
    assert rank0["train/loss_step"] != rank1["train/loss_step"]  # each node trained on its own batches

"""Faults in training: SIGKILL and resume, SIGTERM, a NaN loss, an output folder that cannot be written."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import src.files
from tests.helpers.cli import REPO, error_lines, fast_cli_args, run_cli_main, run_python
from tests.helpers.faults import recorded_batches


def run_cli(args: list[str]) -> subprocess.CompletedProcess:
    """`python -m src.cli ARGS` in a new process that can import tests/tests.helpers.faults.py."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "src.cli", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def run_main(monkeypatch, capsys, args: list[str]) -> tuple[int, list[str], str]:
    """`run_cli_main`, with the `error:` lines of the output apart."""
    status, output = run_cli_main(monkeypatch, capsys, args)
    return status, error_lines(output), output


def signal_at(step: int, signal_name: str) -> str:
    """An overlay config adding the test callback that sends `signal_name` to the run at `step`."""
    return (
        "trainer:\n  callbacks+:\n    - class_path: tests.helpers.faults.SignalAtStep\n"
        f"      init_args: {{step: {step}, signal_name: {signal_name}}}\n"
    )


def record_batches(folder: Path) -> str:
    """An overlay config adding the test callback that records each training batch into `folder`."""
    return (
        "trainer:\n  callbacks+:\n    - class_path: tests.helpers.faults.RecordBatches\n"
        f"      init_args: {{folder: {folder}}}\n"
    )


def checkpoint_files(folder: Path) -> list[str]:
    """Every file in the checkpoint folders below `folder` (a half-written one would show here too)."""
    return sorted(p.name for p in folder.rglob("checkpoints/*"))


def newest(folder: Path, name: str = "last.ckpt") -> dict:
    path = max(folder.rglob(name), key=lambda p: p.stat().st_mtime)
    return torch.load(path, map_location="cpu", weights_only=True)


def last_scalar(folder: Path, tag: str) -> float:
    """The last value of `tag` in the newest TensorBoard run below `folder`."""
    run = max((p.parent for p in folder.rglob("events.out.tfevents.*")), key=lambda p: p.stat().st_mtime)
    events = EventAccumulator(str(run)).Reload()
    return events.Scalars(tag)[-1].value


# 240 training images in batches of 32: 8 steps an epoch, 16 in all; last.ckpt every 3 steps.
RESUME_ARGS = [
    "--trainer.max_epochs=2",
    "--trainer.deterministic=true",
    "--step_checkpoint.every_n_train_steps=3",
    "--test_after_fit=false",
]


#: The strong recipe (configs/recipe/strong.yaml: warm-up and a cosine whose length comes from
#: `estimated_stepping_batches`, MixUp/CutMix, TrivialAugment, random erasing, EMA) on top.
STRONG = ["--config", str(REPO / "configs" / "recipe" / "strong.yaml")]


@pytest.mark.parametrize("recipe", [[], STRONG], ids=["plain", "strong-recipe"])
def test_resume_after_sigkill_ends_like_an_uninterrupted_run(fashion_mnist_root, tmp_path, overlay, recipe):
    """Killed at step 11 (mid-epoch 1, after the step-9 checkpoint), resumed with `--ckpt_path last`: the
    final weights (and EMA weights), optimiser state and last validation metrics equal those of a run
    never killed."""
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    result = run_cli(["fit", *fast_cli_args(fashion_mnist_root, whole), *recipe, *RESUME_ARGS])
    assert result.returncode == 0, result.stderr[-3000:]

    kill = overlay(signal_at(11, "SIGKILL"), "kill.yaml")
    result = run_cli(["fit", *fast_cli_args(fashion_mnist_root, killed), *recipe, *RESUME_ARGS, *kill])
    assert result.returncode == -9, result.stderr[-3000:]
    files = checkpoint_files(killed)  # nothing half-written
    assert len(files) == 2 and files[0].startswith("epoch00-val_acc") and files[1] == "last.ckpt"
    assert newest(killed)["global_step"] == 9

    resume = [*recipe, *RESUME_ARGS, "--ckpt_path=last"]
    result = run_cli(["fit", *fast_cli_args(fashion_mnist_root, killed), *resume])
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Using checkpoint" in result.stderr and "version_0/checkpoints/last.ckpt" in result.stderr

    assert_same_end(whole, killed, ["state_dict", "current_model_state"] if recipe else ["state_dict"])


def assert_same_end(whole: Path, resumed: Path, weights: list[str], steps: int = 16) -> None:
    """The newest `last.ckpt` below each folder holds the same weights (`weights`: the checkpoint's parts
    to compare) and Adam moments after `steps` steps, bit for bit, and the last validation metrics agree."""
    expected, ended = newest(whole), newest(resumed)
    assert ended["global_step"] == expected["global_step"] == steps
    for part in weights:
        assert part in expected
        for name, tensor in expected[part].items():
            assert torch.equal(ended[part][name], tensor), (part, name)
    moments, ended_moments = (state["optimizer_states"][0]["state"] for state in (expected, ended))
    assert moments.keys() == ended_moments.keys()
    for index, moment in moments.items():
        for name in ("exp_avg", "exp_avg_sq"):
            assert torch.equal(ended_moments[index][name], moment[name]), (index, name)
    for tag in ("val/loss", "val/acc"):
        assert last_scalar(resumed, tag) == last_scalar(whole, tag), tag


#: 3 epochs of 8 steps. Killed at step 11 (mid-epoch 1, after the step-9 checkpoint), the resumed run
#: trains the rest of epoch 1, then epoch 2: a wrong order or random state shows in either.
THREE_EPOCHS = [*RESUME_ARGS, "--trainer.max_epochs=3"]

#: The per-sample path: FashionMNIST read image by image, cropped and flipped at random in 2 worker processes.
WORKERS = ["--data.in_memory=false", "--data.num_workers=2", "--data.crop_padding=2"]

#: LeNet has no batch norm, so every DDP rank holds the same weights and buffers (see tests/test_ddp.py).
LENET = "model:\n  init_args:\n    backbone: src.models.components.LeNet\n"

#: 2 CPU processes of 120 training images each, in batches of 16: 8 steps an epoch, as on one process.
DDP = ["--trainer.strategy=ddp", "--trainer.devices=2", "--data.batch_size=16"]


def kill_and_resume(
    data_root: Path, args: list[str], tmp_path: Path, overlay, ranks: int = 1
) -> tuple[Path, Path]:
    """Train with `fast_cli_args`, `THREE_EPOCHS` and `args` once whole, and once SIGKILLed at step 11
    and resumed with `--ckpt_path last`, recording the batches of each run; returns the two run folders.

    Checks that on each of the `ranks` processes the resumed run goes on mid-epoch, with the very batches
    (labels and augmented images) the whole run trained on from step 9: the 15 left, not an epoch more."""
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    runs = [
        (whole, "whole", [], 0),
        (killed, "killed", overlay(signal_at(11, "SIGKILL"), "kill.yaml"), -9),
        (killed, "resumed", ["--ckpt_path=last"], 0),
    ]
    for folder, name, extra, status in runs:
        record = overlay(record_batches(tmp_path / name), f"{name}.yaml")
        cli_args = ["fit", *fast_cli_args(data_root, folder), *THREE_EPOCHS, *args, *record, *extra]
        result = run_python(["-m", "src.cli", *cli_args], timeout=600)
        assert result.returncode == status, result.stderr[-3000:]
        if name == "killed":
            assert newest(killed)["global_step"] == 9
    for rank in range(ranks):
        expected = recorded_batches(tmp_path / "whole", rank)[9:]
        resumed = recorded_batches(tmp_path / "resumed", rank)
        assert len(resumed) == 24 - 9 and (resumed[0]["epoch"], resumed[0]["batch"]) == (1, 1), rank
        assert resumed == expected, rank
    return whole, killed


def test_resume_with_worker_processes_ends_like_an_uninterrupted_run(fashion_mnist_root, tmp_path, overlay):
    """With 2 worker processes cropping and flipping at random, a run killed mid-epoch and resumed trains
    on the same augmented images as a run never killed, and ends with the same weights and metrics."""
    whole, killed = kill_and_resume(fashion_mnist_root, WORKERS, tmp_path, overlay)
    assert_same_end(whole, killed, ["state_dict"], steps=24)


@pytest.mark.parametrize("data", [[], WORKERS], ids=["in-memory", "worker processes"])
def test_resume_under_ddp_ends_like_an_uninterrupted_run(fashion_mnist_root, tmp_path, overlay, data):
    """DDP on 2 CPU processes (Lightning gives the loader a `DistributedSampler`): killed mid-epoch and
    resumed, each process trains on the rest of the interrupted epoch and then the next, in the order of
    a run never killed (with the same augmentation in its worker processes: every rank resumes from the
    loader state of rank 0, the one Lightning saves), and the run ends with the same weights and metrics."""
    args = [*overlay(LENET, "lenet.yaml"), *DDP, *data]
    whole, killed = kill_and_resume(fashion_mnist_root, args, tmp_path, overlay, ranks=2)
    assert_same_end(whole, killed, ["state_dict"], steps=24)


def test_sigterm_saves_last_checkpoint_and_exits_143(fashion_mnist_root, tmp_path, overlay):
    """SIGTERM at step 3 (no step checkpoints): last.ckpt of step 3 is written, then the run stops."""
    args = [*fast_cli_args(fashion_mnist_root, tmp_path), "--trainer.max_epochs=2"]
    args += ["--step_checkpoint.every_n_train_steps=0", *overlay(signal_at(3, "SIGTERM"))]
    result = run_cli(["fit", *args])
    assert result.returncode == 143, result.stderr[-3000:]
    last = next(tmp_path.rglob("last.ckpt"))
    assert f"Received SIGTERM: saved {last} at step 3; resume with --ckpt_path last" in result.stderr
    assert "Traceback" not in result.stderr
    assert "Test accuracy" not in result.stdout  # stopped, not finished
    assert checkpoint_files(tmp_path) == ["last.ckpt"]
    state = torch.load(last, weights_only=True)
    assert state["global_step"] == 3
    assert state["loops"]["fit_loop"]["epoch_loop.batch_progress"]["current"]["processed"] == 3


NAN_NET = """
model:
  init_args:
    backbone:
      class_path: tests.helpers.faults.NaNAtCall
      init_args: {nan_at_call: 3}
"""


def test_nan_loss_stops_training_naming_the_step(fast_args, overlay, tmp_path, monkeypatch, capsys):
    """The network's 4th training output is NaN: the run stops at step 3; the checkpoints stay finite."""
    args = ["fit", *fast_args, *overlay(NAN_NET), "--step_checkpoint.every_n_train_steps=2"]
    status, errors, _ = run_main(monkeypatch, capsys, args)
    assert status == 1
    assert errors == [
        "error: training loss is nan at step 3 (epoch 0, batch 3); lower the learning rate or clip "
        "gradients (--trainer.gradient_clip_val 1.0), or run with --trainer.detect_anomaly true to find "
        "the operation that produced it"
    ]
    assert checkpoint_files(tmp_path) == ["last.ckpt"]
    state = torch.load(next(tmp_path.rglob("last.ckpt")), weights_only=True)
    assert state["global_step"] == 2
    assert all(torch.isfinite(t).all() for t in state["state_dict"].values())


@pytest.mark.parametrize(
    "options, expected",
    [
        (
            ["--trainer.logger=TensorBoardLogger", "--trainer.logger.init_args.save_dir={file}/logs"],
            "error: trainer.logger (log folder): cannot write in {file}/logs/lightning_logs/version_0: "
            "Not a directory",
        ),
        (
            ["--trainer.default_root_dir={file}/runs"],
            "error: trainer.default_root_dir: cannot write in {file}/runs",
        ),
    ],
    ids=["log folder", "default_root_dir"],
)
def test_unwritable_output_folder_stops_before_training(
    options, expected, fast_args, tmp_path, monkeypatch, capsys
):
    """A folder below a regular file cannot be created, as root too (where chmod stops nothing)."""
    a_file = tmp_path / "afile"
    a_file.write_text("")
    args = ["fit", *fast_args, *(option.format(file=a_file) for option in options)]
    status, errors, output = run_main(monkeypatch, capsys, args)
    assert status == 1
    assert len(errors) == 1 and errors[0].startswith(expected.format(file=a_file)), output
    assert "Epoch 0" not in output and not (tmp_path / "fashion_mnist").exists()


def test_full_disk_stops_before_training(fast_args, tmp_path, monkeypatch, capsys):
    """A disk with no space left fails the probe write (simulated: writing raises ENOSPC)."""

    def full_disk(path, mode="r", *args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(src.files, "open", full_disk, raising=False)
    status, errors, _ = run_main(monkeypatch, capsys, ["fit", *fast_args])
    assert status == 1
    message = f"error: trainer.default_root_dir: cannot write in {tmp_path}: No space left on device"
    assert errors == [message]
    assert list(tmp_path.iterdir()) == []  # the probe file is gone


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders; see the tests above")
def test_read_only_log_folder(fast_args, tmp_path, monkeypatch, capsys):
    logs = tmp_path / "fashion_mnist"
    logs.mkdir()
    logs.chmod(0o500)
    try:
        status, errors, _ = run_main(monkeypatch, capsys, ["fit", *fast_args])
    finally:
        logs.chmod(0o700)
    assert status == 1
    assert len(errors) == 1 and "Permission denied" in errors[0]

"""Running the commands in tests: in this process (fast) or in a new one (signals, DDP, real exit codes)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def fast_cli_args(data_root: Path, out_dir: Path) -> list[str]:
    """CLI arguments that make a run of configs/fashion_mnist.yaml take seconds, writing into out_dir
    (its logs and checkpoints in `out_dir/fashion_mnist/version_N`)."""
    return [
        "--config",
        str(REPO / "configs" / "fashion_mnist.yaml"),
        f"--data.data_dir={data_root}",
        "--data.val_size=80",
        "--data.batch_size=32",
        "--data.num_workers=0",
        "--data.download=false",
        f"--trainer.default_root_dir={out_dir}",
        "--trainer.accelerator=cpu",
        "--trainer.devices=1",
        "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false",
        "--trainer.log_every_n_steps=1",
    ]


def run_cli_main(monkeypatch, capsys, args: list[str]) -> tuple[int, str]:
    """Run `python -m src.cli ARGS` in this process (its `main()`, which must exit, never with a traceback):
    its exit status and everything it printed."""
    from src.cli import main

    monkeypatch.setattr(sys, "argv", ["python -m src.cli", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    captured = capsys.readouterr()
    output = captured.out + captured.err
    assert "Traceback" not in output
    return exit_info.value.code, output


def run_command(main: Callable, args: list, capsys) -> tuple[int, str, str]:
    """Run a command's `main(argv)` in this process: (exit status, stdout, stderr)."""
    try:
        main([str(a) for a in args])
        code = 0
    except SystemExit as exit_:
        code = exit_.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def run_python(args: list, timeout: float = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    """`python ARGS` in a new process, in the repository, one torch thread, `src` and `tests` importable
    (e.g. `["-m", "src.cli", "fit", ...]` or a script's path); output captured as text."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run(
        [sys.executable, *[str(a) for a in args]],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def error_lines(output: str) -> list[str]:
    """The `error:` lines of a command's output."""
    return [line for line in output.splitlines() if line.startswith("error:")]

"""Find a previous run's checkpoint for `--ckpt_path best` and `--ckpt_path last`."""

from __future__ import annotations

from pathlib import Path

import torch

from src.errors import UserInputError


def find_last_checkpoint(run_root: str | Path) -> Path:
    """The most recently written `last.ckpt` below `run_root` (the logger's folder of this experiment)."""
    candidates = sorted(Path(run_root).rglob("last.ckpt"), key=lambda p: p.stat().st_mtime)
    if not candidates:
        raise UserInputError(
            f"--ckpt_path: no last.ckpt under {run_root}; train first (fit) or pass a checkpoint file"
        )
    return candidates[-1]


def find_best_checkpoint(run_root: str | Path) -> Path:
    """The best checkpoint recorded by ModelCheckpoint in the newest `last.ckpt` below `run_root`."""
    last = find_last_checkpoint(run_root)
    state = torch.load(last, map_location="cpu", weights_only=True)
    for callback_state in state.get("callbacks", {}).values():
        best = callback_state.get("best_model_path") if isinstance(callback_state, dict) else None
        if best:  # the state of a ModelCheckpoint (or subclass) callback
            if not Path(best).is_file():
                raise UserInputError(f"--ckpt_path best: {best} (recorded in {last}) does not exist")
            return Path(best)
    raise UserInputError(f"--ckpt_path best: {last} records no best checkpoint; use last or a file")


def resolve_checkpoint(ckpt_path: str | None, run_root: str | Path) -> str | None:
    """Turn `best`/`last` into a file path under `run_root`; any other value is returned as is."""
    if ckpt_path == "last":
        return str(find_last_checkpoint(run_root))
    if ckpt_path == "best":
        return str(find_best_checkpoint(run_root))
    return ckpt_path

"""Checkpoints and output folders for the CLI: `--ckpt_path best|last`, checks before a run starts."""

from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path

import torch
from torch import nn

from src.errors import UserInputError
from src.models.loading import safe_load, state_dict_mismatch


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


def read_checkpoint(path: str | Path, weights_only: bool = True) -> dict:
    """Read a `--ckpt_path` file, memory-mapped (Lightning loads it again to restore it).

    Args:
        path: The file.
        weights_only: Load tensors and plain containers only, never code (`--weights_only false` allows a
            file you trust to hold other Python objects).

    Raises:
        UserInputError: The file is missing, unreadable (corrupt, truncated, not a torch file), holds
            Python objects, or is not a Lightning checkpoint (no `state_dict`), in one line naming it.
    """
    checkpoint = safe_load(
        path, "--ckpt_path", allow_pickle=not weights_only, opt_in="--weights_only false", mmap=True
    )
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise UserInputError(
            f"--ckpt_path: {path} is not a Lightning checkpoint (no state_dict); for weights saved with "
            "torch.save(network.state_dict()) use --model.init_args.backbone_weights"
        )
    return checkpoint


def check_checkpoint(
    checkpoint: dict, path: str | Path, model: nn.Module, class_names: list[str] | None = None
) -> None:
    """Check that `checkpoint` (read by `read_checkpoint`) is a training checkpoint of `model`: the same
    weights and shapes, the same classes.

    Runs before any training or evaluation starts, and turns every way the file can be wrong into one
    line naming it.

    Args:
        checkpoint: The content of the `--ckpt_path` file.
        path: The file, for the messages.
        model: The model the config builds; its state dict must match the checkpoint's.
        class_names: The datamodule's class names; the checkpoint's (saved in its hyperparameters) must
            be the same, in the same order, or its outputs would be read as the wrong classes.

    Raises:
        UserInputError: The checkpoint is of another network, or of other classes.
    """
    mismatch = state_dict_mismatch(model.state_dict(), checkpoint["state_dict"])
    if mismatch:
        raise UserInputError(
            f"--ckpt_path: {path} holds a different network than the config builds ({mismatch})"
        )
    saved = (checkpoint.get("hyper_parameters") or {}).get("class_names")
    if class_names is not None and saved is not None and list(saved) != list(class_names):
        raise UserInputError(
            f"--ckpt_path: {path} was trained on classes {_short(saved)}, the data has {_short(class_names)}"
        )


def _short(names: list[str], n: int = 5) -> str:
    """A list of names, cut after `n`."""
    shown = ", ".join(str(name) for name in list(names)[:n])
    return f"[{shown}{', ...' if len(names) > n else ''}] ({len(names)})"


def check_writable(folder: str | Path, what: str) -> None:
    """Check, before a run starts, that files can be written in `folder` (created if missing).

    Creates the folder, writes and removes a small probe file, so that a read-only or full disk, or a
    path through a file, stops the run at once with one line, not after the first epoch.

    Args:
        folder: The folder (logs or checkpoints).
        what: What the folder is for, named in the error, e.g. `trainer.logger.init_args.save_dir`.

    Raises:
        UserInputError: The folder cannot be created or written.
    """
    folder = Path(folder)
    probe = folder / f".write-test-{uuid.uuid4().hex}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with open(probe, "wb") as file:
            file.write(b"0" * 4096)
            file.flush()
            os.fsync(file.fileno())
    except OSError as err:
        raise UserInputError(f"{what}: cannot write in {folder}: {err.strerror or err}") from None
    finally:
        with contextlib.suppress(OSError):
            probe.unlink(missing_ok=True)

"""Checkpoints and output folders for the CLI: `--ckpt_path best|last`, checks before a run starts."""

from __future__ import annotations

import contextlib
import os
import pickle
import uuid
import zipfile
from pathlib import Path

import torch
from torch import nn

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


def read_checkpoint(path: str | Path, weights_only: bool = True) -> dict:
    """Read a `--ckpt_path` file as Lightning will (memory-mapped, so it costs little).

    Args:
        path: The file.
        weights_only: Load tensors and plain containers only, never code (`--weights_only false` allows a
            file you trust to hold other Python objects).

    Raises:
        UserInputError: The file is missing, unreadable (corrupt, truncated, not a torch file), holds
            Python objects, or is not a Lightning checkpoint (no `state_dict`), in one line naming it.
    """
    path = Path(path)
    if not path.is_file():
        raise UserInputError(f"--ckpt_path: {path} does not exist")
    with open(path, "rb") as file:
        is_zip = file.read(4) == b"PK\x03\x04"  # torch.save writes a zip archive (since torch 1.6)
    try:
        checkpoint = torch.load(
            path, map_location="cpu", weights_only=weights_only, mmap=zipfile.is_zipfile(path)
        )
    except (RuntimeError, pickle.UnpicklingError, EOFError, ValueError) as err:
        if not is_zip:
            raise UserInputError(
                f"--ckpt_path: {path} is not a checkpoint (not written by torch.save)"
            ) from None
        if "Weights only load failed" in str(err):
            raise UserInputError(
                f"--ckpt_path: {path} holds Python objects besides weights, which are not loaded by default "
                "(they can run code); if you trust the file, add --weights_only false"
            ) from None
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0].split(". ")[0]
        raise UserInputError(
            f"--ckpt_path: {path} is not a readable checkpoint (corrupt or truncated?): {reason}"
        ) from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise UserInputError(
            f"--ckpt_path: {path} is not a Lightning checkpoint (no state_dict); for weights saved with "
            "torch.save(network.state_dict()) use --model.init_args.backbone_weights"
        )
    return checkpoint


def check_checkpoint(
    path: str | Path, model: nn.Module, class_names: list[str] | None = None, weights_only: bool = True
) -> None:
    """Check that `path` is a training checkpoint of `model` (same weights and shapes, same classes).

    Runs before any training or evaluation starts, and turns every way the file can be wrong into one
    line naming it.

    Args:
        path: The `--ckpt_path` file.
        model: The model the config builds; its state dict must match the checkpoint's.
        class_names: The datamodule's class names; the checkpoint's (saved in its hyperparameters) must
            be the same, in the same order, or its outputs would be read as the wrong classes.
        weights_only: See `read_checkpoint`.

    Raises:
        UserInputError: The file is missing, unreadable, not a Lightning checkpoint, of another network,
            or of other classes.
    """
    checkpoint = read_checkpoint(path, weights_only)
    expected = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    found = {name: tuple(t.shape) for name, t in checkpoint["state_dict"].items()}
    missing, unexpected = sorted(expected.keys() - found.keys()), sorted(found.keys() - expected.keys())
    reshaped = sorted(name for name in expected.keys() & found.keys() if expected[name] != found[name])
    if missing or unexpected or reshaped:
        details = [f"missing {n}" for n in missing[:1]] + [f"unexpected {n}" for n in unexpected[:1]]
        details += [f"{n} is {list(found[n])} there, {list(expected[n])} here" for n in reshaped[:1]]
        raise UserInputError(
            f"--ckpt_path: {path} holds a different network than the config builds "
            f"({len(missing)} missing, {len(unexpected)} unexpected, {len(reshaped)} differently shaped "
            f"weights; {'; '.join(details)})"
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

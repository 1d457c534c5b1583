"""Checkpoints for the CLI: `--ckpt_path best|last`, and checks of a `--ckpt_path` file before a run."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from src.errors import UserInputError, short_list
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
    state = safe_load(last, "--ckpt_path best", mmap=True)
    callbacks = state.get("callbacks") if isinstance(state, dict) else None
    for callback_state in (callbacks if isinstance(callbacks, dict) else {}).values():
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
        weights_only: See `safe_load` (`--weights_only false` on the command line).

    Raises:
        UserInputError: The file is missing, unreadable (corrupt, truncated, not a torch file), holds
            Python objects, or is not a Lightning checkpoint (no `state_dict`), in one line naming it.
    """
    checkpoint = safe_load(path, "--ckpt_path", weights_only, opt_in="--weights_only false", mmap=True)
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
            f"--ckpt_path: {path} was trained on classes [{short_list(saved, 5)}], "
            f"the data has [{short_list(class_names, 5)}]"
        )

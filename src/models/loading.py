"""Load weights and checkpoints safely: `torch.load(..., weights_only=True)`, so no pickled code runs.

`load_weights` fills a plain network from a state dict file (`torch.save(net.state_dict(), path)`), one
saved from `nn.DataParallel` / `DistributedDataParallel` (keys prefixed `module.`) or from a
`torch.compile`d network (`_orig_mod.`), or a Lightning checkpoint of `ImageClassifier` (its
`state_dict`, keys prefixed `backbone.`). `load_classifier` rebuilds the `ImageClassifier` of a
checkpoint (prediction, export). Anything that does not fit is a one-line `UserInputError` naming the file.

A legacy file that holds pickled Python objects, such as a whole model saved with `torch.save(model)`,
is refused unless the caller opts in with `allow_pickle=True` (`--allow-pickle` on the command line):
unpickling can run any code, so only do that for files you trust.
"""

from __future__ import annotations

import io
import os
import re
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.nn.modules.utils import consume_prefix_in_state_dict_if_present

from src.errors import UserInputError, find_user_error, one_line

if TYPE_CHECKING:
    from src.models.classifier import ImageClassifier

#: Prefixes that wrappers add to every key: Lightning's `ImageClassifier`, (Distributed)DataParallel,
#: `torch.compile`. Each is removed when every key of the file has it and the network's keys do not.
WRAPPER_PREFIXES = ("backbone.", "module.", "_orig_mod.")

#: How many key names an error message lists before "...".
SHOWN_KEYS = 3


def _key_list(keys: list[str]) -> str:
    shown = ", ".join(keys[:SHOWN_KEYS])
    more = f", ... ({len(keys)} in all)" if len(keys) > SHOWN_KEYS else ""
    return f"{shown}{more}"


def _check_file(path: Path, label: str) -> None:
    if not path.exists():
        raise UserInputError(f"{label}: file {path} not found")
    if not path.is_file():
        raise UserInputError(f"{label}: {path} is not a file")
    if path.stat().st_size == 0:
        raise UserInputError(f"{label}: {path} is empty (0 bytes)")
    if not os.access(path, os.R_OK):
        raise UserInputError(f"{label}: cannot read {path} (permission denied)")


def safe_load(
    path: str | os.PathLike,
    label: str = "weights",
    allow_pickle: bool = False,
    opt_in: str = "",
    mmap: bool = False,
):
    """What `torch.load` finds in `path`, read weights-only unless `allow_pickle` (on the CPU).

    Args:
        path: The file.
        label: How error messages start, e.g. the config key or argument the path came from.
        allow_pickle: Also unpickle Python objects (`weights_only=False`); only for files you trust.
        opt_in: How the user passes `allow_pickle` (e.g. `--allow-pickle`), for the error message.
        mmap: Memory-map the file instead of reading it (a quick look at a file loaded again later).

    Raises:
        UserInputError: The file is missing, empty, corrupt, not written by `torch.save`, or holds pickled
            Python objects and `allow_pickle` is False (one line naming the file).
    """
    path = Path(path).expanduser()
    _check_file(path, label)
    with open(path, "rb") as file:
        is_zip = file.read(4) == b"PK\x03\x04"  # what torch.save writes (since torch 1.6), even if cut short
    try:
        return torch.load(path, map_location="cpu", weights_only=not allow_pickle, mmap=mmap and is_zip)
    except Exception as err:
        # "Unsupported global: GLOBAL x.Y was not an allowed global", "unsupported GLOBAL os.system whose ..."
        unsafe = re.search(r"GLOBAL (\S+)", str(err))
        if unsafe:
            hint = f"; {opt_in} loads it if you trust the file" if opt_in else ""
            reason = (
                f"it holds pickled Python objects ({unsafe.group(1)}), e.g. a whole model saved with "
                "`torch.save(model)`, which are not loaded because unpickling can run code; "
                f"save `model.state_dict()` instead{hint}"
            )
        elif not is_zip:
            reason = "not a PyTorch file (not written by torch.save)"
        else:  # the weights-only unpickler's own message is short; torch's wrapper around it is not
            cause = err.__context__ if "Weights only load failed" in str(err) and err.__context__ else err
            first = one_line(cause).split(". ")[0]  # torch's zip-reader errors go on for several sentences
            reason = f"a damaged PyTorch file, corrupt or truncated? ({type(cause).__name__}: {first})"
        raise UserInputError(f"{label}: cannot load {path}: {reason}") from err


def read_state_dict(
    path: str | os.PathLike, label: str = "weights", allow_pickle: bool = False, opt_in: str = ""
) -> dict[str, torch.Tensor]:
    """The state dict in `path` (itself, a checkpoint's `state_dict`, or a pickled model's with
    `allow_pickle`), never running pickled code unless `allow_pickle`.

    Args:
        path: The file.
        label: What error messages call it, e.g. the config key it came from.
        allow_pickle: See `safe_load`.
        opt_in: See `safe_load`.

    Raises:
        UserInputError: The file is missing, unreadable, or holds something other than weights.
    """
    path = Path(path).expanduser()
    state = safe_load(path, label, allow_pickle, opt_in)
    if isinstance(state, nn.Module):  # only reachable with allow_pickle
        state = state.state_dict()
    if isinstance(state, Mapping) and isinstance(state.get("state_dict"), Mapping):
        state = state["state_dict"]  # a Lightning (or similar) checkpoint
    if not isinstance(state, Mapping) or not all(isinstance(k, str) for k in state):
        kind = type(state).__name__
        raise UserInputError(f"{label}: cannot load {path}: it holds a {kind}, not a state dict")
    if not any(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserInputError(f"{label}: cannot load {path}: it holds a dict of no tensors, not a state dict")
    return state if isinstance(state, dict) else dict(state)


def strip_wrapper_prefixes(state: dict[str, torch.Tensor], network: nn.Module) -> dict[str, torch.Tensor]:
    """`state` without the key prefixes of the wrappers in `WRAPPER_PREFIXES` (in place, and returned).

    A prefix is removed only when every key has it (so a file with other keys too is reported, not
    silently half-loaded) and the network's own keys do not.
    """
    expected = set(network.state_dict())
    for prefix in WRAPPER_PREFIXES:
        if any(key.startswith(prefix) for key in expected):
            continue  # the network's own keys have it: keep it
        if state and all(key.startswith(prefix) for key in state):
            consume_prefix_in_state_dict_if_present(state, prefix)
    return state


def state_dict_mismatch(expected: Mapping[str, torch.Tensor], found: Mapping[str, torch.Tensor]) -> str:
    """What keeps `found` from loading where `expected` is: the missing and unexpected keys and the shape
    mismatches, a few of each ("" when they fit).

    >>> network, file = {"w": torch.zeros(2), "b": torch.zeros(1)}, {"w": torch.zeros(3), "x": torch.zeros(1)}
    >>> state_dict_mismatch(network, file)
    'missing keys: b; unexpected keys: x; shape mismatches: w (3,) in the file vs (2,) in the network'
    """
    missing = [k for k in expected if k not in found]
    unexpected = [k for k in found if k not in expected]
    mismatched = [
        f"{k} {tuple(found[k].shape)} in the file vs {tuple(v.shape)} in the network"
        for k, v in expected.items()
        if k in found and isinstance(found[k], torch.Tensor) and found[k].shape != v.shape
    ]
    problems = [
        f"{what}: {_key_list(keys)}"
        for what, keys in (
            ("missing keys", missing),
            ("unexpected keys", unexpected),
            ("shape mismatches", mismatched),
        )
        if keys
    ]
    return "; ".join(problems)


def load_state_checked(network: nn.Module, state: Mapping[str, torch.Tensor], what: str) -> None:
    """`network.load_state_dict(state)` when every key matches with the same shape, else one line saying
    `what` does not fit, listing the missing and unexpected keys and the shape mismatches.

    Args:
        network: The network to fill in.
        state: Its weights, keys as in `network.state_dict()`.
        what: The start of the error message, e.g. `model.backbone_weights: w.pth does not fit ConvNet`.
    """
    mismatch = state_dict_mismatch(network.state_dict(), state)
    if mismatch:
        raise UserInputError(f"{what} ({mismatch})")
    try:
        network.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise UserInputError(f"{what} ({one_line(err)})") from err


def load_weights(
    network: nn.Module,
    path: str | os.PathLike,
    label: str = "weights",
    network_name: str | None = None,
    allow_pickle: bool = False,
) -> None:
    """Load the weights stored in `path` into `network` (every key must match, with the same shape).

    >>> import tempfile
    >>> net, saved = nn.Linear(2, 3), nn.DataParallel(nn.Linear(2, 3))
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     torch.save(saved.state_dict(), f"{folder}/w.pth")  # keys `module.weight`, `module.bias`
    ...     load_weights(net, f"{folder}/w.pth")
    >>> torch.equal(net.weight, saved.module.weight)
    True

    Args:
        network: The network to fill in.
        path: A state dict saved with `torch.save`, with or without a `module.` prefix, or a Lightning
            checkpoint whose `state_dict` has the network's keys under `backbone.`.
        label: How error messages start, e.g. the config key the path came from.
        network_name: How error messages name the network (default: its class name).
        allow_pickle: Also accept a file of pickled Python objects, e.g. a whole model saved with
            `torch.save(model)` (its `state_dict()` is loaded). Unpickling runs code from the file: only
            for files you trust. Default False: such a file is refused with a one-line error.

    Raises:
        UserInputError: One line naming the file: it cannot be read safely, or its keys or shapes do not
            match the network's (missing and unexpected keys and shape mismatches are listed).
    """
    path = Path(path).expanduser()
    name = network_name or type(network).__name__
    opt_in = "allow_pickle=True" if not allow_pickle else ""
    state = strip_wrapper_prefixes(read_state_dict(path, label, allow_pickle, opt_in), network)
    load_state_checked(network, state, f"{label}: {path} does not fit {name}")


def load_classifier(
    checkpoint: str | os.PathLike,
    device: str | torch.device = "cpu",
    allow_pickle: bool = False,
    label: str = "CHECKPOINT",
) -> ImageClassifier:
    """The `ImageClassifier` of a checkpoint written by training, in eval mode on `device`.

    The network is rebuilt from the class path and arguments in the checkpoint's hyperparameters
    (Lightning only instantiates already-imported subclasses), then its weights are loaded; the file
    is read weights-only, so no pickled code runs.

    Args:
        checkpoint: A `.ckpt` file written by `python -m src.cli fit`.
        device: Where the model goes.
        allow_pickle: Also accept files of pickled Python objects (only for files you trust): a
            checkpoint of a model built in Python around a network object, or a whole `ImageClassifier`
            saved with `torch.save(model)`.
        label: How error messages start (the argument or key that named the file).

    Raises:
        UserInputError: One line naming the file: missing, empty, corrupt, not a checkpoint of
            `ImageClassifier`, pickled objects without `allow_pickle`, or weights of another network
            (missing/unexpected keys and shape mismatches listed).
    """
    from src.models.classifier import ImageClassifier  # here: classifier.py imports this module

    path = Path(checkpoint).expanduser()
    content = safe_load(path, label, allow_pickle, opt_in="--allow-pickle")
    if isinstance(content, ImageClassifier):  # a whole pickled model (allow_pickle only)
        return content.to(device).eval()
    not_ours = f"{label}: {path} is not a checkpoint of this project's ImageClassifier"
    if isinstance(content, nn.Module):
        raise UserInputError(f"{not_ours} (it holds a pickled {type(content).__name__})")
    if not isinstance(content, Mapping) or not isinstance(content.get("state_dict"), Mapping):
        kind = (
            "a state dict of weights only" if isinstance(content, Mapping) else f"a {type(content).__name__}"
        )
        raise UserInputError(
            f"{not_ours} (it holds {kind}; a network's weights go in `model.backbone_weights` for training)"
        )
    if "hyper_parameters" not in content:
        raise UserInputError(f"{not_ours} (it has no hyperparameters to rebuild the network from)")
    # Rebuild the model from the hyperparameters alone, then check the weights fit before loading them,
    # so that a mismatch is reported as lists of keys instead of torch's page-long message.
    skeleton = {k: v for k, v in content.items() if k not in ("state_dict", "optimizer_states")}
    buffer = io.BytesIO()
    torch.save({**skeleton, "state_dict": {}}, buffer)
    buffer.seek(0)
    try:
        with warnings.catch_warnings():
            # Lightning warns that the (empty) state dict lacks the model's keys: they are loaded below.
            warnings.simplefilter("ignore")
            # `backbone_weights` only initialised the network before training; the checkpoint has the weights.
            model = ImageClassifier.load_from_checkpoint(
                buffer, map_location="cpu", strict=False, weights_only=not allow_pickle, backbone_weights=None
            )
    except Exception as err:
        user_error = find_user_error(err)
        reason = str(user_error) if user_error is not None else f"{type(err).__name__}: {one_line(err)}"
        raise UserInputError(f"{not_ours} (cannot rebuild the model from it: {reason})") from err
    network = type(model.backbone).__name__
    load_state_checked(model, content["state_dict"], f"{label}: {path}: its weights do not fit its {network}")
    return model.to(device).eval()

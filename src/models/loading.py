"""Load weights and checkpoints safely: `torch.load(..., weights_only=True)`, so no pickled code runs.

`load_weights` fills a plain network from a state dict file (`torch.save(net.state_dict(), path)`), one
saved from `nn.DataParallel` / `DistributedDataParallel` (keys prefixed `module.`) or from a
`torch.compile`d network (`_orig_mod.`), or a Lightning checkpoint of `ImageClassifier` (its
`state_dict`, keys prefixed `backbone.`). `ImageClassifier.from_checkpoint` rebuilds a whole trained model
from a checkpoint with these functions. Anything that does not fit is a one-line `UserInputError` naming
the file. Every file is read by `safe_load`, whose docstring says what `weights_only` allows.

A leaf module: it imports torch, not Lightning, and no other part of this template but `src.errors`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn
from torch.nn.modules.utils import consume_prefix_in_state_dict_if_present

from src.errors import UserInputError, one_line, short_list

#: Prefixes that wrappers add to every key: Lightning's `ImageClassifier`, (Distributed)DataParallel,
#: `torch.compile`. Each is removed when every key of the file has it and the network's keys do not.
WRAPPER_PREFIXES = ("backbone.", "module.", "_orig_mod.")

#: How many key names an error message lists before "...".
SHOWN_KEYS = 3


def _check_file(path: Path, key: str) -> None:
    if not path.exists():
        raise UserInputError(f"{key}: file {path} not found")
    if not path.is_file():
        raise UserInputError(f"{key}: {path} is not a file")
    if path.stat().st_size == 0:
        raise UserInputError(f"{key}: {path} is empty (0 bytes)")
    if not os.access(path, os.R_OK):
        raise UserInputError(f"{key}: cannot read {path} (permission denied)")


def safe_load(
    path: str | os.PathLike,
    key: str = "weights",
    weights_only: bool = True,
    opt_in: str = "",
    mmap: bool = False,
):
    """What `torch.load` finds in `path`, on the CPU, read weights-only unless told otherwise.

    `weights_only=True` (torch's and Lightning's name, the default everywhere in this template) loads
    tensors and plain Python values only. A legacy file of pickled Python objects, such as a whole model
    saved with `torch.save(model)`, is then refused with a one-line error, because unpickling can run any
    code. `weights_only=False` loads such a file: only do that for files you trust. Every command of
    this template that reads a checkpoint passes its own opt-out here (`--weights_only false` for the
    CLI, `--no-weights-only` for `src.predict` and `src.export`).

    Args:
        path: The file.
        key: The option the path came from, which error messages start with.
        weights_only: Refuse pickled Python objects (see above).
        opt_in: How the user turns `weights_only` off, named in the error message.
        mmap: Memory-map the file instead of reading it (a quick look at a file loaded again later).

    Raises:
        UserInputError: The file is missing, empty, corrupt, not written by `torch.save`, or holds pickled
            Python objects while `weights_only` (one line naming the file).
    """
    path = Path(path).expanduser()
    _check_file(path, key)
    with open(path, "rb") as file:
        is_zip = file.read(4) == b"PK\x03\x04"  # what torch.save writes (since torch 1.6), even if cut short
    try:
        return torch.load(path, map_location="cpu", weights_only=weights_only, mmap=mmap and is_zip)
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
        raise UserInputError(f"{key}: cannot load {path}: {reason}") from err


def read_state_dict(
    path: str | os.PathLike, key: str = "weights", weights_only: bool = True, opt_in: str = ""
) -> dict[str, torch.Tensor]:
    """The state dict in `path`: itself, a checkpoint's `state_dict`, or a pickled model's (only without
    `weights_only`, see `safe_load`).

    Args:
        path: The file.
        key: The option the path came from, for error messages.
        weights_only: See `safe_load`.
        opt_in: See `safe_load`.

    Raises:
        UserInputError: The file is missing, unreadable, or holds something other than weights.
    """
    path = Path(path).expanduser()
    state = safe_load(path, key, weights_only, opt_in)
    if isinstance(state, nn.Module):  # only reachable without weights_only
        state = state.state_dict()
    if isinstance(state, Mapping) and isinstance(state.get("state_dict"), Mapping):
        state = state["state_dict"]  # a Lightning (or similar) checkpoint
    if not isinstance(state, Mapping) or not all(isinstance(k, str) for k in state):
        kind = type(state).__name__
        raise UserInputError(f"{key}: cannot load {path}: it holds a {kind}, not a state dict")
    if not any(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserInputError(f"{key}: cannot load {path}: it holds a dict of no tensors, not a state dict")
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
        f"{kind}: {short_list(keys, limit=SHOWN_KEYS)}"
        for kind, keys in (
            ("missing keys", missing),
            ("unexpected keys", unexpected),
            ("shape mismatches", mismatched),
        )
        if keys
    ]
    return "; ".join(problems)


def load_state_checked(network: nn.Module, state: Mapping[str, torch.Tensor], message: str) -> None:
    """`network.load_state_dict(state)` when every key matches with the same shape, else one line: `message`,
    then the missing and unexpected keys and the shape mismatches.

    Args:
        network: The network to fill in.
        state: Its weights, keys as in `network.state_dict()`.
        message: The start of the error message, e.g. `model.backbone_weights: w.pth does not fit ConvNet`.
    """
    mismatch = state_dict_mismatch(network.state_dict(), state)
    if mismatch:
        raise UserInputError(f"{message} ({mismatch})")
    try:
        network.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise UserInputError(f"{message} ({one_line(err)})") from err


def load_weights(
    network: nn.Module,
    path: str | os.PathLike,
    key: str = "weights",
    network_name: str | None = None,
    weights_only: bool = True,
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
        key: The option the path came from, which error messages start with.
        network_name: How error messages name the network (default: its class name).
        weights_only: See `safe_load`; with False, a whole pickled model's `state_dict()` is loaded.

    Raises:
        UserInputError: One line naming the file: it cannot be read safely, or its keys or shapes do not
            match the network's (missing and unexpected keys and shape mismatches are listed).
    """
    path = Path(path).expanduser()
    name = network_name or type(network).__name__
    opt_in = "weights_only=False" if weights_only else ""
    state = strip_wrapper_prefixes(read_state_dict(path, key, weights_only, opt_in), network)
    load_state_checked(network, state, f"{key}: {path} does not fit {name}")

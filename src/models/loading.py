"""Load weights saved elsewhere into a plain network, safely (`torch.load(..., weights_only=True)`).

`load_weights` accepts a plain state dict (`torch.save(net.state_dict(), path)`), one saved from
`nn.DataParallel` / `DistributedDataParallel` (keys prefixed `module.`) or from a `torch.compile`d
network (`_orig_mod.`), and a Lightning checkpoint of `ImageClassifier` (its `state_dict`, keys
prefixed `backbone.`). Anything that does not fit is a one-line `UserInputError` naming the file.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn
from torch.nn.modules.utils import consume_prefix_in_state_dict_if_present

from src.errors import UserInputError

#: Prefixes that wrappers add to every key: Lightning's `ImageClassifier`, (Distributed)DataParallel,
#: `torch.compile`. Each is removed when every key of the file has it and the network's keys do not.
WRAPPER_PREFIXES = ("backbone.", "module.", "_orig_mod.")

#: How many key names an error message lists before "...".
SHOWN_KEYS = 3


def _one_line(err: BaseException) -> str:
    text = str(err) or type(err).__name__
    return " ".join(text.split())


def _key_list(keys: list[str]) -> str:
    shown = ", ".join(keys[:SHOWN_KEYS])
    more = f", ... ({len(keys)} in all)" if len(keys) > SHOWN_KEYS else ""
    return f"{shown}{more}"


def read_state_dict(path: str | os.PathLike, label: str = "weights") -> dict[str, torch.Tensor]:
    """The state dict in `path` (itself, or a checkpoint's `state_dict`), never running pickled code.

    Args:
        path: The file.
        label: What error messages call it, e.g. the config key it came from.

    Raises:
        UserInputError: The file is missing, unreadable, or holds something other than weights.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise UserInputError(f"{label}: file {path} not found")
    if not path.is_file():
        raise UserInputError(f"{label}: {path} is not a file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        unsafe = re.search(r"Unsupported global: GLOBAL (\S+)", str(err))
        if unsafe:
            reason = (
                f"it holds pickled Python objects ({unsafe.group(1)}), e.g. a whole model saved with "
                "`torch.save(model)`, which are not loaded because unpickling can run code; "
                "save `model.state_dict()` instead"
            )
        else:  # the weights-only unpickler's own message is short; torch's wrapper around it is not
            reason = f"not a PyTorch weights file ({_one_line(err.__context__ or err)})"
        raise UserInputError(f"{label}: cannot load {path}: {reason}") from err
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


def load_weights(
    network: nn.Module, path: str | os.PathLike, label: str = "weights", network_name: str | None = None
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

    Raises:
        UserInputError: One line naming the file: it cannot be read safely, or its keys or shapes do not
            match the network's (missing and unexpected keys and shape mismatches are listed).
    """
    path = Path(path).expanduser()
    name = network_name or type(network).__name__
    state = strip_wrapper_prefixes(read_state_dict(path, label), network)
    expected = network.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    mismatched = [
        f"{k} {tuple(state[k].shape)} in the file vs {tuple(v.shape)} in the network"
        for k, v in expected.items()
        if k in state and isinstance(state[k], torch.Tensor) and state[k].shape != v.shape
    ]
    problems = []
    if missing:
        problems.append(f"missing keys: {_key_list(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {_key_list(unexpected)}")
    if mismatched:
        problems.append(f"shape mismatches: {_key_list(mismatched)}")
    if problems:
        raise UserInputError(f"{label}: {path} does not fit {name} ({'; '.join(problems)})")
    try:
        network.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise UserInputError(f"{label}: {path} does not fit {name} ({_one_line(err)})") from err

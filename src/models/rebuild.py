"""Rebuild a trained system from a checkpoint file alone, with every way the file can be wrong as one line.

Behind `ImageClassifier.from_checkpoint` (prediction, export, serving); kept apart from the
LightningModule so that it stays short.
"""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import TypeVar

import torch
from lightning import LightningModule
from torch import nn

from src.errors import UserInputError, find_user_error, one_line
from src.models.loading import load_state_checked, safe_load

System = TypeVar("System", bound=LightningModule)

#: Parts of a checkpoint that rebuilding the model does not need (weights are loaded after it; the
#: averaging callbacks keep the training weights and their state beside the averaged `state_dict`).
SKIPPED = ("state_dict", "optimizer_states", "current_model_state", "averaging_state")


def rebuild_from_checkpoint(
    cls: type[System],
    checkpoint: str | os.PathLike,
    device: str | torch.device = "cpu",
    weights_only: bool = True,
    key: str = "CHECKPOINT",
) -> System:
    """The `cls` model of a checkpoint file, in eval mode on `device` (see `ImageClassifier.from_checkpoint`).

    The network is rebuilt from the class path and arguments in the checkpoint's hyperparameters (Lightning
    only instantiates already-imported subclasses), its weights are checked against the network
    (missing/unexpected keys and shape mismatches listed), then loaded.
    """
    path = Path(checkpoint).expanduser()
    content = safe_load(path, key, weights_only, opt_in="--no-weights-only")
    if isinstance(content, cls):  # a whole pickled model (only without weights_only)
        return content.to(device).eval()
    not_ours = f"{key}: {path} is not a checkpoint of this project's {cls.__name__}"
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
    # Rebuild the model from the hyperparameters alone, then check the weights fit before loading
    # them, so that a mismatch is reported as lists of keys instead of torch's page-long message.
    skeleton = {k: v for k, v in content.items() if k not in SKIPPED}
    buffer = io.BytesIO()
    torch.save({**skeleton, "state_dict": {}}, buffer)
    buffer.seek(0)
    try:
        with warnings.catch_warnings():
            # Lightning warns that the (empty) state dict lacks the model's keys: they are loaded below.
            warnings.simplefilter("ignore")
            # `backbone_weights` only initialised the network before training; the checkpoint has them.
            model = cls.load_from_checkpoint(
                buffer, map_location="cpu", strict=False, weights_only=weights_only, backbone_weights=None
            )
    except Exception as err:
        user_error = find_user_error(err)
        reason = str(user_error) if user_error is not None else f"{type(err).__name__}: {one_line(err)}"
        raise UserInputError(f"{not_ours} (cannot rebuild the model from it: {reason})") from err
    network = type(getattr(model, "backbone", model)).__name__
    message = f"{key}: {path}: its weights do not fit its {network}"
    load_state_checked(model, content["state_dict"], message)
    return model.to(device).eval()

"""LightningModules ("systems"): training logic around the plain networks of `src.models.components`.

`ImageClassifier` is imported on first use (PEP 562 `__getattr__`), so that importing a plain network
(`src.models.components.*`), which imports this package first, does not import Lightning. Checkpoints
name the class as `src.models.ImageClassifier`, which keeps working.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from src.models.param_groups import ParamGroup

if TYPE_CHECKING:
    from src.models.classifier import ImageClassifier

__all__ = ["ImageClassifier", "ParamGroup"]


def __getattr__(name: str):
    if name == "ImageClassifier":
        return importlib.import_module("src.models.classifier").ImageClassifier
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

"""LightningModules ("systems"): training logic around the plain networks of `src.models.components`."""

from src.models.classifier import ImageClassifier
from src.models.param_groups import ParamGroup

__all__ = ["ImageClassifier", "ParamGroup"]

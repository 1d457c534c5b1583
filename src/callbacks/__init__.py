"""Lightning callbacks used by the default trainer."""

from src.callbacks.checkpoint import Checkpoint
from src.callbacks.finetuning import UnfreezeAtEpoch
from src.callbacks.image_grid import SampleImageGrid

__all__ = ["Checkpoint", "SampleImageGrid", "UnfreezeAtEpoch"]

"""Lightning callbacks used by the default trainer."""

from src.callbacks.image_grid import SampleImageGrid

__all__ = ["SampleImageGrid"]

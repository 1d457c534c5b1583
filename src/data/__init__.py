"""LightningDataModules: `VisionDataModule` is the base, each dataset a thin subclass of it."""

from src.data.base import VisionDataModule
from src.data.fashion_mnist import FashionMNISTDataModule

__all__ = ["FashionMNISTDataModule", "VisionDataModule"]

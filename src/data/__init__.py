"""LightningDataModules: `VisionDataModule` is the base, each dataset a thin subclass of it."""

from src.data.base import VisionDataModule
from src.data.cifar10 import CIFAR10DataModule
from src.data.csv_images import CSVImageDataModule, CSVImageDataset
from src.data.datasets import ImageFilesDataset, TensorImageDataset
from src.data.fashion_mnist import FashionMNISTDataModule
from src.data.image_files import ImageFilesDataModule
from src.data.image_folder import ImageFolderDataModule
from src.data.images import load_image
from src.data.in_memory import InMemoryVisionDataModule
from src.data.statistics import channel_mean_std

__all__ = [
    "CIFAR10DataModule",
    "CSVImageDataModule",
    "CSVImageDataset",
    "FashionMNISTDataModule",
    "ImageFilesDataModule",
    "ImageFilesDataset",
    "InMemoryVisionDataModule",
    "TensorImageDataset",
    "ImageFolderDataModule",
    "VisionDataModule",
    "channel_mean_std",
    "load_image",
]

"""Images in one sub-folder per class, read by torchvision's `ImageFolder`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from torchvision.datasets import ImageFolder
from torchvision.datasets.folder import find_classes

from src.data.image_files import ImageFilesDataModule, name_list
from src.errors import UserInputError


class ImageFolderDataModule(ImageFilesDataModule):
    """Images in one sub-folder per class (`root/cat/001.png`, `root/dog/002.jpg`), any size and mode.

    The class names are the sub-folder names, sorted (as `ImageFolder` numbers them); they are read when
    the datamodule is created, so the CLI can link them. Validation images come from `val_root`, else from
    a seeded split of `root` (`val_size`); test and predict need `test_root`. Those folders must have the
    same class sub-folders as `root`, so the label ids agree.

    Args:
        root: Folder of the training images, one sub-folder per class.
        val_root: Folder of the validation images; default: split off `root`.
        test_root: Folder of the test images (for `test` and `predict`).
        **kwargs: See `ImageFilesDataModule` (channels, image_size, mean, std, val_size) and
            `VisionDataModule` (batch_size, num_workers, augment, train_transform, seed, ...).
    """

    def __init__(
        self,
        root: str,
        val_root: str | None = None,
        test_root: str | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.root = root
        self.val_root = val_root
        self.test_root = test_root
        for key in ("root", "val_root", "test_root"):
            folder = getattr(self, key)
            if folder is not None and not Path(folder).is_dir():
                raise UserInputError(f"data.{key}: folder {folder} not found")
        self.class_names = self._classes("root")

    def _classes(self, key: str) -> list[str]:
        folder = getattr(self, key)
        try:
            return find_classes(folder)[0]
        except FileNotFoundError as err:
            raise UserInputError(
                f"data.{key}: no class sub-folders in {folder} (it needs one folder of images per class)"
            ) from err

    def _dataset(self, key: str, transform: Callable) -> ImageFolder:
        folder = getattr(self, key)
        if key != "root" and (classes := self._classes(key)) != self.class_names:
            raise UserInputError(
                f"data.{key}: the class folders of {folder} ({name_list(classes)}) differ from "
                f"those of data.root ({name_list(self.class_names)})"
            )
        try:
            return ImageFolder(folder, transform=transform, loader=self.loader)
        except FileNotFoundError as err:
            raise UserInputError(f"data.{key}: {folder}: {err}") from err

    def make_dataset(self, train: bool, transform: Callable) -> ImageFolder:
        if train:
            return self._dataset("root", transform)
        if self.test_root is None:
            raise UserInputError("data.test_root is not set: give a folder of test images to test or predict")
        return self._dataset("test_root", transform)

    def make_val_dataset(self, transform: Callable) -> ImageFolder | None:
        return None if self.val_root is None else self._dataset("val_root", transform)

"""Images in one sub-folder per class, read by torchvision's `ImageFolder`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from torchvision.datasets import ImageFolder
from torchvision.datasets.folder import IMG_EXTENSIONS, find_classes, make_dataset

from src.data.image_files import ImageFilesDataModule
from src.errors import UserInputError, problems_error, short_list


class ImageFolderDataModule(ImageFilesDataModule):
    """Images in one sub-folder per class (`root/cat/001.png`, `root/dog/002.jpg`), any size and mode.

    The class names are the sub-folder names, sorted (as `ImageFolder` numbers them); they are read when
    the datamodule is created, so the CLI can link them. Validation images come from `val_root`, else from
    a seeded split of `root` (`val_size`); test and predict need `test_root`. Those folders must have the
    same class sub-folders as `root`, so the label ids agree.

    All the folders given are checked when the datamodule is created, before training starts or any log
    file is written, and every problem is reported in one error: a folder without class sub-folders, class
    folders without image files, at least 2 classes in `root`, the same classes in every folder.

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
        problems: list[str] = []
        classes = {key: self._check_folder(key, problems) for key in ("root", "val_root", "test_root")}
        root_classes = classes["root"] or []
        if 0 < len(root_classes) < 2:
            problems.append(
                f"data.root: needs at least 2 class folders, found {len(root_classes)} "
                f"({short_list(root_classes, quote=True)}) in {root}"
            )
        for key in ("val_root", "test_root"):
            key_classes = classes[key]
            if key_classes and root_classes and key_classes != root_classes:
                problems.append(
                    f"data.{key}: the class folders of {getattr(self, key)} "
                    f"({short_list(key_classes, quote=True)}) "
                    f"differ from those of data.root ({short_list(root_classes, quote=True)})"
                )
        if problems:
            raise problems_error("the image folders", problems)
        self.class_names = root_classes

    def _check_folder(self, key: str, problems: list[str]) -> list[str] | None:
        """The class sub-folders of the folder `key` names (None when unset); adds problems to `problems`."""
        folder = getattr(self, key)
        if folder is None:
            return None
        try:
            classes, class_to_idx = find_classes(folder)
        except FileNotFoundError:
            problems.append(
                f"data.{key}: no class sub-folders in {folder} (it needs one folder of images per class)"
            )
            return []
        samples = make_dataset(folder, class_to_idx, extensions=IMG_EXTENSIONS, allow_empty=True)
        empty = sorted(set(classes) - {classes[label] for _, label in samples})
        if empty:
            problems.append(
                f"data.{key}: no image files in the class folders {short_list(empty, quote=True)} "
                f"of {folder} "
                f"(image files end in {', '.join(IMG_EXTENSIONS)})"
            )
        return classes

    def _dataset(self, key: str, transform: Callable) -> ImageFolder:
        return ImageFolder(getattr(self, key), transform=transform, loader=self.loader)

    def make_dataset(self, train: bool, transform: Callable) -> ImageFolder:
        if train:
            return self._dataset("root", transform)
        if self.test_root is None:
            raise UserInputError("data.test_root is not set: give a folder of test images to test or predict")
        return self._dataset("test_root", transform)

    @property
    def has_test_split(self) -> bool:
        """Whether `test_root` is set."""
        return self.test_root is not None

    def make_val_dataset(self, transform: Callable) -> ImageFolder | None:
        return None if self.val_root is None else self._dataset("val_root", transform)

"""Images listed in CSV files (image path, label): the custom `Dataset` of the PyTorch tutorials, and its
datamodule.

The CSV files are read and checked once, when the dataset or datamodule is created (before any training,
before any log file), and every problem found is reported in one error (see `src.data.csv_lists`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from lightning.pytorch.utilities import rank_zero_warn

from src.data.csv_lists import EXAMPLES, ImageList, read_image_lists
from src.data.datasets import ImageFilesDataset
from src.data.decode import Decoder, image_loader
from src.data.image_files import ImageFilesDataModule
from src.errors import UserInputError, count, short_list


def drop_unreadable(
    images: ImageList,
    channels: int = 3,
    errors: dict[str, str | None] | None = None,
    decoder: Decoder = "pil",
) -> ImageList:
    """The images that can be read (opened and decoded by `decoder`, as training reads them).

    Args:
        images: The images to check.
        channels: What the images are converted to, as training loads them.
        errors: What is wrong with each image file checked so far (None: nothing), filled in here; files
            already in it are not read again.
        decoder: What decodes them (`torchvision` or `pil`, see `src.data.decode.image_loader`).

    Raises:
        UserInputError: None of the images can be read.
    """
    errors = {} if errors is None else errors
    kept = ImageList(images.file, [], [], [])
    first_bad = None
    read = image_loader(decoder, channels)
    for path, target, line in zip(images.paths, images.targets, images.lines, strict=True):
        if path not in errors:
            try:
                read(path)
                errors[path] = None
            except UserInputError as err:
                errors[path] = f"{images.file}:{line}: {err}"
        if errors[path] is not None:
            first_bad = first_bad or errors[path]
            continue
        kept.paths.append(path)
        kept.targets.append(target)
        kept.lines.append(line)
    if first_bad and not kept.paths:
        how_many = count(len(images.paths), "image")
        raise UserInputError(f"{images.file}: none of its {how_many} can be read (first: {first_bad})")
    return kept


def skip_unreadable(lists: list[ImageList], channels: int = 3, decoder: Decoder = "pil") -> list[ImageList]:
    """`drop_unreadable` for each list, with one warning that counts the image files left out."""
    errors: dict[str, str | None] = {}
    kept = [drop_unreadable(images, channels, errors, decoder) for images in lists]
    bad = [error for error in errors.values() if error is not None]
    if bad:
        more = f"; ... and {len(bad) - EXAMPLES} more" if len(bad) > EXAMPLES else ""
        rank_zero_warn(
            f"skipped {len(bad)} of {count(len(errors), 'image')} that cannot be read (skip_bad_images): "
            + "; ".join(bad[:EXAMPLES])
            + more
        )
    return kept


class CSVImageDataset(ImageFilesDataset):
    """Images listed in a CSV file: one row per image, `path,label` (the header row is optional).

    The CSV is read and checked when the dataset is created; every problem found is reported in one
    error (see `read_image_lists`).

    Args:
        annotations_file: The CSV file (UTF-8). First column: image path, relative to `img_dir` (or
            absolute, inside `img_dir`); second column: the label, a class name or an integer id; further
            columns are ignored.
        img_dir: Folder the images are in; default: the CSV file's folder.
        class_names: Names of the classes, index = label id; default: found in the CSV (see
            `src.data.labels.infer_class_names`).
        transform: Applied to each PIL image.
        channels: 1 (grayscale) or 3 (RGB): what the images are converted to.
        image_size: (height, width) the images are resized to; None keeps each file's size.
        header: Whether the CSV starts with a header row; None detects it (see `read_image_lists`).
        allow_outside_img_dir: Accept image paths that lead outside `img_dir` (`..`, absolute paths,
            symbolic links pointing out); by default they are errors.
        skip_bad_images: Open every image first and leave out those that cannot be read, with one warning
            that counts them; by default an unreadable image stops training when it is loaded.
    """

    def __init__(
        self,
        annotations_file: str | Path,
        img_dir: str | Path | None = None,
        class_names: list[str] | None = None,
        transform: Callable | None = None,
        channels: int = 3,
        image_size: tuple[int, int] | None = None,
        header: bool | None = None,
        allow_outside_img_dir: bool = False,
        skip_bad_images: bool = False,
    ) -> None:
        if not Path(annotations_file).is_file():
            raise UserInputError(f"{annotations_file}: CSV file not found")
        if img_dir is not None and not Path(img_dir).is_dir():
            raise UserInputError(f"img_dir: folder {img_dir} not found")
        lists, class_names = read_image_lists(
            [annotations_file], img_dir, class_names, header, allow_outside_img_dir, warn=rank_zero_warn
        )
        if skip_bad_images:
            lists = skip_unreadable(lists, channels)
        images = lists[0]
        paths = [Path(path) for path in images.paths]
        super().__init__(paths, images.targets, transform, channels, image_size)
        self.annotations_file = images.file
        self.class_names = list(class_names)
        #: The CSV line of each image, for messages.
        self.lines = list(images.lines)


class CSVImageDataModule(ImageFilesDataModule):
    """Images listed in CSV files (`path,label` rows, see `CSVImageDataset`), any size, grayscale or RGB.

    Validation images come from `val_annotations_file`, else from a seeded split of the training CSV
    (`val_size`); test and predict need `test_annotations_file`. The class names come from the config,
    else from the training CSV.

    All the CSVs given are read and checked when the datamodule is created (so the CLI can link the class
    names, and mistakes show before training starts or any log file is written): every problem of every
    file is reported in one error (see `read_image_lists`); duplicated rows are a warning.

    Args:
        annotations_file: CSV of the training images.
        img_dir: Folder the images are in (the CSVs' paths are relative to it); default: each CSV
            file's folder.
        val_annotations_file: CSV of the validation images; default: split off the training CSV.
        test_annotations_file: CSV of the test images (for `test` and `predict`).
        class_names: Names of the classes, index = label id. Default: the sorted names of the training
            CSV, or for integer labels `"0"`, `"1"`, ... up to the largest.
        header: Whether the CSVs start with a header row; None detects it.
        allow_outside_img_dir: Accept image paths that lead outside the image folder (`..`, absolute
            paths, symbolic links pointing out); by default they are errors, so a CSV cannot make the
            run read files elsewhere.
        skip_bad_images: Open every image before training and leave out those that cannot be read, with
            one warning that counts them. By default only their existence is checked up front (cheap), and
            an unreadable image stops training, with one line naming it, when it is loaded.
        **kwargs: See `ImageFilesDataModule` (channels, image_size, mean, std, val_size) and
            `VisionDataModule` (batch_size, num_workers, augment, train_transform, seed, ...).
    """

    def __init__(
        self,
        annotations_file: str,
        img_dir: str | None = None,
        val_annotations_file: str | None = None,
        test_annotations_file: str | None = None,
        class_names: list[str] | None = None,
        header: bool | None = None,
        allow_outside_img_dir: bool = False,
        skip_bad_images: bool = False,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.annotations_file = annotations_file
        self.img_dir = img_dir
        self.val_annotations_file = val_annotations_file
        self.test_annotations_file = test_annotations_file
        self.header = header
        self.allow_outside_img_dir = allow_outside_img_dir
        self.skip_bad_images = skip_bad_images
        keys = ("annotations_file", "val_annotations_file", "test_annotations_file")
        files = {key: getattr(self, key) for key in keys if getattr(self, key) is not None}
        for key, file in files.items():
            if not Path(file).is_file():
                raise UserInputError(f"data.{key}: CSV file {file} not found")
        if img_dir is not None and not Path(img_dir).is_dir():
            raise UserInputError(f"data.img_dir: folder {img_dir} not found")
        if class_names is not None and (not class_names or len(set(class_names)) != len(class_names)):
            raise UserInputError(f"data.class_names: needs distinct names, got {class_names}")
        lists, class_names = read_image_lists(
            list(files.values()), img_dir, class_names, header, allow_outside_img_dir, warn=rank_zero_warn
        )
        if len(class_names) < 2:
            raise UserInputError(
                f"data.class_names: needs at least 2 classes, found {len(class_names)} "
                f"({short_list(class_names, quote=True)}) in {annotations_file}"
            )
        if skip_bad_images:
            lists = skip_unreadable(lists, self.in_channels, self.file_decoder)
        self.class_names = class_names
        #: The checked images of each CSV, by config key.
        self.image_lists = dict(zip(files, lists, strict=True))

    def _dataset(self, key: str, transform: Callable) -> ImageFilesDataset:
        images = self.image_lists[key]
        return ImageFilesDataset(
            images.paths, images.targets, transform, self.in_channels, self.image_size, self.file_decoder
        )

    def make_dataset(self, train: bool, transform: Callable) -> ImageFilesDataset:
        if train:
            return self._dataset("annotations_file", transform)
        if self.test_annotations_file is None:
            raise UserInputError(
                "data.test_annotations_file is not set: give a CSV of test images to test or predict"
            )
        return self._dataset("test_annotations_file", transform)

    @property
    def has_test_split(self) -> bool:
        """Whether `test_annotations_file` is set."""
        return self.test_annotations_file is not None

    def make_val_dataset(self, transform: Callable) -> ImageFilesDataset | None:
        if self.val_annotations_file is None:
            return None
        return self._dataset("val_annotations_file", transform)

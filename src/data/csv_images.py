"""Images listed in a CSV file (image path, label): the custom `Dataset` of the PyTorch tutorials."""

from __future__ import annotations

import csv
from collections.abc import Callable
from functools import partial
from pathlib import Path

from torch.utils.data import Dataset

from src.data.image_files import ImageFilesDataModule, load_image, name_list
from src.errors import UserInputError


def _as_int(cell: str) -> int | None:
    try:
        return int(cell)
    except ValueError:
        return None


def read_annotations(
    annotations_file: str | Path, header: bool | None = None, class_names: list[str] | None = None
) -> list[tuple[int, str, str]]:
    """The rows of an annotations CSV as (line number, image path, label), without the header row.

    The first column is the image path, the second the label (a class name or an integer id); further
    columns are ignored. With `header=None` the first row is taken for a header when its path has no file
    extension and its label is neither an integer nor a known class name: one of `class_names`, or when
    those are not given, a label that another row has.
    """
    path = Path(annotations_file)
    if not path.is_file():
        raise UserInputError(f"{path}: CSV file not found")
    with path.open(newline="", encoding="utf-8-sig") as file:
        rows = [(line, row) for line, row in enumerate(csv.reader(file), start=1) if "".join(row).strip()]
    short = next((line for line, row in rows if len(row) < 2), None)
    if short is not None:
        raise UserInputError(f"{path}: line {short} needs two columns (image path, label)")
    rows = [(line, row[0].strip(), row[1].strip()) for line, row in rows]
    if header is None and rows:
        _, first_path, label = rows[0]
        known = set(class_names) if class_names is not None else {row[2] for row in rows[1:]}
        header = not Path(first_path).suffix and _as_int(label) is None and label not in known
    rows = rows[1:] if header else rows
    if not rows:
        raise UserInputError(f"{path}: no images listed")
    return rows


def infer_class_names(labels: list[str]) -> list[str]:
    """Class names of a label column: `str(i)` up to the largest id for integer labels, else sorted names.

    >>> infer_class_names(["2", "0", "2"])
    ['0', '1', '2']
    >>> infer_class_names(["dog", "cat", "dog"])
    ['cat', 'dog']
    """
    ids = [_as_int(label) for label in labels]
    if all(i is not None for i in ids):
        return [str(i) for i in range(max(ids) + 1)]
    return sorted(set(labels))


def label_ids(
    rows: list[tuple[int, str, str]], class_names: list[str], annotations_file: str | Path
) -> list[int]:
    """The label id of each row: the index of its class name, else the integer it holds."""
    index = {name: i for i, name in enumerate(class_names)}
    ids = []
    for line, _, label in rows:
        if label in index:
            ids.append(index[label])
            continue
        i = _as_int(label)
        if i is None:
            raise UserInputError(
                f"{annotations_file}: line {line}: unknown class name {label!r} "
                f"(the classes are {name_list(class_names)})"
            )
        if not 0 <= i < len(class_names):
            raise UserInputError(
                f"{annotations_file}: line {line}: label {i} out of range for {len(class_names)} classes "
                f"(0 to {len(class_names) - 1})"
            )
        ids.append(i)
    return ids


class CSVImageDataset(Dataset):
    """Images listed in a CSV file: one row per image, `path,label` (the header row is optional).

    Args:
        annotations_file: The CSV file. First column: image path, relative to `img_dir` (or absolute);
            second column: the label, a class name or an integer id.
        img_dir: Folder the paths are relative to; default: the CSV file's folder.
        class_names: Names of the classes, index = label id; default: found in the CSV (see
            `infer_class_names`).
        transform: Applied to each PIL image.
        channels: 1 (grayscale) or 3 (RGB): what the images are converted to.
        image_size: (height, width) the images are resized to; None keeps each file's size.
        header: Whether the CSV starts with a header row; None detects it (see `read_annotations`).
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
    ) -> None:
        rows = read_annotations(annotations_file, header, class_names)
        if class_names is None:
            class_names = infer_class_names([label for _, _, label in rows])
        self.class_names = list(class_names)
        self.targets = label_ids(rows, self.class_names, annotations_file)
        folder = Path(img_dir) if img_dir is not None else Path(annotations_file).parent
        self.paths = [folder / path for _, path, _ in rows]
        missing = [(row[0], path) for row, path in zip(rows, self.paths, strict=True) if not path.is_file()]
        if missing:
            line, path = missing[0]
            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            raise UserInputError(f"{annotations_file}: line {line}: image file {path} not found{more}")
        self.transform = transform
        self.loader = partial(load_image, channels=channels, image_size=image_size)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple:
        image = self.loader(self.paths[index])
        if self.transform is not None:
            image = self.transform(image)
        return image, self.targets[index]


class CSVImageDataModule(ImageFilesDataModule):
    """Images listed in CSV files (`path,label` rows, see `CSVImageDataset`), any size, grayscale or RGB.

    Validation images come from `val_annotations_file`, else from a seeded split of the training CSV
    (`val_size`); test and predict need `test_annotations_file`. The class names come from the config,
    else from the training CSV (read when the datamodule is created, so the CLI can link them).

    Args:
        annotations_file: CSV of the training images.
        img_dir: Folder the paths in the CSVs are relative to; default: each CSV file's folder.
        val_annotations_file: CSV of the validation images; default: split off the training CSV.
        test_annotations_file: CSV of the test images (for `test` and `predict`).
        class_names: Names of the classes, index = label id. Default: the sorted names of the training
            CSV, or for integer labels `"0"`, `"1"`, ... up to the largest.
        header: Whether the CSVs start with a header row; None detects it.
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
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.annotations_file = annotations_file
        self.img_dir = img_dir
        self.val_annotations_file = val_annotations_file
        self.test_annotations_file = test_annotations_file
        self.header = header
        for key in ("annotations_file", "val_annotations_file", "test_annotations_file"):
            file = getattr(self, key)
            if file is not None and not Path(file).is_file():
                raise UserInputError(f"data.{key}: CSV file {file} not found")
        if img_dir is not None and not Path(img_dir).is_dir():
            raise UserInputError(f"data.img_dir: folder {img_dir} not found")
        if class_names is None:
            class_names = infer_class_names([row[2] for row in read_annotations(annotations_file, header)])
        if not class_names or len(set(class_names)) != len(class_names):
            raise UserInputError(f"data.class_names: needs distinct names, got {class_names}")
        self.class_names = list(class_names)

    def _dataset(self, annotations_file: str, transform: Callable) -> CSVImageDataset:
        return CSVImageDataset(
            annotations_file,
            self.img_dir,
            self.class_names,
            transform,
            self.in_channels,
            self.image_size,
            self.header,
        )

    def make_dataset(self, train: bool, transform: Callable) -> CSVImageDataset:
        if train:
            return self._dataset(self.annotations_file, transform)
        if self.test_annotations_file is None:
            raise UserInputError(
                "data.test_annotations_file is not set: give a CSV of test images to test or predict"
            )
        return self._dataset(self.test_annotations_file, transform)

    def make_val_dataset(self, transform: Callable) -> CSVImageDataset | None:
        if self.val_annotations_file is None:
            return None
        return self._dataset(self.val_annotations_file, transform)

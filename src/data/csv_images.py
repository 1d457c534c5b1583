"""Images listed in a CSV file (image path, label): the custom `Dataset` of the PyTorch tutorials.

The CSV files are read and checked once, when the dataset or datamodule is created (before any training,
before any log file), and every problem found is reported in one error (see `read_image_lists`).
"""

from __future__ import annotations

import csv
import io
import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from lightning.pytorch.utilities import rank_zero_warn
from torch.utils.data import Dataset

from src.data.image_files import ImageFilesDataModule, load_image, name_list, problems_error
from src.errors import UserInputError

#: Examples named in a warning (duplicated rows, skipped images, ...).
_EXAMPLES = 3


def _count(n: int, noun: str, plural: str | None = None) -> str:
    """`n` and the noun, plural unless `n` is 1.

    >>> _count(1, "row"), _count(3, "class", "classes")
    ('1 row', '3 classes')
    """
    return f"{n} {noun if n == 1 else plural or noun + 's'}"


def _as_int(cell: str) -> int | None:
    try:
        return int(cell)
    except ValueError:
        return None


@dataclass
class ImageList:
    """The images of one annotations CSV that passed the checks, with their labels.

    Args:
        file: The CSV file.
        paths: The image files: the CSV's paths joined to the image folder.
        targets: The label id of each image.
        lines: The CSV line of each image, for messages.
    """

    file: Path
    paths: list[Path]
    targets: list[int]
    lines: list[int]


@dataclass
class _Row:
    line: int
    path: str
    label: str


def _read_rows(
    file: Path, header: bool | None, class_names: list[str] | None, problems: list[str]
) -> list[_Row]:
    """The (line, path, label) rows of a CSV without its header row; adds what is wrong to `problems`.

    Blank lines are skipped; a UTF-8 byte order mark and Windows line endings are fine. Every row needs the
    same number of columns, at least two: the image path and the label; further columns are ignored.
    """
    data = file.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        problems.append(f"{file}:{line}: not UTF-8 text ({err.reason}); save the CSV as UTF-8")
        return []
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        rows = [(reader.line_num, row) for row in reader if "".join(row).strip()]
    except csv.Error as err:
        problems.append(f"{file}:{reader.line_num}: not a readable CSV row ({err})")
        return []
    if not rows:
        problems.append(f"{file}: no images listed (the file is empty)")
        return []
    width, _ = Counter(len(row) for _, row in rows).most_common(1)[0]
    good = []
    for line, row in rows:
        if len(row) < 2:
            problems.append(f"{file}:{line}: needs two columns (image path, label), found {len(row)}")
        elif len(row) != width:
            problems.append(
                f"{file}:{line}: {len(row)} columns where the other rows have {width} "
                "(quote a path that holds a comma)"
            )
        else:
            good.append(_Row(line, row[0].strip(), row[1].strip()))
    if header is None and good and good[0].line == rows[0][0]:
        first = good[0]
        known = set(class_names) if class_names is not None else {row.label for row in good[1:]}
        header = not Path(first.path).suffix and _as_int(first.label) is None and first.label not in known
    if header and good and good[0].line == rows[0][0]:
        good = good[1:]
        if len(rows) == 1:
            problems.append(f"{file}: no images listed (only a header row)")
    for row in good:
        if not row.path:
            problems.append(f"{file}:{row.line}: empty image path")
        if not row.label:
            problems.append(f"{file}:{row.line}: empty label")
    return [row for row in good if row.path and row.label]


def infer_class_names(labels: list[str]) -> list[str]:
    """Class names of a label column: `str(i)` up to the largest id for integer labels, else sorted names.

    >>> infer_class_names(["2", "0", "2"])
    ['0', '1', '2']
    >>> infer_class_names(["dog", "cat", "dog"])
    ['cat', 'dog']
    """
    ids = [_as_int(label) for label in labels]
    if ids and all(i is not None for i in ids):
        return [str(i) for i in range(max(max(ids) + 1, 0))]
    return sorted(set(labels))


def _infer_class_names(file: Path, rows: list[_Row], problems: list[str]) -> list[str]:
    """`infer_class_names` of the rows; labels that mix names and integer ids are problems."""
    is_id = [_as_int(row.label) is not None for row in rows]
    if any(is_id) and not all(is_id):
        minority = sum(is_id) < len(is_id) / 2  # True: the ids are the odd ones out
        for row, row_is_id in zip(rows, is_id, strict=True):
            if row_is_id == minority:
                kind, others = (
                    ("an integer id", "class names") if minority else ("a class name", "integer ids")
                )
                problems.append(
                    f"{file}:{row.line}: label {row.label!r} is {kind} while most labels are {others} "
                    "(give class_names to use both)"
                )
    return infer_class_names([row.label for row in rows])


def _label_id(label: str, index: dict[str, int]) -> int | str:
    """The id of a label (a class name or an integer id), or what is wrong with it."""
    if label in index:
        return index[label]
    i = _as_int(label)
    if i is None:
        return f"unknown class name {label!r} (the classes are {name_list(list(index))})"
    if not 0 <= i < len(index):
        return f"label {i} out of range for {len(index)} classes (0 to {len(index) - 1})"
    return i


def _real_path(path: Path, real_dirs: dict[Path, Path]) -> Path:
    """`path` with every symbolic link and `..` resolved (`os.path.realpath`), folders looked up once."""
    if path.name in ("", ".", ".."):
        return Path(os.path.realpath(path))
    if path.parent not in real_dirs:
        real_dirs[path.parent] = Path(os.path.realpath(path.parent))
    real = real_dirs[path.parent] / path.name
    return Path(os.path.realpath(real)) if real.is_symlink() else real


def _check_rows(
    file: Path,
    rows: list[_Row],
    folder: Path,
    class_names: list[str],
    allow_outside_img_dir: bool,
    problems: list[str],
) -> tuple[ImageList, list[Path], list[tuple[int, int]]]:
    """The rows as an `ImageList`, the real path of each image, and the (line, earlier line) of each
    repeated row (kept: the same image and label again); adds what is wrong to `problems`.

    Checks each label, that each image file exists and is inside `folder` (after resolving symbolic links
    and `..`, unless `allow_outside_img_dir`), and that no image is listed twice with different labels.
    """
    index = {name: i for i, name in enumerate(class_names)}
    real_folder = Path(os.path.realpath(folder))
    real_dirs: dict[Path, Path] = {}
    images = ImageList(file, [], [], [])
    reals: list[Path] = []
    first_seen: dict[Path, tuple[int, int]] = {}  # real path -> (line, label id)
    repeats: list[tuple[int, int]] = []
    for row in rows:
        where = f"{file}:{row.line}"
        label = _label_id(row.label, index)
        if isinstance(label, str):
            problems.append(f"{where}: {label}")
        if "\x00" in row.path:
            problems.append(f"{where}: the image path holds a NUL character")
            continue
        path = folder / row.path
        real = _real_path(path, real_dirs)
        if not allow_outside_img_dir and not real.is_relative_to(real_folder):
            inside = Path(os.path.abspath(path)).is_relative_to(os.path.abspath(folder))
            what = f"image {path} is a link to {real}" if inside else f"image path {row.path!r} is"
            problems.append(
                f"{where}: {what} outside the image folder {folder} "
                "(set allow_outside_img_dir: true to allow paths outside it)"
            )
            continue
        if not path.is_file():
            if path.is_dir():
                problems.append(f"{where}: {path} is a folder, not an image file")
            else:
                hint = " (write paths with /, not \\)" if "\\" in row.path and os.sep == "/" else ""
                problems.append(f"{where}: image file {path} not found{hint}")
            continue
        if isinstance(label, str):
            continue
        if real in first_seen:
            line, other = first_seen[real]
            if other != label:
                problems.append(
                    f"{where}: image {path} has label {row.label!r} here and {class_names[other]!r} "
                    f"on line {line}"
                )
                continue
            repeats.append((row.line, line))
        else:
            first_seen[real] = (row.line, label)
        images.paths.append(path)
        images.targets.append(label)
        images.lines.append(row.line)
        reals.append(real)
    return images, reals, repeats


def _warn_single_image_classes(images: ImageList, class_names: list[str]) -> None:
    """Warn about classes found in the training CSV with one image while the others have many: typos?"""
    counts = Counter(images.targets)
    single = [i for i, n in counts.items() if n == 1]
    if single and len(counts) > len(single) and sorted(counts.values())[len(counts) // 2] >= 10:
        lines = {target: line for target, line in zip(images.targets, images.lines, strict=True)}
        shown = ", ".join(f"{class_names[i]!r} (line {lines[i]})" for i in single[:_EXAMPLES])
        rank_zero_warn(
            f"{images.file}: {_count(len(single), 'class', 'classes')} with a single image while the "
            f"others have more: {shown}; misspelt labels? Give class_names to have unknown names reported "
            "as errors"
        )


def _line_of(file: Path, problem: str) -> int:
    """The line a problem (`file:line: ...`, or `file: ...` for the whole file: 0) is about."""
    line = problem[len(str(file)) + 1 :].split(":")[0]
    return int(line) if line.isdigit() else 0


def read_image_lists(
    annotations_files: list[str | Path],
    img_dir: str | Path | None = None,
    class_names: list[str] | None = None,
    header: bool | None = None,
    allow_outside_img_dir: bool = False,
) -> tuple[list[ImageList], list[str]]:
    """Read and check annotation CSVs; the first is the training CSV (the class names come from it).

    Every problem of every file is collected, then reported in one `UserInputError` (see
    `problems_error`): the file cannot be read as UTF-8 CSV; no rows (an empty file, or a header alone);
    a row with fewer than two columns, or another number of columns than the other rows; an empty path or
    label; an unknown class name, or an integer label out of range (negative included); an image file that
    does not exist, or that lies outside the image folder (`..`, an absolute path, or a symbolic link
    pointing out; unless `allow_outside_img_dir`); one image listed twice with different labels; with
    `class_names` not given, labels that mix class names and integer ids.

    Warnings, not errors: rows listed twice (each copy is kept), and images of the later CSVs
    (validation, test) that are also in the training CSV.

    Args:
        annotations_files: The CSV files; the first is the training CSV.
        img_dir: Folder the paths are relative to; default: each CSV file's folder.
        class_names: Names of the classes, index = label id; default: from the first CSV (see
            `infer_class_names`).
        header: Whether the CSVs start with a header row; None detects it: the first row is a header when
            its path has no file extension and its label is neither an integer nor a known class name (one
            of `class_names`, or when those are not given, a label that another row has).
        allow_outside_img_dir: Accept image paths outside the image folder.

    Returns:
        The checked images of each CSV, and the class names.
    """
    files = [Path(file) for file in annotations_files]
    problems: list[list[str]] = [[] for _ in files]  # of each file
    rows = [_read_rows(file, header, class_names, found) for file, found in zip(files, problems, strict=True)]
    inferred = class_names is None
    if class_names is None:
        class_names = _infer_class_names(files[0], rows[0], problems[0]) if rows[0] else []
    lists, reals, repeats = [], [], []
    for file, file_rows, found in zip(files, rows, problems, strict=True):
        folder = Path(img_dir) if img_dir is not None else file.parent
        images, real, repeated = _check_rows(
            file, file_rows, folder, class_names, allow_outside_img_dir, found
        )
        lists.append(images)
        reals.append(real)
        repeats.append(repeated)
    for file, found in zip(files, problems, strict=True):
        found.sort(key=partial(_line_of, file))
    if any(problems):
        bad = [(file, len(found)) for file, found in zip(files, problems, strict=True) if found]
        where = str(bad[0][0]) if len(bad) == 1 else ", ".join(f"{file} ({n})" for file, n in bad)
        raise problems_error(where, [problem for found in problems for problem in found])
    for file, repeated in zip(files, repeats, strict=True):
        if repeated:
            line, first = repeated[0]
            rank_zero_warn(
                f"{file}: {_count(len(repeated), 'duplicated row')} (the same image and label as an earlier "
                f"row, e.g. line {line} repeats line {first}); each copy counts as a sample"
            )
    if inferred:
        _warn_single_image_classes(lists[0], class_names)
    training = set(reals[0])
    for images, real in zip(lists[1:], reals[1:], strict=True):
        shared = [line for line, path in zip(images.lines, real, strict=True) if path in training]
        if shared and images.file != files[0]:
            rank_zero_warn(
                f"{images.file}: {len(shared)} of its {_count(len(real), 'image')} "
                f"{'is' if len(shared) == 1 else 'are'} also in the training CSV "
                f"{files[0]} (e.g. line {shared[0]}): their results will look better than they are"
            )
    return lists, list(class_names)


def drop_unreadable(
    images: ImageList, channels: int = 3, errors: dict[Path, str | None] | None = None
) -> ImageList:
    """The images that can be read (opened and decoded by `load_image`).

    Args:
        images: The images to check.
        channels: What the images are converted to, as training loads them.
        errors: What is wrong with each image file checked so far (None: nothing), filled in here; files
            already in it are not read again.

    Raises:
        UserInputError: None of the images can be read.
    """
    errors = {} if errors is None else errors
    kept = ImageList(images.file, [], [], [])
    first_bad = None
    for path, target, line in zip(images.paths, images.targets, images.lines, strict=True):
        if path not in errors:
            try:
                load_image(path, channels)
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
        count = _count(len(images.paths), "image")
        raise UserInputError(f"{images.file}: none of its {count} can be read (first: {first_bad})")
    return kept


def skip_unreadable(lists: list[ImageList], channels: int = 3) -> list[ImageList]:
    """`drop_unreadable` for each list, with one warning that counts the image files left out."""
    errors: dict[Path, str | None] = {}
    kept = [drop_unreadable(images, channels, errors) for images in lists]
    bad = [error for error in errors.values() if error is not None]
    if bad:
        more = f"; ... and {len(bad) - _EXAMPLES} more" if len(bad) > _EXAMPLES else ""
        rank_zero_warn(
            f"skipped {len(bad)} of {_count(len(errors), 'image')} that cannot be read (skip_bad_images): "
            + "; ".join(bad[:_EXAMPLES])
            + more
        )
    return kept


class CSVImageDataset(Dataset):
    """Images listed in a CSV file: one row per image, `path,label` (the header row is optional).

    The CSV is read and checked when the dataset is created; every problem found is reported in one
    error (see `read_image_lists`).

    Args:
        annotations_file: The CSV file (UTF-8). First column: image path, relative to `img_dir` (or
            absolute, inside `img_dir`); second column: the label, a class name or an integer id; further
            columns are ignored.
        img_dir: Folder the images are in; default: the CSV file's folder.
        class_names: Names of the classes, index = label id; default: found in the CSV (see
            `infer_class_names`).
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
            [annotations_file], img_dir, class_names, header, allow_outside_img_dir
        )
        if skip_bad_images:
            lists = skip_unreadable(lists, channels)
        self._set(lists[0], class_names, transform, channels, image_size)

    @classmethod
    def from_image_list(
        cls,
        images: ImageList,
        class_names: list[str],
        transform: Callable | None = None,
        channels: int = 3,
        image_size: tuple[int, int] | None = None,
    ) -> CSVImageDataset:
        """A dataset of images already read and checked (the datamodule checks all its CSVs at once)."""
        dataset = cls.__new__(cls)
        dataset._set(images, class_names, transform, channels, image_size)
        return dataset

    def _set(self, images: ImageList, class_names, transform, channels, image_size) -> None:
        self.annotations_file = images.file
        self.class_names = list(class_names)
        self.paths = list(images.paths)
        self.targets = list(images.targets)
        self.lines = list(images.lines)
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
            list(files.values()), img_dir, class_names, header, allow_outside_img_dir
        )
        if len(class_names) < 2:
            raise UserInputError(
                f"data.class_names: needs at least 2 classes, found {len(class_names)} "
                f"({name_list(class_names)}) in {annotations_file}"
            )
        if skip_bad_images:
            lists = skip_unreadable(lists, self.in_channels)
        self.class_names = class_names
        #: The checked images of each CSV, by config key.
        self.image_lists = dict(zip(files, lists, strict=True))

    def _dataset(self, key: str, transform: Callable) -> CSVImageDataset:
        return CSVImageDataset.from_image_list(
            self.image_lists[key], self.class_names, transform, self.in_channels, self.image_size
        )

    def make_dataset(self, train: bool, transform: Callable) -> CSVImageDataset:
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

    def make_val_dataset(self, transform: Callable) -> CSVImageDataset | None:
        if self.val_annotations_file is None:
            return None
        return self._dataset("val_annotations_file", transform)

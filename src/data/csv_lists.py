"""Reading and checking CSV lists of images (`path,label` rows): pure Python, no torch.

Every problem of every file is collected and reported in one error, before any training starts (see
`read_image_lists`); what is odd but usable (duplicated rows, validation images also in training) is a
warning.
"""

from __future__ import annotations

import os
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from src.data.csv_rows import Rows, read_rows
from src.data.image_lookup import ImageLookup
from src.data.labels import as_int, infer_class_names, label_id
from src.errors import count, problems_error

#: Examples named in a warning (duplicated rows, skipped images, ...).
EXAMPLES = 3


@dataclass
class ImageList:
    """The images of one annotations CSV that passed the checks, with their labels.

    Args:
        file: The CSV file.
        paths: The image files: the CSV's paths joined to the image folder (strings: a million `Path`
            objects would take hundreds of megabytes).
        targets: The label id of each image.
        lines: The CSV line of each image, for messages.
    """

    file: Path
    paths: list[str]
    targets: list[int]
    lines: list[int]


def _infer_class_names(file: Path, rows: Rows, problems: list[str]) -> list[str]:
    """`infer_class_names` of the rows; labels that mix names and integer ids are problems."""
    counts = Counter(rows.labels)
    is_id = {label: as_int(label) is not None for label in counts}
    ids = sum(n for label, n in counts.items() if is_id[label])
    if 0 < ids < len(rows.labels):
        minority = ids < len(rows.labels) / 2  # True: the ids are the odd ones out
        kind, others = ("an integer id", "class names") if minority else ("a class name", "integer ids")
        for line, label in zip(rows.lines, rows.labels, strict=True):
            if is_id[label] == minority:
                problems.append(
                    f"{file}:{line}: label {label!r} is {kind} while most labels are {others} "
                    "(give class_names to use both)"
                )
    return infer_class_names(list(counts))  # the distinct labels: the same names, found faster


def _check_rows(
    file: Path,
    rows: Rows,
    lookup: ImageLookup,
    class_names: list[str],
    allow_outside_img_dir: bool,
    problems: list[str],
) -> tuple[ImageList, list[str], list[tuple[int, int]]]:
    """The rows as an `ImageList`, the real path of each image, and the (line, earlier line) of each
    repeated row (kept: the same image and label again); adds what is wrong to `problems`.

    Checks each label, that each image file exists and is inside the lookup's folder (after resolving
    symbolic links and `..`, unless `allow_outside_img_dir`), and that no image is listed twice with
    different labels.
    """
    folder = lookup.folder
    index = {name: i for i, name in enumerate(class_names)}
    ids = {label: label_id(label, index) for label in set(rows.labels)}
    images = ImageList(file, [], [], [])
    reals: list[str] = []
    first_seen: dict[str, int] = {}  # real path -> its index in `images`
    repeats: list[tuple[int, int]] = []
    for line, name, text in zip(rows.lines, rows.paths, rows.labels, strict=True):
        label = ids[text]
        if isinstance(label, str):
            problems.append(f"{file}:{line}: {label}")
        if "\x00" in name:
            problems.append(f"{file}:{line}: the image path holds a NUL character")
            continue
        path, real, is_file, inside = lookup.find(name)
        if not inside and not allow_outside_img_dir:
            inside = Path(os.path.abspath(path)).is_relative_to(os.path.abspath(folder))
            what = f"image {path} is a link to {real}" if inside else f"image path {name!r} is"
            problems.append(
                f"{file}:{line}: {what} outside the image folder {folder} "
                "(set allow_outside_img_dir: true to allow paths outside it)"
            )
            continue
        if is_file is not True:
            if is_file is False:
                problems.append(f"{file}:{line}: {path} is a folder, not an image file")
            else:
                hint = " (write paths with /, not \\)" if "\\" in name and os.sep == "/" else ""
                problems.append(f"{file}:{line}: image file {path} not found{hint}")
            continue
        if isinstance(label, str):
            continue
        kept = len(reals)
        first = first_seen.setdefault(real, kept)
        if first != kept:
            if images.targets[first] != label:
                problems.append(
                    f"{file}:{line}: image {path} has label {text!r} here and "
                    f"{class_names[images.targets[first]]!r} on line {images.lines[first]}"
                )
                continue
            repeats.append((line, images.lines[first]))
        images.paths.append(path)
        images.targets.append(label)
        images.lines.append(line)
        reals.append(real)
    return images, reals, repeats


def _warn_single_image_classes(
    images: ImageList, class_names: list[str], warn: Callable[[str], object]
) -> None:
    """Warn about classes found in the training CSV with one image while the others have many: typos?"""
    counts = Counter(images.targets)
    single = [i for i, n in counts.items() if n == 1]
    if single and len(counts) > len(single) and sorted(counts.values())[len(counts) // 2] >= 10:
        lines = {target: line for target, line in zip(images.targets, images.lines, strict=True)}
        shown = ", ".join(f"{class_names[i]!r} (line {lines[i]})" for i in single[:EXAMPLES])
        warn(
            f"{images.file}: {count(len(single), 'class', 'classes')} with a single image while the "
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
    warn: Callable[[str], object] = warnings.warn,
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
            `src.data.labels.infer_class_names`).
        header: Whether the CSVs start with a header row; None detects it: the first row is a header when
            its path has no file extension and its label is neither an integer nor a known class name (one
            of `class_names`, or when those are not given, a label that another row has).
        allow_outside_img_dir: Accept image paths outside the image folder.
        warn: Called with each warning's message (the datamodule passes Lightning's `rank_zero_warn`, so
            that only one process of a multi-process run warns).

    Returns:
        The checked images of each CSV, and the class names.
    """
    files = [Path(file) for file in annotations_files]
    problems: list[list[str]] = [[] for _ in files]  # of each file
    rows = [read_rows(file, header, class_names, found) for file, found in zip(files, problems, strict=True)]
    inferred = class_names is None
    if class_names is None:
        class_names = _infer_class_names(files[0], rows[0], problems[0]) if rows[0].lines else []
    lists, reals, repeats = [], [], []
    lookups: dict[Path, ImageLookup] = {}  # one per image folder: the CSVs of a run share their folders
    for file, file_rows, found in zip(files, rows, problems, strict=True):
        folder = Path(img_dir) if img_dir is not None else file.parent
        lookup = lookups[folder] = lookups.get(folder) or ImageLookup(folder)
        images, real, repeated = _check_rows(
            file, file_rows, lookup, class_names, allow_outside_img_dir, found
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
            warn(
                f"{file}: {count(len(repeated), 'duplicated row')} (the same image and label as an earlier "
                f"row, e.g. line {line} repeats line {first}); each copy counts as a sample"
            )
    if inferred:
        _warn_single_image_classes(lists[0], class_names, warn)
    training = set(reals[0]) if len(files) > 1 else set()
    for images, real in zip(lists[1:], reals[1:], strict=True):
        shared = [line for line, path in zip(images.lines, real, strict=True) if path in training]
        if shared and images.file != files[0]:
            warn(
                f"{images.file}: {len(shared)} of its {count(len(real), 'image')} "
                f"{'is' if len(shared) == 1 else 'are'} also in the training CSV "
                f"{files[0]} (e.g. line {shared[0]}): their results will look better than they are"
            )
    return lists, list(class_names)

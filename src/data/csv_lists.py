"""Reading and checking CSV lists of images (`path,label` rows): pure Python, no torch.

Every problem of every file is collected and reported in one error, before any training starts (see
`read_image_lists`); what is odd but usable (duplicated rows, validation images also in training) is a
warning.
"""

from __future__ import annotations

import csv
import io
import os
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from src.data.labels import as_int, infer_class_names, label_id
from src.errors import count, problems_error

#: Examples named in a warning (duplicated rows, skipped images, ...).
EXAMPLES = 3


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
        header = not Path(first.path).suffix and as_int(first.label) is None and first.label not in known
    if header and good and good[0].line == rows[0][0]:
        good = good[1:]
        if len(rows) == 1:
            problems.append(f"{file}: no images listed (only a header row)")
    for entry in good:
        if not entry.path:
            problems.append(f"{file}:{entry.line}: empty image path")
        if not entry.label:
            problems.append(f"{file}:{entry.line}: empty label")
    return [row for row in good if row.path and row.label]


def _infer_class_names(file: Path, rows: list[_Row], problems: list[str]) -> list[str]:
    """`infer_class_names` of the rows; labels that mix names and integer ids are problems."""
    is_id = [as_int(row.label) is not None for row in rows]
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
        label = label_id(row.label, index)
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
            warn(
                f"{file}: {count(len(repeated), 'duplicated row')} (the same image and label as an earlier "
                f"row, e.g. line {line} repeats line {first}); each copy counts as a sample"
            )
    if inferred:
        _warn_single_image_classes(lists[0], class_names, warn)
    training = set(reals[0])
    for images, real in zip(lists[1:], reals[1:], strict=True):
        shared = [line for line, path in zip(images.lines, real, strict=True) if path in training]
        if shared and images.file != files[0]:
            warn(
                f"{images.file}: {len(shared)} of its {count(len(real), 'image')} "
                f"{'is' if len(shared) == 1 else 'are'} also in the training CSV "
                f"{files[0]} (e.g. line {shared[0]}): their results will look better than they are"
            )
    return lists, list(class_names)

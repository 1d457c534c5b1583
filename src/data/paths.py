"""Image files to predict on, from files, folders, glob patterns and CSV lists."""

from __future__ import annotations

import csv
import glob
from collections.abc import Sequence
from pathlib import Path

from src.errors import UserInputError

#: File extensions (lower case) taken as images when a folder is expanded.
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff", ".gif", ".ppm", ".pgm")

_GLOB_CHARACTERS = set("*?[")


def expand_image_paths(inputs: Sequence[str | Path], key: str = "PATH", csv_lists: bool = False) -> list[str]:
    """The image files that `inputs` name, in the order given.

    Each input is an image file (taken as is, whatever its extension), a folder (its image files, see
    `IMAGE_EXTENSIONS`, sorted by name; sub-folders are not searched) or a glob pattern such as
    `photos/*.jpg` or `data/**/*.png` (`**` matches any depth; the matches are sorted). With `csv_lists`, a
    `.csv` file lists images in its first column (paths relative to the CSV file's folder, or absolute; a
    header row whose first cell has no file extension is skipped).

    Returns:
        The paths as strings, as given (a folder's files and a pattern's matches joined to them).

    Raises:
        UserInputError: An input names nothing: a missing file, an empty folder, a pattern without an
            image match, an empty CSV list (one line that names it and `key`).
    """
    if isinstance(inputs, (str, Path)):
        inputs = [inputs]
    files: list[str] = []
    for item in inputs:
        text = str(item)
        path = Path(text)
        if csv_lists and path.suffix.lower() == ".csv" and path.is_file():
            files += _read_path_list(path, key)
        elif path.is_file():
            files.append(text)
        elif path.is_dir():
            found = sorted(str(p) for p in path.iterdir() if p.is_file() and _is_image(p))
            if not found:
                raise UserInputError(f"{key}: no image files in folder {text} (sub-folders are not searched)")
            files += found
        elif _GLOB_CHARACTERS & set(text):
            found = sorted(p for p in glob.glob(text, recursive=True) if Path(p).is_file() and _is_image(p))
            if not found:
                raise UserInputError(f"{key}: no image files match the pattern {text}")
            files += found
        else:
            raise UserInputError(f"{key}: {text} not found (give image files, folders or glob patterns)")
    if not files:
        raise UserInputError(f"{key}: no images given")
    return files


def _is_image(path: str | Path) -> bool:
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def _read_path_list(path: Path, key: str) -> list[str]:
    """The image paths in the first column of a CSV file (header row skipped, relative to its folder)."""
    with path.open(newline="", encoding="utf-8-sig") as handle:
        cells = [(line, row[0].strip()) for line, row in enumerate(csv.reader(handle), start=1) if row]
    cells = [(line, cell) for line, cell in cells if cell]
    if cells and not Path(cells[0][1]).suffix:
        cells = cells[1:]  # a header row
    if not cells:
        raise UserInputError(f"{key}: {path} lists no images")
    files = []
    for line, cell in cells:
        file = path.parent / cell
        if not file.is_file():
            raise UserInputError(f"{key}: {path}: line {line}: image file {file} not found")
        files.append(str(file))
    return files

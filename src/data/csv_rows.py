"""Reading the rows of a CSV list of images (`path,label`): pure Python, no torch.

`src.data.csv_lists` checks what the rows say (labels, image files); this module only reads them, into
columns: a million rows as objects would take gigabytes.
"""

from __future__ import annotations

import csv
import io
import itertools
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from src.data.labels import as_int


@dataclass
class Rows:
    """The rows of a CSV that have an image path and a label, as columns.

    Args:
        lines: The line number of each row.
        paths: The image path of each row (stripped of surrounding spaces).
        labels: The label of each row (stripped; one string object per distinct label).
    """

    lines: list[int]
    paths: list[str]
    labels: list[str]

    def keep(self, kept: list[int]) -> Rows:
        """The rows at the indices `kept`."""
        return Rows(
            [self.lines[i] for i in kept], [self.paths[i] for i in kept], [self.labels[i] for i in kept]
        )


def read_rows(file: Path, header: bool | None, class_names: list[str] | None, problems: list[str]) -> Rows:
    """The (line, path, label) rows of a CSV without its header row; adds what is wrong to `problems`.

    Blank lines are skipped; a UTF-8 byte order mark and Windows line endings are fine. Every row needs the
    same number of columns, at least two: the image path and the label; further columns are ignored.

    Args:
        file: The CSV file.
        header: Whether it starts with a header row; None detects it (see `read_image_lists`).
        class_names: The class names given, if any (for detecting the header).
        problems: What is wrong with the file, one line each (`file:line: ...`), added to.
    """
    data = file.read_bytes()
    try:
        data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        problems.append(f"{file}:{line}: not UTF-8 text ({err.reason}); save the CSV as UTF-8")
        return Rows([], [], [])
    # Decoded again while read: a StringIO of the whole text would take 4 bytes a character.
    reader = csv.reader(io.TextIOWrapper(io.BytesIO(data), encoding="utf-8-sig", newline=""))
    rows, widths = Rows([], [], []), []
    labels: dict[str, str] = {}  # one string per distinct label
    try:
        for row in reader:
            path, label = (row[0].strip(), row[1].strip()) if len(row) >= 2 else ("", "")
            if not (path or label) and not "".join(row).strip():
                continue  # a blank line
            rows.lines.append(reader.line_num)
            rows.paths.append(path)
            rows.labels.append(labels.setdefault(label, label))
            widths.append(len(row))
    except csv.Error as err:
        problems.append(f"{file}:{reader.line_num}: not a readable CSV row ({err})")
        return Rows([], [], [])
    if not widths:
        problems.append(f"{file}: no images listed (the file is empty)")
        return rows
    width, _ = Counter(widths).most_common(1)[0]
    first_line = rows.lines[0]
    if width < 2 or widths.count(width) != len(widths):
        for line, n in zip(rows.lines, widths, strict=True):
            if n < 2:
                problems.append(f"{file}:{line}: needs two columns (image path, label), found {n}")
            elif n != width:
                problems.append(
                    f"{file}:{line}: {n} columns where the other rows have {width} "
                    "(quote a path that holds a comma)"
                )
        rows = rows.keep([i for i, n in enumerate(widths) if n == width >= 2])
    if header is None and rows.lines and rows.lines[0] == first_line:
        path, label = rows.paths[0], rows.labels[0]
        known = set(class_names) if class_names is not None else set(itertools.islice(rows.labels, 1, None))
        header = not Path(path).suffix and as_int(label) is None and label not in known
    if header and rows.lines and rows.lines[0] == first_line:
        rows = Rows(rows.lines[1:], rows.paths[1:], rows.labels[1:])
        if len(widths) == 1:
            problems.append(f"{file}: no images listed (only a header row)")
    if "" in rows.paths or "" in rows.labels:
        for line, path, label in zip(rows.lines, rows.paths, rows.labels, strict=True):
            if not path:
                problems.append(f"{file}:{line}: empty image path")
            if not label:
                problems.append(f"{file}:{line}: empty label")
        rows = rows.keep(
            [i for i, (path, label) in enumerate(zip(rows.paths, rows.labels, strict=True)) if path and label]
        )
    return rows

"""Labels of a CSV list of images: class names or integer ids, and the class names they imply.

Pure Python (no torch), like `src.data.csv_lists`, which reads and checks the CSVs.
"""

from __future__ import annotations

from src.errors import short_list


def as_int(cell: str) -> int | None:
    """The cell as an integer, or None when it is not one (a class name)."""
    try:
        return int(cell)
    except ValueError:
        return None


def infer_class_names(labels: list[str]) -> list[str]:
    """Class names of a label column: `str(i)` up to the largest id for integer labels, else sorted names.

    >>> infer_class_names(["2", "0", "2"])
    ['0', '1', '2']
    >>> infer_class_names(["dog", "cat", "dog"])
    ['cat', 'dog']
    """
    ids = [i for i in map(as_int, labels) if i is not None]
    if labels and len(ids) == len(labels):
        return [str(i) for i in range(max(max(ids) + 1, 0))]
    return sorted(set(labels))


def label_id(label: str, index: dict[str, int]) -> int | str:
    """The id of a label (a class name or an integer id), or what is wrong with it.

    >>> label_id("cat", {"cat": 0, "dog": 1}), label_id("1", {"cat": 0, "dog": 1})
    (0, 1)
    >>> label_id("2", {"cat": 0, "dog": 1})
    'label 2 out of range for 2 classes (0 to 1)'

    Args:
        label: A CSV's label cell.
        index: The id of each class name.
    """
    if label in index:
        return index[label]
    i = as_int(label)
    if i is None:
        return f"unknown class name {label!r} (the classes are {short_list(list(index), quote=True)})"
    if not 0 <= i < len(index):
        return f"label {i} out of range for {len(index)} classes (0 to {len(index) - 1})"
    return i

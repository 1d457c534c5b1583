"""Where the image files that a CSV names are, and whether they exist: fast enough for a million rows.

Pure Python, no torch (used by `src.data.csv_lists`). The answers are those of `pathlib` (`folder / name`,
`is_file()`, `is_dir()`) and `os.path.realpath`, with far fewer system calls: each folder is resolved
once, and once `LIST_AFTER` of its names have been asked about, listed once (`os.scandir`), so that a
name listed as a regular file needs no system call of its own, and a symbolic link to one just one
(`os.readlink`). Any other name (a folder, a link to a link, a name missing from the listing, e.g. written
in another case on a case-insensitive file system) is looked up on its own, as `pathlib` would.
"""

from __future__ import annotations

import os
from pathlib import Path

#: Names looked up one by one in a folder before the folder is listed.
LIST_AFTER = 32

#: Whether paths can be joined and split as text: "/" is the only separator (not Windows).
_SLASH_ONLY = os.sep == "/" and os.altsep is None


def _plain(path: str) -> bool:
    """Whether `path` can be split as text, as `pathlib` would: "/" is the only separator, and there is no
    `.`, `..` or empty part, nor a "/" at the end."""
    return _SLASH_ONLY and "//" not in path and "./" not in path and path[-1:] not in "./"


def _with_sep(folder: str) -> str:
    """`folder` ending with a separator, to join a name to (`/` stays `/`)."""
    return folder if folder.endswith(os.sep) else folder + os.sep


def _regular_files(folder: str) -> set[str]:
    """The names of the regular files (not symbolic links) in `folder`; empty when it cannot be listed."""
    try:
        with os.scandir(folder) as entries:
            return {entry.name for entry in entries if entry.is_file(follow_symlinks=False)}
    except OSError:
        return set()


class _Folder:
    """What is known of one folder of images: its real path, and once listed, its regular files."""

    __slots__ = ("asked", "files", "inside", "path", "real", "same")

    def __init__(self, path: str, real: str, inside: bool) -> None:
        self.path = path
        self.real = real  # ending with a separator
        self.same = real == _with_sep(path)  # no symbolic link or `..` on the way: real paths are paths
        self.inside = inside  # whether it is in the lookup's folder (after resolving both)
        self.asked = 0  # names looked up one by one
        self.files: set[str] | None = None

    def has_file(self, name: str) -> bool:
        """Whether the folder's listing has `name` as a regular file; False until it is listed."""
        if self.files is None:
            self.asked += 1
            if self.asked < LIST_AFTER:
                return False
            self.files = _regular_files(self.path)
        return name in self.files


class ImageLookup:
    """Finds the files that CSV paths name, relative to a folder (or absolute).

    Args:
        folder: The folder the paths are relative to.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._base = str(folder)
        self._prefix = "" if self._base == "." else _with_sep(self._base)
        self._inside = os.path.normcase(_with_sep(os.path.realpath(folder)))
        self._folders: dict[str, _Folder] = {}

    def is_inside(self, real: str) -> bool:
        """Whether a real path (see `find`) is the folder or inside it, once the folder is resolved too."""
        real = os.path.normcase(real)
        return real.startswith(self._inside) or _with_sep(real) == self._inside

    def find(self, name: str) -> tuple[str, str, bool | None, bool]:
        """The image `folder / name`: its path (as `pathlib` writes it); its real path (symbolic links and
        `..` resolved); whether it is a file (True), a folder (False) or neither (None); and whether its
        real path is inside the folder (`is_inside`).

        Args:
            name: The path from the CSV (no NUL character).
        """
        if _plain(name):
            path = name if name[0] == "/" else self._prefix + name
            head, _, last = path.rpartition("/")
            parent = head or ("/" if path[0] == "/" else ".")
        else:
            joined = self.folder / name
            path, parent, last = str(joined), str(joined.parent), joined.name
            if last in ("", ".", ".."):  # the folder itself, a root, or a path ending in `..`
                real = os.path.realpath(path)
                return path, real, _kind(path), self.is_inside(real)
        folder = self._folders.get(parent) or self._add(parent)
        if folder.has_file(last):
            return path, path if folder.same else folder.real + last, True, folder.inside
        real = folder.real + last
        try:
            target = os.readlink(real)
        except (OSError, ValueError):  # not a symbolic link (or nothing there)
            return path, real, _kind(path), self.is_inside(real)
        if not (_SLASH_ONLY and target[:1] == "/"):  # relative to the link's folder (resolved already)
            target = os.path.join(folder.real, target)
        if _plain(target):
            target_dir, _, target_name = target.rpartition("/")
            target_dir = target_dir or "/"
        else:
            target_dir, target_name = os.path.split(target)
        if target_name not in ("", ".", ".."):
            linked = self._folders.get(target_dir) or self._add(target_dir)
            if linked.has_file(target_name):  # a link to a listed file: no more system calls
                return path, linked.real + target_name, True, linked.inside
        real = os.path.realpath(real)
        return path, real, _kind(path), self.is_inside(real)

    def _add(self, parent: str) -> _Folder:
        """The new `_Folder` of `parent`, resolved."""
        real = _with_sep(os.path.realpath(parent))
        folder = self._folders[parent] = _Folder(parent, real, self.is_inside(real))
        return folder


def _kind(path: str) -> bool | None:
    """True for a file, False for a folder, None for neither (missing, or no access)."""
    return True if os.path.isfile(path) else False if os.path.isdir(path) else None

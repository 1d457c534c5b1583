"""Writing files safely: all at once (atomic replace), and a probe that a folder can be written."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

from src.errors import UserInputError


@contextlib.contextmanager
def replace_when_done(path: str | Path, key: str = "--output") -> Iterator[Path]:
    """Write a file all at once: yields a temporary file next to `path`, renamed onto `path` (`os.replace`,
    atomic) when the block ends without an error, deleted otherwise. So `path` is either the old file (or
    none) or the complete new one, never half-written, even when the process is killed while writing.

    Args:
        path: The file to write.
        key: The option the path came from, named in the error.

    Raises:
        UserInputError: The file cannot be written (one line naming `key` and the file).
    """
    path = Path(path)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        yield temporary
        os.replace(temporary, path)
    except OSError as err:
        raise UserInputError(f"{key}: cannot write {path} ({err.strerror or err})") from err
    finally:
        temporary.unlink(missing_ok=True)


def check_writable(folder: str | Path, key: str) -> None:
    """Check, before a run starts, that files can be written in `folder` (created if missing).

    Creates the folder, writes and removes a small probe file, so that a read-only or full disk, or a
    path through a file, stops the run at once with one line, not after the first epoch.

    Args:
        folder: The folder (logs or checkpoints).
        key: The option the folder came from, named in the error, e.g. `trainer.default_root_dir`.

    Raises:
        UserInputError: The folder cannot be created or written.
    """
    folder = Path(folder)
    probe = folder / f".write-test-{uuid.uuid4().hex}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with open(probe, "wb") as file:
            file.write(b"0" * 4096)
            file.flush()
            os.fsync(file.fileno())
    except OSError as err:
        raise UserInputError(f"{key}: cannot write in {folder}: {err.strerror or err}") from None
    finally:
        with contextlib.suppress(OSError):
            probe.unlink(missing_ok=True)


def check_output_file(output: str | os.PathLike, suffixes: tuple[str, ...], key: str = "--output") -> Path:
    """`output` as a Path when it ends with one of `suffixes` and its folder can be written, else a
    `UserInputError` naming `key` (checked before the work, so a mistake costs no time).

    >>> check_output_file("preds.txt", (".csv", ".json"))
    Traceback (most recent call last):
    ...
    src.errors.UserInputError: --output: preds.txt must end with .csv or .json
    """
    path = Path(output).expanduser()
    if path.suffix.lower() not in suffixes:
        raise UserInputError(f"{key}: {output} must end with {' or '.join(suffixes)}")
    if path.is_dir():
        raise UserInputError(f"{key}: {output} is a folder")
    folder = next((p for p in path.absolute().parents if p.exists()), None)
    if folder is not None and not (folder.is_dir() and os.access(folder, os.W_OK | os.X_OK)):
        raise UserInputError(f"{key}: cannot write {output}: {folder} is not a writable folder")
    return path

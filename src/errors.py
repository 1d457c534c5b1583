"""Errors caused by the user's input (config, files), reported by the CLI as one line, not a traceback."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path


class UserInputError(Exception):
    """A problem with a config value or an input file that the user can fix.

    The message must say what is wrong and name the config key or the file.
    """


def one_line(err: BaseException | str) -> str:
    """An exception's message (or a text) on one line, its type's name when it has none."""
    return " ".join((str(err) or type(err).__name__).split())


def find_user_error(err: BaseException | None) -> UserInputError | None:
    """The `UserInputError` behind `err`, if any (jsonargparse wraps errors raised while instantiating)."""
    while err is not None:
        if isinstance(err, UserInputError):
            return err
        err = err.__cause__ or err.__context__
    return None


@contextmanager
def exit_on_user_error(status: int = 1) -> Iterator[None]:
    """In a command's `main()`: a `UserInputError` (however wrapped) ends the program with one line
    `error: <message>` on stderr and exit status `status`, not a traceback. Other errors propagate."""
    try:
        yield
    except Exception as err:
        user_error = find_user_error(err)
        if user_error is None:
            raise
        print(f"error: {user_error}", file=sys.stderr)
        sys.exit(status)


def count(n: int, noun: str, plural: str | None = None) -> str:
    """`n` and the noun, plural unless `n` is 1.

    >>> count(1, "row"), count(3, "class", "classes")
    ('1 row', '3 classes')
    """
    return f"{n} {noun if n == 1 else plural or noun + 's'}"


def short_list(items: Sequence[object], limit: int = 8, quote: bool = False) -> str:
    """`items` for a message, comma-separated, the first `limit` of them when there are more.

    >>> short_list(["a", "b", "c"], limit=2, quote=True)
    "'a', 'b', ... (3 in all)"
    >>> short_list(["x.weight", "x.bias"], limit=3)
    'x.weight, x.bias'
    """
    items = list(items)
    shown = ", ".join(repr(item) if quote else str(item) for item in items[:limit])
    return f"{shown}, ... ({len(items)} in all)" if len(items) > limit else shown


#: Problems shown in one error message; the others are counted.
SHOWN_PROBLEMS = 10


def problems_error(where: str, problems: list[str], limit: int = SHOWN_PROBLEMS) -> UserInputError:
    """One error for all the `problems` found in the input files, so one run shows every one of them.

    One problem is the message itself (one line). Several give a one-line summary (`where`, a file or a
    config key, and how many), then the first `limit` problems, one a line, then how many more there are.

    Args:
        where: What the problems are in, for the summary line (e.g. the CSV file).
        problems: One line each, saying where (`file:line: ...`, `data.root: ...`) and what.
        limit: How many problems to show.

    >>> print(problems_error("train.csv", ["train.csv:2: a", "train.csv:5: b", "train.csv:9: c"], limit=2))
    train.csv: 3 problems (fix them and run again):
    train.csv:2: a
    train.csv:5: b
    ... and 1 more
    """
    if len(problems) == 1:
        return UserInputError(problems[0])
    lines = [f"{where}: {len(problems)} problems (fix them and run again):", *problems[:limit]]
    if len(problems) > limit:
        lines.append(f"... and {len(problems) - limit} more")
    return UserInputError("\n".join(lines))


def missing_files_error(
    dataset: str, folder: Path, download: bool, err: Exception, remedy: str
) -> UserInputError:
    """The one-line error of a downloadable dataset whose files are not there (offline, or download off).

    Args:
        dataset: Name of the dataset, as the message starts with it.
        folder: Where the files were expected.
        download: Whether a download was tried (else `data.download` is false).
        err: What torchvision raised.
        remedy: How to provide the files by hand, one sentence.
    """
    how = "the download failed" if download else "data.download is false"
    reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return UserInputError(f"{dataset} files not found in {folder.resolve()} and {how} ({reason}). {remedy}")


def describe_config_error(message: str) -> str:
    """One line naming the config key and what is wrong with it, from a (multi-line) jsonargparse error.

    jsonargparse explains a bad value of a nested class (`model.init_args.backbone...`) as a tree of
    "Parser key" / "Problem with given class_path" lines; this keeps the key path and the innermost reason.

    >>> describe_config_error("Group 'trainer' does not accept option 'max_epochz'")
    "trainer.max_epochz: unknown option (see 'python -m src.cli fit --help')"
    >>> describe_config_error("Parser key \\"data\\":\\n  - Problem with given class_path 'a.B':\\n"
    ...                       "      Option 'batch_sise' is not accepted")
    "data.init_args.batch_sise: unknown option of a.B (see 'python -m src.cli fit --help')"
    >>> describe_config_error("Parser key \\"data\\":\\n  - Problem with given class_path 'a.B':\\n"
    ...                       "    Parser key \\"cache\\":\\n"
    ...                       "      Expected a typing.Literal['auto', 'none']. Got value: x")
    "data.init_args.cache: expected one of auto, none, got 'x'"
    """
    if match := re.search(r"unrecognized arguments: --?(\S+)", message):
        return f"{match.group(1)}: unknown option (see 'python -m src.cli fit --help')"
    if match := re.search(r"(Group|Subcommand) '([^']+)' does not accept option '([^']+)'", message):
        key = match.group(3) if match.group(1) == "Subcommand" else f"{match.group(2)}.{match.group(3)}"
        return f"{key}: unknown option (see 'python -m src.cli fit --help')"

    key, class_path, value, reason = "", None, None, None
    for raw in message.splitlines():
        line = raw.strip().removeprefix("- ").strip()
        for name in re.findall(r'Parser key "([^"]+)"', line):
            key = f"{key}.init_args.{name}" if key else name
        if match := re.search(r"Problem with given class_path '([^']+)'", line):
            class_path = match.group(1)
        elif match := re.search(r"Option '([^']+)' is not accepted", line):
            if owner := re.search(r"class_path='([^']+)'", line):  # an optimizer or scheduler
                class_path = owner.group(1)
            key, reason = (
                f"{key}.init_args.{match.group(1)}",
                "unknown option" + (f" of {class_path}" if class_path else ""),
            )
            reason += " (see 'python -m src.cli fit --help')"
            break
        elif match := re.search(r"(No module named .*|module '[^']+' has no attribute .*)", line):
            reason = f"class_path '{class_path}' does not import: {match.group(1)}"
            break
        elif line.startswith("Given value:") and value is None:
            value = line.removeprefix("Given value:").split(". Got value:")[0].strip()
        elif match := re.match(r"Expected a typing\.Literal\[(.*)\]\. Got value: (.*)", line):
            reason, value = f"expected one of {match.group(1).replace(chr(39), '')}", match.group(2)
        elif (match := re.match(r"Expected a <class '(\w+)'>", line)) and match.group(1) != "NoneType":
            reason = reason or f"expected {match.group(1)}"
            if got := re.search(r"Got value: (.*)", line):
                value = got.group(1)
    if reason is None:  # an error this function does not know: its first line
        return message.strip().splitlines()[0] if message.strip() else "invalid configuration"
    if value is not None and reason.startswith("expected"):
        reason += f", got {value[:60]!r}"
    return f"{key}: {reason}"

"""`ImageLookup`, the file checks behind CSV lists of images: the answers of `pathlib` and
`os.path.realpath`, whether a folder has been listed (`os.scandir`, no system call per file) or not."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from src.data import image_lookup
from src.data.csv_lists import read_image_lists
from src.data.image_lookup import ImageLookup
from src.errors import UserInputError
from tests.helpers.files import write_csv

#: CSV paths, relative to the `tree` folder: files, folders, links in and out, odd spellings.
NAMES = [
    "a.png",
    "sub/b.png",
    "missing.png",
    "sub/missing.png",
    "case.png",  # the file is Case.png
    "Case.png",
    "dir.png",  # a folder named like a file
    "dir.png/",
    "sub",
    "in.png",  # a link to sub/b.png
    "rel.png",  # a relative link to sub/b.png
    "chain.png",  # a link to in.png
    "out.png",  # a link out of the folder
    "broken.png",
    "dirlink.png",  # a link to dir.png
    "linked/out.png",  # in a linked folder outside
    "./a.png",
    "sub/../a.png",
    "sub//b.png",
    "a.png/.",
    "sub\\b.png",
    ".",
    "..",
    "../outside/out.png",
    "{tree}/a.png",
    "/etc/passwd",
]


@pytest.fixture
def tree(tmp_path) -> Path:
    """`images/`: a.png, Case.png, sub/b.png, the folder dir.png and links; `outside/out.png` next to it."""
    images, outside = tmp_path / "images", tmp_path / "outside"
    (images / "sub").mkdir(parents=True)
    (images / "dir.png").mkdir()
    outside.mkdir()
    for path in (images / "a.png", images / "Case.png", images / "sub" / "b.png", outside / "out.png"):
        path.write_bytes(b"png")
    links = {
        "in.png": images / "sub" / "b.png",
        "rel.png": Path("sub/b.png"),
        "chain.png": images / "in.png",
        "out.png": outside / "out.png",
        "broken.png": images / "gone.png",
        "dirlink.png": images / "dir.png",
        "linked": outside,
    }
    for name, target in links.items():
        (images / name).symlink_to(target)
    return images


def pathlib_answer(folder: Path, name: str) -> tuple[str, str, bool | None, bool]:
    """What `pathlib` and `os.path.realpath` say: path, real path, file/folder/neither, inside."""
    path = folder / name
    real = os.path.realpath(path)
    kind = True if path.is_file() else False if path.is_dir() else None
    return str(path), real, kind, Path(real).is_relative_to(os.path.realpath(folder))


@pytest.mark.parametrize("list_after", [1, 10_000], ids=["listed", "one-by-one"])
@pytest.mark.parametrize("where", ["absolute", "relative", "dot"])
def test_the_lookup_answers_as_pathlib_does(tree, monkeypatch, list_after, where):
    monkeypatch.setattr(image_lookup, "LIST_AFTER", list_after)
    folder = {"absolute": tree, "relative": Path("images"), "dot": Path(".")}[where]
    monkeypatch.chdir(tree if where == "dot" else tree.parent)
    lookup = ImageLookup(folder)
    names = [name.format(tree=tree) for name in NAMES]
    for name in names * 2:  # the second time, every folder asked about has been listed
        assert lookup.find(name) == pathlib_answer(folder, name), name


def test_a_listed_folder_needs_no_system_call_per_file(tree, monkeypatch):
    monkeypatch.setattr(image_lookup, "LIST_AFTER", 1)
    lookup = ImageLookup(tree)
    lookup.find("a.png")  # resolves and lists the folder

    def no_call(*args, **kwargs):
        raise AssertionError("a system call")

    for name in ("stat", "lstat", "readlink", "scandir"):
        monkeypatch.setattr(os, name, no_call)
    assert lookup.find("Case.png") == (str(tree / "Case.png"), str(tree / "Case.png"), True, True)


def test_problems_in_a_listed_folder_are_all_found(tree, tmp_path):
    (tree / "many").mkdir()
    good = [(f"many/{i}.png", "cat") for i in range(image_lookup.LIST_AFTER + 8)]
    for path, _ in good:
        (tree / path).write_bytes(b"png")
    bad = [("many/gone.png", "cat"), ("many/0.png/x.png", "cat"), ("dir.png", "cat"), ("out.png", "dog")]
    aliases = [("sub/b.png", "cat"), ("in.png", "dog")]  # one image, two labels
    csv = write_csv(tmp_path / "list.csv", [*good, *bad, *aliases])
    with pytest.raises(UserInputError) as err:
        read_image_lists([csv], tree)
    n = len(good)
    assert str(err.value).splitlines()[1:] == [
        f"{csv}:{n + 1}: image file {tree}/many/gone.png not found",
        f"{csv}:{n + 2}: image file {tree}/many/0.png/x.png not found",
        f"{csv}:{n + 3}: {tree}/dir.png is a folder, not an image file",
        f"{csv}:{n + 4}: image {tree}/out.png is a link to {tree.parent}/outside/out.png outside the image "
        f"folder {tree} (set allow_outside_img_dir: true to allow paths outside it)",
        f"{csv}:{n + 6}: image {tree}/in.png has label 'dog' here and 'cat' on line {n + 5}",
    ]
    lists, _ = read_image_lists([write_csv(tmp_path / "good.csv", good)], tree)
    assert lists[0].paths == [f"{tree}/{path}" for path, _ in good]  # strings, as pathlib writes them

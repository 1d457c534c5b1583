"""CSV-listed datasets with bad input: every problem is found before training, and reported in one error."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from src.cli import main
from src.data import CSVImageDataModule, CSVImageDataset, ImageFolderDataModule
from src.errors import UserInputError
from tests.helpers.cli import REPO
from tests.helpers.files import make_image_folder, write_csv

CLASSES = ["cat", "dog"]


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    """`images/` with cat/0-2.png and dog/3-5.png, an image whose path has spaces, and one outside it."""
    root = tmp_path_factory.mktemp("validation")
    make_image_folder(root / "images", tuple(CLASSES), n_per_class=3)
    (root / "images" / "my cats").mkdir()
    Image.new("RGB", (8, 8), (200, 10, 10)).save(root / "images" / "my cats" / "cat, the 2nd.png")
    Image.new("L", (8, 8), 128).save(root / "outside.png")
    return root


#: Rows of a good training CSV (relative to `images/`).
GOOD = [("cat/0.png", "cat"), ("cat/1.png", "cat"), ("dog/3.png", "dog"), ("dog/4.png", "dog")]


def write_text(path: Path, text: str, encoding: str = "utf-8") -> Path:
    """Write `text` as is (no newline translation), for line endings and byte order marks."""
    path.write_bytes(text.encode(encoding))
    return path


def dataset(root: Path, csv: Path, **kwargs) -> CSVImageDataset:
    return CSVImageDataset(csv, img_dir=root / "images", **kwargs)


def error_of(root: Path, csv: Path, **kwargs) -> str:
    """The message of the error that reading `csv` raises."""
    with pytest.raises(UserInputError) as err:
        dataset(root, csv, **kwargs)
    return str(err.value)


# --- each kind of problem names the file and the line ---------------------------------------------


@pytest.mark.parametrize(
    ("rows", "class_names", "expected"),
    [
        pytest.param(
            [*GOOD, ("cat/gone.png", "cat")], None, ":5: image file .*gone.png not found", id="missing"
        ),
        pytest.param([*GOOD, ("cat/2.png",)], None, ":5: needs two columns .*found 1", id="one-column"),
        pytest.param(
            [*GOOD, ("cat/2.png", "cat", "x")], None, ":5: 3 columns where the other rows have 2", id="ragged"
        ),
        pytest.param([*GOOD, ("cat/2.png", "cow")], CLASSES, ":5: unknown class name 'cow'", id="unknown"),
        pytest.param(
            [("cat/0.png", "0"), ("dog/3.png", "-1")], CLASSES, ":2: label -1 out of range", id="-1"
        ),
        pytest.param(
            [("cat/0.png", "0"), ("dog/3.png", "2")], CLASSES, ":2: label 2 out of range for 2", id="2"
        ),
        pytest.param(
            [("cat/0.png", "0"), ("cat/1.png", "1"), ("dog/3.png", "-1")],
            None,
            ":3: label -1 out of range",
            id="-1-inferred",
        ),
        pytest.param(
            [("cat/0.png", "0"), ("cat/1.png", "1"), ("dog/3.png", "dog")],
            None,
            ":3: label 'dog' is a class name while most labels are integer ids",
            id="mixed",
        ),
        pytest.param([*GOOD, ("", "cat")], None, ":5: empty image path", id="no-path"),
        pytest.param([*GOOD, ("cat/2.png", "")], None, ":5: empty label", id="no-label"),
        pytest.param(
            [*GOOD, ("cat/0.png", "dog")],
            None,
            ":5: image .*0.png has label 'dog' here and 'cat' on line 1",
            id="two-labels",
        ),
        pytest.param([*GOOD, ("cat", "cat")], None, ":5: .*cat is a folder, not an image file", id="folder"),
        pytest.param([*GOOD, ("cat/\x002.png", "cat")], None, ":5: the image path holds a NUL", id="nul"),
        pytest.param(
            [*GOOD, ("cat/2.png", "c" * 200_000)],
            None,
            ":5: not a readable CSV row .*field limit",
            id="huge-field",
        ),
        pytest.param(
            [*GOOD, ("cat\\2.png", "cat")],
            None,
            ":5: image file .* not found .*write paths with /",
            id="backslash",
        ),
    ],
)
def test_each_problem_names_file_and_line(root, tmp_path, rows, class_names, expected):
    csv = write_csv(tmp_path / "bad.csv", rows)
    message = error_of(root, csv, class_names=class_names)
    assert message.startswith(f"{csv}:")
    assert "\n" not in message  # one problem: one line
    assert re.search(expected, message), message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "no images listed (the file is empty)"),
        ("\n\r\n  \n", "no images listed (the file is empty)"),
        ("path,label\n", "no images listed (only a header row)"),
    ],
)
def test_an_empty_csv_is_an_error(root, tmp_path, text, expected):
    csv = write_text(tmp_path / "empty.csv", text)
    assert error_of(root, csv) == f"{csv}: {expected}"


def test_a_csv_that_is_not_utf8_text_is_an_error(root, tmp_path):
    csv = write_text(tmp_path / "latin1.csv", "cat/0.png,chat\ncat/1.png,ch\u00e2teau\n", encoding="latin-1")
    assert (
        error_of(root, csv) == f"{csv}:2: not UTF-8 text (invalid continuation byte); save the CSV as UTF-8"
    )


def test_all_problems_are_reported_in_one_error(root, tmp_path):
    rows = [
        ("cat/0.png", "cat"),
        ("cat/gone.png", "cat"),
        ("dog/3.png", "cow"),
        ("dog/4.png",),
        ("dog/5.png", "dog"),
    ]
    csv = write_csv(tmp_path / "bad.csv", rows)
    lines = error_of(root, csv, class_names=CLASSES).splitlines()
    assert lines[0] == f"{csv}: 3 problems (fix them and run again):"
    assert [line.split(": ")[0] for line in lines[1:]] == [f"{csv}:2", f"{csv}:3", f"{csv}:4"]
    assert "gone.png not found" in lines[1] and "'cow'" in lines[2] and "two columns" in lines[3]


def test_many_problems_show_the_first_ten_and_count_the_rest(root, tmp_path):
    csv = write_csv(tmp_path / "bad.csv", [*GOOD, *[(f"cat/gone{i}.png", "cat") for i in range(25)]])
    lines = error_of(root, csv).splitlines()
    assert lines[0] == f"{csv}: 25 problems (fix them and run again):"
    assert (
        len(lines) == 12 and lines[10].startswith(f"{csv}:14: image file") and lines[11] == "... and 15 more"
    )


def test_problems_of_every_csv_of_a_datamodule_come_together(root, tmp_path):
    train = write_csv(tmp_path / "train.csv", [*GOOD, ("cat/gone.png", "cat")])
    test = write_csv(
        tmp_path / "test.csv", [("cat/2.png", "cow"), ("dog/5.png", "dog"), ("dog/x.png", "dog")]
    )
    with pytest.raises(UserInputError) as err:
        CSVImageDataModule(str(train), img_dir=str(root / "images"), test_annotations_file=str(test))
    lines = str(err.value).splitlines()
    assert lines[0] == f"{train} (1), {test} (2): 3 problems (fix them and run again):"
    assert [line.split(": ")[0] for line in lines[1:]] == [f"{train}:5", f"{test}:1", f"{test}:3"]


def test_a_single_class_is_an_error_of_the_datamodule(root, tmp_path):
    csv = write_csv(tmp_path / "cats.csv", GOOD[:2])
    with pytest.raises(
        UserInputError, match=rf"data.class_names: needs at least 2 classes, found 1 \('cat'\) in {csv}"
    ):
        CSVImageDataModule(str(csv), img_dir=str(root / "images"))


# --- what must work -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("newline", "bom"),
    [("\r\n", ""), ("\n", "\ufeff"), ("\r\n", "\ufeff"), ("\r", "")],
    ids=["crlf", "bom", "both", "cr"],
)
def test_windows_line_endings_and_byte_order_mark_work(root, tmp_path, newline, bom):
    text = bom + newline.join(["path,label", *(",".join(row) for row in GOOD)]) + newline
    data = dataset(root, write_text(tmp_path / "windows.csv", text))
    assert data.class_names == CLASSES and data.targets == [0, 0, 1, 1]
    assert [path.name for path in data.paths] == ["0.png", "1.png", "3.png", "4.png"]
    assert data[3][0].size == (30, 36)  # (width, height) of dog/4.png


def test_paths_with_spaces_and_commas_work(root, tmp_path):
    rows = [*GOOD, ("my cats/cat, the 2nd.png", "cat"), (" cat/2.png ", " cat ")]  # quoted by csv.writer
    data = dataset(root, write_csv(tmp_path / "spaces.csv", rows, header=("image path", "class name")))
    assert len(data) == 6 and data.targets[4:] == [0, 0]
    assert data.paths[4] == root / "images" / "my cats" / "cat, the 2nd.png"
    assert data[4][0].size == (8, 8)


def test_extra_columns_are_ignored(root, tmp_path):
    rows = [(path, label, "note, with a comma", "") for path, label in GOOD]
    data = dataset(root, write_csv(tmp_path / "extra.csv", rows, header=("path", "label", "note", "source")))
    assert data.targets == [0, 0, 1, 1]


def test_duplicated_rows_are_a_warning_that_counts_them(root, tmp_path):
    csv = write_csv(tmp_path / "dup.csv", [*GOOD, GOOD[0], GOOD[2], GOOD[0]])
    with pytest.warns(UserWarning, match=rf"{csv}: 3 duplicated rows .*e.g. line 5 repeats line 1"):
        data = dataset(root, csv)
    assert len(data) == 7  # each copy counts


def test_validation_images_that_are_also_training_images_are_a_warning(root, tmp_path):
    train = write_csv(tmp_path / "train.csv", GOOD)
    val = write_csv(tmp_path / "val.csv", [("cat/2.png", "cat"), ("dog/3.png", "dog"), ("dog/5.png", "dog")])
    with pytest.warns(
        UserWarning, match=rf"{val}: 1 of its 3 images is also in the training CSV {train} \(e.g. line 2"
    ):
        CSVImageDataModule(str(train), img_dir=str(root / "images"), val_annotations_file=str(val))


def test_a_class_with_a_single_image_among_many_is_a_warning(tmp_path):
    rows = []
    for i in range(21):
        Image.new("L", (4, 4), i).save(tmp_path / f"{i}.png")
        rows.append((f"{i}.png", ["cat", "dog"][i % 2] if i < 20 else "dgo"))
    csv = write_csv(tmp_path / "train.csv", rows)
    with pytest.warns(
        UserWarning, match=rf"{csv}: 1 class with a single image .*'dgo' \(line 21\); misspelt"
    ):
        dm = CSVImageDataModule(str(csv))
    assert dm.class_names == ["cat", "dgo", "dog"]
    with pytest.raises(UserInputError, match=rf"{csv}:21: unknown class name 'dgo'"):
        CSVImageDataModule(str(csv), class_names=CLASSES)


def test_the_bundled_sample_passes_without_a_warning(recwarn):
    folder = REPO / "samples" / "fashion_mnist"
    files = {
        f"{key}annotations_file": str(folder / f"{name}.csv")
        for key, name in [("", "train"), ("val_", "val"), ("test_", "test")]
    }
    dm = CSVImageDataModule(**files)
    assert [len(images.paths) for images in dm.image_lists.values()] == [2000, 500, 500]
    assert not [w for w in recwarn if "csv" in str(w.message)]


# --- paths cannot leave img_dir -------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    ["../outside.png", "cat/../../outside.png", "{tmp}/outside.png", "/etc/passwd", "link.png"],
    ids=["dotdot", "inner-dotdot", "absolute", "etc-passwd", "symlink"],
)
def test_paths_outside_img_dir_are_errors_unless_allowed(root, tmp_path, path):
    images = tmp_path / "images"  # cat/0.png, and link.png: a symbolic link to a file outside the folder
    (images / "cat").mkdir(parents=True)
    (images / "cat" / "0.png").write_bytes((root / "images" / "cat" / "0.png").read_bytes())
    (tmp_path / "outside.png").write_bytes((root / "outside.png").read_bytes())
    (images / "link.png").symlink_to(tmp_path / "outside.png")
    path = path.format(tmp=tmp_path)
    csv = write_csv(tmp_path / "list.csv", [("cat/0.png", "cat"), (path, "dog")])
    what = (
        f"image {images / path} is a link to {tmp_path / 'outside.png'}"
        if path == "link.png"
        else (f"image path {path!r} is")
    )
    with pytest.raises(UserInputError) as err:
        CSVImageDataset(csv, img_dir=images)
    assert str(err.value) == (
        f"{csv}:2: {what} outside the image folder {images} "
        "(set allow_outside_img_dir: true to allow paths outside it)"
    )
    if path != "/etc/passwd":
        data = CSVImageDataset(csv, img_dir=images, allow_outside_img_dir=True)
        assert data.targets == [0, 1] and data[1][0].size == (8, 8)


def test_absolute_paths_and_links_inside_img_dir_are_fine(root, tmp_path):
    images = tmp_path / "images"
    (images / "cat").mkdir(parents=True)
    (images / "cat" / "0.png").write_bytes((root / "images" / "cat" / "0.png").read_bytes())
    (images / "cat" / "1.png").write_bytes((root / "images" / "cat" / "1.png").read_bytes())
    (images / "alias.png").symlink_to(images / "cat" / "1.png")
    (images / "dog").symlink_to(root / "images" / "dog")  # a linked folder: what is in it is outside
    rows = [(str(images / "cat" / "0.png"), "cat"), ("alias.png", "dog"), ("dog/3.png", "dog")]
    csv = write_csv(tmp_path / "inside.csv", rows)
    with pytest.raises(
        UserInputError, match=rf"{csv}:3: image {images}/dog/3.png is a link to {root}/images/dog/3"
    ):
        CSVImageDataset(csv, img_dir=images)
    assert CSVImageDataset(write_csv(tmp_path / "two.csv", rows[:2]), img_dir=images).targets == [0, 1]


# --- unreadable images ----------------------------------------------------------------------------


@pytest.fixture
def bad_images(root, tmp_path) -> Path:
    """A CSV of 4 good images and 3 that cannot be read: empty, text, truncated."""
    folder = tmp_path / "images"  # the CSV is in this folder too
    for path, _ in GOOD:
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        (folder / path).write_bytes((root / "images" / path).read_bytes())
    (folder / "empty.png").write_bytes(b"")
    (folder / "text.png").write_text("not an image")
    (folder / "cut.png").write_bytes((root / "images" / "cat" / "0.png").read_bytes()[:60])
    bad = [("empty.png", "cat"), ("text.png", "dog"), ("cut.png", "cat")]
    return write_csv(folder / "list.csv", [GOOD[0], *bad, *GOOD[1:]], header=("path", "label"))


def test_unreadable_images_are_skipped_with_one_warning_when_asked(bad_images):
    with pytest.warns(
        UserWarning, match=r"skipped 3 of 7 images that cannot be read \(skip_bad_images\): "
    ) as caught:
        data = CSVImageDataset(bad_images, skip_bad_images=True)
    assert len(caught) == 1
    message = str(caught[0].message)
    assert f"{bad_images}:3: " in message and "empty.png" in message and f"{bad_images}:5: " in message
    assert len(data) == 4 and data.lines == [2, 6, 7, 8] and data.targets == [0, 0, 1, 1]
    assert [data[i][0].mode for i in range(4)] == ["RGB"] * 4


def test_unreadable_images_stop_when_loaded_by_default(bad_images):
    data = CSVImageDataset(bad_images)  # only their existence is checked up front
    assert len(data) == 7
    with pytest.raises(UserInputError, match=r"empty\.png: cannot read the image"):
        data[1]


def test_no_readable_image_at_all_is_an_error(tmp_path):
    (tmp_path / "a.png").write_bytes(b"")
    (tmp_path / "b.png").write_text("text")
    csv = write_csv(tmp_path / "list.csv", [("a.png", "cat"), ("b.png", "dog")])
    with pytest.raises(UserInputError, match=rf"{csv}: none of its 2 images can be read \(first: {csv}:1: "):
        CSVImageDataset(csv, skip_bad_images=True)


def test_the_datamodule_skips_unreadable_images_of_every_csv(bad_images):
    settings = {"val_annotations_file": str(bad_images), "test_annotations_file": str(bad_images)}
    with pytest.warns(UserWarning, match="skipped 3 of 7 images"):  # each file once
        dm = CSVImageDataModule(str(bad_images), skip_bad_images=True, num_workers=0, **settings)
    dm.setup("fit")
    dm.setup("test")
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (4, 4, 4)


# --- image folders --------------------------------------------------------------------------------


def test_image_folder_problems_are_found_up_front_all_at_once(root, tmp_path):
    (tmp_path / "train" / "empty").mkdir(parents=True)
    (tmp_path / "val").mkdir()
    make_image_folder(tmp_path / "test", ("cat", "cow"), n_per_class=1)
    with pytest.raises(UserInputError) as err:
        ImageFolderDataModule(
            str(tmp_path / "train"), val_root=str(tmp_path / "val"), test_root=str(tmp_path / "test")
        )
    assert str(err.value).splitlines() == [
        "the image folders: 4 problems (fix them and run again):",
        f"data.root: no image files in the class folders 'empty' of {tmp_path / 'train'} (image files end in "
        ".jpg, .jpeg, .png, .ppm, .bmp, .pgm, .tif, .tiff, .webp)",
        f"data.val_root: no class sub-folders in {tmp_path / 'val'} "
        "(it needs one folder of images per class)",
        f"data.root: needs at least 2 class folders, found 1 ('empty') in {tmp_path / 'train'}",
        f"data.test_root: the class folders of {tmp_path / 'test'} ('cat', 'cow') differ from those of "
        "data.root ('empty')",
    ]


# --- through the command line: one `error:` line, exit status 1, nothing written -------------------


def cli_args(csv: Path, out: Path, *extra: str) -> list[str]:
    return [
        "fit",
        "--config",
        str(REPO / "configs" / "csv_images.yaml"),
        f"--data.annotations_file={csv}",
        "--data.val_annotations_file=null",
        "--data.test_annotations_file=null",
        "--data.num_workers=0",
        f"--trainer.default_root_dir={out / 'root'}",
        "--trainer.accelerator=cpu",
        "--trainer.max_epochs=1",
        *extra,
    ]


def assert_one_error_and_nothing_written(rc: int, stderr: str, out: Path, expected: str) -> None:
    assert rc == 1
    assert "Traceback" not in stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith(f"error: {expected.splitlines()[0]}"), stderr
    assert expected in stderr
    assert not (out / "logs").exists() and not (out / "root").exists()


def test_cli_reports_a_bad_csv_in_one_line_before_writing_anything(root, tmp_path):
    csv = write_csv(tmp_path / "train.csv", [*GOOD, ("../outside.png", "cat")])
    args = cli_args(csv, tmp_path, f"--data.img_dir={root / 'images'}")
    result = subprocess.run(
        [sys.executable, "-m", "src.cli", *args], cwd=REPO, capture_output=True, text=True
    )
    expected = f"{csv}:5: image path '../outside.png' is outside the image folder {root / 'images'}"
    assert_one_error_and_nothing_written(result.returncode, result.stderr, tmp_path, expected)


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        ([], "{csv}: no images listed (the file is empty)"),
        (
            [*GOOD, ("cat/gone.png", "cat"), ("cat/0.png", "dog")],
            "{csv}: 2 problems (fix them and run again):\n"
            "{csv}:5: image file {images}/cat/gone.png not found\n"
            "{csv}:6: image {images}/cat/0.png has label 'dog' here and 'cat' on line 1",
        ),
    ],
    ids=["empty", "two-problems"],
)
def test_cli_in_process_exit_status_and_message(root, tmp_path, monkeypatch, capsys, rows, expected):
    csv = write_csv(tmp_path / "train.csv", rows)
    monkeypatch.setattr(
        sys, "argv", ["src.cli", *cli_args(csv, tmp_path, f"--data.img_dir={root / 'images'}")]
    )
    with pytest.raises(SystemExit) as exit_:
        main()
    stderr = capsys.readouterr().err
    expected = expected.format(csv=csv, images=root / "images")
    assert_one_error_and_nothing_written(exit_.value.code, stderr, tmp_path, expected)

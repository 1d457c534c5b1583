"""`python -m src.predict`: a checkpoint alone plus image files of any format, mode and size."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from src.data.images import load_image
from src.errors import UserInputError
from src.files import replace_when_done
from src.lightning_cli import cli_main
from src.predict import main
from src.predictions import format_rows, predict_files
from tests.helpers.checkpoint import CLASSES
from tests.helpers.cli import REPO, fast_cli_args, run_command

MODEL_SIZE = (28, 28)  # the checkpoint's input: 1 channel, 28x28


@pytest.fixture(scope="module")
def gray() -> np.ndarray:
    """An 8-bit grayscale picture of an odd size (37 x 23) using the whole 0..255 range."""
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(37, 23), dtype=np.uint8)
    image[0, 0], image[0, 1] = 0, 255
    return image


def read_csv(path: Path) -> list[list[str]]:
    with path.open(newline="") as file:
        return list(csv.reader(file))


# --- the accuracy the CLI reported --------------------------------------------------------------------


def test_predicts_its_validation_images_with_the_accuracy_the_cli_reported(trained):
    rows = predict_files(trained.ckpt, trained.val_dir, batch_size=32)
    assert [Path(r["path"]).name for r in rows] == [f"{i:03d}.png" for i in range(len(trained.val_labels))]
    predicted = [CLASSES.index(r["classes"][0]) for r in rows]
    accuracy = np.mean(np.array(predicted) == np.array(trained.val_labels))
    assert 0.0 < trained.val_acc < 1.0  # a half-trained model, so the comparison means something
    assert accuracy == pytest.approx(trained.val_acc, abs=1e-6)


def test_predicts_its_test_images_with_the_accuracy_of_cli_test(trained, fashion_mnist_root):
    args = fast_cli_args(fashion_mnist_root, Path(trained.out_dir))
    cli = cli_main(["test", *args, "--ckpt_path", trained.ckpt])
    reported = cli.trainer.callback_metrics["test/acc"].item()
    rows = predict_files(trained.ckpt, [f"{trained.test_dir}/*.png"], batch_size=32)
    predicted = [CLASSES.index(r["classes"][0]) for r in rows]
    assert len(predicted) == len(trained.test_labels) == 80
    assert np.mean(np.array(predicted) == np.array(trained.test_labels)) == pytest.approx(reported, abs=1e-6)


# --- formats, modes, sizes ---------------------------------------------------------------------------


def _rgb(gray: np.ndarray) -> Image.Image:
    return Image.fromarray(np.stack([gray] * 3, axis=-1))


#: Files that hold exactly the grayscale picture (lossless formats; colour with equal channels; opaque
#: alpha; 16-bit values v * 257; a grayscale palette): each must load as the very same pixels.
LOSSLESS = {
    "gray.png": lambda g: Image.fromarray(g),
    "gray.bmp": lambda g: Image.fromarray(g),
    "gray.tif": lambda g: Image.fromarray(g),
    "gray_lossless.webp": lambda g: Image.fromarray(g),
    "rgb.png": _rgb,
    "rgb.bmp": _rgb,
    "rgb.tiff": _rgb,
    "rgba_opaque.png": lambda g: _rgb(g).convert("RGBA"),
    "la_opaque.png": lambda g: Image.fromarray(g).convert("LA"),
    "gray16.png": lambda g: Image.fromarray(g.astype(np.uint16) * 257),
    "gray16.tif": lambda g: Image.fromarray(g.astype(np.uint16) * 257),
    "palette.png": lambda g: Image.fromarray(g).convert("P"),
    "palette.bmp": lambda g: Image.fromarray(g).convert("P"),
}

#: Lossy or reduced files of the same picture: they load, with the model's channels and size.
OTHERS = {
    "photo.jpg": _rgb,
    "gray.jpeg": lambda g: Image.fromarray(g),
    "cmyk.jpg": lambda g: _rgb(g).convert("CMYK"),
    "rgb.webp": _rgb,
    "rgba_transparent.webp": lambda g: Image.fromarray(np.stack([g, g, g, g], axis=-1), "RGBA"),
    "palette_transparent.png": lambda g: _rgb(g).convert("P", palette=Image.Palette.ADAPTIVE, colors=16),
    "bilevel.tif": lambda g: Image.fromarray(g).convert("1"),
    "animation.gif": lambda g: Image.fromarray(g),
}


def _save(folder: Path, name: str, image: Image.Image) -> Path:
    path = folder / name
    options = {"lossless": True} if "lossless" in name else {}
    if name == "palette_transparent.png":
        options = {"transparency": 0}
    image.save(path, **options)
    return path


@pytest.fixture(scope="module")
def image_files(gray, tmp_path_factory) -> Path:
    """A folder of the same picture in every format and mode of `LOSSLESS` and `OTHERS`."""
    folder = tmp_path_factory.mktemp("formats")
    for name, make in {**LOSSLESS, **OTHERS}.items():
        _save(folder, name, make(gray))
    return folder


@pytest.mark.parametrize("name", sorted(LOSSLESS))
@pytest.mark.parametrize("channels", [1, 3])
def test_lossless_files_of_any_mode_load_as_the_same_pixels(image_files, name, channels):
    reference = np.asarray(load_image(image_files / "gray.png", channels, MODEL_SIZE))
    image = load_image(image_files / name, channels, MODEL_SIZE)
    assert image.mode == ("L" if channels == 1 else "RGB")
    assert np.array_equal(np.asarray(image), reference)


def test_transparency_is_composited_onto_white(tmp_path):
    pixels = np.zeros((4, 6, 4), dtype=np.uint8)  # black everywhere ...
    pixels[:, :3, 3] = 255  # ... opaque on the left half, transparent on the right
    Image.fromarray(pixels, "RGBA").save(tmp_path / "half.png")
    image = np.asarray(load_image(tmp_path / "half.png", channels=3))
    assert image.shape == (4, 6, 3)
    assert (image[:, :3] == 0).all() and (image[:, 3:] == 255).all()


def test_16_bit_values_are_scaled_not_clipped(tmp_path):
    ramp = np.array([[0, 257 * 100, 65535]], dtype=np.uint16)  # 8-bit 0, 100, 255
    Image.fromarray(ramp).save(tmp_path / "ramp16.png")
    assert np.asarray(load_image(tmp_path / "ramp16.png", channels=1)).tolist() == [[0, 100, 255]]


def test_predicts_every_format_and_mode_in_a_folder(trained, image_files):
    rows = predict_files(trained.ckpt, image_files, top_k=10)
    by_name = {Path(r["path"]).name: r for r in rows}
    assert sorted(by_name) == sorted({**LOSSLESS, **OTHERS})  # every file of the folder, nothing else

    def probs(name: str) -> dict[str, float]:
        return dict(zip(by_name[name]["classes"], by_name[name]["probs"], strict=True))

    for row in rows:
        assert sorted(row["classes"]) == sorted(CLASSES)
        assert sum(row["probs"]) == pytest.approx(1.0, abs=1e-5)
    reference = probs("gray.png")
    for name in LOSSLESS:  # the same pixels give the same prediction
        assert probs(name) == pytest.approx(reference, abs=1e-6), name


@pytest.mark.parametrize("size", [(1, 1), (1, 500), (3001, 2003)], ids=["1x1", "1x500", "3001x2003"])
def test_extreme_sizes_are_resized_to_the_model_input(trained, tmp_path, size):
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 256, size=size, dtype=np.uint8)).save(tmp_path / "odd.png")
    assert load_image(tmp_path / "odd.png", 1, MODEL_SIZE).size == MODEL_SIZE[::-1]
    [row] = predict_files(trained.ckpt, [tmp_path / "odd.png"], top_k=2)
    assert row["classes"][0] in CLASSES and row["probs"][0] >= row["probs"][1]


def test_an_image_over_the_decompression_bomb_limit_is_refused(trained, tmp_path, monkeypatch, capsys):
    # PIL refuses images of more than 2 x MAX_IMAGE_PIXELS; a small limit stands in for a huge image.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    Image.new("L", (30, 20)).save(tmp_path / "big.png")  # 600 > 2 x 100 pixels
    code, out, err = run_command(
        main, [trained.ckpt, tmp_path / "big.png", "--output", tmp_path / "p.csv"], capsys
    )
    assert code == 1 and out == ""
    assert err.startswith(f"error: {tmp_path / 'big.png'}: image too large") and err.count("\n") == 1
    assert "MAX_IMAGE_PIXELS" in err
    assert not (tmp_path / "p.csv").exists()


# --- paths: files, folders, globs --------------------------------------------------------------------


def test_folders_and_globs_expand_in_the_order_given(trained, tmp_path):
    rng = np.random.default_rng(2)
    (tmp_path / "a" / "deep").mkdir(parents=True)
    names = ["a/2.png", "a/1.png", "a/notes.txt", "a/deep/3.png", "b.jpg", "c.png"]
    for name in names:
        if name.endswith(".txt"):
            (tmp_path / name).write_text("not an image, not an image extension")
        else:
            Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8)).save(tmp_path / name)
    inputs = [tmp_path / "c.png", tmp_path / "a", f"{tmp_path}/*.jpg", f"{tmp_path}/a/**/*.png"]
    rows = predict_files(trained.ckpt, inputs)
    expected = ["c.png", "a/1.png", "a/2.png", "b.jpg", "a/1.png", "a/2.png", "a/deep/3.png"]
    assert [Path(r["path"]).relative_to(tmp_path).as_posix() for r in rows] == expected


# --- printed lines, --top-k, --output ----------------------------------------------------------------


def test_prints_one_line_per_image_with_the_top_k_best_first(trained, capsys):
    code, out, err = run_command(
        main, [trained.ckpt, f"{trained.test_dir}/00[0-4].png", "--top-k", "3"], capsys
    )
    assert code == 0, err
    lines = out.splitlines()
    assert len(lines) == 5
    rows = predict_files(trained.ckpt, f"{trained.test_dir}/00[0-4].png", top_k=3)
    assert lines == format_rows(rows)
    for line, row in zip(lines, rows, strict=True):
        assert line.startswith(row["path"])
        assert len(row["classes"]) == 3 and row["probs"] == sorted(row["probs"], reverse=True)
        assert f"{row['classes'][0]} {row['probs'][0]:.3f}" in line


def test_output_csv_has_k_class_and_probability_columns_best_first(trained, tmp_path, capsys):
    output = tmp_path / "out" / "predictions.csv"  # the folder is created
    code, _, err = run_command(
        main, [trained.ckpt, trained.test_dir, "--top-k", "4", "--output", output], capsys
    )
    assert code == 0, err
    assert err.strip().endswith(f"Wrote 80 predictions to {output}")
    header, *rows = read_csv(output)
    assert header == ["path", "class1", "prob1", "class2", "prob2", "class3", "prob3", "class4", "prob4"]
    assert [Path(r[0]).name for r in rows] == sorted(p.name for p in Path(trained.test_dir).iterdir())
    full = predict_files(trained.ckpt, trained.test_dir, top_k=10)
    for row, ranked in zip(rows, full, strict=True):
        classes, probs = row[1::2], [float(p) for p in row[2::2]]
        assert probs == sorted(probs, reverse=True) and all(0 <= p <= 1 for p in probs)
        assert classes == ranked["classes"][:4]  # the 4 best of all 10
        assert probs == pytest.approx(ranked["probs"][:4], abs=1e-6)
    assert list(output.parent.iterdir()) == [output]  # no temporary file left


def test_output_json_lists_path_classes_and_probs(trained, tmp_path, capsys):
    output = tmp_path / "predictions.json"
    code, out, _ = run_command(
        main, [trained.ckpt, f"{trained.test_dir}/01*.png", "--top-k", 2, "--output", output], capsys
    )
    assert code == 0
    saved = json.loads(output.read_text())
    assert [Path(r["path"]).name for r in saved] == [f"{i:03d}.png" for i in range(10, 20)]
    assert saved == predict_files(trained.ckpt, f"{trained.test_dir}/01*.png", top_k=2)
    assert len(out.splitlines()) == 10


@pytest.mark.parametrize("k", [0, 11])
def test_top_k_out_of_range_is_one_line(trained, capsys, k):
    code, out, err = run_command(main, [trained.ckpt, trained.test_dir, "--top-k", k], capsys)
    assert (code, out) == (1, "")
    assert err == f"error: --top-k: must be between 1 and 10 (the model's classes), got {k}\n"


# --- bad input: one line, exit status 1, nothing written ----------------------------------------------


def _truncated_png(path: Path) -> None:
    Image.fromarray(np.random.default_rng(3).integers(0, 256, (64, 64), dtype=np.uint8)).save(path)
    path.write_bytes(path.read_bytes()[:300])


def _truncated_jpeg(path: Path) -> None:
    Image.fromarray(np.random.default_rng(3).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(path)
    path.write_bytes(path.read_bytes()[:600])


BAD_IMAGES = {
    "truncated.png": (_truncated_png, "cannot read the image: the file is damaged (image file is truncated"),
    "truncated.jpg": (_truncated_jpeg, "cannot read the image: the file is damaged ("),
    "text.png": (lambda p: p.write_text("hello, not a PNG\n"), "cannot read the image: not an image format"),
    "empty.jpg": (lambda p: p.write_bytes(b""), "cannot read the image: the file is empty (0 bytes)"),
}


@pytest.mark.parametrize("name", sorted(BAD_IMAGES))
def test_a_bad_image_file_is_one_line_naming_it_and_writes_nothing(trained, tmp_path, capsys, name):
    make, message = BAD_IMAGES[name]
    good = tmp_path / "good.png"
    Image.new("L", (5, 5)).save(good)
    make(tmp_path / name)
    output = tmp_path / "predictions.csv"
    output.write_text("the previous predictions\n")
    code, out, err = run_command(main, [trained.ckpt, good, tmp_path / name, "--output", output], capsys)
    assert (code, out) == (1, "")
    assert err.startswith(f"error: {tmp_path / name}: {message}") and err.count("\n") == 1
    assert output.read_text() == "the previous predictions\n"  # untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["good.png", name, "predictions.csv"])


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads files whatever their mode")
def test_an_unreadable_image_is_one_line(trained, tmp_path, capsys):
    path = tmp_path / "secret.png"
    Image.new("L", (5, 5)).save(path)
    path.chmod(0)
    try:
        code, _, err = run_command(main, [trained.ckpt, path], capsys)
    finally:
        path.chmod(0o644)
    assert code == 1 and err == f"error: {path}: cannot read the image: permission denied\n"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: d / "empty", "PATH: no image files in folder {d}/empty (sub-folders are not searched)"),
        (lambda d: f"{d}/*.webp", "PATH: no image files match the pattern {d}/*.webp"),
        (
            lambda d: d / "missing.png",
            "PATH: {d}/missing.png not found (give image files, folders or glob patterns)",
        ),
    ],
    ids=["empty folder", "glob without match", "missing file"],
)
def test_inputs_naming_no_image_are_one_line(trained, tmp_path, capsys, make, message):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("not an image")
    code, out, err = run_command(main, [trained.ckpt, make(tmp_path), "--output", tmp_path / "p.csv"], capsys)
    assert (code, out) == (1, "")
    assert err == f"error: {message.format(d=tmp_path)}\n"
    assert not (tmp_path / "p.csv").exists()


def test_a_wrong_output_is_refused_before_predicting(trained, tmp_path, capsys):
    code, _, err = run_command(main, [trained.ckpt, trained.test_dir, "--output", tmp_path / "p.txt"], capsys)
    assert (code, err) == (1, f"error: --output: {tmp_path / 'p.txt'} must end with .csv or .json\n")
    blocker = tmp_path / "file"
    blocker.write_text("a file, not a folder")
    code, _, err = run_command(main, [trained.ckpt, trained.test_dir, "--output", blocker / "p.csv"], capsys)
    assert code == 1
    assert err == f"error: --output: cannot write {blocker / 'p.csv'}: {blocker} is not a writable folder\n"


def test_an_interrupted_write_leaves_the_old_file_and_no_temporary_file(tmp_path):
    output = tmp_path / "p.csv"
    output.write_text("old\n")
    with pytest.raises(KeyboardInterrupt), replace_when_done(output) as temporary:
        temporary.write_text("half of the new fi")
        raise KeyboardInterrupt
    assert output.read_text() == "old\n"
    assert list(tmp_path.iterdir()) == [output]
    with replace_when_done(output) as temporary:
        temporary.write_text("new\n")
        assert output.read_text() == "old\n"  # replaced only at the end
    assert output.read_text() == "new\n" and list(tmp_path.iterdir()) == [output]


def test_checkpoint_problems_are_one_line(trained, tmp_path, capsys):
    code, _, err = run_command(main, [tmp_path / "nothing.ckpt", trained.test_dir], capsys)
    assert (code, err) == (1, f"error: CHECKPOINT: file {tmp_path / 'nothing.ckpt'} not found\n")
    code, _, err = run_command(main, [tmp_path, trained.test_dir], capsys)
    assert (code, err) == (1, f"error: CHECKPOINT: {tmp_path} is not a file\n")


def test_predict_files_raises_user_input_error(trained):
    with pytest.raises(UserInputError, match="--batch-size: must be at least 1"):
        predict_files(trained.ckpt, trained.test_dir, batch_size=0)


def test_command_line_prints_predictions_and_errors_as_one_line(trained, tmp_path):
    image = Path(trained.test_dir) / "000.png"
    command = [sys.executable, "-m", "src.predict", trained.ckpt, str(image), str(tmp_path / "missing.png")]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1, result.stderr
    assert result.stdout == ""
    assert (
        result.stderr.splitlines()[-1] == f"error: PATH: {tmp_path / 'missing.png'} not found (give image "
        "files, folders or glob patterns)"
    )
    assert "Traceback" not in result.stderr


def test_runs_on_the_device_it_is_asked_for(trained):
    [cpu] = predict_files(trained.ckpt, Path(trained.test_dir) / "000.png", top_k=3, device="cpu")
    if torch.cuda.is_available():
        [gpu] = predict_files(trained.ckpt, Path(trained.test_dir) / "000.png", top_k=3, device="cuda")
        assert gpu["classes"] == cpu["classes"]
        assert gpu["probs"] == pytest.approx(cpu["probs"], abs=1e-4)
    else:
        with pytest.raises(UserInputError, match="--device: cuda asked for, but no CUDA GPU is available"):
            predict_files(trained.ckpt, Path(trained.test_dir) / "000.png", device="cuda")

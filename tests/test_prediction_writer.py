"""`python -m src.cli predict` with `data.predict_paths` and the `PredictionWriter` callback."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest
from PIL import Image

from src.callbacks import PredictionWriter
from src.errors import UserInputError, find_user_error
from src.lightning_cli import cli_main
from src.predict import main as predict_main
from src.predictions import predict_files
from tests.helpers.cli import fast_cli_args


def cli_predict(trained, data_root: Path, *extra: str):
    """`predict` with the trained checkpoint and a PredictionWriter; returns (cli, printed stdout)."""
    args = [
        "predict",
        *fast_cli_args(data_root, Path(trained.out_dir)),
        "--ckpt_path",
        trained.ckpt,
        "--trainer.callbacks+=src.callbacks.PredictionWriter",
        *extra,
    ]
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        cli = cli_main(args)
    return cli, printed.getvalue()


def test_writer_writes_the_same_csv_as_src_predict(trained, fashion_mnist_root, tmp_path, capsys):
    written = tmp_path / "cli.csv"
    _, printed = cli_predict(
        trained,
        fashion_mnist_root,
        f"--data.predict_paths=[{trained.test_dir}]",
        f"--trainer.callbacks.output={written}",
        "--trainer.callbacks.top_k=3",
    )
    assert f"Wrote 80 predictions to {written}" in printed
    expected = tmp_path / "p.csv"
    predict_main(
        [trained.ckpt, trained.test_dir, "--top-k", "3", "--batch-size", "32", "--output", str(expected)]
    )
    capsys.readouterr()
    lines = written.read_text().splitlines()
    assert lines[0] == "path,class1,prob1,class2,prob2,class3,prob3" and len(lines) == 81
    assert written.read_text() == expected.read_text()


def test_writer_takes_a_csv_list_and_writes_json(trained, fashion_mnist_root, tmp_path):
    names = ["005.png", "001.png", "017.png"]
    (tmp_path / "list.csv").write_text(
        "path,note\n" + "".join(f"{Path(trained.test_dir) / n},x\n" for n in names[:2]) + "img/extra.png,y\n"
    )
    (tmp_path / "img").mkdir()
    Image.open(Path(trained.test_dir) / names[2]).convert("RGBA").save(tmp_path / "img" / "extra.png")
    written = tmp_path / "out" / "preds.json"
    cli_predict(
        trained,
        fashion_mnist_root,
        f"--data.predict_paths=[{tmp_path / 'list.csv'}]",
        f"--trainer.callbacks.output={written}",
        "--trainer.callbacks.top_k=2",
    )
    rows = json.loads(written.read_text())
    files = [str(Path(trained.test_dir) / n) for n in names[:2]] + [str(tmp_path / "img" / "extra.png")]
    assert [r["path"] for r in rows] == files
    expected = predict_files(trained.ckpt, files, top_k=2)
    for row, want in zip(rows, expected, strict=True):
        assert row["classes"] == want["classes"]
        assert row["probs"] == pytest.approx(want["probs"], abs=1e-6)
        assert row["probs"][0] >= row["probs"][1]


def test_without_predict_paths_the_writer_names_test_samples_by_index(trained, fashion_mnist_root, tmp_path):
    written = tmp_path / "test_split.csv"
    cli_predict(trained, fashion_mnist_root, f"--trainer.callbacks.output={written}")
    header, *rows = [line.split(",") for line in written.read_text().splitlines()]
    assert header == ["path", "class1", "prob1"]
    assert [r[0] for r in rows] == [str(i) for i in range(80)]
    # The test split written as PNG files predicts the same (lossless), in the same order.
    from_files = predict_files(trained.ckpt, trained.test_dir, batch_size=32)
    assert [r[1] for r in rows] == [r["classes"][0] for r in from_files]
    assert [float(r[2]) for r in rows] == pytest.approx([r["probs"][0] for r in from_files], abs=2e-6)


@pytest.mark.parametrize("case", ["empty folder", "damaged image"])
def test_bad_predict_paths_stop_with_one_line_and_write_nothing(trained, fashion_mnist_root, tmp_path, case):
    folder = tmp_path / "images"
    folder.mkdir()
    if case == "damaged image":
        Image.effect_noise((32, 32), 50).save(folder / "a.png")
        (folder / "b.png").write_bytes((folder / "a.png").read_bytes()[:500])  # cut in the pixel data
        message = f"{folder / 'b.png'}: cannot read the image: the file is damaged ("
    else:
        message = f"data.predict_paths: no image files in folder {folder} (sub-folders are not searched)"
    written = tmp_path / "preds.csv"
    with pytest.raises(Exception) as error:
        cli_predict(
            trained,
            fashion_mnist_root,
            f"--data.predict_paths=[{folder}]",
            f"--trainer.callbacks.output={written}",
        )
    user_error = find_user_error(error.value)
    assert user_error is not None and str(user_error).startswith(message)
    assert "\n" not in str(user_error)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images"]


def test_writer_checks_its_arguments():
    with pytest.raises(
        UserInputError, match=r"^PredictionWriter.output: preds.txt must end with .csv or .json$"
    ):
        PredictionWriter(output="preds.txt")

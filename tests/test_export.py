"""`python -m src.export`: ONNX with preprocessing inside, run by onnxruntime, same outputs as PyTorch."""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from PIL import Image

from src import onnx_export
from src.export import main
from src.models import ImageClassifier
from src.predictions import predict_files
from tests.helpers.checkpoint import CLASSES
from tests.helpers.cli import REPO, run_command


@pytest.fixture(scope="module")
def exported(trained, tmp_path_factory) -> tuple[Path, str]:
    """The ONNX file exported by `python -m src.export` (in-process), and what it printed."""
    output = tmp_path_factory.mktemp("onnx") / "model.onnx"
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        main([trained.ckpt, "--output", str(output)])
    return output, printed.getvalue()


@pytest.mark.parametrize("batch", [1, 5])
def test_onnxruntime_matches_pytorch_for_any_batch_size(trained, exported, batch):
    path, _ = exported
    model = ImageClassifier.from_checkpoint(trained.ckpt)
    images = torch.rand(batch, 1, 28, 28, generator=torch.Generator().manual_seed(batch))
    with torch.inference_mode():
        expected = model(model.normalize(images)).softmax(dim=-1).numpy()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    [probs] = session.run(None, {"images": images.numpy()})
    assert probs.shape == (batch, 10)
    assert np.abs(probs - expected).max() <= 1e-4
    assert np.allclose(probs.sum(axis=1), 1, atol=1e-5)


def test_onnx_model_predicts_image_files_as_src_predict_does(trained, exported):
    path, _ = exported
    files = sorted(Path(trained.test_dir).glob("*.png"))[:8]
    images = np.stack([np.asarray(Image.open(f), dtype=np.float32) / 255 for f in files])
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    [probs] = session.run(None, {"images": images[:, None]})
    rows = predict_files(trained.ckpt, [str(f) for f in files], top_k=10)
    for row, p in zip(rows, probs, strict=True):
        by_class = dict(zip(row["classes"], row["probs"], strict=True))
        assert np.abs(p - np.array([by_class[c] for c in CLASSES])).max() <= 1e-4


def test_onnx_file_describes_its_input_output_and_classes(exported):
    path, printed = exported
    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    meta = {p.key: p.value for p in model.metadata_props}
    assert json.loads(meta["class_names"]) == CLASSES
    assert meta["in_channels"] == "1" and json.loads(meta["image_size"]) == [28, 28]
    assert json.loads(meta["mean"]) == pytest.approx([0.286]) and json.loads(meta["std"]) == pytest.approx(
        [0.353]
    )
    assert meta["input_range"] == "[0, 1]"
    [graph_input], [graph_output] = model.graph.input, model.graph.output
    dims = [d.dim_param or d.dim_value for d in graph_input.type.tensor_type.shape.dim]
    assert graph_input.name == "images" and dims == ["batch", 1, 28, 28]  # a dynamic batch axis
    dims = [d.dim_param or d.dim_value for d in graph_output.type.tensor_type.shape.dim]
    assert graph_output.name == "probabilities" and dims == ["batch", 10]
    lines = printed.splitlines()
    assert lines[0].startswith(f"Wrote {path} (") and "ONNX opset" in lines[0]
    assert lines[1] == "  input:   images float32 [batch, 1, 28, 28], raw images with values in [0, 1]"
    assert lines[2] == "  output:  probabilities float32 [batch, 10], class probabilities (softmax)"
    assert lines[3] == f"  classes: 10: {', '.join(CLASSES)}"
    assert sorted(p.name for p in path.parent.iterdir()) == ["model.onnx"]  # no temporary file left


def test_a_failed_write_leaves_no_partial_file(trained, tmp_path, capsys, monkeypatch):
    def disk_full(proto, path):
        Path(path).write_bytes(proto.SerializeToString()[:100])  # half a file, then the disk is full
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(onnx_export.onnx, "save", disk_full)
    output = tmp_path / "model.onnx"
    output.write_bytes(b"the previous model")
    code, out, err = run_command(main, [trained.ckpt, "--output", output], capsys)
    assert (code, out) == (1, "")
    assert err == f"error: --output: cannot write {output} (No space left on device)\n"
    assert output.read_bytes() == b"the previous model"
    assert list(tmp_path.iterdir()) == [output]


@pytest.mark.parametrize(
    ("checkpoint", "output", "message"),
    [
        ("{d}/empty", "{d}/m.onnx", "CHECKPOINT: {d}/empty is not a file"),
        ("{d}/missing.ckpt", "{d}/m.onnx", "CHECKPOINT: file {d}/missing.ckpt not found"),
        (
            "{d}/notes.ckpt",
            "{d}/m.onnx",
            "CHECKPOINT: cannot load {d}/notes.ckpt: not a PyTorch file (not written by torch.save)",
        ),
        ("{ckpt}", "{d}/model.txt", "--output: {d}/model.txt must end with .onnx"),
        ("{ckpt}", "{d}/empty", "--output: {d}/empty must end with .onnx"),
    ],
    ids=["empty folder", "missing", "text file", "output extension", "output folder"],
)
def test_bad_input_is_one_line_and_writes_nothing(trained, tmp_path, capsys, checkpoint, output, message):
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes.ckpt").write_text("some notes, not a checkpoint\n")
    fill = {"d": tmp_path, "ckpt": trained.ckpt}
    code, out, err = run_command(main, [checkpoint.format(**fill), "--output", output.format(**fill)], capsys)
    assert (code, out) == (1, "")
    assert err.startswith(f"error: {message.format(**fill)}") and err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "notes.ckpt"]
    assert not any((tmp_path / "empty").iterdir())


def test_command_line_error_is_one_line_with_exit_status_1(tmp_path):
    command = [
        sys.executable,
        "-m",
        "src.export",
        str(tmp_path / "missing.ckpt"),
        "-o",
        str(tmp_path / "m.onnx"),
    ]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.splitlines()[-1] == f"error: CHECKPOINT: file {tmp_path / 'missing.ckpt'} not found"
    assert "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []

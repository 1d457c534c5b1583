"""ONNX export of a trained checkpoint (the library behind `python -m src.export`).

The ONNX model takes raw images, float32 (N, C, H, W) with values in [0, 1], of the checkpoint's
channels and size (any batch size N), and returns the class probabilities (N, num_classes). The
normalisation with the checkpoint's mean/std and the softmax are inside the graph, so a runtime needs
nothing else. The model's `metadata_props` hold `class_names` (JSON list, index = class id),
`in_channels`, `image_size` (JSON [height, width]), `mean`, `std` (JSON lists) and `input_range`.

The network is rebuilt from its class path and arguments saved in the checkpoint's hyperparameters
(`ImageClassifier.from_checkpoint`).

Exporter: torch's default `torch.export`-based exporter (`dynamo=True`, graphs translated by
onnxscript). It works offline with torch 2.14, handles every network of this template (batch norm,
dropout, adaptive pooling, the torchvision ResNets) with a dynamic batch axis, and is the supported
path; the TorchScript exporter (`dynamo=False`) also works here but is deprecated ("will be removed")
and warns on every call.

From Python or a notebook:

    from src.onnx_export import export_onnx
    export_onnx("logs/fashion_mnist/version_0/checkpoints/last.ckpt", "model.onnx")
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import warnings
from pathlib import Path
from typing import cast

import onnx
import torch
from lightning.pytorch.utilities import AttributeDict
from torch import nn

from src.files import check_output_file, replace_when_done
from src.models.classifier import ImageClassifier

INPUT_NAME = "images"
OUTPUT_NAME = "probabilities"


class ProbabilitiesFromImages(nn.Module):
    """`softmax(backbone(normalize(images)))`: raw images in [0, 1] to class probabilities (averaged with
    those of the mirror images when the model's `tta` is on).

    Args:
        model: The trained classifier; its backbone and its normalisation are used (not copied).
    """

    def __init__(self, model: ImageClassifier) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model.probabilities(self.model.normalize(images))


def export_onnx(
    checkpoint: str | os.PathLike,
    output: str | os.PathLike,
    opset: int | None = None,
    weights_only: bool = True,
    tta: bool | None = None,
) -> Path:
    """Export the checkpoint's model to the ONNX file `output` (see the module docstring); return its path.

    Args:
        checkpoint: A Lightning checkpoint written by `python -m src.cli fit`.
        output: The `.onnx` file to write (its folder is created if needed).
        opset: ONNX opset version; None for the exporter's default.
        weights_only: Refuse a checkpoint of pickled Python objects (see `safe_load`).
        tta: Export the flip averaging of test-time augmentation (None: the checkpoint's `tta`).

    Raises:
        UserInputError: The checkpoint is missing or not one, or `output` cannot be written.
    """
    path = check_output_file(output, (".onnx",), key="--output")
    model = ImageClassifier.from_checkpoint(checkpoint, "cpu", weights_only, tta=tta)
    hparams = cast(AttributeDict, model.hparams)
    channels, size = int(hparams.in_channels), tuple(int(s) for s in hparams.image_size)
    wrapper = ProbabilitiesFromImages(model).eval()
    example = torch.rand(2, channels, *size)  # batch 2: a batch of 1 could be specialised
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            wrapper,
            (example,),
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            opset_version=opset,
            dynamic_shapes={INPUT_NAME: {0: torch.export.Dim("batch")}},
            dynamo=True,
            external_data=False,
            verbose=False,
        )
    assert program is not None  # `dynamo=True` returns an ONNXProgram
    proto = program.model_proto
    onnx.helper.set_model_props(
        proto,
        {
            "class_names": json.dumps(list(model.class_names)),
            "in_channels": str(channels),
            "image_size": json.dumps(list(size)),
            "mean": json.dumps(model.input_mean.flatten().tolist()),
            "std": json.dumps(model.input_std.flatten().tolist()),
            "input_range": "[0, 1]",
            "tta": json.dumps(model.tta),
        },
    )
    proto.doc_string = (
        f"Image classifier exported from {Path(checkpoint).name}: input `{INPUT_NAME}` float32 "
        f"(N, {channels}, {size[0]}, {size[1]}) in [0, 1]; output `{OUTPUT_NAME}` (N, "
        f"{len(model.class_names)}) softmax over `class_names` (metadata)."
    )
    onnx.checker.check_model(proto, full_check=True)
    with replace_when_done(path, key="--output") as temporary:  # never a half-written file
        onnx.save(proto, temporary)
    return path


def describe(path: Path) -> str:
    """What an exported file holds, for people: path, input, output, classes."""
    model = onnx.load(path, load_external_data=False)
    meta = {p.key: p.value for p in model.metadata_props}

    def shape(value) -> str:
        dims = [d.dim_param or str(d.dim_value) for d in value.type.tensor_type.shape.dim]
        return f"{value.name} float32 [{', '.join(dims)}]"

    classes = json.loads(meta.get("class_names", "[]"))
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), "?")
    return "\n".join(
        [
            f"Wrote {path} ({path.stat().st_size / 1e6:.1f} MB, ONNX opset {opset})",
            f"  input:   {shape(model.graph.input[0])}, raw images with values in [0, 1]",
            f"  output:  {shape(model.graph.output[0])}, class probabilities (softmax)",
            f"  classes: {len(classes)}: {', '.join(classes)}",
        ]
    )

"""`ClassifierAPI`: a checkpoint as a LitServe API, answering `POST /predict` with the top-k classes.

An image goes through the same `read_image` and `class_probabilities` as `src.predict`, so it gets the same
probabilities through the server as through the command. Concurrent requests are batched (LitServe's
`max_batch_size`/`batch_timeout`); a bad image in a batch gets its own 4xx answer and the others theirs.
"""

from __future__ import annotations

import base64
import binascii
import io
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import litserve as ls
import torch
from starlette.datastructures import UploadFile

from src.data.images import ImageTooLargeError
from src.errors import UserInputError
from src.models.classifier import ImageClassifier
from src.predictions import class_probabilities, rank_predictions, read_image
from src.serving.guard import BadRequest, answer


class ClassifierAPI(ls.LitAPI):
    """Classify uploaded images with a checkpoint of `ImageClassifier`.

    Args:
        checkpoint: The `.ckpt` file (read by each inference worker with `ImageClassifier.from_checkpoint`).
        top_k: How many classes each answer lists, best first.
        weights_only: See `safe_load`.
        max_pixels: Refuse images of more pixels (413), checked before decoding.
        max_batch_size: The most requests predicted together.
        batch_timeout: Seconds to wait for a batch to fill.
        threads: CPU threads of each worker's torch (`None`: torch's default).
    """

    def __init__(
        self,
        checkpoint: str | Path,
        top_k: int = 3,
        weights_only: bool = True,
        max_pixels: int | None = None,
        max_batch_size: int = 1,
        batch_timeout: float = 0.0,
        threads: int | None = None,
    ) -> None:
        with warnings.catch_warnings():  # `batch`/`unbatch` are meant for both modes (see `predict`)
            warnings.filterwarnings("ignore", "The LitServer has both batch and unbatch methods")
            super().__init__(max_batch_size=max_batch_size, batch_timeout=batch_timeout, api_path="/predict")
        self.checkpoint, self.top_k = str(checkpoint), top_k
        self.weights_only, self.max_pixels, self.threads = weights_only, max_pixels, threads

    def setup(self, device: str) -> None:
        """Load the model on `device` (called once in each inference worker)."""
        if self.threads is not None:
            torch.set_num_threads(self.threads)
        self.model = ImageClassifier.from_checkpoint(self.checkpoint, device, self.weights_only)

    def decode_request(self, request):
        """The uploaded image as the model's input, or the `BadRequest` that answers it.

        (No annotations here or on `encode_response`: LitServe reads them as the endpoint's types.)
        """
        try:
            data, name = uploaded_bytes(request)
            return read_image(self.model, io.BytesIO(data), self.max_pixels, name)
        except BadRequest as err:
            return err
        except ImageTooLargeError as err:
            return BadRequest(413, str(err))
        except UserInputError as err:
            return BadRequest(400, str(err))

    def batch(self, inputs: Sequence[torch.Tensor | BadRequest]) -> list[torch.Tensor | BadRequest]:
        return list(inputs)  # stacked in `predict`, without the bad requests

    def predict(self, x: Any) -> Any:
        """Top-k rows for the good images; a `BadRequest` stays in its place."""
        inputs = x if self.max_batch_size > 1 else [x]
        images = [i for i in inputs if isinstance(i, torch.Tensor)]
        rows: Iterator[dict] = iter([])
        if images:
            probs = class_probabilities(self.model, images)
            rows = iter(rank_predictions(range(len(images)), probs, self.model.class_names, self.top_k))
        outputs = [i if isinstance(i, BadRequest) else next(rows) for i in inputs]
        return outputs if self.max_batch_size > 1 else outputs[0]

    def unbatch(self, output: list) -> list:
        return output

    def encode_response(self, output):
        """`{"predictions": [{"class": ..., "probability": ...}, ...]}`, or `{"detail": ...}` with a 4xx."""
        if isinstance(output, BadRequest):
            return answer(output)
        pairs = zip(output["classes"], output["probs"], strict=True)
        return {"predictions": [{"class": name, "probability": p} for name, p in pairs]}


def uploaded_bytes(request: Any) -> tuple[bytes, str]:
    """The image file's bytes and its name: a multipart form's `file` field, or JSON `{"image": base64}`."""
    if isinstance(request, Mapping) and not isinstance(request, dict):  # a form (FormData)
        upload = request.get("file")
        if upload is None:
            fields = ", ".join(sorted(request.keys())) or "none"
            raise BadRequest(
                400, f"no form field 'file' (the fields sent: {fields}); send the image as 'file'"
            )
        if not isinstance(upload, UploadFile):
            raise BadRequest(400, "form field 'file' is text, not a file: send the image file itself")
        data, name = upload.file.read(), upload.filename or "file"
    else:  # JSON, checked by PredictGuard: {"image": "<base64>", "filename": optional}
        text = request["image"]
        text = text.split(",", 1)[1] if text.startswith("data:") else text  # a data: URL's payload
        try:
            data = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError) as err:
            raise BadRequest(400, f"JSON field 'image' is not valid base64 ({err})") from err
        name = str(request.get("filename") or "image")
    if not data:
        raise BadRequest(400, f"{name}: the file is empty (0 bytes)")
    return data, name

"""`build_server`: a checkpoint behind LitServe, with the web page at `GET /` and the model's `/info`.

    from src.serving.server import build_server
    build_server("logs/quickstart/version_0/checkpoints/last.ckpt").run(host="127.0.0.1", port=8000)

Endpoints: `POST /predict` (`ClassifierAPI`, guarded by `PredictGuard`), `GET /` (the page), `GET /health`
(200 "ok" once the model is loaded) and `GET /info` (`{"model": {...}, "server": {...}}`, LitServe's).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, cast

import litserve as ls
from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from lightning.pytorch.utilities import AttributeDict

from src.models.classifier import ImageClassifier
from src.predictions import check_top_k, resolve_device
from src.serving.api import ClassifierAPI
from src.serving.guard import PredictGuard

PAGE = Path(__file__).with_name("page.html")


def build_server(
    checkpoint: str | Path,
    top_k: int = 3,
    device: str = "auto",
    max_batch_size: int = 1,
    batch_timeout: float = 0.0,
    workers_per_device: int = 1,
    max_upload_mb: float = 10.0,
    max_pixels: int | None = 40_000_000,
    api_key: str | None = None,
    weights_only: bool = True,
) -> ls.LitServer:
    """A `LitServer` for `checkpoint`; nothing runs until its `.run(host=..., port=...)`.

    The checkpoint is read here once, so a bad file or option fails before any worker starts; each
    inference worker then loads it on its device.

    Args:
        checkpoint: A `.ckpt` file written by training.
        top_k: How many classes each answer lists.
        device: `auto` (every GPU when there is one, else the CPU), `cpu` or `cuda`.
        max_batch_size: The most concurrent requests predicted as one batch (1: no batching).
        batch_timeout: Seconds a batch waits to fill.
        workers_per_device: Inference processes per device.
        max_upload_mb: The largest request body, in MB (413 above it).
        max_pixels: The most pixels an image may have (413 above it), checked before decoding.
        api_key: When set, `POST /predict` requires it (`X-API-Key` or `Authorization: Bearer`).
        weights_only: See `safe_load`.

    Raises:
        UserInputError: A bad checkpoint, device or option value (one line naming it).
    """
    torch_device = resolve_device(device)
    model = ImageClassifier.from_checkpoint(checkpoint, "cpu", weights_only)
    check_top_k(top_k, len(model.class_names))
    hparams = cast(AttributeDict, model.hparams)
    metadata = {
        "checkpoint": Path(checkpoint).name,
        "classes": list(model.class_names),
        "in_channels": hparams.in_channels,
        "image_size": list(hparams.image_size),
        "top_k": top_k,
        "max_upload_mb": max_upload_mb,
        "api_key_required": api_key is not None,
    }
    # On a CPU the inference workers share the cores, leaving a share to the HTTP process.
    threads = (
        max(1, (os.cpu_count() or 1) // (workers_per_device + 1)) if torch_device.type == "cpu" else None
    )
    api = ClassifierAPI(checkpoint, top_k, weights_only, max_pixels, max_batch_size, batch_timeout, threads)
    guard = {"path": api.api_path, "max_bytes": int(max_upload_mb * 1e6), "api_key": api_key}
    server = ls.LitServer(
        api,
        accelerator="auto" if device == "auto" else torch_device.type,
        workers_per_device=workers_per_device,
        model_metadata=metadata,
        middlewares=[(PredictGuard, guard)],
    )
    serve_page(server.app)
    return server


def serve_page(app: FastAPI) -> None:
    """Answer `GET /` with the web page, in place of LitServe's "litserve running"."""
    app.router.routes[:] = [r for r in app.router.routes if getattr(r, "path", None) != "/"]
    html = PAGE.read_text()

    async def page() -> HTMLResponse:
        return HTMLResponse(html)

    app.add_api_route("/", cast(Any, page), methods=["GET"], response_class=HTMLResponse)

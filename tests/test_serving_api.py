"""`ClassifierAPI` and `PredictGuard` in this process: decoding, batching with bad requests, the guard."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os

import numpy as np
import pytest
from PIL import Image
from starlette.datastructures import FormData, UploadFile

from src.predictions import predict_files
from src.serving.api import ClassifierAPI
from src.serving.guard import BadRequest, PredictGuard
from src.serving.server import build_server


def png_bytes(seed: int, size: tuple[int, int] = (28, 28)) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


def form(data: bytes, name: str = "x.png") -> FormData:
    return FormData([("file", UploadFile(io.BytesIO(data), filename=name))])


@pytest.fixture(scope="module")
def api(trained) -> ClassifierAPI:
    api = ClassifierAPI(trained.ckpt, top_k=2, max_pixels=1000, max_batch_size=4)
    api.setup("cpu")
    return api


def test_a_batch_with_bad_requests_answers_each_in_its_place(api, trained, tmp_path):
    good = [png_bytes(1), png_bytes(2)]
    for i, data in enumerate(good):
        (tmp_path / f"{i}.png").write_bytes(data)
    expected = predict_files(trained.ckpt, [tmp_path / "0.png", tmp_path / "1.png"], top_k=2, device="cpu")
    data_url = "data:image/png;base64," + base64.b64encode(good[1]).decode()
    requests = [form(good[0]), form(b"junk", "junk.txt"), {"image": data_url}, form(png_bytes(3, (40, 40)))]
    inputs = api.batch([api.decode_request(r) for r in requests])
    answers = [api.encode_response(o) for o in api.unbatch(api.predict(inputs))]
    for answer, row in zip([answers[0], answers[2]], expected, strict=True):
        assert [p["class"] for p in answer["predictions"]] == row["classes"]
        assert [p["probability"] for p in answer["predictions"]] == pytest.approx(row["probs"], abs=1e-6)
    assert (answers[1].status_code, json.loads(answers[1].body)["detail"]) == (
        400,
        "junk.txt: cannot read the image: not an image format PIL can read",
    )
    assert (answers[3].status_code, json.loads(answers[3].body)["detail"]) == (
        413,
        "x.png: image too large (40x40 = 1600 pixels; the limit is 1000)",
    )


def test_without_batching_predict_takes_one_input(trained):
    api = ClassifierAPI(trained.ckpt, top_k=1)
    api.setup("cpu")
    assert len(api.encode_response(api.predict(api.decode_request(form(png_bytes(1)))))["predictions"]) == 1
    assert isinstance(api.predict(BadRequest(400, "x")), BadRequest)


@pytest.mark.parametrize(
    ("request_", "detail"),
    [
        (
            FormData([("image", UploadFile(io.BytesIO(b"x"), filename="a"))]),
            "no form field 'file' (the fields",
        ),
        (FormData([("file", "text")]), "form field 'file' is text, not a file"),
        ({"image": "a$b"}, "JSON field 'image' is not valid base64"),
        ({"image": "", "filename": "p.png"}, "p.png: the file is empty (0 bytes)"),
    ],
)
def test_bad_uploads_become_400(api, request_, detail):
    answer = api.decode_request(request_)
    assert isinstance(answer, BadRequest) and answer.status == 400 and answer.detail.startswith(detail)


async def passed(scope, receive, send):  # the app behind the guard: says what body reached it
    message = await receive()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": message["body"]})


def call(guard: PredictGuard, headers: dict[str, str], chunks: list[bytes], path: str = "/predict"):
    """Send a POST through `guard`: (status, body)."""
    scope = {
        "type": "http",
        "method": "POST",
        "path": path,
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
    }
    messages = [
        {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)
    ]
    sent: list[dict] = []

    async def receive():
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    asyncio.run(guard(scope, receive, send))
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


def test_guard_checks_the_key_before_the_type_and_counts_chunked_bodies():
    guard = PredictGuard(passed, "/predict", max_bytes=10, api_key="k")
    body = b'{"image": "aa"}'
    assert call(guard, {"content-type": "text/plain"}, [b"x"])[0] == 401
    assert call(guard, {"x-api-key": "k", "content-type": "text/plain"}, [b"x"])[0] == 415
    status, answer = call(guard, {"x-api-key": "k", "content-type": "application/json"}, [body[:8], body[8:]])
    assert (status, json.loads(answer)["detail"]) == (
        413,
        "upload too large (over 15 bytes; the limit is 10 bytes)",
    )
    assert call(PredictGuard(passed, "/predict", 100), {"content-type": "application/json"}, [body]) == (
        200,
        body,
    )
    assert call(guard, {"content-type": "text/plain"}, [b"x"], path="/other") == (200, b"x")  # not guarded


def test_build_server_puts_the_page_at_the_root_and_describes_the_model(trained):
    server = build_server(trained.ckpt, top_k=2, device="cpu", workers_per_device=1, api_key="k")
    roots = [r for r in server.app.routes if getattr(r, "path", None) == "/"]
    assert len(roots) == 1 and roots[0].endpoint.__name__ == "page"  # LitServe's "litserve running" is gone
    assert server.model_metadata["top_k"] == 2 and server.model_metadata["api_key_required"] is True
    assert server.lit_api.threads == max(1, (os.cpu_count() or 1) // 2)  # a share of the cores left to HTTP

"""`python -m src.serve`: the HTTP API of a checkpoint, run as a real server (LitServe) in a child process."""

from __future__ import annotations

import io
import json
import socket
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from src.predictions import predict_files
from src.serve import main
from src.serving.client import multipart, post_image, request
from src.serving.process import ServerProcess, free_port
from tests.helpers.checkpoint import CLASSES
from tests.helpers.cli import error_lines, run_command

KEY = "test-key"
#: The server's limits, small so that the tests can pass them cheaply.
MAX_UPLOAD_MB, MAX_PIXELS = 0.2, 5000


@pytest.fixture(scope="module")
def server(trained, tmp_path_factory):
    """The trained checkpoint served with batching, small limits and an API key from the environment."""
    args = [
        trained.ckpt,
        "--device",
        "cpu",
        "--top-k",
        "3",
        "--max-batch-size",
        "4",
        "--batch-timeout",
        "0.02",
    ]
    args += ["--max-upload-mb", str(MAX_UPLOAD_MB), "--max-pixels", str(MAX_PIXELS), "--log-level", "warning"]
    log = tmp_path_factory.mktemp("serve") / "server.log"
    with ServerProcess(args, env={"SERVE_API_KEY": KEY}, log=log) as running:
        yield running


def png(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def val_images(trained, n: int) -> list[Path]:
    return sorted(Path(trained.val_dir).glob("*.png"))[:n]


def test_answers_the_probabilities_of_src_predict(server, trained):
    files = val_images(trained, 6)
    expected = predict_files(trained.ckpt, files, top_k=3, device="cpu")
    for i, (path, row) in enumerate(zip(files, expected, strict=True)):
        status, answer = post_image(server.url, path.read_bytes(), path.name, KEY, as_json=i % 2 == 1)
        assert status == 200
        assert [p["class"] for p in answer["predictions"]] == row["classes"]
        assert [p["probability"] for p in answer["predictions"]] == pytest.approx(row["probs"], abs=1e-6)


def test_concurrent_requests_are_answered_each_with_its_own_result(server, trained):
    """Batched requests (max batch 4) mixed with bad ones: each good one gets its image's classes, each bad
    one its own 400, in any interleaving."""
    files = val_images(trained, 12)
    expected = {
        row["path"]: row["classes"] for row in predict_files(trained.ckpt, files, top_k=3, device="cpu")
    }
    jobs = [(str(p), p.read_bytes()) for p in files] + [(f"bad{i}.png", b"not an image") for i in range(4)]

    def send(job):
        name, data = job
        return name, *post_image(server.url, data, Path(name).name, KEY)

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(send, jobs * 2))
    for name, status, answer in results:
        if name.startswith("bad"):
            assert (status, answer["detail"]) == (
                400,
                f"{name}: cannot read the image: not an image format PIL can read",
            )
        else:
            assert status == 200
            assert [p["class"] for p in answer["predictions"]] == expected[name]


def bad_requests() -> list:
    """(what, headers, body, status, the detail's start) of requests the server must refuse."""
    image = png(np.random.default_rng(0).integers(0, 256, (28, 28), dtype=np.uint8))  # half of it is pixels
    form, form_type = multipart({"file": ("x.png", image)})
    other, other_type = multipart({"photo": ("x.png", image)})
    cases = [
        (
            "not an image",
            {},
            b"%PDF-1.4 not an image",
            400,
            "up.bin: cannot read the image: not an image format",
        ),
        (
            "truncated",
            {},
            image[: len(image) // 2],
            400,
            "up.bin: cannot read the image: the file is damaged",
        ),
        ("empty", {}, b"", 400, "up.bin: the file is empty (0 bytes)"),
        ("too large", {}, bytes(int(MAX_UPLOAD_MB * 1e6) + 1), 413, "upload too large ("),
        ("too many pixels", {}, png(np.zeros((100, 100), np.uint8)), 413, "up.bin: image too large (100x100"),
        (
            "wrong field",
            {"Content-Type": other_type},
            other,
            400,
            "no form field 'file' (the fields sent: photo)",
        ),
        ("bad JSON", {"Content-Type": "application/json"}, b'{"image": ', 400, "the body is not valid JSON"),
        (
            "JSON without image",
            {"Content-Type": "application/json"},
            b'{"img": "x"}',
            400,
            "JSON requests must",
        ),
        (
            "bad base64",
            {"Content-Type": "application/json"},
            b'{"image": "@@"}',
            400,
            "JSON field 'image' is not",
        ),
        (
            "wrong type",
            {"Content-Type": "text/plain"},
            b"hello",
            415,
            "unsupported content type 'text/plain'",
        ),
        ("broken form", {"Content-Type": form_type}, b"garbage", 400, "the multipart form cannot be read"),
        ("missing key", {"Content-Type": form_type, "X-API-Key": ""}, form, 401, "missing API key"),
        ("wrong key", {"Content-Type": form_type, "X-API-Key": "nope"}, form, 401, "wrong API key"),
    ]
    return [pytest.param(*case, id=case[0]) for case in cases]


@pytest.mark.parametrize(("what", "headers", "body", "status", "detail"), bad_requests())
def test_bad_requests_get_a_4xx_json_error_naming_the_problem(server, what, headers, body, status, detail):
    if "Content-Type" not in headers:  # an upload of the body as the file "up.bin"
        body, content_type = multipart({"file": ("up.bin", body)})
        headers = {"Content-Type": content_type}
    headers = {"X-API-Key": KEY, **headers}
    got, answer = request(f"{server.url}/predict", "POST", body, headers)
    assert got == status, what
    assert json.loads(answer)["detail"].startswith(detail), what
    assert post_image(server.url, png(np.zeros((28, 28), np.uint8)), "ok.png", KEY)[0] == 200  # still serving


def test_bearer_key_is_accepted(server):
    body, content_type = multipart({"file": ("x.png", png(np.zeros((28, 28), np.uint8)))})
    headers = {"Content-Type": content_type, "Authorization": f"Bearer {KEY}"}
    assert request(f"{server.url}/predict", "POST", body, headers)[0] == 200


def test_health_info_and_page_need_no_key(server, trained):
    assert request(f"{server.url}/health") == (200, b"ok")
    status, info = request(f"{server.url}/info")
    model = json.loads(info)["model"]
    assert status == 200
    assert model == {
        "checkpoint": Path(trained.ckpt).name,
        "classes": CLASSES,
        "in_channels": 1,
        "image_size": [28, 28],
        "top_k": 3,
        "max_upload_mb": MAX_UPLOAD_MB,
        "api_key_required": True,
    }
    status, page = request(f"{server.url}/")
    assert status == 200 and b'<input id="file" type="file"' in page and b"litserve running" not in page


def test_listens_on_the_loopback_address_only(server):
    """The default `--host 127.0.0.1`: the listening socket is bound to 127.0.0.1, not to every interface."""
    tcp = Path("/proc/net/tcp")
    if not tcp.exists():
        pytest.skip("needs Linux's /proc/net/tcp")
    listening = [line.split()[1] for line in tcp.read_text().splitlines()[1:] if line.split()[3] == "0A"]
    assert f"0100007F:{server.port:04X}" in listening
    assert f"00000000:{server.port:04X}" not in listening


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.ckpt"], "error: CHECKPOINT: file missing.ckpt not found"),
        (
            ["{ckpt}", "--top-k", "11"],
            "error: --top-k: must be between 1 and 10 (the model's classes), got 11",
        ),
        (["{ckpt}", "--port", "80"], "error: --port: must be between 1024 and 65535, got 80"),
        (["{ckpt}", "--max-batch-size", "0"], "error: --max-batch-size: must be at least 1, got 0"),
        (["{ckpt}", "--api-key", ""], "error: --api-key: empty (unset SERVE_API_KEY or give a key)"),
    ],
)
def test_bad_options_end_with_one_error_line(trained, capsys, args, message):
    code, out, err = run_command(main, [a.format(ckpt=trained.ckpt) for a in args], capsys)
    assert code == 1
    assert len(error_lines(err)) == 1 and error_lines(err)[0].startswith(message)


def test_a_port_in_use_is_one_error_line(trained, capsys):
    with socket.socket() as taken:
        port = free_port()
        taken.bind(("127.0.0.1", port))
        taken.listen()
        code, _, err = run_command(main, [trained.ckpt, "--port", port], capsys)
    assert code == 1
    assert error_lines(err) == [f"error: --port: cannot listen on 127.0.0.1:{port} (Address already in use)"]

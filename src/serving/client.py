"""A standard-library client of `python -m src.serve` (no dependency; used by the tests and the benchmark).

from src.serving.client import post_image
status, answer = post_image("http://127.0.0.1:8000", Path("photo.png").read_bytes(), "photo.png")
answer["predictions"][0]["class"]
"""

from __future__ import annotations

import base64
import http.client
import json
import uuid
from urllib.parse import urlsplit


def multipart(fields: dict[str, tuple[str, bytes]]) -> tuple[bytes, str]:
    """A `multipart/form-data` body of file fields `{name: (filename, data)}`, and its content type."""
    boundary = uuid.uuid4().hex
    parts = []
    for field, (filename, data) in fields.items():
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{filename}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        )
        parts += [head.encode(), data, b"\r\n"]
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def request(
    url: str,
    method: str = "GET",
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 30.0,
    connection: http.client.HTTPConnection | None = None,
) -> tuple[int, bytes]:
    """Send one request to `url` (`http://host:port/path`); the status and the body of the answer.

    Pass an open `connection` to the same host to reuse it (keep-alive)."""
    parts = urlsplit(url)
    conn = connection or http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=timeout)
    try:
        conn.request(method, parts.path or "/", body=body, headers=headers or {})
        answer = conn.getresponse()
        return answer.status, answer.read()
    finally:
        if connection is None:
            conn.close()


def post_image(
    base_url: str,
    data: bytes,
    filename: str = "image",
    api_key: str | None = None,
    as_json: bool = False,
    timeout: float = 30.0,
    connection: http.client.HTTPConnection | None = None,
) -> tuple[int, dict]:
    """POST an image file's bytes to `base_url/predict`; the status and the JSON answer.

    Args:
        base_url: The server, e.g. `http://127.0.0.1:8000`.
        data: The image file's bytes.
        filename: Its name (the server names it in errors).
        api_key: Sent as `X-API-Key` when given.
        as_json: Send `{"image": base64, "filename": ...}` instead of a multipart field `file`.
        timeout: Seconds to wait for the answer.
        connection: An open connection to reuse.
    """
    if as_json:
        body = json.dumps({"image": base64.b64encode(data).decode(), "filename": filename}).encode()
        content_type = "application/json"
    else:
        body, content_type = multipart({"file": (filename, data)})
    headers = {"Content-Type": content_type}
    if api_key is not None:
        headers["X-API-Key"] = api_key
    status, answer = request(f"{base_url}/predict", "POST", body, headers, timeout, connection)
    return status, json.loads(answer)

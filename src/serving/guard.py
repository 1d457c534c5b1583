"""`PredictGuard`: what a prediction request must pass before LitServe reads it.

LitServe parses a request's body itself (a form, or else JSON) before `decode_request` sees it, and answers
500 "Internal server error" when that fails, or 401 on every endpoint (the page included) when its own API
key is set. This ASGI middleware answers those cases first, on the prediction path only, with a 4xx JSON
error `{"detail": "..."}` that names the problem.
"""

from __future__ import annotations

import json
import secrets

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: The request types the prediction endpoint reads.
FORM, JSON = "multipart/form-data", "application/json"


class BadRequest(Exception):
    """A request answered with a 4xx JSON error `{"detail": ...}`: an HTTP status and a one-line reason
    (by the guard, or by `ClassifierAPI` for an upload the model cannot take)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status, self.detail = status, detail


class PredictGuard:
    """ASGI middleware checking requests to `path` before they reach LitServe.

    In this order: the API key (401), the content type (415), the body size (413, from `Content-Length`
    before anything is read, else while reading), the JSON or multipart syntax (400). A request that
    passes goes on with its body replayed unchanged.

    Args:
        app: The ASGI application (LitServe's FastAPI app).
        path: The prediction path.
        max_bytes: The largest body accepted.
        api_key: When set, requests must send it as `X-API-Key: KEY` or `Authorization: Bearer KEY`.
    """

    def __init__(self, app: ASGIApp, path: str, max_bytes: int, api_key: str | None = None) -> None:
        self.app, self.path, self.max_bytes, self.api_key = app, path, max_bytes, api_key

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != self.path or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        try:
            self.check_headers(headers)
            body = await self.read_body(receive)
            if headers.get("content-type", "").startswith(JSON):
                check_json(body)
            else:
                await check_form(scope, body)
        except BadRequest as err:
            await answer(err)(scope, receive, send)
            return
        await self.app(scope, replay(body, receive), send)

    def check_headers(self, headers: Headers) -> None:
        """The API key and the content type; the declared length when there is one."""
        if self.api_key is not None:
            given = headers.get("x-api-key") or headers.get("authorization", "").removeprefix("Bearer ")
            if not secrets.compare_digest(given.encode(), self.api_key.encode()):
                what = "wrong API key" if given else "missing API key"
                raise BadRequest(401, f"{what}: send it as 'X-API-Key: KEY' or 'Authorization: Bearer KEY'")
        content_type = headers.get("content-type", "")
        if not content_type.startswith((FORM, JSON)):
            raise BadRequest(
                415,
                f"unsupported content type {content_type or '(none)'!r}: send the image as a multipart form "
                'field \'file\', or as JSON {"image": "<base64>"}',
            )
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > self.max_bytes:
            raise BadRequest(413, too_large(int(length), self.max_bytes))

    async def read_body(self, receive: Receive) -> bytes:
        """The whole body, refused as soon as it passes `max_bytes`."""
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise BadRequest(400, "the client disconnected before the request was complete")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                raise BadRequest(413, too_large(size, self.max_bytes, at_least=True))
            chunks.append(chunk)
            more = message.get("more_body", False)
        return b"".join(chunks)


def too_large(size: int, limit: int, at_least: bool = False) -> str:
    """The 413 message: the size (or the size read so far) and the limit.

    >>> too_large(12_000_000, 10_000_000)
    'upload too large (12.0 MB; the limit is 10.0 MB)'
    >>> too_large(15, 10, at_least=True)
    'upload too large (over 15 bytes; the limit is 10 bytes)'
    """
    return f"upload too large ({'over ' if at_least else ''}{_size(size)}; the limit is {_size(limit)})"


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 100_000 else f"{n} bytes"


def check_json(body: bytes) -> None:
    """A JSON body must be an object with a string `image`."""
    try:
        content = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise BadRequest(400, f"the body is not valid JSON ({err})") from err
    if not isinstance(content, dict) or not isinstance(content.get("image"), str):
        raise BadRequest(400, 'JSON requests must be an object {"image": "<base64 of the image file>"}')


async def check_form(scope: Scope, body: bytes) -> None:
    """A multipart body must parse (Starlette's parser, as LitServe's `request.form()` will use)."""
    request = Request(scope, replay(body, _disconnected))
    try:
        form = await request.form()
    except HTTPException as err:
        raise BadRequest(400, f"the multipart form cannot be read ({err.detail})") from err
    await form.close()


async def _disconnected() -> Message:
    return {"type": "http.disconnect"}


def replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that gives `body` once, then waits on the real one (for a disconnect)."""
    sent = False

    async def again() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return again


def answer(err: BadRequest) -> JSONResponse:
    """`err` as a JSON response `{"detail": ...}` with its status."""
    headers = {"WWW-Authenticate": "Bearer"} if err.status == 401 else None
    return JSONResponse({"detail": err.detail}, status_code=err.status, headers=headers)

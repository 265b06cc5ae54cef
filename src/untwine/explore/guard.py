"""What the explorer's server refuses before any model code runs: foreign ``Host`` headers
(DNS rebinding), oversized bodies, bodies that are not a JSON object.

- :func:`allowed_hosts`: the host names :class:`starlette.middleware.trustedhost.TrustedHostMiddleware`
  accepts (anything else: 400 ``Invalid host header``). A web page that rebinds its own name to
  127.0.0.1 still sends its own name in ``Host``, so it is refused.
- :class:`BodyLimit`: 413 ``{"error": ...}`` for a body over ``max_bytes``, whether its
  ``Content-Length`` says so or it is streamed (chunked) past the limit.
- :func:`json_object`: the body of a POST as a dict, or :class:`BadRequest` (status and message).
"""

from __future__ import annotations

import json
from typing import Any

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_BODY = 64 * 1024  # bytes: a code of 1,000 latents is ~25 kB of JSON
LOOPBACK_NAMES = ("127.0.0.1", "localhost")


class BadRequest(ValueError):
    """A request refused with ``status`` (400 unless said) and a message naming the problem."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def allowed_hosts(host: str) -> list[str]:
    """Host names (``Host`` header without the port) the server on ``host`` answers."""
    return list(dict.fromkeys([*LOOPBACK_NAMES, host.lower()]))


class _TooLarge(Exception):
    pass


class BodyLimit:
    """ASGI middleware: refuse an HTTP request body over ``max_bytes`` with 413 and a JSON message."""

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY) -> None:
        self.app, self.max_bytes = app, int(max_bytes)

    def message(self, size: int | None) -> str:
        got = f"{size} bytes" if size is not None else f"over {self.max_bytes} bytes"
        return f"request body too large ({got}); the limit is {self.max_bytes} bytes"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = Headers(scope=scope).get("content-length", "")
        if length.isdigit() and int(length) > self.max_bytes:
            await JSONResponse({"error": self.message(int(length))}, 413)(scope, receive, send)
            return
        seen, started = 0, False

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _TooLarge
            return message

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except _TooLarge:
            if started:  # pragma: no cover - the endpoints read the body before answering
                raise
            await JSONResponse({"error": self.message(None)}, 413)(scope, receive, send)


async def json_object(request: Request, shape: str) -> dict[str, Any]:
    """The body as a JSON object (``shape`` describes it in messages): 415 without
    ``Content-Type: application/json`` (which also makes browsers ask before a cross-site POST),
    400 for a body that is not JSON or not an object."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/json":
        raise BadRequest(f"send the body as JSON {shape} with Content-Type: application/json, "
                         f"not {ctype or 'no Content-Type'}", 415)
    raw = await request.body()
    if not raw.strip():
        raise BadRequest(f"the body is empty; expected JSON {shape}")
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError) as e:  # RecursionError: nested too deep
        detail = str(e) if isinstance(e, ValueError) else "nested too deeply"
        raise BadRequest(f"the body is not valid JSON ({detail}); expected {shape}") from None
    if not isinstance(body, dict):
        raise BadRequest(f"the body must be a JSON object {shape}, got a JSON {_kind(body)}")
    return body


def _kind(v: Any) -> str:
    return {list: "array", str: "string", bool: "boolean", type(None): "null"}.get(type(v), "number")

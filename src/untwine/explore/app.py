"""The explorer's web side: a Starlette app (one static page + JSON endpoints) served by uvicorn.

Endpoints (images are ``data:image/png;base64,...`` URLs inside the JSON):

- ``GET /``: the page (``static/index.html``).
- ``GET /api/info``: :meth:`Explorer.info`.
- ``GET /api/input?factors=i,j,k`` (or no ``factors``: at random; ``seed=N`` optional):
  ``{index, factors, code, input, reconstruction}``.
- ``POST /api/decode`` ``{"z": [D floats]}``: ``{image, ms}`` (``ms``: decode + PNG on the server).
- ``POST /api/traversals`` ``{"z": [...]}``: ``{rows: [{index, image}], ms}``.

Bad requests get status 400 (404: no image has those factors) and ``{"error": message}``.
"""

from __future__ import annotations

import base64
import socket
import threading
import time
from pathlib import Path
from typing import Any, Awaitable, Callable

try:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import HTMLResponse, JSONResponse, Response
    from starlette.routing import Route
except ImportError as e:  # pragma: no cover - exercised by the CLI test with the modules hidden
    raise ImportError(
        f"untwine explore needs starlette and uvicorn ({e.name} is missing): pip install 'untwine[explore]'"
    ) from e

from .core import Explorer

PAGE = Path(__file__).parent / "static" / "index.html"
HOST = "127.0.0.1"


def data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _errors(fn: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
    async def wrapped(request: Request) -> Response:
        try:
            return await fn(request)
        except KeyError as e:
            return JSONResponse({"error": str(e.args[0] if e.args else e)}, status_code=404)
        except (ValueError, TypeError) as e:
            return JSONResponse({"error": str(e)}, status_code=400)
    return wrapped


async def _z(request: Request) -> list[float]:
    try:
        body = await request.json()
    except ValueError:
        raise ValueError('the body must be JSON {"z": [numbers]}') from None
    if not isinstance(body, dict) or not isinstance(body.get("z"), list):
        raise ValueError('the body must be JSON {"z": [numbers]}')
    return body["z"]


def make_app(explorer: Explorer) -> Starlette:
    """The ASGI app serving ``explorer`` (sync model calls run in Starlette's thread pool)."""
    from starlette.concurrency import run_in_threadpool

    page = PAGE.read_text()
    info = explorer.info()

    async def index(request: Request) -> Response:
        return HTMLResponse(page)

    async def get_info(request: Request) -> Response:
        return JSONResponse(info)

    @_errors
    async def get_input(request: Request) -> Response:
        q = request.query_params
        factors = None
        if q.get("factors"):
            try:
                factors = [int(v) for v in q["factors"].split(",")]
            except ValueError:
                raise ValueError(f"factors must be comma-separated integers, got {q['factors']!r}") from None
        seed = int(q["seed"]) if q.get("seed", "").lstrip("-").isdigit() else None
        r = await run_in_threadpool(explorer.pick, factors, seed)
        return JSONResponse({**r, "input": data_url(r["input"]), "reconstruction": data_url(r["reconstruction"])})

    @_errors
    async def decode(request: Request) -> Response:
        img, ms = await run_in_threadpool(explorer.decode, await _z(request))
        return JSONResponse({"image": data_url(img), "ms": ms})

    @_errors
    async def traversals(request: Request) -> Response:
        z = await _z(request)
        t0 = time.perf_counter()
        rows = await run_in_threadpool(explorer.traversals, z)
        ms = (time.perf_counter() - t0) * 1e3
        return JSONResponse({"rows": [{"index": d, "image": data_url(p)} for d, p in rows], "ms": ms})

    return Starlette(routes=[
        Route("/", index),
        Route("/api/info", get_info),
        Route("/api/input", get_input),
        Route("/api/decode", decode, methods=["POST"]),
        Route("/api/traversals", traversals, methods=["POST"]),
    ])


def bind(port: int) -> socket.socket:
    """A listening socket on 127.0.0.1:``port`` (0: a free port); ``OSError`` naming the fix."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind((HOST, port))
    except OSError as e:
        sock.close()
        raise OSError(f"cannot listen on {HOST}:{port} ({e.strerror}); pick another port with --port") from None
    sock.listen(128)
    return sock


class Server:
    """uvicorn serving :func:`make_app` on 127.0.0.1 (``port=0``: a free port, see :attr:`url`).

    ``sock``: a socket from :func:`bind` (else one is bound to ``port``). ``run()`` blocks until
    Ctrl-C; ``start()`` serves from a background thread until ``stop()``.
    """

    def __init__(self, explorer: Explorer, port: int = 0, sock: socket.socket | None = None) -> None:
        self.sock = sock if sock is not None else bind(port)
        self.port = int(self.sock.getsockname()[1])
        self.url = f"http://{HOST}:{self.port}/"
        self._server = uvicorn.Server(uvicorn.Config(make_app(explorer), log_level="warning"))
        self._thread: threading.Thread | None = None

    @property
    def started(self) -> bool:
        return bool(self._server.started)

    def run(self) -> None:
        """Serve until Ctrl-C (uvicorn's signal handling; from the main thread)."""
        self._serve()

    def _serve(self) -> None:
        self._server.run(sockets=[self.sock])

    def start(self, timeout: float = 30.0) -> "Server":
        self._thread = threading.Thread(target=self._serve, daemon=True, name="untwine-explore")
        self._thread.start()
        t0 = time.monotonic()
        while not self.started:
            if not self._thread.is_alive() or time.monotonic() - t0 > timeout:
                raise RuntimeError(f"the explorer server did not start on {self.url}")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.sock.close()


def open_when_started(server: Server, open_url: Callable[[str], Any], timeout: float = 60.0) -> threading.Thread:
    """Call ``open_url(server.url)`` from a thread once ``server`` accepts connections."""
    def wait() -> None:
        t0 = time.monotonic()
        while not server.started and time.monotonic() - t0 < timeout:
            time.sleep(0.05)
        if server.started:
            open_url(server.url)
    t = threading.Thread(target=wait, daemon=True)
    t.start()
    return t

"""The explorer's web side: a Starlette app (one static page + JSON endpoints) served by uvicorn.

Endpoints (images are ``data:image/png;base64,...`` URLs inside the JSON):

- ``GET /``: the page (``static/index.html``).
- ``GET /api/info``: :meth:`Explorer.info`.
- ``GET /api/input?factors=i,j,k`` (or no ``factors``: at random; ``seed=N`` optional):
  ``{index, factors, code, input, reconstruction}``.
- ``POST /api/decode`` ``{"z": [D floats]}``: ``{image, ms}`` (``ms``: time on the server, from
  the checked request to its PNG, waiting for the decoder included).
- ``POST /api/traversals`` ``{"z": [...]}``: ``{rows: [{index, image}], ms}``.

Refused, with ``{"error": message}``: a bad request (400; 404: no image has those factors), a POST
without ``Content-Type: application/json`` (415), a body over ``max_body`` bytes (413); a ``Host``
other than the served one gets Starlette's 400 ``Invalid host header`` (see :mod:`.guard`).
Decodes from all requests go through one :class:`~.batch.Batcher` (two decoder threads).
"""

from __future__ import annotations

import asyncio
import base64
import gc
import re
import socket
import threading
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable

try:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.middleware import Middleware
    from starlette.middleware.trustedhost import TrustedHostMiddleware
    from starlette.requests import Request
    from starlette.responses import HTMLResponse, JSONResponse, Response
    from starlette.routing import Route
except ImportError as e:  # pragma: no cover - exercised by the CLI test with the modules hidden
    raise ImportError(
        f"untwine explore needs starlette and uvicorn ({e.name} is missing): pip install 'untwine[explore]'"
    ) from e

from .batch import Batcher
from .core import Explorer, png
from .guard import MAX_BODY, BadRequest, BodyLimit, allowed_hosts, json_object

PAGE = Path(__file__).parent / "static" / "index.html"
HOST = "127.0.0.1"
MAX_CONNECTIONS = 256  # uvicorn answers 503 beyond this many open connections
Z_BODY = '{"z": [numbers]}'
_INT = re.compile(r"-?[0-9]{1,30}")


def data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _error(message: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _errors(fn: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
    async def wrapped(request: Request) -> Response:
        try:
            return await fn(request)
        except BadRequest as e:
            return _error(str(e), e.status)
        except KeyError as e:
            return _error(str(e.args[0] if e.args else e), 404)
        except (ValueError, TypeError) as e:
            return _error(str(e))
    return wrapped


async def _z(request: Request) -> Any:
    body = await json_object(request, Z_BODY)
    if "z" not in body:
        raise BadRequest(f'the body has no "z"; expected {Z_BODY}')
    extra = sorted(set(body) - {"z"})
    if extra:
        raise BadRequest(f"unexpected field {extra[0]!r} in the body; expected {Z_BODY}")
    return body["z"]


def _ints(text: str, what: str) -> list[int]:
    items = [t.strip() for t in text.split(",")]
    if not all(_INT.fullmatch(t) for t in items):
        raise BadRequest(f"{what} must be comma-separated integers, got {text[:100]!r}")
    return [int(t) for t in items]


def make_app(explorer: Explorer, host: str = HOST, max_body: int = MAX_BODY, max_batch: int = 1024,
             decoders: int = 2) -> Starlette:
    """The ASGI app serving ``explorer`` on ``host`` (the ``Host`` names it answers:
    :func:`~.guard.allowed_hosts`); bodies up to ``max_body`` bytes; decodes in batches of up to
    ``max_batch`` codes on ``decoders`` threads (picks run in Starlette's thread pool)."""
    page = PAGE.read_text()
    info = explorer.info()
    batcher = Batcher(explorer.run.decode, max_batch=max_batch, workers=decoders)

    async def index(request: Request) -> Response:
        return HTMLResponse(page)

    async def get_info(request: Request) -> Response:
        return JSONResponse(info)

    @_errors
    async def get_input(request: Request) -> Response:
        q = request.query_params
        unknown = sorted(set(q) - {"factors", "seed"})
        if unknown:
            raise BadRequest(f"unknown query parameter {unknown[0]!r} (/api/input takes factors, seed)")
        factors = _ints(q["factors"], "factors") if q.get("factors") else None
        seed = None
        if "seed" in q:
            if not _INT.fullmatch(q["seed"].strip()):
                raise BadRequest(f"seed must be an integer, got {q['seed'][:100]!r}")
            seed = int(q["seed"])
        r = await run_in_threadpool(explorer.pick, factors, seed)
        return JSONResponse({**r, "input": data_url(r["input"]), "reconstruction": data_url(r["reconstruction"])})

    @_errors
    async def decode(request: Request) -> Response:
        c = explorer.code(await _z(request))
        t0 = time.perf_counter()
        img = await asyncio.wrap_future(batcher.submit(c[None], lambda images: png(images[0])))
        return JSONResponse({"image": data_url(img), "ms": (time.perf_counter() - t0) * 1e3})

    @_errors
    async def traversals(request: Request) -> Response:
        c = explorer.code(await _z(request))
        t0 = time.perf_counter()
        rows = await asyncio.wrap_future(batcher.submit(explorer.traversal_codes(c), explorer.traversal_strips))
        ms = (time.perf_counter() - t0) * 1e3
        return JSONResponse({"rows": [{"index": d, "image": data_url(p)} for d, p in rows], "ms": ms})

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await run_in_threadpool(batcher.close)

    app = Starlette(
        routes=[
            Route("/", index),
            Route("/api/info", get_info),
            Route("/api/input", get_input),
            Route("/api/decode", decode, methods=["POST"]),
            Route("/api/traversals", traversals, methods=["POST"]),
        ],
        middleware=[
            Middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts(host)),  # first: before anything else
            Middleware(BodyLimit, max_bytes=max_body),
        ],
        lifespan=lifespan,
    )
    app.state.batcher = batcher
    return app


def bind(port: int, host: str = HOST) -> socket.socket:
    """A listening TCP socket on ``host:port`` (0: a free port); ``OSError`` naming the fix.

    ``IPPROTO_TCP`` explicitly: asyncio turns Nagle's algorithm off only on sockets whose protocol
    says TCP, and with it on every answer waited ~40 ms for the client's delayed ACK."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise OSError(f"cannot listen on {host}:{port} ({e.strerror}); pick another port with --port") from None
    except UnicodeError:
        sock.close()
        raise OSError(f"cannot listen on {host!r}: not a host name or IPv4 address") from None
    sock.listen(128)
    return sock


class Server:
    """uvicorn serving :func:`make_app` on ``host`` (127.0.0.1; ``port=0``: a free port, see :attr:`url`).

    ``sock``: a socket from :func:`bind` on ``host`` (else one is bound to ``port``). ``run()``
    blocks until Ctrl-C; ``start()`` serves from a background thread until ``stop()``.
    """

    def __init__(self, explorer: Explorer, port: int = 0, sock: socket.socket | None = None,
                 host: str = HOST) -> None:
        self.sock = sock if sock is not None else bind(port, host)
        self.host = host
        self.port = int(self.sock.getsockname()[1])
        self.url = f"http://{host}:{self.port}/"
        self.app = make_app(explorer, host=host)
        self._server = uvicorn.Server(uvicorn.Config(self.app, log_level="warning", limit_concurrency=MAX_CONNECTIONS))
        self._thread: threading.Thread | None = None

    @property
    def started(self) -> bool:
        return bool(self._server.started)

    def run(self) -> None:
        """Serve until Ctrl-C (uvicorn's signal handling; from the main thread of a process of its
        own, as ``untwine explore``: the objects that exist now are frozen out of the garbage
        collector first, since torch, the model and the dataset are ~300k long-lived objects and a
        full collection scanning them took ~130 ms in the middle of a burst of requests)."""
        gc.collect()
        gc.freeze()
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

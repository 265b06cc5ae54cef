"""The explorer's server refuses what it should, with the exact status and message, and answers
100 concurrent decodes correctly (a real uvicorn server on 127.0.0.1).

Refusals go through Starlette's TestClient (``raise_server_exceptions``: an unhandled error, a
would-be 500, fails the test); the Host check, the size limit and the load test also go through
the real server, with uvicorn's error log watched for tracebacks.
"""

from __future__ import annotations

import http.client
import json
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor, wait

import numpy as np
import pytest

from untwine.explore.batch import Batcher
from untwine.explore.guard import MAX_BODY

from test_explore import explorer, pixels, run_dir, server  # noqa: F401 - module fixtures

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")
try:
    from starlette.testclient import TestClient
except RuntimeError as e:  # Starlette's TestClient needs httpx2 (or, before Starlette 1.x, httpx)
    pytest.skip(str(e).strip(), allow_module_level=True)

from untwine.explore.app import make_app  # noqa: E402

BASE = "http://127.0.0.1:8765"
JSON = {"Content-Type": "application/json"}
Z = '{"z": [numbers]}'
TOO_LARGE = f"request body too large ({MAX_BODY + 1} bytes); the limit is {MAX_BODY} bytes"


@pytest.fixture(scope="module")
def client(explorer):  # noqa: F811
    with TestClient(make_app(explorer), base_url=BASE) as c:
        yield c


@pytest.fixture
def server_errors():
    """Records uvicorn logs at ERROR and above (a traceback from the app is one) during a test."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.ERROR)
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("uvicorn.error")
    logger.addHandler(handler)
    yield records
    logger.removeHandler(handler)


def post(client: TestClient, path: str, body: bytes | str, headers: dict | None = None):
    return client.post(path, content=body, headers=JSON if headers is None else headers)


# ----------------------------------------------------------------------------- Host (DNS rebinding)
@pytest.mark.parametrize("host", ["evil.example", "evil.example:8765", "127.0.0.1.evil.example",
                                  "localhost.evil.example", "testserver", ""])
def test_foreign_host_is_refused(client, host):
    for r in (client.get("/", headers={"Host": host}), client.get("/api/info", headers={"Host": host}),
              client.post("/api/decode", json={"z": [0, 0, 0]}, headers={"Host": host})):
        assert (r.status_code, r.text) == (400, "Invalid host header")


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.1:8765", "localhost:8765", "LOCALHOST"])
def test_served_names_are_answered(client, host):
    assert client.get("/api/info", headers={"Host": host}).status_code == 200


def test_host_option_adds_that_name_only(explorer):  # noqa: F811
    with TestClient(make_app(explorer, host="explorer.lan"), base_url="http://explorer.lan:8765") as c:
        assert c.get("/api/info").status_code == 200
        assert c.get("/api/info", headers={"Host": "localhost"}).status_code == 200
        r = c.get("/api/info", headers={"Host": "evil.example"})
        assert (r.status_code, r.text) == (400, "Invalid host header")


def test_decoding_is_refused_before_it_happens(explorer):  # noqa: F811
    app = make_app(explorer)
    with TestClient(app, base_url="http://evil.example") as c:
        assert c.post("/api/decode", json={"z": [0, 0, 0]}).status_code == 400
    assert app.state.batcher.batches == 0


# ----------------------------------------------------------------------------- body size
def test_oversize_body_is_refused(client):
    r = post(client, "/api/decode", b" " * (MAX_BODY + 1))
    assert (r.status_code, r.json()) == (413, {"error": TOO_LARGE})
    r = post(client, "/api/traversals", b'{"z": [' + b"0," * MAX_BODY + b"0]}")
    assert r.status_code == 413 and r.json()["error"].startswith("request body too large (")


def test_streamed_oversize_body_is_refused(client):
    def chunks():  # no Content-Length: counted as it arrives
        for _ in range(MAX_BODY // 1024 + 2):
            yield b" " * 1024

    r = client.post("/api/decode", content=chunks(), headers=JSON)
    assert (r.status_code, r.json()) == (413, {"error": f"request body too large (over {MAX_BODY} bytes); "
                                                        f"the limit is {MAX_BODY} bytes"})


def test_body_at_the_limit_is_read(client):
    body = b'{"z": [0, 0, 0]}'
    r = post(client, "/api/decode", body + b" " * (MAX_BODY - len(body)))
    assert r.status_code == 200


# ----------------------------------------------------------------------------- malformed bodies
BODY_ERRORS = [
    (b"", 400, f"the body is empty; expected JSON {Z}"),
    (b"{", 400, "the body is not valid JSON (Expecting property name enclosed in double quotes: line 1 column 2 "
                f"(char 1)); expected {Z}"),
    (b'{"z": [1, 2,]}', 400, f"the body is not valid JSON (Expecting value: line 1 column 13 (char 12)); expected {Z}"),
    (b"\x80\x81", 400, "the body is not valid JSON ('utf-8' codec can't decode byte 0x80 in position 0: "
                       f"invalid start byte); expected {Z}"),
    (b"[" * 20_000, 400, f"the body is not valid JSON (nested too deeply); expected {Z}"),
    (b"[0, 0, 0]", 400, f"the body must be a JSON object {Z}, got a JSON array"),
    (b'"z"', 400, f"the body must be a JSON object {Z}, got a JSON string"),
    (b"null", 400, f"the body must be a JSON object {Z}, got a JSON null"),
    (b'{"x": 1}', 400, f'the body has no "z"; expected {Z}'),
    (b'{"z": [0, 0, 0], "Z": 1}', 400, f"unexpected field 'Z' in the body; expected {Z}"),
    (b'{"z": "0,0,0"}', 400, "z must be a list of 3 numbers, got str"),
    (b'{"z": null}', 400, "z must be a list of 3 numbers, got NoneType"),
    (b'{"z": {"0": 1}}', 400, "z must be a list of 3 numbers, got dict"),
    (b'{"z": []}', 400, "z must be 3 numbers (one per latent), got 0"),
    (b'{"z": [1, 2, 3, 4]}', 400, "z must be 3 numbers (one per latent), got 4"),
    (b'{"z": ["1", 2, 3]}', 400, "z[0] must be a number, got '1'"),
    (b'{"z": [0, true, 3]}', 400, "z[1] must be a number, got True"),
    (b'{"z": [0, 0, null]}', 400, "z[2] must be a number, got None"),
    (b'{"z": [[0], 0, 0]}', 400, "z[0] must be a number, got [0]"),
    (b'{"z": [0, NaN, 0]}', 400, "z[1] must be a number, got nan"),
    (b'{"z": [0, 0, Infinity]}', 400, "z[2] = inf is out of range: latent values lie in [-100, 100]"),
    (b'{"z": [1e400, 0, 0]}', 400, "z[0] = inf is out of range: latent values lie in [-100, 100]"),
    (b'{"z": [-100.5, 0, 0]}', 400, "z[0] = -100.5 is out of range: latent values lie in [-100, 100]"),
    (b'{"z": [0, 1' + b"0" * 400 + b', 0]}', 400,
     f"z[1] = 1{'0' * 36}... is out of range: latent values lie in [-100, 100]"),  # cut to 40 characters
]


@pytest.mark.parametrize("path", ["/api/decode", "/api/traversals"])
@pytest.mark.parametrize("body, status, error", BODY_ERRORS)
def test_malformed_bodies_name_the_problem(client, path, body, status, error):
    r = post(client, path, body)
    assert (r.status_code, r.json()) == (status, {"error": error})


@pytest.mark.parametrize("ctype, shown", [(None, "no Content-Type"), ("text/plain", "text/plain"),
                                          ("application/x-www-form-urlencoded", "application/x-www-form-urlencoded")])
def test_post_needs_json_content_type(client, ctype, shown):
    r = post(client, "/api/decode", b'{"z": [0, 0, 0]}', {} if ctype is None else {"Content-Type": ctype})
    assert (r.status_code, r.json()) == (415, {"error": f"send the body as JSON {Z} with Content-Type: "
                                                        f"application/json, not {shown}"})
    assert post(client, "/api/decode", b'{"z": [0, 0, 0]}',
                {"Content-Type": "application/json; charset=utf-8"}).status_code == 200


def test_values_at_the_limits_are_decoded(client, explorer):  # noqa: F811
    r = post(client, "/api/decode", b'{"z": [-100, 100, 0.5]}')
    assert r.status_code == 200
    np.testing.assert_array_equal(pixels(r.json()["image"]), pixels(explorer.decode([-100, 100, 0.5])[0]))


# ----------------------------------------------------------------------------- /api/input
@pytest.mark.parametrize("query, error", [
    ("factors=1,x,0", "factors must be comma-separated integers, got '1,x,0'"),
    ("factors=1.5,0,0", "factors must be comma-separated integers, got '1.5,0,0'"),
    ("factors=1,2", "factors must be 3 integers (x, y, size), got 2"),
    ("factors=1,2,0,0", "factors must be 3 integers (x, y, size), got 4"),
    ("factors=8,0,0", "factor x = 8 is out of range: x takes 0..7"),
    ("factors=0,-1,0", "factor y = -1 is out of range: y takes 0..7"),
    ("factors=0,0,2", "factor size = 2 is out of range: size takes 0..1"),
    ("factors=99999999999999999999999,0,0", "factor x = 99999999999999999999999 is out of range: x takes 0..7"),
    ("factors=" + "9" * 40 + ",0,0", f"factors must be comma-separated integers, got '{'9' * 40},0,0'"),
    ("seed=abc", "seed must be an integer, got 'abc'"),
    ("seed=-1", "seed must be an integer in [0, 2**64), got -1"),
    ("seed=", "seed must be an integer, got ''"),
    ("factor=1,2,3", "unknown query parameter 'factor' (/api/input takes factors, seed)"),
])
def test_bad_input_queries_name_the_problem(client, query, error):
    r = client.get("/api/input?" + query)
    assert (r.status_code, r.json()) == (400, {"error": error})


def test_good_input_queries(client):
    r = client.get("/api/input?factors=%207,%200,1&seed=5")
    assert r.status_code == 200 and r.json()["factors"] == [7, 0, 1]
    assert client.get("/api/input?seed=3").json()["factors"] == client.get("/api/input?seed=3").json()["factors"]


def test_factors_no_image_has_are_a_404(explorer):  # noqa: F811
    from untwine.data import from_arrays
    from untwine.explore import Explorer

    d = explorer.data
    keep = ~((d.factors.numpy() == [7, 7, 1]).all(1))  # every combination but one
    data = from_arrays(d.images.numpy()[keep, 0], d.factors.numpy()[keep], d.factor_names, name="holey",
                       factor_sizes=d.factor_sizes)
    with TestClient(make_app(Explorer(explorer.run, data, samples=64)), base_url=BASE) as c:
        r = c.get("/api/input?factors=7,7,1")
        assert (r.status_code, r.json()) == (404, {"error": "holey: no image has factors (7, 7, 1)"})
        assert c.get("/api/input?factors=7,7,0").status_code == 200


def test_wrong_method_and_path(client):
    assert client.get("/api/decode").status_code == 405
    assert client.post("/api/info", json={}).status_code == 405
    assert client.get("/api/nope").status_code == 404


# ----------------------------------------------------------------------------- the real server
def request(port: int, method: str, path: str, body: bytes | None = None, headers: dict | None = None,
            ) -> tuple[int, bytes, float]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        t0 = time.perf_counter()
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        data = r.read()
        return r.status, data, (time.perf_counter() - t0) * 1e3
    finally:
        conn.close()


def test_real_server_refusals(server, server_errors):  # noqa: F811
    status, data, _ = request(server.port, "GET", "/api/info", headers={"Host": "evil.example"})
    assert (status, data) == (400, b"Invalid host header")
    status, data, _ = request(server.port, "POST", "/api/decode", b" " * (MAX_BODY + 1), JSON)
    assert (status, json.loads(data)) == (413, {"error": TOO_LARGE})
    status, data, _ = request(server.port, "POST", "/api/decode", b"[" * 20_000, JSON)
    assert (status, json.loads(data)) == (400, {"error": f"the body is not valid JSON (nested too deeply); expected {Z}"})
    status, data, _ = request(server.port, "GET", "/api/input?factors=99999999999999999999999,0,0")
    assert status == 400
    assert request(server.port, "GET", "/api/info")[0] == 200  # still serving
    assert not server_errors, [r.getMessage() for r in server_errors]


def test_100_concurrent_decodes_are_each_the_models_decode(server, explorer, server_errors, record_property):  # noqa: F811
    codes = np.random.default_rng(1).uniform(-2, 2, (100, 3)).round(3).tolist()
    start = threading.Barrier(len(codes), timeout=60)

    def one(z: list[float]) -> tuple[int, bytes, float]:
        start.wait()
        return request(server.port, "POST", "/api/decode", json.dumps({"z": z}).encode(), JSON)

    with ThreadPoolExecutor(len(codes)) as pool:
        futures = [pool.submit(one, z) for z in codes]
        done, pending = wait(futures, timeout=120)
    assert not pending, f"{len(pending)} of 100 requests unanswered after 120 s"
    answers = [f.result() for f in futures]
    assert [status for status, _, _ in answers] == [200] * 100
    for z, (_, data, _) in zip(codes, answers):
        got, expect = pixels(json.loads(data)["image"]), pixels(explorer.decode(z)[0])
        # the server decodes requests in batches: float sums in another order may move a pixel by
        # one grey level where it rounds at .5; any other difference is a wrong answer
        assert got.shape == expect.shape and np.abs(got.astype(int) - expect).max() <= 1
    assert len({data for _, data, _ in answers}) > 90  # 100 different codes, (nearly) all different images
    ms = np.asarray([t for _, _, t in answers])
    p50, p99 = np.percentile(ms, [50, 99])
    record_property("decode_p50_ms", round(float(p50), 1))
    record_property("decode_p99_ms", round(float(p99), 1))
    print(f"\n100 concurrent decodes: p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {ms.max():.1f} ms "
          f"({server.app.state.batcher.batches} decoder batches so far)")
    assert not server_errors, [r.getMessage() for r in server_errors]


# ----------------------------------------------------------------------------- the Batcher
def test_batcher_decodes_what_queued_while_it_was_busy_in_one_batch():
    busy, go, calls = threading.Event(), threading.Event(), []

    def decode(codes: np.ndarray) -> np.ndarray:
        calls.append(len(codes))
        busy.set()
        assert go.wait(10)
        return codes * 2

    b = Batcher(decode, max_batch=8)
    first = b.submit(np.ones((1, 2)), lambda x: x.tolist())
    assert busy.wait(10)
    rest = [b.submit(np.full((1, 2), i), lambda x: float(x.sum())) for i in range(5)]
    big = b.submit(np.zeros((9, 2)), len)  # over max_batch: decoded alone, never split
    last = b.submit(np.ones((2, 2)), len)
    go.set()
    assert first.result(10) == [[2.0, 2.0]]
    assert [f.result(10) for f in rest] == [0.0, 4.0, 8.0, 12.0, 16.0]
    assert (big.result(10), last.result(10)) == (9, 2)
    assert calls == [1, 5, 9, 2] and b.batches == 4
    b.close()


def test_batcher_errors_reach_their_callers():
    def decode(codes: np.ndarray) -> np.ndarray:
        if (codes < 0).any():
            raise ValueError("negative code")
        return codes

    def then(images: np.ndarray) -> float:
        if images[0, 0] == 7:
            raise RuntimeError("png failed")
        return float(images[0, 0])

    b = Batcher(decode)
    with pytest.raises(ValueError, match="negative code"):
        b.submit(-np.ones((1, 1)), then).result(10)
    assert b.submit(np.full((1, 1), 3.0), then).result(10) == 3.0  # the thread lives on
    with pytest.raises(RuntimeError, match="png failed"):
        b.submit(np.full((1, 1), 7.0), then).result(10)
    b.close()
    with pytest.raises(RuntimeError, match="the decoder has been closed"):
        b.submit(np.ones((1, 1)), then)


def test_batcher_with_two_workers_answers_every_job_and_closes():
    b = Batcher(lambda codes: codes + 1, max_batch=4, workers=2)
    futures = [b.submit(np.full((1 + i % 3, 1), float(i)), lambda x: x[:, 0].tolist()) for i in range(50)]
    assert [f.result(10) for f in futures] == [[i + 1.0] * (1 + i % 3) for i in range(50)]
    b.close()
    assert not any(t.is_alive() for t in b._threads)

"""Latent explorer under load: latency of 100 concurrent ``POST /api/decode`` requests.

    python benchmarks/bench_explore.py [--model beta-tcvae-dsprites] [--requests 100] [--rounds 5]
                                       [--samples 2000] [--cores 0,1] [--explore-args "..."]

Starts ``untwine explore MODEL --port 0 --no-browser`` in a subprocess (the real CLI, so the
server runs as a user would run it), waits for its URL, then from this process: 20 sequential
decodes (warm-up, and the one-at-a-time latency), then ``--rounds`` rounds of ``--requests``
threads that each open a keep-alive connection to 127.0.0.1, wait at a barrier, send one decode
of a random code (within the sliders' ranges) and read the answer. Latency = send to last byte,
per request. Prints p50 / p90 / p99 / max per round and over all rounds, the CPU time the server
and the client used per round (from /proc and getrusage, 10 ms ticks: independent of how busy
the machine is, unlike the latencies), the load average, the CPU model and the cores used (both
processes are pinned to ``--cores``: the goal is stated for 2).

Client and server share those cores (and the machine's other jobs): the 100 client threads'
own Python work is in the figures.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import resource
import shlex
import subprocess
import sys
import threading
import time

import numpy as np


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def cpu_ms(pid: int | None = None) -> float:
    """CPU time (user + system) of process ``pid`` (None: this one, all threads), in ms."""
    if pid is None:
        r = resource.getrusage(resource.RUSAGE_SELF)
        return (r.ru_utime + r.ru_stime) * 1e3
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK") * 1e3


def start_server(model: str, samples: int, extra: list[str], timeout: float = 300.0) -> tuple[subprocess.Popen, str, int]:
    cmd = [sys.executable, "-m", "untwine.cli", "explore", model, "--port", "0", "--no-browser",
           "--samples", str(samples), *extra]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    t0 = time.monotonic()
    assert proc.stdout is not None
    for line in proc.stdout:
        if "serving" in line and "http://" in line:
            url = line.split("http://", 1)[1].split("/", 1)[0]
            host, port = url.rsplit(":", 1)
            threading.Thread(target=proc.stdout.read, daemon=True).start()  # keep draining its output
            wait_up(host, int(port), deadline=t0 + timeout)
            return proc, host, int(port)
        if time.monotonic() - t0 > timeout:
            break
    proc.kill()
    raise RuntimeError(f"the explorer did not start: {' '.join(cmd)}")


def wait_up(host: str, port: int, deadline: float) -> None:
    while time.monotonic() < deadline:
        try:
            c = http.client.HTTPConnection(host, port, timeout=5)
            c.request("GET", "/api/info")
            if c.getresponse().status == 200:
                c.close()
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("the explorer did not answer /api/info")


def decode_once(conn: http.client.HTTPConnection, z: list[float]) -> tuple[float, int]:
    body = json.dumps({"z": z}).encode()
    t0 = time.perf_counter()
    conn.request("POST", "/api/decode", body=body, headers={"Content-Type": "application/json"})
    r = conn.getresponse()
    r.read()
    return (time.perf_counter() - t0) * 1e3, r.status


def concurrent_round(host: str, port: int, codes: np.ndarray) -> list[float]:
    n = len(codes)
    barrier = threading.Barrier(n)
    out: list[float | None] = [None] * n
    errors: list[str] = []

    def one(i: int) -> None:
        conn = http.client.HTTPConnection(host, port, timeout=60)
        try:
            conn.connect()
            barrier.wait(timeout=60)
            ms, status = decode_once(conn, [float(v) for v in codes[i]])
            if status != 200:
                errors.append(f"status {status}")
            out[i] = ms
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))
        finally:
            conn.close()

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    if errors:
        raise RuntimeError(f"{len(errors)} of {n} requests failed, e.g. {errors[0]}")
    return [v for v in out if v is not None]


def stats(ms: list[float]) -> str:
    a = np.asarray(ms)
    p50, p90, p99 = np.percentile(a, [50, 90, 99])
    return f"p50 {p50:6.1f}  p90 {p90:6.1f}  p99 {p99:6.1f}  max {a.max():6.1f} ms"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="beta-tcvae-dsprites", help="run folder or pretrained name")
    ap.add_argument("--requests", type=int, default=100, help="concurrent requests per round")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--samples", type=int, default=2000, help="the explorer's MI sample (start-up only)")
    ap.add_argument("--cores", default="0,1", help="pin client and server to these cores ('' : no pinning)")
    ap.add_argument("--explore-args", default="", help="more arguments for `untwine explore`")
    args = ap.parse_args()

    if args.cores and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {int(c) for c in args.cores.split(",")})  # the server inherits it
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"cpu: {cpu_model()}; cores used: {cores}; load average at start: "
          f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}", flush=True)
    t0 = time.monotonic()
    proc, host, port = start_server(args.model, args.samples, shlex.split(args.explore_args))
    try:
        print(f"server {args.model} on {host}:{port} (started in {time.monotonic() - t0:.0f} s; "
              f"args {args.explore_args or '-'})", flush=True)
        conn = http.client.HTTPConnection(host, port, timeout=60)
        conn.request("GET", "/api/info")
        info = json.loads(conn.getresponse().read())
        limits = np.asarray([lat["limit"] for lat in sorted(info["latents"], key=lambda lat: lat["index"])])
        rng = np.random.default_rng(0)
        seq = [decode_once(conn, [float(v) for v in rng.uniform(-limits, limits)])[0] for _ in range(20)]
        conn.close()
        print(f"sequential, 20 decodes:     {stats(seq)}", flush=True)
        every: list[float] = []
        cpu: list[tuple[float, float]] = []
        for r in range(args.rounds):
            s0, c0 = cpu_ms(proc.pid), cpu_ms()
            ms = concurrent_round(host, port, rng.uniform(-limits, limits, (args.requests, len(limits))))
            cpu.append((cpu_ms(proc.pid) - s0, cpu_ms() - c0))
            every += ms
            print(f"round {r + 1}, {len(ms)} concurrent: {stats(ms)};  cpu: server {cpu[-1][0]:4.0f} ms, "
                  f"client {cpu[-1][1]:4.0f} ms", flush=True)
        print(f"all {len(every)} concurrent:     {stats(every)};  cpu per round, median: server "
              f"{np.median([c[0] for c in cpu]):4.0f} ms, client {np.median([c[1] for c in cpu]):4.0f} ms")
        print(f"load average at end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


if __name__ == "__main__":
    main()

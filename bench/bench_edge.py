"""Header-slow connections and a request flood, with and without the edge proxy (docs/ARCHITECTURE.md "Edge proxy").

Starts its own scratch database, ``serve run`` and an nginx edge (serve_app/edge.py, the shipped configs/service.yaml
``edge`` limits), all on loopback. (1) ``--slow`` connections send half their request headers and stop: how many
are still open after ``--hold`` seconds, directly on Ray Serve's proxy and through the edge, and how long a
``/healthz`` takes meanwhile. (2) One key sends ``--flood`` sequential requests as fast as it can for ``--seconds``:
how many the service served and refused, and another key's single request meanwhile, through the edge.

    .venv/bin/python bench/bench_edge.py --slow 200 --hold 30
"""

import argparse
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
import local_instance as local  # noqa: E402
from serve_app.settings import load_settings  # noqa: E402


def half_headers(url, n):
    host, port = url.split("://", 1)[1].split(":")
    out = []
    for _ in range(n):
        s = socket.create_connection((host, int(port)))
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: pvcast\r\nX-Slow: ")
        out.append(s)
    return out


def still_open(sockets):
    alive = 0
    for s in sockets:
        s.setblocking(False)
        try:
            alive += s.recv(1) != b""
        except BlockingIOError:
            alive += 1
        except OSError:
            pass
    return alive


def slow_probe(url, n, hold):
    sockets = half_headers(url, n)
    try:
        t0 = time.monotonic()
        health = httpx.get(url + "/healthz", timeout=60)
        took = time.monotonic() - t0
        time.sleep(hold)
        return still_open(sockets), health.status_code, took
    finally:
        for s in sockets:
            s.close()


def flood(url, key, seconds):
    counts = {}
    end = time.monotonic() + seconds
    with httpx.Client(base_url=url, headers=local.bearer(key), timeout=60) as c:
        while time.monotonic() < end:
            r = c.get("/api/v1/locations?limit=1")
            counts[r.status_code] = counts.get(r.status_code, 0) + 1
    return counts


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--slow", type=int, default=200)
    parser.add_argument("--hold", type=float, default=30)
    parser.add_argument("--seconds", type=float, default=10)
    args = parser.parse_args()
    settings = load_settings()
    with tempfile.TemporaryDirectory() as tmp, local.scratch_database("pvcast_bench_edge") as (db, _), \
            local.serve_instance(db, Path(tmp) / "serve") as (service, _), \
            local.edge_instance(service.split("://", 1)[1], tmp) as front:
        print(f"header timeout {settings['edge']['header_timeout_seconds']} s; {args.slow} connections send half "
              f"their headers, then nothing; after {args.hold:.0f} s:")
        for name, url in (("Ray Serve's proxy alone", service), ("through the edge", front)):
            alive, status, took = slow_probe(url, args.slow, args.hold)
            print(f"  {name:24s}: {alive} of {args.slow} still open; /healthz meanwhile {status} in "
                  f"{took * 1000:.0f} ms")
        noisy = local.api_key(db, "noisy", "read", "bench_edge")
        quiet = local.api_key(db, "quiet", "read", "bench_edge")
        for name, url in (("Ray Serve's proxy alone", service), ("through the edge", front)):
            result = {}
            thread = threading.Thread(target=lambda: result.update(flood(url, noisy, args.seconds)))
            thread.start()
            time.sleep(args.seconds / 2)
            t0 = time.monotonic()
            other = httpx.get(url + "/api/v1/locations?limit=1", headers=local.bearer(quiet), timeout=60)
            took = time.monotonic() - t0
            thread.join()
            print(f"  one key's sequential flood, {name}: {dict(sorted(result.items()))} in {args.seconds:.0f} s "
                  f"({sum(v for k, v in result.items() if k == 200) / args.seconds:.0f}/s served); "
                  f"another key meanwhile {other.status_code} in {took * 1000:.0f} ms")


if __name__ == "__main__":
    main()

"""Ray Serve's own per-request floor on this machine, without any pvcast code (issue 12's small-request targets).

Two applications of constant answers on a fresh local Ray instance (loopback, a free HTTP port):

* ``direct``: HTTP proxy -> one deployment that answers a constant (the least a request through Serve costs);
* ``chain``: HTTP proxy -> an ingress deployment that awaits one handle call to a second deployment, which
  answers the constant (the shape pvcast's small request has: Ingress -> Forecaster, without its work).

Each is loaded by one client, then by ``--clients`` concurrent clients, for ``--seconds`` each; printed:
requests/s, p50 and p99 latency. pvcast's targets (single plant p50 <= 25 ms; >= 150 single-plant
forecasts/s under 50 clients) are to be read against these: what is left for the forecast itself is the
target less this floor. The deployments are functions (no FastAPI: pvcast's Ingress adds its app on top).

Run: ``.venv/bin/python bench/bench_serve_floor.py [--clients 50] [--seconds 15]`` (~1.5 min; alone on the
machine, like every timing here). Ray runs with scripts/ray_env's environment (token authentication, 127.0.0.1).
"""

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from local_instance import free_port, ray_env  # noqa: E402

# Ray as scripts/ray_env sets it up (token authentication, every server on 127.0.0.1), before Ray is imported
os.environ.update(ray_env())
import ray  # noqa: E402
from ray import serve  # noqa: E402

WORKER_APP = "floor_worker"


@serve.deployment(max_ongoing_requests=200)
def constant(request=None):
    """The constant answer (HTTP request or handle call alike)."""
    return {"ok": 1}


@serve.deployment(max_ongoing_requests=200)
async def chained(request):
    """One handle call to :func:`constant` of the worker application, its answer returned."""
    return await serve.get_deployment_handle("constant", WORKER_APP).remote()


async def load(url, clients, seconds):
    """``clients`` concurrent loops of GET ``url`` for ``seconds``: (requests/s, p50 ms, p99 ms, errors)."""
    latencies, errors = [], 0
    end = time.perf_counter() + seconds
    async with aiohttp.ClientSession() as session:
        async def client():
            nonlocal errors
            while time.perf_counter() < end:
                t = time.perf_counter()
                async with session.get(url) as response:
                    await response.read()
                    errors += response.status != 200
                latencies.append(time.perf_counter() - t)
        await asyncio.gather(*(client() for _ in range(clients)))
    latencies.sort()
    return (len(latencies) / seconds, latencies[len(latencies) // 2] * 1e3,
            latencies[int(len(latencies) * 0.99)] * 1e3, errors)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=15.0)
    args = parser.parse_args(argv)
    os.environ.setdefault("RAY_ADDRESS", "local")  # a fresh instance, never a running cluster
    port = free_port()
    ray.init(include_dashboard=False, logging_level="ERROR")
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        serve.run(constant.bind(), name=WORKER_APP, route_prefix="/direct")
        serve.run(chained.bind(), name="floor_chain", route_prefix="/chain")
        print(f"machine: {os.cpu_count()} CPUs; ray {ray.__version__}; Serve on 127.0.0.1:{port}, no pvcast code")
        for path in ("direct", "chain"):
            url = f"http://127.0.0.1:{port}/{path}"
            asyncio.run(load(url, 10, 3.0))  # warm-up, untimed
            for clients in (1, args.clients):
                rps, p50, p99, errors = asyncio.run(load(url, clients, args.seconds))
                print(f"{path:6s} {clients:3d} client(s): {rps:6.1f} requests/s, p50 {p50:6.1f} ms, "
                      f"p99 {p99:6.1f} ms, errors {errors}", flush=True)
    finally:
        serve.shutdown()
        ray.shutdown()


if __name__ == "__main__":
    main()

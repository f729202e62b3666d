"""Two service settings side by side, requests alternating between them (issue 12: the pipeline's shape).

On a machine shared with other jobs the wall time of one N = 10,000 request varies more
than a change of batch size or concurrency moves it. This runs TWO pvcast instances at
once (``local_instance.serve_instance`` each, Ray heads of ``--cpus`` CPUs) on ONE scratch
database holding the fleet of ``bench/bench_fleet.py`` (same seed, same real weather, stored
with ``engine.store``, ``bench/bench_stages.py`` setup), A with configs/service.yaml as
committed and B with the settings of ``--b`` (JSON: section -> {key: value}), and sends the same
generate request (ml, 48 h x 15 min, wait; rows counted) to A and to B in turn, ``--pairs``
times, the order swapped every pair. The idle instance costs ~nothing while the other runs,
so each pair sees about the same machine. Prints each pair's walls, B / A, and the median
ratio with the CPU seconds of each request (``service.sample_cpu``).

    .venv/bin/python bench/bench_shape.py --b '{"forecast": {"batch_locations": 2500}}' [--n 10000] [--pairs 3]
"""

import argparse
import asyncio
import contextlib
import json
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_stages  # noqa: E402
import local_instance as local  # noqa: E402
import service  # noqa: E402

from engine import keys  # noqa: E402


def request(client, url, sessions, ids, issue):
    """One timed generate; (wall s, CPU s of the instance + its database backends, task timings)."""
    body = {"location_ids": ids, "issue_time": issue.isoformat(), "horizon_hours": 48, "resolution": "15min",
            "forecast_type": "ml", "wait": True, "include_forecast": False}
    with service.sample_cpu(sessions, url.rsplit("/", 1)[1]) as used:
        t0 = time.perf_counter()
        r = client.post("/api/v1/forecast/generate", json=body)
        wall = time.perf_counter() - t0
    r.raise_for_status()
    out = r.json()
    if out["errors"] or len(out["run_ids"]) != len(ids):
        raise RuntimeError(f"{len(out['errors'])} errors, {len(out['run_ids'])} runs for {len(ids)} plants")
    return wall, sum(used["groups"].values()), out["timings"]


def main(args):
    b_settings = json.loads(args.b)
    with local.scratch_database("pvcast_shape") as (url, _), tempfile.TemporaryDirectory() as tmp, \
            contextlib.ExitStack() as stack:
        ids, _ = asyncio.run(bench_stages.setup(url, args.n))
        ids = [int(i) for i in ids]
        key = local.api_key(url, keys.DEFAULT_TENANT, "read,write", "bench/bench_shape.py")
        instances = {}
        for name, settings in (("A", None), ("B", b_settings)):
            base, sessions = stack.enter_context(local.serve_instance(url, Path(tmp) / name, num_cpus=args.cpus,
                                                                      service_settings=settings))
            client = stack.enter_context(httpx.Client(base_url=base, timeout=600, headers=local.bearer(key)))
            instances[name] = (client, sessions)
        print(f"A: configs/service.yaml as committed; B: {b_settings}; {args.n:,} plants, {args.pairs} pairs")
        k = 0
        for name, (client, sessions) in instances.items():  # untimed warm-up: workers, pools
            k += 1
            request(client, url, sessions, ids[:4000], bench_stages.ISSUE + pd.Timedelta(minutes=k))
        walls = {"A": [], "B": []}
        for pair in range(args.pairs):
            for name in ("A", "B") if pair % 2 == 0 else ("B", "A"):
                k += 1
                client, sessions = instances[name]
                wall, cpu, timings = request(client, url, sessions, ids, bench_stages.ISSUE + pd.Timedelta(minutes=k))
                walls[name].append(wall)
                stages = {s: round(v, 1) for s, v in timings.items() if s.endswith("_s")}
                print(f"pair {pair + 1} {name}: {wall:.2f} s, CPU {cpu:.1f} s; {stages}", flush=True)
            print(f"pair {pair + 1}: B / A = {walls['B'][-1] / walls['A'][-1]:.3f}", flush=True)
        ratios = np.array(walls["B"]) / np.array(walls["A"])
        print(f"median B / A over {args.pairs} pairs: {np.median(ratios):.3f} (each {np.round(ratios, 3).tolist()}); "
              f"A median {np.median(walls['A']):.2f} s, B median {np.median(walls['B']):.2f} s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--b", required=True, help="JSON of configs/service.yaml settings for B: {section: {key: value}}")
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--cpus", type=int, default=2, help="Ray CPUs of each instance's head")
    main(parser.parse_args())

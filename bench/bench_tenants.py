"""A noisy tenant beside a quiet one: the quiet tenant's latency and errors with and without the per-tenant bound.

Starts its own pvcast (``bench/local_instance.py``: a scratch database ``pvcast_tenants_<random>``,
dropped at the end, and ``serve run`` of serve_config.yaml on a new Ray head, loopback only) and
creates two tenants with a seeded fleet each around the real weather sites of ``bench/fleet.py``
(weather ingested through the HTTP API, ``bench_fleet.ingest``):

- the noisy tenant (a leaked key, a careless client's retry loop): ``--noisy-clients`` concurrent
  clients, each looping over generate ``wait=true`` of ``--noisy-plants`` plants, retrying a
  refused request (429, 503) after ``--noisy-retry-wait`` s;
- the quiet tenant: ``--quiet-clients`` clients looping over single-plant generates ``wait=true``.

First the quiet tenant alone for ``--alone`` s (its latency without the noise), then both for
``--duration`` s (the noisy clients start ``--ramp`` s before the quiet ones are timed). Printed:
the quiet tenant's p50/p99 latency and its errors (any answer but 200 with a run), and the noisy
tenant's answers by status and plants forecast per second. Every request is 48 h, 15 min, ml.

The same runs twice in this process on the same database: the bound off (configs/service.yaml
``http.max_ongoing_per_tenant: null``, the before) and on (the shipped value, or each of ``--bounds``).
``--edge both``: each bound's instance is loaded directly, then through the edge proxy (serve_app/edge.py,
the shipped configs/service.yaml ``edge``) in front of the same instance; ``--edge on``: only through it.

    .venv/bin/python bench/bench_tenants.py [--duration 40] [--noisy-clients 60] [--noisy-plants 100]
                                            [--quiet-clients 2] [--bounds null,32] [--edge off|on|both]
                                            [--out out/bench]

Writes ``<out>/bench_tenants.json``.
"""

import argparse
import asyncio
import contextlib
import json
import os
import sys
import time
from pathlib import Path

import aiohttp
import httpx
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_fleet  # noqa: E402
from bench_load import summary  # noqa: E402
import fleet  # noqa: E402
import service  # noqa: E402

ROOT = service.ROOT
GENERATE = "/api/v1/forecast/generate"


def body(ids):
    return {"location_ids": ids, "issue_time": bench_fleet.ISSUE.isoformat(), "horizon_hours": bench_fleet.HORIZON_HOURS,
            "resolution": bench_fleet.RESOLUTION, "forecast_type": "ml", "wait": True, "include_forecast": False}


async def call(session, ids):
    """(status, seconds, runs made, error code or None) of one generate of ``ids``."""
    t0 = time.perf_counter()
    async with session.post(GENERATE, json=body(ids)) as r:
        payload = await r.read()
        seconds = time.perf_counter() - t0
        code, made = None, 0
        if r.status == 200:
            made = len(json.loads(payload)["run_ids"])
        elif r.headers.get("content-type", "").startswith("application/json"):
            code = json.loads(payload)["error"]["code"]
        else:
            code = "proxy"  # Ray Serve's own 503 (text body)
        return r.status, seconds, made, code


def session_of(base, key, limit):
    return aiohttp.ClientSession(base, headers=service.bearer(key), timeout=aiohttp.ClientTimeout(total=900),
                                 connector=aiohttp.TCPConnector(limit=limit))


async def quiet_loop(session, ids, k, until, out):
    i = k
    while time.monotonic() < until:
        out.append(await call(session, [ids[i % len(ids)]]))
        i += 1


async def noisy_loop(session, ids, retry_wait, stop, out):
    while not stop.is_set():
        got = await call(session, ids)
        out.append(got)
        if got[0] != 200:
            await asyncio.sleep(retry_wait)


def quiet_figures(answers):
    ok = [a for a in answers if a[0] == 200 and a[2] == 1]
    errors = {}
    for a in answers:
        if not (a[0] == 200 and a[2] == 1):
            errors[f"{a[0]} {a[3]}"] = errors.get(f"{a[0]} {a[3]}", 0) + 1
    return {**summary([a[1] for a in ok]), "requests": len(answers), "errors": errors,
            "all_p50_ms": summary([a[1] for a in answers]).get("p50_ms")}


async def run_load(base, keys, ids, args):
    """The quiet tenant alone, then beside the noisy one; their figures."""
    out = {}
    async with session_of(base, keys["quiet"], args.quiet_clients) as quiet:
        for i in ids["quiet"][:3]:  # warm: pools, workers
            await call(quiet, [i])
        alone = []
        until = time.monotonic() + args.alone
        await asyncio.gather(*[quiet_loop(quiet, ids["quiet"], k, until, alone) for k in range(args.quiet_clients)])
        out["quiet_alone"] = quiet_figures(alone)
        noisy_answers, beside, stop = [], [], asyncio.Event()
        async with session_of(base, keys["noisy"], args.noisy_clients) as noisy:
            t0 = time.monotonic()
            loops = [asyncio.ensure_future(noisy_loop(noisy, ids["noisy"], args.noisy_retry_wait, stop, noisy_answers))
                     for _ in range(args.noisy_clients)]
            await asyncio.sleep(args.ramp)
            until = time.monotonic() + args.duration
            await asyncio.gather(*[quiet_loop(quiet, ids["quiet"], k, until, beside)
                                   for k in range(args.quiet_clients)])
            stop.set()
            await asyncio.gather(*loops)
            wall = time.monotonic() - t0
    out["quiet_beside_noisy"] = quiet_figures(beside)
    statuses = {}
    for a in noisy_answers:
        name = f"{a[0]} {a[3]}" if a[3] else str(a[0])
        statuses[name] = statuses.get(name, 0) + 1
    ok = [a for a in noisy_answers if a[0] == 200]
    out["noisy"] = {"answers": statuses, "plants_per_s": sum(a[2] for a in ok) / wall, "wall_s": wall,
                    "ok_latency": summary([a[1] for a in ok])}
    return out


def print_run(name, got):
    for part in ("quiet_alone", "quiet_beside_noisy"):
        q = got[part]
        print(f"  {name}: {part}: {q['requests']} requests, p50 {q.get('p50_ms', float('nan')):.0f} ms, p99 "
              f"{q.get('p99_ms', float('nan')):.0f} ms, max {q.get('max_ms', float('nan')):.0f} ms (of the 200s); "
              f"errors {sum(q['errors'].values())} {q['errors']}", flush=True)
    n = got["noisy"]
    print(f"  {name}: noisy: {n['answers']}; {n['plants_per_s']:.0f} plants/s; its 200s p50 "
          f"{n['ok_latency'].get('p50_ms', float('nan')):.0f} ms", flush=True)


def main(args):
    os.environ["RAY_worker_niceness"] = str(args.worker_niceness)  # as bench/bench_load.py
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    settings = yaml.safe_load((ROOT / "configs/service.yaml").read_text())
    bounds = [None if b == "null" else int(b) for b in args.bounds.split(",")] if args.bounds else \
        [None, settings["http"]["max_ongoing_per_tenant"]]
    for s in fleet.SITES:
        fleet.site_weather(s, bench_fleet.WEATHER_START, bench_fleet.WEATHER_END)
    info = bench_fleet.machine()
    print(f"machine: {info['cpu_count']} CPUs ({info['cpu_model']}); commit {info['git_commit'][:10]}"
          f"{' (dirty)' if info['git_dirty'] else ''}; load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}; "
          f"noisy {args.noisy_clients} clients x {args.noisy_plants} plants (retry after {args.noisy_retry_wait} s), "
          f"quiet {args.quiet_clients} clients x 1 plant; {args.duration:.0f} s", flush=True)
    report = {"machine": info, "args": vars(args), "runs": {}}
    with service.scratch_database("pvcast_tenants") as (url, _):
        keys = {t: service.api_key(url, t, "read,write", "bench/bench_tenants.py") for t in ("noisy", "quiet")}
        ids = {}
        for k, bound in enumerate(bounds):
            name = f"max_ongoing_per_tenant {bound if bound is not None else 'null (off)'}"
            with service.serve_instance(url, out_dir / f"serve_tenants_{k}", service_settings={
                    "http": {"max_ongoing_per_tenant": bound}}) as (base, _):
                if not ids:
                    for tenant, n, seed in (("noisy", args.noisy_plants, args.seed), ("quiet", 20, args.seed + 1)):
                        with httpx.Client(base_url=base, timeout=600, headers=service.bearer(keys[tenant])) as c:
                            ids[tenant], _ = bench_fleet.ingest(c, fleet.plants(n, seed, list(fleet.SITES)), settings)
                for through in {"off": [False], "on": [True], "both": [False, True]}[args.edge]:
                    run_name = f"{name}, through the edge" if through else name
                    print(f"{run_name}:", flush=True)
                    with contextlib.ExitStack() as stack:
                        url = stack.enter_context(service.edge_instance(base.split("://", 1)[1],
                                                                        out_dir)) if through else base
                        got = asyncio.run(run_load(url, keys, ids, args))
                    print_run(run_name, got)
                    report["runs"][run_name] = got
    report["load_average_end"] = os.getloadavg()
    (out_dir / "bench_tenants.json").write_text(json.dumps(report, indent=1, default=str))
    print(f"wrote {out_dir / 'bench_tenants.json'}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=40.0, help="seconds the quiet tenant is timed beside")
    parser.add_argument("--alone", type=float, default=10.0, help="seconds the quiet tenant is timed alone first")
    parser.add_argument("--ramp", type=float, default=5.0, help="seconds the noisy clients run before")
    parser.add_argument("--noisy-clients", type=int, default=60)
    parser.add_argument("--noisy-plants", type=int, default=100, help="plants of each noisy request")
    parser.add_argument("--noisy-retry-wait", type=float, default=0.2, help="s a noisy client waits after a refusal")
    parser.add_argument("--quiet-clients", type=int, default=2)
    parser.add_argument("--bounds", default=None,
                        help="comma-separated http.max_ongoing_per_tenant values to run (null: off); default: "
                             "null and the shipped value")
    parser.add_argument("--edge", choices=("off", "on", "both"), default="off",
                        help="load the instance directly (off), through the edge proxy (on), or both in turn")
    parser.add_argument("--seed", type=int, default=20130630)
    parser.add_argument("--out", default="out/bench")
    parser.add_argument("--worker-niceness", type=int, default=0,
                        help="nice of the instance's Ray workers (Ray's default is 15)")
    main(parser.parse_args())

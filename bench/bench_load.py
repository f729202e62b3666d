"""Many small clients at once (issue 12): single-plant forecasts/s, latency, load shedding.

Starts its own pvcast (``bench/local_instance.py``: a scratch database ``pvcast_load_<random>``,
dropped at the end, and ``serve run`` of serve_config.yaml on a new Ray head, loopback only) and
creates a seeded fleet of plants around the real weather sites of ``bench/fleet.py``, its weather
ingested through the HTTP API (``bench_fleet.ingest``). Every request is single-plant, 48 h, 15 min,
ml, issued at the same time (a warm, repeated client request; each one a new task and new runs):

(a) ``--sequential`` requests one after the other, ``wait=true``: p50/p99 client latency;
(b) ``--clients`` concurrent clients for ``--duration`` s, each looping over a mix of
    single-plant generate (wait=true), stored-forecast reads and /healthz: forecasts/s
    (generate answered 200 with a run), p50/p99 per kind, errors;
(c) a burst of ``--burst`` generate requests at once, beyond capacity: how many are shed (503),
    their latency and whether each carries Retry-After;
(d) ``--floor`` s of ``--clients`` loops of ``/healthz`` (proxy and Ingress only), then of ``/readyz`` (plus one
    Forecaster handle call and one database round trip): the requests/s no generate can exceed here.

The same (a) and (b) run again, in this process, on a second instance of the same database with
the per-request design of before issue 12: small calls not merged (configs/service.yaml
``forecast.merge.max_locations: 0``) and every pass's features in a Ray task
(``forecast.local_features_max_locations: 0``): the baseline. ``--no-baseline`` skips it.

    .venv/bin/python bench/bench_load.py [--duration 60] [--clients 50] [--sequential 200]
                                         [--burst 600] [--floor 0] [--plants 200] [--no-baseline] [--profile]
                                         [--worker-niceness 0] [--out out/bench]

Besides the client's latencies it prints the median server-side stage timings of the generate
answers (``timings``: reads, features, predict, write, the task's wall time, and the time outside
the task) and the CPU time the instance's processes spent per request (``psutil``: every process of
its Ray sessions, Ray's own included; the database server's is not counted), and for (a) the same by
process group with the PostgreSQL backends serving the instance's scratch database
(``service.sample_cpu``: Forecaster, Ingress, Writer, proxy, database, Ray's own processes).

Writes ``<out>/bench_load.json``.
"""

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import httpx
import numpy as np
import psutil
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_fleet  # noqa: E402
import fleet  # noqa: E402
import service  # noqa: E402

ROOT = service.ROOT
GENERATE = "/api/v1/forecast/generate"
#: The instances' settings beside the shipped ones: no per-tenant bound of requests in flight (one key, many clients).
ONE_TENANT = {"http": {"max_ongoing_per_tenant": None}}
#: Share of each kind in a concurrent client's requests.
MIX = {"generate": 0.7, "read": 0.2, "health": 0.1}


def generate_body(location_id):
    return {"location_ids": [location_id], "issue_time": bench_fleet.ISSUE.isoformat(),
            "horizon_hours": bench_fleet.HORIZON_HOURS, "resolution": bench_fleet.RESOLUTION,
            "forecast_type": "ml", "wait": True}


async def call(session, kind, location_id):
    """One request of ``kind``: (status, seconds, forecasts made, Retry-After header or None, server timings)."""
    t0 = time.perf_counter()
    if kind == "generate":
        request = session.post(GENERATE, json=generate_body(location_id))
    elif kind == "read":
        request = session.get(f"/api/v1/forecast/location/{location_id}")
    else:
        request = session.get("/healthz")
    async with request as r:
        body = await r.read()
        seconds = time.perf_counter() - t0
        made, timings = 0, None
        if kind == "generate" and r.status == 200:
            answer = json.loads(body)
            made, timings = len(answer["run_ids"]), answer["timings"]
        return r.status, seconds, made, r.headers.get("Retry-After"), timings


def summary(latencies):
    if not latencies:
        return {"n": 0}
    a = np.asarray(latencies) * 1000
    return {"n": len(a), "p50_ms": float(np.percentile(a, 50)), "p99_ms": float(np.percentile(a, 99)),
            "max_ms": float(a.max())}


def session_of(base, key, limit):
    return aiohttp.ClientSession(base, headers=service.bearer(key), timeout=aiohttp.ClientTimeout(total=600),
                                 connector=aiohttp.TCPConnector(limit=limit))


async def sequential(base, key, ids, n, sessions, database):
    """(a): ``n`` single-plant generate requests one after the other (and the CPU ms the instance's processes
    spent per request, in all and by process group: the Ray workers by title, Ray's own processes, and the
    PostgreSQL backends serving ``database``)."""
    async with session_of(base, key, 1) as s:
        async with s.post(GENERATE, json={**generate_body(ids[0]), "location_ids": ids, "include_forecast": False}) as r:
            assert r.status == 200, await r.text()  # untimed: every plant has a stored run to read in (b)
        for i in ids[:5]:  # warm: the first single-plant requests open pools and workers
            await call(s, "generate", i)
        before = cpu_seconds(sessions)
        with service.sample_cpu(sessions, database, interval=5.0) as groups:
            out = [await call(s, "generate", ids[k % len(ids)]) for k in range(n)]
        cpu = cpu_spent(before, cpu_seconds(sessions))
    bad = [o[0] for o in out if o[0] != 200 or o[2] != 1]
    return {**summary([o[1] for o in out]), "errors": len(bad), "stages_ms": stages([o for o in out if o[4]]),
            "cpu_ms_per_request": cpu / n * 1000,
            "cpu_ms_per_request_by_group": {g: v / n * 1000 for g, v in groups["groups"].items()}}


def stages(answers):
    """Median ms per stage of answered requests: the server's ``timings`` (the Forecaster's stages, the task's
    ``wall_s``) and what the client saw beyond the task (``outside_task``: proxy, ingress, task row, response)."""
    names = sorted({k for o in answers for k in o[4] if k.endswith("_s")})
    out = {k[:-2]: float(np.median([o[4].get(k, 0.0) for o in answers]) * 1000) for k in names}
    out["client"] = float(np.median([o[1] for o in answers]) * 1000)
    out["outside_task"] = float(np.median([o[1] - o[4]["wall_s"] for o in answers]) * 1000)
    return out


async def concurrent(base, key, ids, clients, duration, seed):
    """(b): ``clients`` loops of MIX requests for ``duration`` s."""
    rng = random.Random(seed)
    kinds, weights = list(MIX), list(MIX.values())
    results = {k: [] for k in MIX}
    deadline = time.perf_counter() + duration

    async def client(s, r):
        while time.perf_counter() < deadline:
            kind = r.choices(kinds, weights)[0]
            try:
                results[kind].append(await call(s, kind, r.choice(ids)))
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                results[kind].append((type(exc).__name__, 0.0, 0, None, None))

    async with session_of(base, key, clients) as s:
        t0 = time.perf_counter()
        await asyncio.gather(*[client(s, random.Random(rng.random())) for _ in range(clients)])
        wall = time.perf_counter() - t0
    made = sum(o[2] for o in results["generate"])
    return {"wall_s": wall, "forecasts": made, "forecasts_per_s": made / wall,
            "requests_per_s": sum(map(len, results.values())) / wall,
            "errors": {k: sum(1 for o in v if o[0] != 200) for k, v in results.items()},
            "statuses": {k: sorted({str(o[0]) for o in v}) for k, v in results.items()},
            **{k: summary([o[1] for o in v if o[0] == 200]) for k, v in results.items()},
            "generate_stages_ms": stages([o for o in results["generate"] if o[4]]),
            "merged_calls_median": float(np.median([o[4]["merged_calls"] for o in results["generate"] if o[4]] or [0])),
            "grouped_calls_median": float(np.median([o[4].get("grouped_calls", 1) for o in results["generate"]
                                                     if o[4]] or [0]))}


async def floor(base, key, clients, duration, path):
    """(d): ``clients`` loops of GET ``path`` only for ``duration`` s: the requests/s of Serve's proxy and the
    Ingress alone (``/healthz``: no handle call, no database) or with one Forecaster handle call and one database
    round trip (``/readyz``), the ceiling of any request that passes through them on this machine."""
    out = []
    deadline = time.perf_counter() + duration

    async def client(s):
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            async with s.get(path) as r:
                await r.read()
                out.append((r.status, time.perf_counter() - t0))

    async with session_of(base, key, clients) as s:
        t0 = time.perf_counter()
        await asyncio.gather(*[client(s) for _ in range(clients)])
        wall = time.perf_counter() - t0
    return {"path": path, "wall_s": wall, "requests": len(out), "requests_per_s": len(out) / wall,
            "errors": sum(1 for o in out if o[0] != 200), **summary([o[1] for o in out if o[0] == 200])}


async def burst(base, key, ids, n):
    """(c): ``n`` generate requests at once."""
    async with session_of(base, key, 0) as s:
        t0 = time.perf_counter()
        out = await asyncio.gather(*[call(s, "generate", ids[k % len(ids)]) for k in range(n)],
                                   return_exceptions=True)
        wall = time.perf_counter() - t0
    done = [o for o in out if not isinstance(o, BaseException)]
    shed = [o for o in done if o[0] == 503]
    return {"requests": n, "wall_s": wall, "ok": sum(1 for o in done if o[0] == 200), "shed_503": len(shed),
            "other": len(out) - len(shed) - sum(1 for o in done if o[0] == 200),
            "shed_with_retry_after": sum(1 for o in shed if o[3] is not None),
            "retry_after_values": sorted({o[3] for o in shed if o[3] is not None}),
            "shed_latency": summary([o[1] for o in shed]),
            "ok_latency": summary([o[1] for o in done if o[0] == 200])}


#: Source files of pvcast's own code, as py-spy names their frames (``serve_app/tasks.py``, ``store.py``).
OWN_FILES = {f"{p.parent.name}/{p.name}" for d in ("serve_app", "engine") for p in (ROOT / d).glob("*.py")} | {
    p.name for p in (ROOT / "engine").glob("*.py")}


@contextlib.contextmanager
def profiled(sessions, out_dir, phase, top=12):
    """py-spy (raw stacks, 100 Hz) of every Ray worker of ``sessions`` during the block; yields a dict filled
    on exit with, per process, its sample count and pvcast's own functions (serve_app/, engine/) with the most
    samples on their stacks (inclusive: a function's callees count for it)."""
    procs = [p for p in psutil.process_iter(["cmdline"]) if service.session_of(p.pid) in sessions
             and p.info["cmdline"] and p.info["cmdline"][0].startswith("ray::")]
    spies = {p.pid: (p.info["cmdline"][0], out_dir / f"pyspy_load_{phase}_{p.pid}.txt") for p in procs}
    running = [subprocess.Popen([str(service.BIN / "py-spy"), "record", "--pid", str(pid), "--format", "raw",
                                 "--rate", "100", "--nonblocking", "--output", str(path)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for pid, (_, path) in spies.items()]
    time.sleep(2)
    out = {}
    try:
        yield out
    finally:
        for spy in running:
            spy.send_signal(signal.SIGINT)
        for spy in running:
            spy.wait(60)
        for pid, (title, path) in spies.items():
            if not path.exists():
                continue
            own, total = {}, 0
            for line in path.read_text().splitlines():
                stack, _, count = line.rpartition(" ")
                total += int(count)
                for name in {f for f in stack.split(";") if f.rpartition("(")[2].split(":")[0] in OWN_FILES}:
                    own[name] = own.get(name, 0) + int(count)
            if total:
                out[f"{title} ({pid})"] = {"samples": total, "top_own": sorted(own.items(), key=lambda x: -x[1])[:top]}


def cpu_seconds(sessions):
    """{pid: user + system CPU s} of every process of ``sessions`` (the instance's Ray processes; not the database)."""
    out = {}
    for p in psutil.process_iter():
        if service.session_of(p.pid) in sessions:
            with contextlib.suppress(psutil.Error):
                t = p.cpu_times()
                out[p.pid] = t.user + t.system
    return out


def phase(name, sessions, args, job, profile):
    """``job()`` and the CPU seconds the instance's processes spent on it; profiled (py-spy, printed) if
    ``profile``. Returns (result, CPU s, profile or None)."""
    before = cpu_seconds(sessions)
    if not profile:
        result = job()
        return result, cpu_spent(before, cpu_seconds(sessions)), None
    with profiled(sessions, Path(args.out), name) as prof:
        result = job()
    spent = cpu_spent(before, cpu_seconds(sessions))  # py-spy's own CPU is not the instance's
    for title, p in prof.items():
        print(f"  py-spy {name} {title}: {p['samples']} samples; pvcast functions on the stack: "
              + "; ".join(f"{f} {c}" for f, c in p["top_own"][:8]))
    return result, spent, prof


def cpu_spent(before, after):
    """CPU s between two :func:`cpu_seconds` (a process started meanwhile counts whole)."""
    return sum(t - before.get(pid, 0.0) for pid, t in after.items())


def run_load(base, key, ids, args, sessions, database, shed=True, profile=False):
    """(a), (b) [, (c)] against the instance at ``base`` (its processes: ``sessions``); ``profile``: (a) and (b)
    under py-spy. The instance's CPU time per request is measured in each phase (machine-independent: what
    a dedicated box would spend)."""
    out = {"profile": {}}
    out["sequential"], _, out["profile"]["sequential"] = phase(
        "sequential", sessions, args, lambda: asyncio.run(sequential(base, key, ids, args.sequential, sessions, database)),
        profile)
    print(f"  (a) sequential {args.sequential}: p50 {out['sequential']['p50_ms']:.0f} ms, "
          f"p99 {out['sequential']['p99_ms']:.0f} ms, errors {out['sequential']['errors']}; median ms by stage: "
          + ", ".join(f"{k} {v:.1f}" for k, v in out["sequential"]["stages_ms"].items())
          + f"; instance CPU {out['sequential']['cpu_ms_per_request']:.0f} ms per request", flush=True)
    print("      CPU ms per request by process (the database's backends of this instance included): " + ", ".join(
        f"{g} {v:.1f}" for g, v in out["sequential"]["cpu_ms_per_request_by_group"].items() if v >= 0.5), flush=True)
    with service.sample_cpu(sessions, database, interval=5.0) as groups:
        c, cpu, out["profile"]["concurrent"] = phase(
            "concurrent", sessions, args, lambda: asyncio.run(concurrent(base, key, ids, args.clients, args.duration,
                                                                         args.seed)), profile)
    c["cpu_s"], c["cpu_cores_used"] = cpu, cpu / c["wall_s"]
    c["cpu_ms_per_forecast"] = cpu / max(c["forecasts"], 1) * 1000  # the reads and health checks included
    c["cpu_ms_per_forecast_by_group"] = {g: v / max(c["forecasts"], 1) * 1000 for g, v in groups["groups"].items()}
    out["concurrent"] = c
    print(f"  (b) {args.clients} clients x {c['wall_s']:.0f} s: {c['forecasts_per_s']:.1f} forecasts/s, "
          f"{c['requests_per_s']:.1f} requests/s; " + "; ".join(
              f"{k} n={c[k]['n']} p50 {c[k].get('p50_ms', float('nan')):.0f} ms p99 "
              f"{c[k].get('p99_ms', float('nan')):.0f} ms" for k in MIX) + f"; errors {c['errors']}", flush=True)
    print(f"      instance CPU {c['cpu_cores_used']:.2f} cores busy, {c['cpu_ms_per_forecast']:.0f} ms per forecast "
          f"(all requests); generate: median calls per pass {c['merged_calls_median']:.0f}, per Forecaster handle call "
          f"{c['grouped_calls_median']:.0f}; median ms by stage: "
          + ", ".join(f"{k} {v:.1f}" for k, v in c["generate_stages_ms"].items()), flush=True)
    print("      CPU ms per forecast by process (all requests; the database's backends of this instance included): "
          + ", ".join(f"{g} {v:.1f}" for g, v in c["cpu_ms_per_forecast_by_group"].items() if v >= 0.5), flush=True)
    if shed and args.floor:
        out["floor"] = {}
        for path in ("/healthz", "/readyz"):
            f, cpu, _ = phase("floor", sessions, args, lambda: asyncio.run(
                floor(base, key, args.clients, args.floor, path)), False)
            f["cpu_ms_per_request"], f["cpu_cores_used"] = cpu / max(f["requests"], 1) * 1000, cpu / f["wall_s"]
            out["floor"][path] = f
            print(f"  (d) floor {path}, {args.clients} clients x {f['wall_s']:.0f} s: {f['requests_per_s']:.0f} "
                  f"requests/s, p50 {f.get('p50_ms', float('nan')):.0f} ms p99 {f.get('p99_ms', float('nan')):.0f} ms, "
                  f"errors {f['errors']}; instance CPU {f['cpu_cores_used']:.2f} cores busy, "
                  f"{f['cpu_ms_per_request']:.1f} ms per request", flush=True)
    if shed and args.burst:
        b = out["burst"] = asyncio.run(burst(base, key, ids, args.burst))
        print(f"  (c) burst of {b['requests']}: {b['ok']} answered 200, {b['shed_503']} shed 503 "
              f"(Retry-After on {b['shed_with_retry_after']}: {b['retry_after_values']}), {b['other']} other; "
              f"shed p50 {b['shed_latency'].get('p50_ms', float('nan')):.0f} ms p99 "
              f"{b['shed_latency'].get('p99_ms', float('nan')):.0f} ms; 200s p50 "
              f"{b['ok_latency'].get('p50_ms', float('nan')):.0f} ms p99 "
              f"{b['ok_latency'].get('p99_ms', float('nan')):.0f} ms; burst wall {b['wall_s']:.1f} s", flush=True)
    return out


def main(args):
    # Ray starts its workers (the replicas, the feature tasks) at nice 15 by default (RAY_worker_niceness):
    # on a machine shared with nice-10 jobs they would get a fraction of a core whatever the service does
    os.environ["RAY_worker_niceness"] = str(args.worker_niceness)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    settings = yaml.safe_load((ROOT / "configs/service.yaml").read_text())
    for s in fleet.SITES:
        fleet.site_weather(s, bench_fleet.WEATHER_START, bench_fleet.WEATHER_END)
    plants = fleet.plants(args.plants, args.seed, list(fleet.SITES))
    info = bench_fleet.machine()
    print(f"machine: {info['cpu_count']} CPUs ({info['cpu_model']}); ray {info['ray']}; commit "
          f"{info['git_commit'][:10]}{' (dirty)' if info['git_dirty'] else ''}; merge {settings['forecast']['merge']}; "
          f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}; Ray worker nice {args.worker_niceness}")
    report = {"machine": info, "args": vars(args), "mix": MIX, "load_average_start": os.getloadavg()}
    with service.scratch_database("pvcast_load") as (url, _):
        database = url.rsplit("/", 1)[-1]
        key = service.api_key(url, "bench", "read,write", "bench/bench_load.py")
        # every client presents the one key of one tenant: the per-tenant bound (http.max_ongoing_per_tenant, 56) is off
        # here, this measures the service's capacity (its burst too), not a tenant's share (bench_tenants.py)
        with service.serve_instance(url, out_dir / "serve_load_merged", service_settings=ONE_TENANT) as (base, sessions):
            with httpx.Client(base_url=base, timeout=600, headers=service.bearer(key)) as client:
                ids, report["ingestion"] = bench_fleet.ingest(client, plants, settings)
            print(f"{len(ids)} plants, {report['ingestion']['weather_rows']:,} weather rows (real records: "
                  + "; ".join(v["record"] for v in fleet.SITES.values()) + ")", flush=True)
            print("merged small calls (configs/service.yaml forecast.merge):", flush=True)
            report["merged"] = run_load(base, key, ids, args, sessions, database, profile=args.profile)
        if not args.no_baseline:
            off = {"merge": {**settings["forecast"]["merge"], "max_locations": 0}, "local_features_max_locations": 0}
            print("baseline, same process and database: no merging, features in a Ray task (forecast.merge."
                  "max_locations 0, forecast.local_features_max_locations 0):", flush=True)
            with service.serve_instance(url, out_dir / "serve_load_baseline",
                                        service_settings={"forecast": off, **ONE_TENANT}) as (base, sessions):
                report["baseline"] = run_load(base, key, ids, args, sessions, database, shed=False)
    m = report["merged"]
    c = m["concurrent"]
    if "baseline" in report:
        u = report["baseline"]
        print(f"this design vs baseline: forecasts/s {m['concurrent']['forecasts_per_s']:.1f} vs "
              f"{u['concurrent']['forecasts_per_s']:.1f} "
              f"({m['concurrent']['forecasts_per_s'] / max(u['concurrent']['forecasts_per_s'], 1e-9):.1f}x); "
              f"concurrent generate p99 {m['concurrent']['generate']['p99_ms']:.0f} vs "
              f"{u['concurrent']['generate']['p99_ms']:.0f} ms; sequential p50 {m['sequential']['p50_ms']:.0f} vs "
              f"{u['sequential']['p50_ms']:.0f} ms; instance CPU per sequential request "
              f"{m['sequential']['cpu_ms_per_request']:.0f} vs {u['sequential']['cpu_ms_per_request']:.0f} ms, per "
              f"concurrent forecast {c['cpu_ms_per_forecast']:.0f} vs {u['concurrent']['cpu_ms_per_forecast']:.0f} ms")
    print(f"targets: >= 150 forecasts/s: {c['forecasts_per_s']:.1f}; generate p99 <= 1000 ms: "
          f"{c['generate']['p99_ms']:.0f}; zero errors: {sum(c['errors'].values())}; sequential p50 <= 25 ms: "
          f"{m['sequential']['p50_ms']:.0f}, p99 <= 100 ms: {m['sequential']['p99_ms']:.0f}")
    report["load_average_end"] = os.getloadavg()
    print(f"load average at the end: {' '.join(f'{x:.1f}' for x in report['load_average_end'])}")
    (out_dir / "bench_load.json").write_text(json.dumps(report, indent=1, default=str))
    print(f"wrote {out_dir / 'bench_load.json'}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of the concurrent load (b)")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--sequential", type=int, default=200, help="requests of (a)")
    parser.add_argument("--burst", type=int, default=600, help="requests at once of (c); 0: none")
    parser.add_argument("--floor", type=float, default=0.0,
                        help="seconds of (d): --clients loops of /healthz, then of /readyz (Serve's own ceiling); 0: none")
    parser.add_argument("--plants", type=int, default=200)
    parser.add_argument("--seed", type=int, default=20130630)
    parser.add_argument("--no-baseline", action="store_true", help="skip the baseline instance")
    parser.add_argument("--out", default="out/bench")
    parser.add_argument("--worker-niceness", type=int, default=0,
                        help="nice of the instance's Ray workers (Ray's default is 15)")
    parser.add_argument("--profile", action="store_true", help="py-spy the Ray workers during (a) and (b)")
    main(parser.parse_args())

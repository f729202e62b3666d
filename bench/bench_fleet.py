"""Fleet benchmark (issue 5): N plants x 48 h x 15 min through the running service, vs a per-plant loop.

Starts its own pvcast: a scratch database ``pvcast_bench_<random>`` on the project's
TimescaleDB (migrated, dropped at the end) and ``serve run`` of a copy of
serve_config.yaml on a new Ray head (free ports; stopped with SIGTERM, even on error).
A seeded fleet of plants around four real weather sites (``bench/fleet.py``) is created
and its weather ingested through ``POST /api/v1/locations`` and ``POST /api/v1/weather``
(timed separately), with an API key of the tenant ``bench``. For each N one ``POST /api/v1/forecast/generate`` (ml, 48 h,
15 min, wait, no forecast in the response) is timed from request to response; the rows
are committed when it returns (counted in ``forecasts`` by run id). One untimed warm-up
request (two batches) precedes the timed ones: a running service has warm workers. Peak memory of the
Ray processes (both process sessions: head + ``serve run``) is sampled every 0.2 s.
Then the baseline (``bench/baseline.py``) runs on the first ``--baseline-n`` plants in
this process and is extrapolated linearly (labelled EXTRAPOLATED).

    .venv/bin/python bench/bench_fleet.py [--sizes 100,1000,10000] [--baseline-n 100] [--out out/bench]
                                          [--repeat 2] [--profile] [--cpu] [--multi-plane]

Writes ``<out>/bench_fleet.json`` and ``<out>/bench_fleet.png``.
"""

import argparse
import asyncio
import contextlib
import json
import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
import catboost
import httpx
import numpy as np
import pandas as pd
import psutil
import pvlib
import ray
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import baseline  # noqa: E402
import fleet  # noqa: E402
import service  # noqa: E402

from engine import forecast, modelio, store  # noqa: E402

ROOT = service.ROOT
WEATHER_START = pd.Timestamp("2013-06-30T06:00:00Z")
WEATHER_END = pd.Timestamp("2013-07-02T18:00:00Z")
WEATHER_ISSUE = pd.Timestamp("2013-06-30T06:00:00Z")  # perfect-prognosis "forecast" issued before every run
ISSUE = pd.Timestamp("2013-06-30T12:00:00Z")  # each request adds a minute: same grid, new runs
HORIZON_HOURS, RESOLUTION = 48, "15min"


def machine():
    def git(*args):
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    return {"cpu_count": os.cpu_count(), "cpu_model": next((line.split(":", 1)[1].strip() for line in
                                                              open("/proc/cpuinfo") if line.startswith("model name")), None),
            "ram_gib": round(psutil.virtual_memory().total / 2**30, 1), "python": platform.python_version(),
            "ray": ray.__version__, "catboost": catboost.__version__, "pvlib": pvlib.__version__,
            "pandas": pd.__version__, "numpy": np.__version__, "git_commit": git("rev-parse", "HEAD"),
            "git_dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
            "serve_config": yaml.safe_load((ROOT / "serve_config.yaml").read_text())["applications"][0]["deployments"],
            "service_forecast": yaml.safe_load((ROOT / "configs/service.yaml").read_text())["forecast"]}


async def count_rows(url, run_ids):
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval("select count(*) from forecasts where run_id = any($1::bigint[])",
                                   [int(r) for r in run_ids])
    finally:
        await conn.close()


def ingest(client, fleet_frame, settings, planes=None, horizon=None):
    """Create the plants and ingest their weather through the HTTP API; figures of the ingestion."""
    t0 = time.perf_counter()
    ids = []
    step = settings["http"]["max_locations_per_upsert"]
    records = fleet.location_records(fleet_frame, planes, horizon)
    for i in range(0, len(records), step):
        r = client.post("/api/v1/locations", json={"locations": records[i:i + step]})
        r.raise_for_status()
        ids += [loc["location_id"] for loc in r.json()["locations"]]
    t1 = time.perf_counter()
    fragments = {s: fleet.row_fragments(fleet.site_weather(s, WEATHER_START, WEATHER_END), WEATHER_ISSUE,
                                        f"bench_{s}") for s in fleet.SITES}
    bodies = fleet.weather_bodies(ids, fleet_frame["site"], fragments, settings["http"]["max_body_bytes"] // 2,
                                  settings["http"]["max_rows"])
    t2 = time.perf_counter()
    rows = 0
    for body in bodies:
        r = client.post("/api/v1/weather", content=body, headers={"content-type": "application/json"})
        r.raise_for_status()
        rows += r.json()["rows"]
    t3 = time.perf_counter()
    return ids, {"plants": len(ids), "locations_s": t1 - t0, "build_bodies_s": t2 - t1, "requests": len(bodies),
                 "body_mib": sum(map(len, bodies)) / 2**20, "weather_rows": rows, "weather_post_s": t3 - t2,
                 "weather_rows_per_s": rows / (t3 - t2)}


def generate(client, url, sessions, ids, issue, cpu=False):
    """One timed generate request; its figures (rows verified in the database).

    ``cpu``: also the CPU seconds of every process of the instance and of the
    database's PostgreSQL backends, by process group, and their time line
    (:func:`service.sample_cpu`).
    """
    body = {"location_ids": ids, "issue_time": issue.isoformat(), "horizon_hours": HORIZON_HOURS,
            "resolution": RESOLUTION, "forecast_type": "ml", "wait": True, "include_forecast": False}
    sampler = service.sample_cpu(sessions, url.rsplit("/", 1)[1]) if cpu else contextlib.nullcontext({})
    with service.sample_memory(sessions) as mem, sampler as used:
        t0 = time.perf_counter()
        r = client.post("/api/v1/forecast/generate", json=body)
        wall = time.perf_counter() - t0
    if r.status_code != 200:
        raise RuntimeError(f"generate N={len(ids)}: HTTP {r.status_code}: {r.text[:2000]}")
    out = r.json()
    if out["errors"]:
        raise RuntimeError(f"generate N={len(ids)}: {len(out['errors'])} location errors, first {out['errors'][:3]}")
    steps = len(forecast.forecast_times(issue, HORIZON_HOURS, 15))
    stored = asyncio.run(count_rows(url, out["run_ids"].values()))
    if stored != len(ids) * steps:
        raise RuntimeError(f"generate N={len(ids)}: {stored} rows stored, expected {len(ids) * steps}")
    n = len(ids)
    return {"n": n, "issue_time": issue.isoformat(), "status": out["status"], "wall_s": wall, "plants_per_s": n / wall,
            "rows": stored, "rows_per_s": stored / wall, "task_timings": out["timings"],
            "overhead_s": wall - out["timings"]["wall_s"], "memory_kind": mem["kind"],
            "memory_idle_mib": mem["idle_bytes"] / 2**20, "memory_peak_mib": mem["peak_bytes"] / 2**20,
            "memory_per_plant_kib": (mem["peak_bytes"] - mem["idle_bytes"]) / n / 2**10,
            "memory_samples": mem["samples"], "cpu": used}


def print_cpu(used, cores):
    """CPU seconds by process group during a request, and the machine's share used per second of it."""
    total = sum(used["groups"].values())
    print(f"  CPU during the request: {total:.1f} s in {used['wall_s']:.1f} s = {total / used['wall_s'] / cores:.0%} of "
          f"{cores} cores; " + ", ".join(f"{g} {v:.1f}" for g, v in used["groups"].items() if v >= 0.05))
    line, t_prev, acc = [], 0.0, {}
    for t, groups in used["timeline"]:
        for g, v in groups.items():
            acc[g] = acc.get(g, 0.0) + v
        if t - t_prev >= 1.0 or t == used["timeline"][-1][0]:
            top = sorted(acc.items(), key=lambda kv: -kv[1])[:3]
            line.append(f"{t:4.1f}s {sum(acc.values()) / (t - t_prev) / cores:4.0%} "
                        f"({', '.join(f'{g.replace(chr(32), chr(95))} {v / (t - t_prev):.1f}' for g, v in top)})")
            t_prev, acc = t, {}
    print("  CPU by second (share of the cores; top groups, cores):\n    " + "\n    ".join(line))


async def run_baseline(url, ids, issue, margin):
    conn = await asyncpg.connect(url)
    try:
        plants = await store.fetch_plants(conn, ids)
        model = modelio.load_model(str(ROOT / "models"), "global")
        times = forecast.forecast_times(issue, HORIZON_HOURS, 15)
        t0 = time.perf_counter()
        spent = await baseline.run(conn, plants["locations"], model, times, issue, margin, plants["planes"],
                                   plants["horizon"])
        spent["wall_s"] = time.perf_counter() - t0
    finally:
        await conn.close()
    spent["stored_rows"] = await count_rows(url, spent.pop("run_ids"))
    return spent


def profile(client, sessions, ids, issue, out_dir):
    """py-spy (raw collapsed stacks) of every Ray worker during one untimed request; top frames per process."""
    procs = [p for p in psutil.process_iter(["name", "cmdline"]) if service.session_of(p.pid) in sessions
             and p.info["cmdline"] and p.info["cmdline"][0].startswith("ray::")]
    spies = {}
    for p in procs:
        path = out_dir / f"pyspy_{p.pid}.txt"
        spies[p.pid] = (p.info["cmdline"][0], path, subprocess.Popen(
            [str(service.BIN / "py-spy"), "record", "--pid", str(p.pid), "--format", "raw", "--rate", "50",
             "--nonblocking", "--output", str(path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    time.sleep(2)
    body = {"location_ids": ids, "issue_time": issue.isoformat(), "horizon_hours": HORIZON_HOURS,
            "resolution": RESOLUTION, "forecast_type": "ml", "wait": True, "include_forecast": False}
    t0 = time.perf_counter()
    client.post("/api/v1/forecast/generate", json=body).raise_for_status()
    wall = time.perf_counter() - t0
    for _, _, spy in spies.values():
        spy.send_signal(signal.SIGINT)
    summary = {}
    for pid, (title, path, spy) in spies.items():
        spy.wait(60)
        if not path.exists():
            continue
        frames, total = {}, 0
        for line in path.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            count = int(count)
            total += count
            for frame in set(stack.split(";")):  # inclusive samples per function
                frames[frame] = frames.get(frame, 0) + count
        if total:
            summary[f"{title} ({pid})"] = {"samples": total, "top_inclusive": sorted(
                ((f, c) for f, c in frames.items() if "idle" not in f.lower()), key=lambda x: -x[1])[:25]}
    return {"wall_s": wall, "processes": summary}


def table(results, base, n_extrapolate):
    print(f"\n{'N':>6} {'wall s':>8} {'plants/s':>9} {'rows/s':>10} {'peak MiB':>9} {'KiB/plant':>9} "
          f"{'read':>6} {'feat':>6} {'pred':>6} {'write':>6} {'ovh':>5}   (stage columns: s summed over batches)")
    for r in results:
        t = r["task_timings"]
        print(f"{r['n']:>6} {r['wall_s']:>8.2f} {r['plants_per_s']:>9.0f} {r['rows_per_s']:>10,.0f} "
              f"{r['memory_peak_mib']:>9.0f} {r['memory_per_plant_kib']:>9.1f} {t.get('read_weather_s', 0):>6.1f} "
              f"{t.get('features_s', 0):>6.1f} {t.get('predict_s', 0):>6.1f} {t.get('write_s', 0):>6.1f} "
              f"{r['overhead_s']:>5.2f}")
    per = base["wall_s"] / base["n"]
    split = ", ".join(f"{k[:-2]} {base[k]:.1f} s" for k in baseline.STAGES)
    print(f"\nbaseline (per-plant loop) measured at N={base['n']}: {base['wall_s']:.1f} s = {per * 1000:.0f} ms/plant "
          f"({split}); rows stored {base['stored_rows']:,}")
    print(f"baseline EXTRAPOLATED linearly to N={n_extrapolate:,}: {per * n_extrapolate:,.0f} s")


def plot(results, base, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 5))
    ns = np.array([r["n"] for r in results])
    walls = np.array([r["wall_s"] for r in results])
    ax.loglog(ns, walls, "o", color="C0", label="pvcast (HTTP request to committed rows), each run")
    sizes = np.unique(ns)
    ax.loglog(sizes, [walls[ns == n].mean() for n in sizes], "-", color="C0")
    per = base["wall_s"] / base["n"]
    grid = np.geomspace(sizes.min(), sizes.max(), 50)
    ax.loglog([base["n"]], [base["wall_s"]], "s", color="C3", label=f"baseline measured (N={base['n']})")
    ax.loglog(grid, per * grid, "--", color="C3", label="baseline EXTRAPOLATED (linear)")
    anchor = walls[ns == sizes.max()].mean()
    ax.loglog(grid, anchor * grid / sizes.max(), ":", color="grey", label="linear reference (through largest N)")
    ax.axhline(60, color="k", lw=0.8, alpha=0.5)
    ax.text(sizes.min(), 62, "60 s target", fontsize=8)
    ax.set_xlabel("plants N (48 h x 15 min = 192 steps x 5 quantiles each)")
    ax.set_ylabel("wall time, s")
    ax.set_title("pvcast fleet forecast: time vs N")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(args):
    np.seterr(all="ignore")
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    sizes = [int(s) for s in args.sizes.split(",")]
    settings = yaml.safe_load((ROOT / "configs/service.yaml").read_text())
    info = machine()
    for s in fleet.SITES:  # reads site metadata (lat/lon/alt of the TMY files) before the plants are drawn
        fleet.site_weather(s, WEATHER_START, WEATHER_END)
    plants = fleet.plants(max(sizes + [args.baseline_n]), args.seed, list(fleet.SITES))
    planes = horizon = None
    if args.multi_plane:
        planes, plants = fleet.multi_plane(plants, args.seed)
        horizon = fleet.skylines(plants, args.seed)
    print(f"machine: {info['cpu_count']} CPUs ({info['cpu_model']}), {info['ram_gib']} GiB; python {info['python']}, "
          f"ray {info['ray']}, catboost {info['catboost']}, pvlib {info['pvlib']}; commit {info['git_commit'][:10]}"
          f"{' (dirty)' if info['git_dirty'] else ''}")
    print(f"fleet: {len(plants):,} plants (seed {args.seed}) at {plants['site'].value_counts().to_dict()}; "
          f"trackers {(plants['tracking'] == 'SINGLE_AXIS').mean():.0%}, export-limited "
          f"{plants['export_limit_kw'].notna().mean():.0%}, AC {plants['capacity_ac_kw'].min():.1f} .. "
          f"{plants['capacity_ac_kw'].max():,.0f} kW")
    if args.multi_plane:
        multi = planes["name"].nunique()
        print(f"planes: {multi:,} multi-plane plants ({len(plants) - multi + len(planes):,} planes in all); "
              f"{horizon['name'].nunique():,} plants behind a horizon profile")
    print("weather: real records, " + "; ".join(f"{k}: {v['record']}" for k, v in fleet.SITES.items()))
    print(f"         TMY calendar days relabelled to {WEATHER_START.year} (values unchanged); window "
          f"{WEATHER_START} .. {WEATHER_END}, ingested as issued {WEATHER_ISSUE}")
    results, report = [], {"machine": info, "args": vars(args), "sizes": sizes}
    with service.scratch_database("pvcast_bench") as (url, caps), service.serve_instance(url, out_dir / "serve") as (base_url, sessions):
        print(f"database: {url.rsplit('/', 1)[1]} (PostgreSQL {caps['postgres']}, TimescaleDB "
              f"{caps['timescaledb_version']}, hypertables {caps['hypertables']}); service {base_url}")
        key = service.api_key(url, "bench", "read,write", "bench/bench_fleet.py")
        with httpx.Client(base_url=base_url, timeout=1800, headers=service.bearer(key)) as client:
            report["readyz"] = client.get("/readyz").json()
            ids, report["ingestion"] = ingest(client, plants, settings, planes, horizon)
            g = report["ingestion"]
            print(f"ingestion (not in forecast times): {g['plants']:,} plants in {g['locations_s']:.1f} s; "
                  f"{g['weather_rows']:,} weather rows in {g['requests']} requests ({g['body_mib']:.0f} MiB JSON) "
                  f"in {g['weather_post_s']:.1f} s = {g['weather_rows_per_s']:,.0f} rows/s")
            # untimed warm-up: two batches, so that both feature-task workers and the replicas' pools exist
            warm = min(2 * settings["forecast"]["batch_locations"], len(ids))
            report["warmup"] = generate(client, url, sessions, ids[:warm], ISSUE)
            print(f"warm-up (untimed, first request after start) N={warm:,}: {report['warmup']['wall_s']:.2f} s")
            k = 1
            for rep in range(args.repeat):
                for n in sizes:
                    r = generate(client, url, sessions, ids[:n], ISSUE + pd.Timedelta(minutes=k), args.cpu)
                    r["repeat"] = rep
                    k += 1
                    results.append(r)
                    print(f"run {rep + 1}/{args.repeat} N={n:,}: {r['wall_s']:.2f} s, {r['plants_per_s']:,.0f} plants/s, "
                          f"{r['rows_per_s']:,.0f} rows/s, peak {r['memory_kind']} {r['memory_peak_mib']:,.0f} MiB "
                          f"(idle {r['memory_idle_mib']:,.0f}), {r['memory_per_plant_kib']:.1f} KiB/plant; "
                          f"task timings {({s: round(v, 2) for s, v in r['task_timings'].items()})}", flush=True)
                    if args.cpu:
                        print_cpu(r["cpu"], info["cpu_count"])
            if args.profile:
                report["profile"] = profile(client, sessions, ids[:max(sizes)], ISSUE + pd.Timedelta(minutes=k), out_dir)
                k += 1
                print(f"profile (py-spy, untimed extra request N={max(sizes):,}): {report['profile']['wall_s']:.1f} s; "
                      f"raw stacks in {out_dir}/pyspy_*.txt")
        print(f"baseline: {args.baseline_n} plants, one at a time, in this process ...", flush=True)
        base = asyncio.run(run_baseline(url, ids[:args.baseline_n], ISSUE + pd.Timedelta(minutes=k),
                                        settings["forecast"]["weather_margin_minutes"]))
        base["n"] = args.baseline_n
    table(results, base, 10_000)
    per = base["wall_s"] / base["n"]
    ratios = {}
    for n in sizes:
        walls = [r["wall_s"] for r in results if r["n"] == n]
        mean = float(np.mean(walls))
        ratios[n] = {"pvcast_wall_s_mean": mean, "pvcast_wall_s_min": min(walls), "pvcast_wall_s_max": max(walls),
                     "spread_pct": 100 * (max(walls) - min(walls)) / mean if len(walls) > 1 else None,
                     "baseline_s": per * n, "baseline_extrapolated": n != base["n"],
                     "ratio_baseline_over_pvcast": per * n / mean}
        label = "measured vs measured" if n == base["n"] else "vs baseline EXTRAPOLATED"
        spread = f", spread over {len(walls)} runs {ratios[n]['spread_pct']:.1f} %" if len(walls) > 1 else ""
        print(f"N={n:>6,}: pvcast {mean:.2f} s (min {min(walls):.2f}, max {max(walls):.2f}{spread}); baseline "
              f"{per * n:,.0f} s -> pvcast is {per * n / mean:,.0f}x faster ({label})")
    report.update(results=results, baseline=base, comparison={str(k): v for k, v in ratios.items()},
                  notes={"memory": "sum over every process of the Ray head's and serve run's sessions "
                                   "(raylet, GCS, dashboard, workers, replicas, feature tasks); PostgreSQL not included",
                         "stage_timings": "task_timings stages are summed over the batches of a request "
                                          "(batches overlap, so their sum can exceed wall); overhead_s = client wall "
                                          "- task wall_s (HTTP, validation, location fetch, task rows)",
                         "baseline_resampling": "naive: stored values at their labels (period averages not shifted), "
                                                "linear in time onto the 15-min grid, missing DNI/DHI from Erbs"})
    (out_dir / "bench_fleet.json").write_text(json.dumps(report, indent=1, default=str))
    plot(results, base, out_dir / "bench_fleet.png")
    print(f"wrote {out_dir / 'bench_fleet.json'} and {out_dir / 'bench_fleet.png'}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,1000,10000")
    parser.add_argument("--baseline-n", type=int, default=100)
    parser.add_argument("--out", default="out/bench")
    parser.add_argument("--repeat", type=int, default=1, help="timed requests per N (spread between repeats)")
    parser.add_argument("--seed", type=int, default=20130630)
    parser.add_argument("--cpu", action="store_true",
                        help="CPU seconds by process group (and by second) during each timed request")
    parser.add_argument("--profile", action="store_true", help="py-spy an extra untimed request at the largest N")
    parser.add_argument("--multi-plane", action="store_true",
                        help="fleet with 2- and 3-plane plants and horizon profiles (bench/fleet.py multi_plane, "
                             "skylines); needs the API to accept planes/horizon (issue 13)")
    main(parser.parse_args())

"""Feature stage of the fleet (issue 13): one-plane fleet vs the same fleet with multi-plane plants and horizons.

In-process: ``engine.features.feature_frame`` on N plants x 48 h x 15 min, in batches of
``forecast.batch_locations`` plants (configs/service.yaml) as the Forecaster runs it, on
the real weather of the four sites of ``bench/fleet.py``. Variants, timed interleaved in the
same process (order alternating every repeat, so a busy neighbour on the shared machine hits
both alike):

- ``one_plane``: the seeded fleet of ``fleet.plants`` as today (one plane per plant);
- ``multi_plane``: the SAME plants, 25 % / 10 % of the fixed ones split into east/west and
  three-face roofs, 10 % of the trackers into two fields (``fleet.multi_plane``), and 20 %
  of all plants behind a horizon profile of 6 .. 72 points (``fleet.skylines``).

Prints wall seconds per variant (median and min over repeats), seconds per plane and the
ratio multi / one per plane (the issue's target: <= 1.20) from the medians and from each
adjacent pair of runs, and writes ``<out>/bench_features.json``.

    .venv/bin/python bench/bench_features.py [--n 10000] [--repeat 3] [--out out/bench]
    .venv/bin/python bench/bench_features.py --one-plane-only ...   # runs on trees without planes too
    .venv/bin/python bench/bench_features.py --store ...   # + write/read of the fleet in a scratch database

Weather parsing and frame building are outside the timed calls (the service reads them
from the database); only ``feature_frame`` is timed.
"""

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

import asyncpg
import numpy as np
import pandas as pd
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fleet  # noqa: E402

from engine import features, forecast, store  # noqa: E402
from local_instance import scratch_database  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
START, END = pd.Timestamp("2013-06-30T06:00:00Z"), pd.Timestamp("2013-07-02T18:00:00Z")
ISSUE = pd.Timestamp("2013-06-30T12:00:00Z")


def fleet_frames(n, seed, one_plane_only):
    """Locations, weather and the variants' planes/horizon frames keyed by ``location_id``."""
    weather = {s: fleet.site_weather(s, START, END).reset_index() for s in fleet.SITES}
    plants = fleet.plants(n, seed, list(fleet.SITES))
    defaults = yaml.safe_load((ROOT / "configs/service.yaml").read_text())["location_defaults"]
    extra = {k: defaults[k] for k in ("gamma_pdc", "temp_model_u0", "temp_model_u1")}
    plants = plants.assign(location_id=np.arange(1, n + 1), **extra)
    ids = dict(zip(plants["name"], plants["location_id"]))
    site_rows = {s: len(w) for s, w in weather.items()}
    sites = plants["site"].to_numpy()
    w = pd.concat([weather[s] for s in sites], ignore_index=True)
    w["location_id"] = np.repeat(plants["location_id"].to_numpy(), [site_rows[s] for s in sites])
    variants = {"one_plane": (plants, None, None)}
    if not one_plane_only:
        planes, summarised = fleet.multi_plane(plants, seed)
        skyline = fleet.skylines(plants, seed)
        variants["multi_plane"] = (summarised.assign(location_id=plants["location_id"].to_numpy(), **extra),
                                   planes.assign(location_id=planes["name"].map(ids)).drop(columns="name"),
                                   skyline.assign(location_id=skyline["name"].map(ids)).drop(columns="name"))
    return w, variants


def batches(locations, planes, horizon, weather, size):
    """The per-batch inputs the Forecaster hands to one feature task."""
    out = []
    for lo in range(0, len(locations), size):
        part = locations.iloc[lo:lo + size]
        ids = part["location_id"].to_numpy()
        out.append((part, weather[weather["location_id"].isin(ids)],
                    None if planes is None else planes[planes["location_id"].isin(ids)],
                    None if horizon is None else horizon[horizon["location_id"].isin(ids)]))
    return out


def run(parts, times, one_plane_only):
    t0 = time.perf_counter()
    rows = 0
    for locations, weather, planes, horizon in parts:
        frame = (features.feature_frame(locations, weather, times) if one_plane_only else
                 features.feature_frame(locations, weather, times, planes=planes, horizon=horizon))
        rows += len(frame)
    return time.perf_counter() - t0, rows


def store_figures(summarised, planes, skyline, repeat):
    """Write the multi-plane fleet into a scratch database; time its reads (fetch_locations vs fetch_plants)."""
    async def measure(url):
        conn = await asyncpg.connect(url)
        try:
            t0 = time.perf_counter()
            plants = summarised.drop(columns=["site", "location_id"]).assign(model_id="global")
            await store.upsert_locations(conn, plants, planes, skyline)
            out = {"upsert_s": time.perf_counter() - t0, "fetch_locations_s": [], "fetch_plants_s": []}
            for _ in range(repeat):
                for name, fetch in (("fetch_locations_s", store.fetch_locations),
                                    ("fetch_plants_s", store.fetch_plants)):
                    t0 = time.perf_counter()
                    got = await fetch(conn)
                    out[name].append(time.perf_counter() - t0)
            out["rows"] = {k: len(v) for k, v in got.items()}
            return out
        finally:
            await conn.close()

    with scratch_database("pvcast_bench_planes") as (url, _):
        return asyncio.run(measure(url))


def main(args):
    np.seterr(all="ignore")
    settings = yaml.safe_load((ROOT / "configs/service.yaml").read_text())["forecast"]
    size = args.batch or settings["batch_locations"]
    times = forecast.forecast_times(ISSUE, 48, 15)
    weather, variants = fleet_frames(args.n, args.seed, args.one_plane_only)
    prepared = {k: batches(*v, weather, size) for k, v in variants.items()}
    n_planes = {k: (args.n if v[1] is None else args.n - v[1]["location_id"].nunique() + len(v[1]))
                for k, v in variants.items()}
    print(f"engine: {Path(features.__file__).parent}; N={args.n:,} plants x {len(times)} steps, batches of {size:,}")
    for k, v in variants.items():
        extra = "" if v[1] is None else (f"; {v[1]['location_id'].nunique():,} multi-plane plants, "
                                         f"{v[2]['location_id'].nunique():,} behind a horizon "
                                         f"({len(v[2]):,} profile points)")
        print(f"  {k}: {n_planes[k]:,} planes{extra}")
    run(prepared["one_plane"][:1], times, args.one_plane_only)  # warm-up (imports, Linke file cache)
    walls = {k: [] for k in prepared}
    for rep in range(args.repeat):
        order = list(prepared) if rep % 2 == 0 else list(prepared)[::-1]
        for k in order:
            wall, rows = run(prepared[k], times, args.one_plane_only)
            walls[k].append(wall)
            print(f"  repeat {rep + 1}/{args.repeat} {k}: {wall:.2f} s ({rows:,} feature rows)", flush=True)
    report = {"n": args.n, "steps": len(times), "batch": size, "planes": n_planes, "walls_s": walls}
    for k, w in walls.items():
        med = float(np.median(w))
        report[k] = {"median_s": med, "min_s": min(w), "per_plane_ms": 1000 * med / n_planes[k]}
        print(f"{k:12s} median {med:6.2f} s (min {min(w):.2f}) = {report[k]['per_plane_ms']:.3f} ms per plane")
    if "multi_plane" in walls:
        ratio = report["multi_plane"]["per_plane_ms"] / report["one_plane"]["per_plane_ms"]
        per_plant = report["multi_plane"]["median_s"] / report["one_plane"]["median_s"]
        plane_factor = n_planes["one_plane"] / n_planes["multi_plane"]
        pairs = [m / o * plane_factor for m, o in zip(walls["multi_plane"], walls["one_plane"])]
        report.update(ratio_per_plane=ratio, ratio_per_plant=per_plant, pair_ratios_per_plane=pairs)
        print(f"multi / one-plane: {ratio:.3f} per plane (medians; target <= 1.20), {per_plant:.3f} per plant; "
              f"per plane in each adjacent pair: {', '.join(f'{r:.3f}' for r in pairs)} "
              f"(median {np.median(pairs):.3f})")
    if args.store and "multi_plane" in variants:
        _, planes, skyline = variants["multi_plane"]
        names = dict(zip(variants["one_plane"][0]["location_id"], variants["one_plane"][0]["name"]))

        def by_name(rows):
            return rows.assign(name=rows["location_id"].map(names)).drop(columns="location_id")

        report["store"] = store_figures(variants["multi_plane"][0], by_name(planes), by_name(skyline), args.repeat)
        st = report["store"]
        print(f"store (scratch database): upsert of {args.n:,} plants + {st['rows']['planes']:,} plane rows + "
              f"{st['rows']['horizon']:,} horizon points {st['upsert_s']:.2f} s; read of all: fetch_locations median "
              f"{np.median(st['fetch_locations_s']):.3f} s, fetch_plants (3 queries) median "
              f"{np.median(st['fetch_plants_s']):.3f} s")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_features.json").write_text(json.dumps(report, indent=1))
    print(f"wrote {out / 'bench_features.json'}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=20130630)
    parser.add_argument("--batch", type=int, default=0, help="plants per feature_frame call (0: service.yaml)")
    parser.add_argument("--one-plane-only", action="store_true",
                        help="only the one-plane fleet, without the planes/horizon arguments (any tree)")
    parser.add_argument("--store", action="store_true",
                        help="also write the multi-plane fleet to a scratch database (scripts/tsdb) and time its reads")
    parser.add_argument("--out", default="out/bench")
    main(parser.parse_args())

"""CPU cost of each stage of a fleet batch, in one process, on a scratch database (issue 12).

The stages of one Forecaster pass (serve_app/forecaster.py) run here one after the
other, without Ray, on the fleet of ``bench/bench_fleet.py`` (same seed, same real
weather records, weather stored with ``engine.store.write_weather``): the weather read
(``store.read_weather``), the feature task (``serve_app.featuretask.feature_task``), the
predict (``engine.adaptation.forecast_with_calibrations``) and the write
(``store.write_forecasts``: new runs). For each stage: wall time, this process' CPU time
(``time.process_time``, every thread) and the CPU time of the PostgreSQL backend serving
the connection (``pg_backend_pid``, read from /proc: the server runs on this machine).
CPU times do not grow when other jobs share the cores, wall times do: compare CPU.

``--batches`` batches of ``--batch`` plants, each written with a new issue time (every
run new), repeated ``--rounds`` times; the scratch database is dropped at the end.

    .venv/bin/python bench/bench_stages.py [--plants 10000] [--batch 2000] [--batches 2] [--rounds 2]
                                           [--read-rounds 0]
"""

import argparse
import asyncio
import contextlib
import pickle
import sys
import time
from pathlib import Path

import asyncpg
import numpy as np
import pandas as pd
import psutil
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fleet  # noqa: E402
import local_instance as local  # noqa: E402

from engine import adaptation, features, forecast, modelio, resources, store  # noqa: E402
from serve_app.featuretask import feature_task  # noqa: E402
from serve_app.forecaster import model_version  # noqa: E402

ROOT = local.ROOT
WEATHER_START = pd.Timestamp("2013-06-30T06:00:00Z")  # as bench/bench_fleet.py
WEATHER_END = pd.Timestamp("2013-07-02T18:00:00Z")
WEATHER_ISSUE = pd.Timestamp("2013-06-30T06:00:00Z")
ISSUE = pd.Timestamp("2013-06-30T12:00:00Z")
SEED = 20130630


def fleet_weather(location_ids, sites):
    """Weather frame of every plant: its site's real record over the benchmark window, as bench_fleet ingests it."""
    frames = []
    for site in fleet.SITES:
        w = fleet.site_weather(site, WEATHER_START, WEATHER_END).reset_index()
        ids = np.asarray(location_ids)[np.asarray(sites) == site]
        if not len(ids):  # a small fleet: a site without plants (its empty frame would not be datetime-typed)
            continue
        frames.append(pd.DataFrame({
            "location_id": np.repeat(ids, len(w)), "valid_time": np.tile(w["valid_time"].to_numpy(), len(ids)),
            "issue_time": WEATHER_ISSUE, "source": f"bench_{site}",
            **{c: np.tile(w[c].to_numpy("float64"), len(ids)) for c in ("ghi", "dni", "dhi", "temp_air", "wind_speed")},
            "cloud_cover": np.nan, "period_minutes": np.tile(w["period_minutes"].to_numpy("int64"), len(ids))}))
    out = pd.concat(frames, ignore_index=True)
    out["valid_time"] = pd.DatetimeIndex(out["valid_time"]).tz_convert("UTC") if out["valid_time"].dt.tz \
        else pd.DatetimeIndex(out["valid_time"]).tz_localize("UTC")
    return out


def cpu_seconds(process):
    """User + system CPU seconds of a process so far (0 for None)."""
    if process is None:
        return 0.0
    t = process.cpu_times()
    return t.user + t.system


@contextlib.contextmanager
def meter(backend):
    """Wall, process CPU and PostgreSQL backend CPU seconds of a block, in the dict it yields."""
    figures = {}
    t, c, b = time.perf_counter(), time.process_time(), cpu_seconds(backend)
    yield figures
    figures.update(wall_s=time.perf_counter() - t, cpu_s=time.process_time() - c, db_cpu_s=cpu_seconds(backend) - b)


async def setup(url, n):
    """Plants and weather of the fleet in the scratch database; the plants' ids and sites."""
    defaults = yaml.safe_load((ROOT / "configs/service.yaml").read_text())["location_defaults"]
    for s in fleet.SITES:
        fleet.site_weather(s, WEATHER_START, WEATHER_END)
    plants = fleet.plants(n, SEED, list(fleet.SITES))
    frame = pd.DataFrame({**{k: [v] * n for k, v in defaults.items()}, **plants.drop(columns=["site"])})
    conn = await asyncpg.connect(url)
    try:
        stored = await store.upsert_locations(conn, frame)
        ids = stored["location_id"].to_numpy("int64")
        weather = fleet_weather(ids, plants["site"].to_numpy())
        for i in range(0, len(weather), 200_000):
            await store.write_weather(conn, weather.iloc[i:i + 200_000])
        await conn.execute("ANALYZE")
    finally:
        await conn.close()
    return ids, len(weather)


def runs_frame(locations, model, issue):
    """Runs of a batch as the Forecaster builds them (serve_app/forecaster.py runs_frame)."""
    n = len(locations)
    return pd.DataFrame({"location_id": locations["location_id"].to_numpy("int64"), "issue_time": issue,
                         "model_id": "global", "model_version": model_version(model["card"]),
                         "forecast_type": "ml", "resolution_minutes": 15, "horizon_hours": 48, "task_id": None,
                         "timings": [{}] * n, "calibration_version": [None] * n, "input_flags": [{}] * n})


async def batch(conn, backend, ids, issue, models, wind_speed_ms, margin):
    """One pass of a batch, stage by stage; {stage: figures}."""
    out = {}
    times = forecast.forecast_times(issue, 48, 15)
    plants = await store.fetch_plants(conn, ids.tolist())
    with meter(backend) as m:
        weather = await store.read_weather(conn, ids.tolist(), times[0] - margin, times[-1] + margin, issue,
                                           columns=features.WEATHER_COLUMNS)
    out["read_weather"] = {**m, "rows": len(weather)}
    with meter(backend) as m:
        blob = pickle.dumps(weather, protocol=5)
    out["pickle_weather"] = {**m, "bytes": len(blob)}
    with meter(backend) as m:
        feats, locs, errors, _, _ = feature_task(plants["locations"], weather, times, plants["planes"],
                                                 plants["horizon"], wind_speed_ms=wind_speed_ms)
    assert not errors, list(errors.items())[:3]
    out["features"] = dict(m)
    with meter(backend) as m:
        blob = pickle.dumps(feats, protocol=5)
    out["pickle_features"] = {**m, "bytes": len(blob)}
    with meter(backend) as m:
        frame, model_errors = adaptation.forecast_with_calibrations(
            feats, locs, models, "ml", issue, 1, {}, pd.DataFrame(columns=["location_id", "time", "power_kw"]), None)
    assert not model_errors
    out["predict"] = dict(m)
    runs = runs_frame(locs, models["global"], issue)
    timings = {}
    with meter(backend) as m:
        await store.write_forecasts(conn, runs, frame, timings)
    out["write"] = {**m, "rows": len(frame), **timings}
    return out


async def read_ab(conn, backend, ids, batch, rounds, margin):
    """The weather read before (every column, CSV) and as the Forecaster reads it (its columns, binary COPY),
    alternating on the same batches; the frames are checked equal. {variant: [figures]}."""
    times = forecast.forecast_times(ISSUE, 48, 15)
    window = (ids, times[0] - margin, times[-1] + margin, ISSUE)
    variants = {"full_csv": store.WEATHER_COLUMNS, "forecast_binary": features.WEATHER_COLUMNS}
    out = {k: [] for k in variants}
    for k in range(rounds):
        part = ids[(k % (len(ids) // batch)) * batch:][:batch].tolist()
        frames = {}
        for name in list(variants)[::1 if k % 2 else -1]:
            with meter(backend) as m:
                frames[name] = await store.read_weather(conn, part, *window[1:], columns=variants[name])
            out[name].append(m)
        pd.testing.assert_frame_equal(frames["full_csv"][list(features.WEATHER_COLUMNS)], frames["forecast_binary"],
                                      check_exact=True)
    return out


async def main(args, url):
    ids, n_weather = await setup(url, args.plants)
    print(f"fleet: {len(ids):,} plants, {n_weather:,} weather rows stored")
    models = {"global": modelio.load_model(str(ROOT / "models"), "global")}
    wind = float(yaml.safe_load(resources.config_path("training.yaml").read_text())["data"]["wind_speed_ms"])
    margin = pd.Timedelta(minutes=yaml.safe_load((ROOT / "configs/service.yaml").read_text())
                          ["forecast"]["weather_margin_minutes"])
    conn = await asyncpg.connect(url)
    backend = psutil.Process(await conn.fetchval("SELECT pg_backend_pid()"))
    results, k = [], 0
    try:
        if args.read_rounds:
            ab = await read_ab(conn, backend, ids, args.batch, args.read_rounds, margin)
            print(f"weather read of {args.batch:,} plants, median of {args.read_rounds} alternating (s):")
            for name, runs in ab.items():
                med = {f: np.median([r[f] for r in runs]) for f in ("wall_s", "cpu_s", "db_cpu_s")}
                print(f"  {name:16s} wall {med['wall_s']:.3f}  cpu {med['cpu_s']:.3f}  db {med['db_cpu_s']:.3f}  "
                      f"cpu + db {med['cpu_s'] + med['db_cpu_s']:.3f}")
        for r in range(args.rounds):
            for b in range(args.batches):
                k += 1
                part = ids[b * args.batch:(b + 1) * args.batch]
                out = await batch(conn, backend, part, ISSUE + pd.Timedelta(minutes=k), models, wind, margin)
                results.append(out)
                print(f"round {r + 1} batch {b + 1} ({len(part):,} plants): " + "; ".join(
                    f"{s} wall {f['wall_s']:.2f} cpu {f['cpu_s']:.2f} db {f['db_cpu_s']:.2f}" for s, f in out.items()),
                    flush=True)
    finally:
        await conn.close()
    print(f"\nmedian over {len(results)} batches of {args.batch:,} plants (s; cpu: this process, db: its backend):")
    for stage in results[0]:
        f = {k: np.median([r[stage][k] for r in results]) for k in ("wall_s", "cpu_s", "db_cpu_s")}
        extra = {k: v for k, v in results[0][stage].items() if not k.endswith("cpu_s") and k != "wall_s"}
        print(f"  {stage:16s} wall {f['wall_s']:6.3f}  cpu {f['cpu_s']:6.3f}  db {f['db_cpu_s']:6.3f}  {extra}")
    total = sum(np.median([r[s]["cpu_s"] + r[s]["db_cpu_s"] for r in results]) for s in results[0])
    print(f"  CPU of a batch (process + backend, medians summed): {total:.2f} s; "
          f"x {args.plants // args.batch} batches = {total * args.plants // args.batch:.1f} CPU-s for N = {args.plants:,}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plants", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=2000)
    parser.add_argument("--batches", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--read-rounds", type=int, default=0,
                        help="A/B of the weather read (every column as CSV vs the forecast's columns as binary COPY)")
    cli = parser.parse_args()
    with local.scratch_database("pvcast_stages") as (scratch_url, _):
        asyncio.run(main(cli, scratch_url))

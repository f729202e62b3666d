"""Write throughput of ``engine.store.write_forecasts`` (new runs: one binary COPY into ``forecasts``).

Writes 5,208 locations x 192 steps (15 min, 48 h) = 999,936 forecast rows into a
scratch database on the ``scripts/tsdb`` TimescaleDB (local_instance.scratch_database in bench/local_instance.py,
written as the service role, like the service), prints rows/s with the time split by stage.
In the same process and database, alternating with it (``--rounds`` each, every write a new
issue time, so every run is new), the previous path for new runs: the same run upsert and
payload, then COPY into a staging table + one ``INSERT ... ON CONFLICT`` (still the path of
re-written runs, measured too: the same runs again). Then the baseline the COPY paths replace:
``executemany`` of a plain ``INSERT`` on a 20,000-row subset, extrapolated to the
same row count (labelled as such). The scratch database is dropped at the end.

The values are not a model forecast: P50 is capacity x (real NSRDB PSM3 GHI of
2013-07-01 at SERF East, from the pvanalytics wheel, interpolated to 15 min) /
1000 W/m^2 x 0.85, the other quantiles fixed multiples of it, clipped to the
capacity; plants differ only in capacity. Deterministic, no random noise.

    .venv/bin/python bench/bench_writer.py [--locations 5208] [--rounds 2] [--baseline-rows 20000]
                                           [--parts 2 --part-batch 2000]
"""

import argparse
import asyncio
import time
from pathlib import Path

import asyncpg
import numpy as np
import pandas as pd
import yaml

from engine import data, store
import local_instance as local
from engine.quantiles import QUANTILE_COLUMNS

ROOT = Path(__file__).resolve().parents[1]
STEPS = 192
ISSUE = pd.Timestamp("2013-07-01T06:00:00Z")
FACTORS = (0.55, 0.8, 1.0, 1.1, 1.2)  # p10..p90 as multiples of p50


def plants(n):
    """``n`` copies of the demo 'Golden rooftop' plant with capacities 5..500 kW."""
    defaults = yaml.safe_load((ROOT / "configs/service.yaml").read_text())["location_defaults"]
    base = {**defaults, **yaml.safe_load((ROOT / "configs/demo_plants.yaml").read_text())["plants"][1]}
    frame = pd.DataFrame([base] * n)
    frame["name"] = [f"bench plant {i}" for i in range(n)]
    frame["capacity_ac_kw"] = np.linspace(5.0, 500.0, n)
    frame["capacity_dc_kw"] = frame["capacity_ac_kw"] * 1.2
    frame["export_limit_kw"] = np.nan
    return frame


def forecast_frames(locations, issue=ISSUE):
    """Runs and forecast frames: every plant, 192 steps from ``issue``, values from the real PSM3 GHI of ISSUE's days."""
    training = yaml.safe_load((ROOT / "configs/training.yaml").read_text())
    weather = data.load_weather(training, 0)
    times = pd.date_range(ISSUE + pd.Timedelta(minutes=15), periods=STEPS, freq="15min")
    ghi = data.weather_at(weather, times, "ghi")
    ids = locations["location_id"].to_numpy("int64")
    cap = locations["capacity_ac_kw"].to_numpy()
    p50 = np.minimum(np.outer(cap, ghi / 1000.0 * 0.85), cap[:, None]).ravel()
    forecast = pd.DataFrame({"location_id": np.repeat(ids, STEPS), "valid_time": np.tile(times + (issue - ISSUE), len(ids)),
                             **{q: np.minimum(p50 * f, np.repeat(cap, STEPS)) for q, f in zip(QUANTILE_COLUMNS, FACTORS)},
                             "horizon_minutes": np.tile(np.arange(1, STEPS + 1) * 15, len(ids))})
    runs = pd.DataFrame({"location_id": ids, "issue_time": issue, "model_id": "global", "model_version": "bench@0",
                         "forecast_type": "ml", "resolution_minutes": 15, "horizon_hours": 48, "task_id": None,
                         "timings": [{}] * len(ids)})
    return runs, forecast


async def staged_write(conn, runs, forecast, timings):
    """The previous write of NEW runs (kept as the path of re-written runs): the same run upsert and payload as
    ``store.write_forecasts``, then every row through staging + ``INSERT ... ON CONFLICT``; one transaction."""
    t0 = time.perf_counter()
    valid_us, run_args, run_locations, issue_us, order, row_run = store.forecast_write_arrays(runs, forecast)
    t1 = time.perf_counter()
    async with conn.transaction():
        stored = await store.upsert_runs(conn, run_args)
        assert all(r["inserted"] for r in stored)
        t2 = time.perf_counter()
        payload, _, _ = store.forecast_write_payloads(stored, run_locations, issue_us, order, row_run, valid_us,
                                                      forecast)
        t3 = time.perf_counter()
        await store.upsert_forecast_values(conn, payload)
        t4 = time.perf_counter()
    timings.update(validate_s=t1 - t0, runs_s=t2 - t1, records_s=t3 - t2, upsert_s=t4 - t3,
                   commit_s=time.perf_counter() - t4)


async def baseline(conn, runs, forecast, n_rows):
    """executemany INSERT of the first ``n_rows`` forecast rows into new runs; seconds."""
    subset = forecast.iloc[:n_rows]
    lids = subset["location_id"].unique().tolist()
    issue = (ISSUE + pd.Timedelta(days=1)).to_pydatetime()
    run_ids = {}
    for lid in lids:  # the baseline: one statement per row
        run_ids[lid] = await conn.fetchval(
            "INSERT INTO forecast_runs (location_id, issue_time, model_id, model_version, forecast_type, "
            "resolution_minutes, horizon_hours, n_steps) VALUES ($1, $2, 'global', 'bench@0', 'ml', 15, 48, $3) "
            "RETURNING run_id", lid, issue, STEPS)
    t0 = time.perf_counter()
    rows = [(run_ids[lid], lid, issue, t.to_pydatetime(), *q, h) for lid, t, *q, h in subset.itertuples(index=False)]
    await conn.executemany(
        "INSERT INTO forecasts (run_id, location_id, issue_time, valid_time, p10, p25, p50, p75, p90, "
        "horizon_minutes) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)", rows)
    return time.perf_counter() - t0


async def parts_rounds(url, locations, parts, rounds):
    """Wall s of a batch written whole and in ``parts`` concurrent parts (the Writer's ``store.forecast_parts`` on a
    pool of 4), alternating, every write new runs; {1: [...], parts: [...]}."""
    pool = await asyncpg.create_pool(url, min_size=4, max_size=4)
    out = {1: [], parts: []}
    try:
        for k in range(rounds):
            for n_parts in (1, parts) if k % 2 else (parts, 1):
                runs, forecast = forecast_frames(locations, ISSUE + pd.Timedelta(days=40 + 2 * k + (n_parts > 1)))
                t0 = time.perf_counter()
                split = store.forecast_parts(runs, forecast, n_parts)
                await asyncio.gather(*[store.write_forecasts(pool, r, f) for r, f in split])
                out[n_parts].append(time.perf_counter() - t0)
    finally:
        await pool.close()
    return out


def report(label, n, timings):
    stages = {k: v for k, v in timings.items() if k.endswith("_s")}
    total = sum(stages.values())
    split = ", ".join(f"{k[:-2]} {v:.2f} s" for k, v in stages.items())
    print(f"{label}: {n:,} rows in {total:.2f} s = {n / total:,.0f} rows/s  ({split})")
    return n / total


async def main(args, url, caps):
    conn = await asyncpg.connect(url)
    try:
        print(f"server: PostgreSQL {caps['postgres']}, TimescaleDB {caps['timescaledb_version']} "
              f"({caps['license']}), hypertables {caps['hypertables']}")
        locations = await store.upsert_locations(conn, plants(args.locations))
        runs, forecast = forecast_frames(locations)
        n = len(forecast)
        print(f"{args.locations:,} locations x {STEPS} steps = {n:,} rows (values: real PSM3 GHI scaled, not a model)")
        direct, staged = [], []
        for k in range(args.rounds):  # alternating, each write a new issue time: every run is new
            timings = {}
            issue = ISSUE + pd.Timedelta(days=10 + 2 * k)
            await store.write_forecasts(conn, *forecast_frames(locations, issue), timings)
            assert timings["new_rows"] == n
            direct.append(report(f"write_forecasts, new runs (direct COPY)     round {k + 1}", n, timings))
            timings = {}
            await staged_write(conn, *forecast_frames(locations, issue + pd.Timedelta(days=1)), timings)
            staged.append(report(f"previous path, new runs (staging + upsert)  round {k + 1}", n, timings))
        again = {}
        await store.write_forecasts(conn, runs, forecast)
        await store.write_forecasts(conn, runs, forecast, again)
        assert again["rewritten_rows"] == n
        report("write_forecasts, same runs again (staging + upsert)", n, again)
        rate, staged_rate = np.mean(direct), np.mean(staged)
        print(f"new runs, mean of {args.rounds}: direct COPY {rate:,.0f} rows/s, previous staging + upsert "
              f"{staged_rate:,.0f} rows/s: {rate / staged_rate:.2f}x ({n / staged_rate - n / rate:.2f} s less "
              f"per {n:,} rows)")
        if args.parts > 1:
            walls = await parts_rounds(url, locations.iloc[:args.part_batch], args.parts, args.rounds)
            one, many = np.median(walls[1]), np.median(walls[args.parts])
            print(f"a batch of {args.part_batch:,} plants ({args.part_batch * STEPS:,} rows), median of {args.rounds}: "
                  f"one transaction {one:.2f} s, {args.parts} concurrent parts {many:.2f} s ({many / one:.2f}x the wall)")
        seconds = await baseline(conn, runs, forecast, args.baseline_rows)
        base_rate = args.baseline_rows / seconds
        print(f"baseline executemany INSERT: {args.baseline_rows:,} rows in {seconds:.2f} s = {base_rate:,.0f} rows/s "
              f"(extrapolated to {n:,} rows: {n / base_rate:.0f} s)")
        print(f"ratio direct COPY path / executemany: {rate / base_rate:.1f}x")
    finally:
        await conn.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--locations", type=int, default=5208)
    parser.add_argument("--rounds", type=int, default=2, help="writes of each path for new runs, alternating")
    parser.add_argument("--baseline-rows", type=int, default=20_000)
    parser.add_argument("--parts", type=int, default=1,
                        help="also time a batch written in this many concurrent parts vs whole (the Writer's split)")
    parser.add_argument("--part-batch", type=int, default=2000, help="plants of that batch")
    with local.scratch_database("pvcast_bench") as (scratch_url, capabilities):
        asyncio.run(main(parser.parse_args(), scratch_url, capabilities))

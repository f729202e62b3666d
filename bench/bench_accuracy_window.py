"""Cost of ``GET /api/v1/forecast/accuracy/{id}`` without a window: every stored run (before) or the
``http.accuracy_max_days`` up to the plant's latest run (after, ``serve_app.routes_forecast.accuracy_window``).

One plant (the demo 'Golden rooftop', 7.6 kW AC) in a scratch database on the ``scripts/tsdb``
TimescaleDB, with the real SERF East 2016 power (``engine.data.load_serf_east_2016``, 2016-07-01..10-13)
as its actuals and a 48 h run of 15-min values issued every ``--every-hours`` over those days. The values
are not a model forecast: P50 is the measured power at the valid time, the other quantiles fixed
multiples of it, clipped to the capacity (the read and the scores cost the same whatever the values).
Both paths are the route's own calls, alternated ``--rounds`` times in one process: the read
(``engine.store.read_forecast_with_actuals``; after: plus the latest run's read that anchors the window)
and the scores (``serve_app.routes_forecast.accuracy_scores``). Prints rows and median seconds.

    .venv/bin/python bench/bench_accuracy_window.py [--every-hours 3] [--rounds 5] [--max-days 31]
"""

import argparse
import asyncio
import statistics
import time
from pathlib import Path

import asyncpg
import numpy as np
import pandas as pd
import yaml

import local_instance as local
from engine import data, store
from engine.quantiles import QUANTILE_COLUMNS
from serve_app.routes_forecast import accuracy_scores, accuracy_window

ROOT = Path(__file__).resolve().parents[1]
FACTORS = (0.55, 0.8, 1.0, 1.1, 1.2)  # p10..p90 as multiples of p50
STEPS = 192  # 48 h at 15 min


def plant():
    defaults = yaml.safe_load((ROOT / "configs/service.yaml").read_text())["location_defaults"]
    base = {**defaults, **yaml.safe_load((ROOT / "configs/demo_plants.yaml").read_text())["plants"][1]}
    frame = pd.DataFrame([{**base, "name": "accuracy window bench"}])
    frame["export_limit_kw"] = np.nan
    return frame


def run_frames(location, issue, power):
    times = pd.date_range(issue + pd.Timedelta(minutes=15), periods=STEPS, freq="15min")
    cap = float(location["capacity_ac_kw"])
    p50 = np.minimum(power.reindex(times).fillna(0.0).to_numpy(float), cap)
    forecast = pd.DataFrame({"location_id": int(location["location_id"]), "valid_time": times,
                             **{q: np.minimum(p50 * f, cap) for q, f in zip(QUANTILE_COLUMNS, FACTORS)},
                             "horizon_minutes": np.arange(1, STEPS + 1) * 15})
    runs = pd.DataFrame({"location_id": [int(location["location_id"])], "issue_time": [issue], "model_id": "global",
                         "model_version": "bench@0", "forecast_type": "ml", "resolution_minutes": 15,
                         "horizon_hours": STEPS // 4, "task_id": None, "timings": [{}]})
    return runs, forecast


async def timed(fn):
    t0 = time.perf_counter()
    out = await fn()
    return out, time.perf_counter() - t0


async def main(args, url):
    conn = await asyncpg.connect(url)
    try:
        saved = await store.upsert_locations(conn, plant())
        location = saved.iloc[0]
        lid = int(location["location_id"])
        power, _ = data.load_serf_east_2016(lid, 1.0)
        await store.write_actuals(conn, pd.DataFrame({"location_id": lid, "time": power.index,
                                                      "power_kw": power.to_numpy(float), "period_minutes": 0}))
        issues = pd.date_range(power.index[0].floor("D"), power.index[-1] - pd.Timedelta(hours=48),
                               freq=f"{args.every_hours}h")
        t0 = time.perf_counter()
        for issue in issues:
            await store.write_forecasts(conn, *run_frames(location, issue, power))
        print(f"stored {len(issues)} runs x {STEPS} values ({len(issues) * STEPS:,} rows), {len(power):,} actuals "
              f"in {time.perf_counter() - t0:.0f} s")
        results = {"before": [], "after": []}
        for _ in range(args.rounds):
            def scores(joined):
                t = time.perf_counter()
                accuracy_scores(joined.dropna(subset=["power_kw"]), location, "all")
                return time.perf_counter() - t
            joined, read_s = await timed(lambda: store.read_forecast_with_actuals(conn, lid, None, None))
            results["before"].append((len(joined), read_s, scores(joined)))

            async def bounded():
                run, _ = await store.read_forecast(conn, lid, None, None)
                latest = pd.Timestamp(run["issue_time"]) + pd.Timedelta(hours=int(run["horizon_hours"]))
                start, end = accuracy_window(None, None, latest, args.max_days)
                return await store.read_forecast_with_actuals(conn, lid, start, end)
            joined, read_s = await timed(bounded)
            results["after"].append((len(joined), read_s, scores(joined)))
        for name, rows in results.items():
            n = rows[0][0]
            read, score = statistics.median(r[1] for r in rows), statistics.median(r[2] for r in rows)
            print(f"{name:>6}: {n:>8,} rows read, read {read:.3f} s, scores {score:.3f} s, total {read + score:.3f} s "
                  f"(median of {args.rounds})")
    finally:
        await conn.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--every-hours", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--max-days", type=float, default=31.0)
    with local.scratch_database("pvcast_bench") as (scratch_url, _):
        asyncio.run(main(parser.parse_args(), scratch_url))

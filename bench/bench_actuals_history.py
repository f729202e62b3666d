"""Cost of a forecast pass's reads of the actuals table as a fleet's history of actuals grows.

Every forecast pass asks which of its plants have actuals (``engine.store.plant_extras``) and, in
the background, counts the actuals each plant with some received since its latest calibration (the
refit policy: ``engine.store.refit_counts``). Neither read depends on the actuals' measurement time,
so TimescaleDB cannot skip chunks. Before migration 0016 the first was an ``EXISTS`` per plant on the
actuals table (and on the calibrations, planes and horizons): when few plants of a fleet have rows (the
usual state: most plants send no actuals), the statistics say every plant has thousands and the planner
answers each ``EXISTS`` with a sequential scan that stops at the plant's first row, which a plant without
any never has: the whole table for each such plant (measured here: a quarter of a year of 20 plants'
actuals, 1,000 plants asked: ~9 s; 10,000: beyond a minute; 20 plants with 730 calibration versions:
8 s). The second read every actual the plant ever had.

Scratch database on the ``scripts/tsdb`` TimescaleDB: ``--plants`` demo-described plants (10,000
by default) of which ``--with-actuals`` (20) get the real SERF East 2016 15-min power
(``engine.data.load_serf_east_2016``, 2016-07-01..10-13) laid end to end over ``--years`` (0.25, 1, 3:
the same measured days repeated, shifted by whole periods: the reads cost the same whatever the values),
each with a calibration version per day of history, the last stored after its actuals (a daily refit; the usual
state: nothing new to count; the versions' bands are empty: the reads do not open them), then
``VACUUM ANALYZE`` (the statistics autovacuum keeps). After each history length, in one process:

- ``plant_extras`` of all plants as served (``locations.actuals_since``, migration 0016; the other probes as
  lateral first-key reads) and as before (its statement until then, copied here as ``BEFORE_EXTRAS``), the latter
  under a
  ``--timeout`` (60 s; its median of ``--rounds`` only when one round takes < 1 s);
- ``refit_counts`` of the plants with actuals with the (location_id, ingested_at) index of migration
  0016 and without it (dropped in a transaction that is rolled back), each with PostgreSQL's JIT on (the
  server's default) and off (the service's sessions: configs/service.yaml ``database.jit``).

Prints median milliseconds and the ratios.

    .venv/bin/python bench/bench_actuals_history.py [--plants 10000] [--with-actuals 20] [--years 0.25,1,3]
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

ROOT = Path(__file__).resolve().parents[1]

BEFORE_EXTRAS = """
    SELECT array_agg(id ORDER BY k) FILTER (WHERE EXISTS (SELECT 1 FROM location_planes p
                                                          WHERE p.location_id = id)) AS planes,
           array_agg(id ORDER BY k) FILTER (WHERE EXISTS (SELECT 1 FROM location_horizons h
                                                          WHERE h.location_id = id)) AS horizon,
           array_agg(id ORDER BY k) FILTER (WHERE EXISTS (SELECT 1 FROM plant_calibrations c
                                                          WHERE c.location_id = id)) AS calibrations,
           array_agg(id ORDER BY k) FILTER (WHERE EXISTS (SELECT 1 FROM actuals a
                                                          WHERE a.location_id = id)) AS actuals
    FROM unnest($1::bigint[]) WITH ORDINALITY AS ids(id, k)"""  # store.plant_extras before migration 0016


def plants(n):
    """``n`` plants of the demo's first description (names differ), as ``store.upsert_locations`` takes them."""
    defaults = yaml.safe_load((ROOT / "configs/service.yaml").read_text())["location_defaults"]
    base = {**defaults, **yaml.safe_load((ROOT / "configs/demo_plants.yaml").read_text())["plants"][0]}
    base.pop("planes", None), base.pop("horizon", None)
    frame = pd.DataFrame([base] * n).assign(name=[f"actuals history bench #{i:05d}" for i in range(n)])
    frame["export_limit_kw"] = np.nan
    return frame


def history(power, location_ids, start, end):
    """The measured series repeated from ``start`` to ``end`` (whole periods of its length) for each plant."""
    span = power.index[-1] - power.index[0] + pd.Timedelta(minutes=15)
    shifts = pd.timedelta_range(start - power.index[0], end - power.index[0], freq=span)
    times = pd.DatetimeIndex(np.concatenate([(power.index + s).to_numpy() for s in shifts]), tz="UTC")
    keep = (times >= start) & (times < end)
    values = np.tile(power.to_numpy(float), len(shifts))[keep]
    return [pd.DataFrame({"location_id": i, "time": times[keep], "power_kw": values, "period_minutes": 0})
            for i in location_ids]


async def median_ms(rounds, fn):
    out = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        await fn()
        out.append(time.perf_counter() - t0)
    return 1000 * statistics.median(out)


async def before_extras(conn, ids, args):
    """Median ms of ``BEFORE_EXTRAS`` (one round when it takes >= 1 s); inf beyond ``args.timeout``."""
    await conn.execute(f"SET statement_timeout = '{int(args.timeout * 1000)}ms'")
    try:
        first = await median_ms(1, lambda: conn.fetchrow(BEFORE_EXTRAS, ids))
        return first if first >= 1000 else await median_ms(args.rounds, lambda: conn.fetchrow(BEFORE_EXTRAS, ids))
    except asyncpg.QueryCanceledError:
        return float("inf")
    finally:
        await conn.execute("RESET statement_timeout")


async def main(args, url):
    conn = await asyncpg.connect(url)
    try:
        ids = (await store.upsert_locations(conn, plants(args.plants)))["location_id"].astype(int).tolist()
        measured = ids[:args.with_actuals]
        power, _ = data.load_serf_east_2016(measured[0], 1.0)
        start = pd.Timestamp("2016-01-01", tz="UTC")
        done = start
        for years in (float(y) for y in args.years.split(",")):
            end, previous = start + pd.Timedelta(days=round(365.25 * years)), done
            for frame in history(power, measured, done, end):
                await store.write_actuals(conn, frame)
            done = end
            await conn.execute("""
                INSERT INTO plant_calibrations (location_id, version, cutoff, window_start, window_end, n_samples,
                                                dc_scale, capacity_dc_kw, bands, intraday, diagnostics)
                SELECT id, coalesce((SELECT max(version) FROM plant_calibrations WHERE location_id = id), 0) + d,
                       $2::timestamptz, $2::timestamptz, $2::timestamptz, 0, 1, 1, '{}', '{}',
                       jsonb_build_object('actuals_end', $2::timestamptz)
                FROM unnest($1::bigint[]) AS id, generate_series(1, $3::int) AS d""",
                measured, end, max(1, (end - previous).days))  # a refit per day of history, the last at its end
            for table in ("actuals", "locations", "plant_calibrations"):
                await conn.execute(f"VACUUM ANALYZE {table}")
            chunks = await conn.fetchval("SELECT count(*) FROM show_chunks('actuals')")
            rows = await conn.fetchval("SELECT count(*) FROM actuals WHERE location_id = $1", measured[0])
            extras_after = await median_ms(args.rounds, lambda: store.plant_extras(conn, ids))
            extras_before = await before_extras(conn, ids, args)
            counts = {}
            for jit in ("on", "off"):  # the server's default, and the service's sessions (configs/service.yaml)
                await conn.execute(f"SET jit = {jit}")
                counts[jit] = await median_ms(args.rounds, lambda: store.refit_counts(conn, measured))
                baseline = conn.transaction()  # the index dropped for the baseline, restored by the rollback
                await baseline.start()
                try:
                    await conn.execute("DROP INDEX actuals_location_ingested")
                    counts[jit, "no index"] = await median_ms(args.rounds, lambda: store.refit_counts(conn, measured))
                finally:
                    await baseline.rollback()
            await conn.execute("RESET jit")
            before = f"> {args.timeout:g} s" if np.isinf(extras_before) else f"{extras_before:.1f} ms"
            n = len(measured)
            print(f"{years:g} y: {rows:,} actuals per plant, {chunks} chunks | plant_extras of {len(ids):,} plants: "
                  f"before {before}, after {extras_after:.1f} ms (x{extras_before / extras_after:.0f}) | "
                  f"refit_counts of {n} plants, ms per plant: JIT on {counts['on', 'no index'] / n:.2f} without the "
                  f"index, {counts['on'] / n:.2f} with it; JIT off {counts['off', 'no index'] / n:.2f}, "
                  f"{counts['off'] / n:.2f} (x{counts['on', 'no index'] / counts['off']:.0f} in all)", flush=True)
    finally:
        await conn.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--plants", type=int, default=10_000)
    parser.add_argument("--with-actuals", type=int, default=20)
    parser.add_argument("--years", default="0.25,1,3")
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--rounds", type=int, default=5)
    with local.scratch_database("pvcast_bench") as (scratch_url, _):
        asyncio.run(main(parser.parse_args(), local.database_url("owner", scratch_url.rsplit("/", 1)[1])))

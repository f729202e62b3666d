"""Reads of a plant's actuals that do not depend on their measurement time (migration 0016).

``store.plant_extras`` asks ``locations.actuals_since`` (set by a plant's first actuals) instead of
probing every chunk of the actuals hypertable, and ``store.refit_counts`` reads only the actuals
ingested after the latest calibration through the (location_id, ingested_at) index
(bench/bench_actuals_history.py measures both as the history grows).
"""

import asyncio

import pandas as pd
import pytest

from engine import data, schema, store

from storehelpers import demo_locations, drop_database, fresh_database, migrated_before, run


def real_actuals(location_id, days=3, start="2016-07-01"):
    """``days`` local days of real SERF East 2016 15-min power, as a plant's actuals."""
    power, _ = data.load_serf_east_2016(location_id, 1.0)
    power = power[power.index >= pd.Timestamp(start, tz="UTC")].iloc[:96 * days]
    return pd.DataFrame({"location_id": location_id, "time": power.index, "power_kw": power.to_numpy(float)})


def marks(url, ids):
    rows = run(url, lambda conn: conn.fetch(
        "SELECT location_id, actuals_since FROM locations WHERE location_id = ANY($1::bigint[])", ids))
    return {r["location_id"]: r["actuals_since"] for r in rows}


def test_a_plants_first_actuals_mark_it_and_later_ones_keep_the_mark(db_url):
    ids = run(db_url, lambda conn: store.upsert_locations(conn, demo_locations(" [actuals mark]")))["location_id"].tolist()
    assert set(marks(db_url, ids).values()) == {None}
    run(db_url, lambda conn: store.write_actuals(conn, real_actuals(ids[0], 2)))
    first = marks(db_url, ids)
    assert first[ids[0]] is not None and all(first[i] is None for i in ids[1:])
    assert run(db_url, lambda conn: store.plant_extras(conn, ids))["actuals"] == [ids[0]]
    both = pd.concat([real_actuals(ids[0], 3), real_actuals(ids[1], 1)])  # a re-sent day, a new day, a new plant
    run(db_url, lambda conn: store.write_actuals(conn, both))
    second = marks(db_url, ids)
    assert second[ids[0]] == first[ids[0]] and second[ids[1]] is not None
    assert run(db_url, lambda conn: store.plant_extras(conn, ids))["actuals"] == ids[:2]


def test_actuals_refused_whole_mark_no_plant(db_url):
    ids = run(db_url, lambda conn: store.upsert_locations(conn, demo_locations(" [refused mark]")))["location_id"].tolist()
    with pytest.raises(LookupError):  # one unknown plant: the whole write is refused, nothing stored or marked
        run(db_url, lambda conn: store.write_actuals(conn, pd.concat([real_actuals(ids[0]), real_actuals(10 ** 12)])))
    with pytest.raises(LookupError) as foreign:  # another tenant's plant: refused as unknown
        run(db_url, lambda conn: store.write_actuals(conn, real_actuals(ids[1]), tenant_id="someone-else"))
    assert (foreign.value.code, foreign.value.field) == ("unknown_location", "location_id")
    assert set(marks(db_url, ids).values()) == {None}
    assert run(db_url, lambda conn: store.plant_extras(conn, ids))["actuals"] == []


def test_refit_counts_read_the_new_actuals_through_the_arrival_index(db_url):
    """The count of actuals ingested after the calibration is an index range scan on (location_id, ingested_at)."""
    lid = int(run(db_url, lambda conn: store.upsert_locations(conn, demo_locations(" [arrival index]")))
              ["location_id"].iloc[0])
    run(db_url, lambda conn: store.write_actuals(conn, real_actuals(lid, 3)))
    plan = run(db_url, lambda conn: conn.fetch(
        "EXPLAIN (COSTS OFF) SELECT count(*) FROM actuals WHERE location_id = $1 AND ingested_at > $2",
        lid, pd.Timestamp("2026-01-01", tz="UTC")))
    assert "actuals_location_ingested" in "\n".join(r[0] for r in plan)


@pytest.fixture
def before_0016(server_url, tmp_path):
    """A database migrated only up to the files before 0016."""
    url = migrated_before(server_url, tmp_path, "0016", "pvcast_actuals_migration")
    yield url
    drop_database(url)


def test_migration_0016_marks_the_plants_that_already_have_actuals(before_0016):
    ids = run(before_0016, lambda conn: store.upsert_locations(conn, demo_locations(" [old]")))["location_id"].tolist()
    actuals = real_actuals(ids[1], 2)
    run(before_0016, lambda conn: conn.executemany(  # the write of the code before 0016 (no mark to set)
        "INSERT INTO actuals (location_id, time, power_kw) VALUES ($1, $2, $3)",
        list(zip(actuals["location_id"], actuals["time"], actuals["power_kw"]))))
    first_ingest = run(before_0016, lambda conn: conn.fetchval("SELECT min(ingested_at) FROM actuals"))
    assert "0016_actuals_arrival.sql" in run(before_0016, schema.apply_migrations)
    got = marks(before_0016, ids)
    assert got[ids[1]] == first_ingest and all(got[i] is None for i in ids if i != ids[1])
    assert run(before_0016, lambda conn: store.plant_extras(conn, ids))["actuals"] == [ids[1]]


@pytest.fixture
def skewed(server_url):
    """A migrated database of 200 plants, 20 of which have 730 calibration versions each, analysed."""
    url = fresh_database(server_url, "pvcast_extras_plan")
    run(url, schema.apply_migrations)
    frame = pd.concat([demo_locations(f" [{i}]").iloc[[0]] for i in range(200)], ignore_index=True)
    ids = run(url, lambda conn: store.upsert_locations(conn, frame))["location_id"].astype(int).tolist()

    async def versions(conn):
        await conn.execute("""
            INSERT INTO plant_calibrations (location_id, version, cutoff, window_start, window_end, n_samples,
                                            dc_scale, capacity_dc_kw, bands, intraday, diagnostics)
            SELECT id, v, now(), now(), now(), 0, 1, 1, '{}', '{}', '{}'
            FROM unnest($1::bigint[]) AS id, generate_series(1, 730) AS v""", ids[:20])
        for table in ("plant_calibrations", "location_planes", "location_horizons", "locations"):
            await conn.execute(f"ANALYZE {table}")
    run(url, versions)
    yield url, ids
    drop_database(url)


def test_plant_extras_probe_each_plant_by_index_when_few_plants_have_many_rows(skewed):
    """With 20 of 200 plants holding all 14,600 calibration rows, the statistics say every plant has 730: the
    former EXISTS probe was planned as a sequential scan of the table per plant (the whole table for each plant
    without a calibration). The probes must stay index reads, and name exactly the calibrated plants."""
    url, ids = skewed
    plan = "\n".join(r[0] for r in run(url, lambda conn: conn.fetch("EXPLAIN " + store.PLANT_EXTRAS, ids)))
    assert "Seq Scan on plant_calibrations" not in plan and "plant_calibrations_pkey" in plan, plan
    assert run(url, lambda conn: store.plant_extras(conn, ids))["calibrations"] == ids[:20]


def test_the_service_pools_run_without_jit(db_url):
    """configs/service.yaml database.jit false: every pooled session of the service has jit off (a hypertable's
    per-chunk plans made PostgreSQL compile hundreds of functions for a few-millisecond statement)."""
    import asyncpg

    from serve_app.settings import load_settings, pool_options
    from serve_app.writer import Writer

    settings = load_settings()
    assert settings["database"]["jit"] is False

    async def jit_of(options):
        pool = await asyncpg.create_pool(db_url, min_size=2, max_size=2, **options)
        try:
            return {await pool.fetchval("SHOW jit") for _ in range(4)}
        finally:
            await pool.close()
    assert asyncio.run(jit_of(pool_options(settings))) == {"off"}
    writer = Writer.func_or_class(settings).pool_options  # the Writer's own pool: the same options, its own timeout
    assert asyncio.run(jit_of(writer)) == {"off"}
    assert writer["command_timeout"] == settings["writer"]["command_timeout_seconds"]
    on = {**settings, "database": {**settings["database"], "jit": True}}
    assert asyncio.run(jit_of(pool_options(on))) == {run(db_url, lambda conn: conn.fetchval("SHOW jit"))}

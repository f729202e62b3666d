"""engine.store against the project's TimescaleDB: COPY writes, upserts, bitemporal reads, tasks."""

import asyncio
import uuid

import asyncpg
import numpy as np
import pandas as pd
import pytest

from engine import data, store
from engine.quantiles import QUANTILE_COLUMNS
from engine.validation import plant_error

from storehelpers import ISSUE, TRAINING, WINDOW, demo_locations, forecast_of, real_weather, run


def count(url, sql, *args):
    return run(url, lambda conn: conn.fetchval(sql, *args))


def new_plants(url, tag):
    """The demo plants under new names (a test's own locations)."""
    return run(url, lambda conn: store.upsert_locations(conn, demo_locations(f" [{tag}]")))


# --- locations

def test_upsert_locations_is_idempotent_by_name(db_url, plants):
    again = run(db_url, lambda conn: store.upsert_locations(conn, demo_locations()))
    assert again["location_id"].tolist() == plants["location_id"].tolist()
    assert count(db_url, "SELECT count(*) FROM locations WHERE name = ANY($1)", plants["name"].tolist()) == len(plants)


def test_upsert_locations_updates_the_configuration(db_url):
    locations = demo_locations(" [update]")
    first = run(db_url, lambda conn: store.upsert_locations(conn, locations))
    changed = run(db_url, lambda conn: store.upsert_locations(conn, locations.assign(tilt=30.0)))
    assert changed["location_id"].tolist() == first["location_id"].tolist()
    assert (changed["tilt"] == 30.0).all()


def test_fetch_locations_round_trips_the_configuration(db_url, plants):
    fetched = run(db_url, lambda conn: store.fetch_locations(conn, plants["location_id"].tolist()))
    expected = demo_locations()
    pd.testing.assert_frame_equal(fetched.drop(columns="location_id")[expected.columns].reset_index(drop=True),
                                  expected, check_dtype=False)
    assert np.isnan(fetched["export_limit_kw"].iloc[0])  # no limit: NULL -> NaN, not 0


def test_fetch_locations_of_unknown_ids_is_empty(db_url, plants):
    fetched = run(db_url, lambda conn: store.fetch_locations(conn, [int(plants["location_id"].max()) + 1000]))
    assert len(fetched) == 0 and "location_id" in fetched.columns


# --- weather

def test_real_weather_round_trips_with_nan_kept(db_url, plants):
    lid = int(plants["location_id"].iloc[0])
    weather = real_weather(lid)
    assert run(db_url, lambda conn: store.write_weather(conn, weather)) == len(weather)
    read = run(db_url, lambda conn: store.read_weather(conn, [lid], *WINDOW, WINDOW[1]))
    assert str(read["valid_time"].dt.tz) == "UTC"
    pd.testing.assert_frame_equal(read, weather[read.columns].astype(read.dtypes.to_dict()))
    assert read["dni"].isna().all()  # decompose from ghi later; never stored as 0


def test_rewriting_the_same_weather_is_idempotent(db_url, plants):
    lid = int(plants["location_id"].iloc[1])
    weather = real_weather(lid)
    run(db_url, lambda conn: store.write_weather(conn, weather))
    run(db_url, lambda conn: store.write_weather(conn, weather))
    assert count(db_url, "SELECT count(*) FROM weather WHERE location_id = $1", lid) == len(weather)


def test_read_weather_picks_the_latest_issue_at_or_before(db_url, plants):
    lid = int(plants["location_id"].iloc[2])
    first = real_weather(lid).assign(issue_time=pd.Timestamp("2013-06-30T00:00:00Z"), source="nwp")
    revised = first.assign(issue_time=pd.Timestamp("2013-06-30T12:00:00Z"), ghi=first["ghi"] * 0.5)
    run(db_url, lambda conn: store.write_weather(conn, first))
    run(db_url, lambda conn: store.write_weather(conn, revised))

    def read(issued_before):
        return run(db_url, lambda conn: store.read_weather(conn, [lid], *WINDOW, pd.Timestamp(issued_before)))
    np.testing.assert_array_equal(read("2013-06-30T11:59:59Z")["ghi"], first["ghi"])
    np.testing.assert_array_equal(read("2013-06-30T12:00:00Z")["ghi"], revised["ghi"])
    assert len(read("2013-06-29T23:59:59Z")) == 0
    assert count(db_url, "SELECT count(*) FROM weather WHERE location_id = $1", lid) == 2 * len(first)


def test_read_weather_of_many_locations_is_one_frame(db_url):
    locations = new_plants(db_url, "many")
    ids = locations["location_id"].tolist()
    run(db_url, lambda conn: store.write_weather(conn, pd.concat([real_weather(i) for i in ids], ignore_index=True)))
    read = run(db_url, lambda conn: store.read_weather(conn, ids, *WINDOW, WINDOW[1]))
    assert read.groupby("location_id").size().to_dict() == {i: len(real_weather(i)) for i in ids}


def test_the_forecast_read_of_weather_columns_is_the_full_read_bit_for_bit(db_url):
    """The Forecaster reads only the feature columns (binary COPY); its frame is the full (CSV) read's columns,
    values, NaN, dtypes and row order included, whichever issue or source wins a valid_time."""
    locations = new_plants(db_url, "binary read")
    ids = locations["location_id"].tolist()
    first = pd.concat([real_weather(i) for i in ids], ignore_index=True).assign(
        issue_time=pd.Timestamp("2013-06-30T00:00:00Z"), source="nwp_b", wind_speed=np.nan)
    revised = first.assign(issue_time=pd.Timestamp("2013-06-30T12:00:00Z"), ghi=first["ghi"] * 0.5,
                           dhi=first["ghi"] * 0.25, temp_air=first["temp_air"] + 1.0 / 3.0)
    tie = revised.assign(source="nwp_a", ghi=revised["ghi"] * 0.9, wind_speed=2.5, cloud_cover=40.0)
    late = revised.iloc[::3].assign(issue_time=pd.Timestamp("2013-07-02T00:00:00Z"), ghi=7.0)
    for frame in (first, revised, tie.iloc[::2], late):
        run(db_url, lambda conn, f=frame: store.write_weather(conn, f))
    columns = ("location_id", "valid_time", "ghi", "dni", "dhi", "temp_air", "wind_speed", "period_minutes")
    for issued in ("2013-06-30T06:00:00Z", "2013-06-30T12:00:00Z", "2013-07-03T00:00:00Z"):
        args = (ids[::-1], *WINDOW, pd.Timestamp(issued))
        full = run(db_url, lambda conn: store.read_weather(conn, *args))
        fast = run(db_url, lambda conn: store.read_weather(conn, *args, columns=columns))
        pd.testing.assert_frame_equal(fast, full[list(columns)], check_exact=True)
    assert full["source"].eq("nwp_a").sum() and full["ghi"].eq(7.0).sum() and fast["wind_speed"].isna().sum()


def test_weather_columns_that_are_not_weather_are_refused(db_url, plants):
    with pytest.raises(ValueError, match="^columns: \\['power_kw'\\] are not weather columns"):
        run(db_url, lambda conn: store.read_weather(conn, [1], *WINDOW, WINDOW[1], columns=("location_id", "power_kw")))


def test_a_binary_copy_payload_reads_back_as_the_columns_written():
    """binary_rows is the inverse of binary_copy (the write's payload builder) and refuses a payload of another
    layout instead of misreading it."""
    ids, values = np.array([3, -1, 2**40], dtype="int64"), np.array([0.1, np.nan, -7.25])
    payload = store.binary_copy([("a", ids, ">i8"), ("b", values, ">f8")])
    rows = store.binary_rows(payload, [("a", ">i8"), ("b", ">f8")])
    np.testing.assert_array_equal(rows["a"].astype("int64"), ids)
    np.testing.assert_array_equal(rows["b"].astype("float64"), values)
    with pytest.raises(ValueError, match="not tuples of"):
        store.binary_rows(payload, [("a", ">i8"), ("b", ">i4")])


def test_a_binary_copy_payload_is_postgresql_binary_copy_format():
    """Byte for byte what PostgreSQL's documented format gives, written tuple by tuple with struct: the signature,
    flags and extension length, per tuple the field count and each field's length and big-endian value, the
    trailer."""
    import struct
    ids, minutes, values = np.array([7, 2**33, -5]), np.array([15, 30, 2880]), np.array([0.0, 1.5e-300, 49_999.75])
    expected = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0) + b"".join(
        struct.pack(">hiqiiid", 3, 8, i, 4, m, 8, v) for i, m, v in zip(ids, minutes, values)) + struct.pack(">h", -1)
    payload = store.binary_copy([("id", ids, ">i8"), ("minutes", minutes, ">i4"), ("value", values, ">f8")])
    assert bytes(payload) == expected


def test_weather_of_an_unknown_location_is_refused(db_url, plants):
    weather = real_weather(int(plants["location_id"].max()) + 1000)
    with pytest.raises(LookupError, match="^location_id: not a known location"):
        run(db_url, lambda conn: store.write_weather(conn, weather))


def test_bad_weather_is_refused_before_writing(db_url, plants):
    lid = int(plants["location_id"].iloc[3])
    weather = real_weather(lid, WINDOW[0], WINDOW[0] + pd.Timedelta(hours=6))
    weather.loc[4, "ghi"] = -5.0
    with pytest.raises(ValueError, match=r"^ghi: row 4 is out of range \[0, 2000\]"):
        run(db_url, lambda conn: store.write_weather(conn, weather))
    assert count(db_url, "SELECT count(*) FROM weather WHERE location_id = $1 AND valid_time <= $2",
                 lid, WINDOW[0] + pd.Timedelta(hours=6)) == 0


# --- forecasts

def test_write_forecasts_copies_every_value(db_url):
    locations = new_plants(db_url, "copy")
    runs, forecast = forecast_of(locations)
    run_ids = run(db_url, lambda conn: store.write_forecasts(conn, runs, forecast))
    assert sorted(run_ids) == sorted(locations["location_id"].tolist())
    for lid, run_id in run_ids.items():
        stored, frame = run(db_url, lambda conn: store.read_forecast(conn, lid, None, None, run_id))
        expected = forecast[forecast["location_id"] == lid].reset_index(drop=True)
        pd.testing.assert_frame_equal(frame, expected.astype(frame.dtypes.to_dict()))
        assert stored["issue_time"] == ISSUE and stored["n_steps"] == 192 and stored["timings"] == {"predict_s": 0.1}


def test_a_write_in_concurrent_parts_stores_what_one_write_stores(db_url):
    """The Writer's parts (store.forecast_parts, written at once on a pool) hold whole plants, each row with its
    run; the stored values are exactly those of the same frames written in one transaction."""
    locations = new_plants(db_url, "parts")
    runs, forecast = forecast_of(locations)
    forecast = forecast.sample(frac=1.0, random_state=7).reset_index(drop=True)  # rows in any order
    parts = store.forecast_parts(runs, forecast, 3)
    assert [len(r) for r, _ in parts] == [2, 2, 2]  # the 6 demo plants
    assert pd.concat([r for r, _ in parts]).equals(runs) and sum(len(f) for _, f in parts) == len(forecast)
    for part_runs, part_forecast in parts:
        assert set(part_forecast["location_id"]) == set(part_runs["location_id"])
    assert store.forecast_parts(runs, forecast, 1)[0][0] is runs

    async def write_parts(url):
        pool = await asyncpg.create_pool(url, min_size=1, max_size=3)
        try:
            written = await asyncio.gather(*[store.write_forecasts(pool, r, f) for r, f in parts])
        finally:
            await pool.close()
        return {k: v for part in written for k, v in part.items()}
    in_parts = asyncio.run(write_parts(db_url))
    at_once = run(db_url, lambda conn: store.write_forecasts(
        conn, runs.assign(issue_time=ISSUE + pd.Timedelta(hours=1)), forecast))
    assert sorted(in_parts) == sorted(at_once) == sorted(locations["location_id"].tolist())
    for lid in in_parts:
        _, a = run(db_url, lambda conn: store.read_forecast(conn, lid, None, None, in_parts[lid]))
        _, b = run(db_url, lambda conn: store.read_forecast(conn, lid, None, None, at_once[lid]))
        pd.testing.assert_frame_equal(a, b, check_exact=True)


def test_a_forecast_row_without_its_run_is_refused_in_parts_too(db_url):
    locations = new_plants(db_url, "parts orphan")
    runs, forecast = forecast_of(locations)
    parts = store.forecast_parts(runs.iloc[1:], forecast, 2)  # the first plant's rows have no run row
    with pytest.raises(ValueError, match="has forecast rows but no run row"):
        for part_runs, part_forecast in parts:
            run(db_url, lambda conn: store.write_forecasts(conn, part_runs, part_forecast))


def test_rewriting_the_same_run_is_idempotent(db_url):
    locations = new_plants(db_url, "rewrite")
    runs, forecast = forecast_of(locations)
    paths = {}
    first = run(db_url, lambda conn: store.write_forecasts(conn, runs, forecast, paths))
    assert paths["new_rows"] == len(forecast) and paths["rewritten_rows"] == 0
    again = run(db_url, lambda conn: store.write_forecasts(conn, runs, forecast, paths))
    assert again == first and paths["new_rows"] == 0 and paths["rewritten_rows"] == len(forecast)
    assert count(db_url, "SELECT count(*) FROM forecasts WHERE run_id = ANY($1)", list(first.values())) == len(forecast)


def test_a_batch_of_new_and_rewritten_runs_copies_the_new_and_replaces_the_rewritten(db_url):
    """New runs' rows go by direct COPY, rows of runs that existed through the upsert; both store exactly the frame."""
    locations = new_plants(db_url, "mixed")
    first = run(db_url, lambda conn: store.write_forecasts(conn, *forecast_of(locations.iloc[:2])))
    runs, forecast = forecast_of(locations, scale=0.5)
    timings = {}
    run_ids = run(db_url, lambda conn: store.write_forecasts(conn, runs, forecast, timings))
    assert {lid: run_ids[lid] for lid in first} == first and len(set(run_ids.values())) == len(locations)
    assert timings["rewritten_rows"] == 2 * 192 and timings["new_rows"] == len(forecast) - 2 * 192
    for lid, run_id in run_ids.items():
        _, frame = run(db_url, lambda conn: store.read_forecast(conn, lid, None, None, run_id))
        expected = forecast[forecast["location_id"] == lid].reset_index(drop=True)
        pd.testing.assert_frame_equal(frame, expected.astype(frame.dtypes.to_dict()))
    assert count(db_url, "SELECT count(*) FROM forecasts WHERE run_id = ANY($1)", list(run_ids.values())) == len(forecast)


def test_a_later_run_never_overwrites_an_earlier_one(db_url):
    locations = new_plants(db_url, "bitemporal")
    lid = int(locations["location_id"].iloc[0])
    early = forecast_of(locations, ISSUE)
    late = forecast_of(locations, ISSUE + pd.Timedelta(hours=6), scale=0.5)
    early_ids = run(db_url, lambda conn: store.write_forecasts(conn, *early))
    late_ids = run(db_url, lambda conn: store.write_forecasts(conn, *late))
    assert early_ids[lid] != late_ids[lid]
    _, kept = run(db_url, lambda conn: store.read_forecast(conn, lid, None, None, early_ids[lid]))
    np.testing.assert_array_equal(kept["p50"], early[1].loc[early[1]["location_id"] == lid, "p50"])
    latest, _ = run(db_url, lambda conn: store.read_forecast(conn, lid, None, None))
    assert latest["run_id"] == late_ids[lid]
    # the run row alone (an accuracy read's latest end) is the same run as the values' read
    assert run(db_url, lambda conn: store.read_run(conn, lid, None, None)) == latest


def test_latest_run_is_chosen_within_the_window(db_url):
    locations = new_plants(db_url, "window")
    lid = int(locations["location_id"].iloc[0])
    early_ids = run(db_url, lambda conn: store.write_forecasts(conn, *forecast_of(locations, ISSUE)))
    run(db_url, lambda conn: store.write_forecasts(conn, *forecast_of(locations, ISSUE + pd.Timedelta(days=3))))
    window = (ISSUE + pd.Timedelta(hours=1), ISSUE + pd.Timedelta(hours=5))
    chosen, frame = run(db_url, lambda conn: store.read_forecast(conn, lid, *window))
    assert chosen["run_id"] == early_ids[lid]
    assert run(db_url, lambda conn: store.read_run(conn, lid, *window)) == chosen
    assert len(frame) == 17 and frame["valid_time"].min() == window[0] and frame["valid_time"].max() == window[1]


def test_a_write_that_fails_midway_leaves_no_run(db_url):
    locations = new_plants(db_url, "atomic")
    victim = int(locations["location_id"].iloc[-1])
    runs, forecast = forecast_of(locations)

    async def write_with_failing_row(conn):
        # a row-level trigger refuses the victim's values: the run upsert already happened
        await conn.execute(f"""
            CREATE FUNCTION refuse_victim() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN IF NEW.location_id = {victim} THEN RAISE EXCEPTION 'disk full (simulated)'; END IF;
                  RETURN NEW; END $$;
            CREATE TRIGGER refuse_victim BEFORE INSERT ON forecasts FOR EACH ROW EXECUTE FUNCTION refuse_victim();""")
        try:
            with pytest.raises(asyncpg.RaiseError, match="disk full"):
                await store.write_forecasts(conn, runs, forecast)
        finally:
            await conn.execute("DROP TRIGGER refuse_victim ON forecasts; DROP FUNCTION refuse_victim();")
    run(db_url, write_with_failing_row)
    ids = locations["location_id"].tolist()
    assert count(db_url, "SELECT count(*) FROM forecast_runs WHERE location_id = ANY($1)", ids) == 0
    assert count(db_url, "SELECT count(*) FROM forecasts WHERE location_id = ANY($1)", ids) == 0


def test_forecast_of_an_unknown_location_is_refused(db_url, plants):
    ghost = demo_locations().iloc[:1].assign(location_id=int(plants["location_id"].max()) + 1000)
    with pytest.raises(LookupError, match="^location_id: not a known location"):
        run(db_url, lambda conn: store.write_forecasts(conn, *forecast_of(ghost)))


def test_reading_an_unknown_run_is_a_lookup_error(db_url, plants):
    lid = int(plants["location_id"].iloc[0])
    with pytest.raises(LookupError, match=f"location_id {lid}"):
        run(db_url, lambda conn: store.read_forecast(conn, lid, None, None, 10**12))


@pytest.mark.parametrize("bucket, n", [("1 hour", 48), ("1 day", 2)])
def test_energy_buckets_add_up_to_the_run(db_url, bucket, n):
    locations = new_plants(db_url, f"energy {bucket}")
    runs, forecast = forecast_of(locations)
    run_ids = run(db_url, lambda conn: store.write_forecasts(conn, runs, forecast))
    lid = int(locations["location_id"].iloc[1])
    energy = run(db_url, lambda conn: store.read_energy(conn, run_ids[lid], bucket))
    kw = forecast[forecast["location_id"] == lid]
    assert len(energy) == n and list(energy.columns) == ["time", *QUANTILE_COLUMNS]
    for q in QUANTILE_COLUMNS:  # a 15-min step of P kW holds P x 0.25 kWh
        assert energy[q].sum() == pytest.approx(kw[q].sum() * 0.25, rel=1e-9)
    if bucket == "1 day":  # 48 h from local midnight = 2 days of the plant's time zone (Denver, UTC-6)
        assert energy["time"].iloc[1] == pd.Timestamp("2013-07-02T06:00:00Z")


def test_forecasts_join_real_actuals_by_time(db_url):
    locations = new_plants(db_url, "actuals")
    lid = int(locations["location_id"].iloc[0])
    power, _ = data.load_power(TRAINING)
    power = power[WINDOW[0]:WINDOW[1]].dropna()
    actuals = pd.DataFrame({"location_id": lid, "time": power.index, "power_kw": power.to_numpy()})
    assert run(db_url, lambda conn: store.write_actuals(conn, actuals)) == len(actuals)
    run(db_url, lambda conn: store.write_forecasts(conn, *forecast_of(locations)))
    joined = run(db_url, lambda conn: store.read_forecast_with_actuals(conn, lid, *WINDOW))
    assert list(joined.columns) == ["run_id", "issue_time", "forecast_type", "valid_time", "horizon_minutes",
                                    *QUANTILE_COLUMNS, "power_kw"]
    measured = joined.dropna(subset=["power_kw"])
    assert len(measured) > 100
    np.testing.assert_array_equal(measured["power_kw"], power.reindex(pd.DatetimeIndex(measured["valid_time"])))


def test_rewriting_the_same_actuals_is_idempotent(db_url, plants):
    lid = int(plants["location_id"].iloc[0])
    power, _ = data.load_power(TRAINING)
    power = power["2013-08-01":"2013-08-02"].dropna()
    actuals = pd.DataFrame({"location_id": lid, "time": power.index, "power_kw": power.to_numpy()})
    run(db_url, lambda conn: store.write_actuals(conn, actuals))
    run(db_url, lambda conn: store.write_actuals(conn, actuals))
    assert count(db_url, "SELECT count(*) FROM actuals WHERE location_id = $1 AND time >= $2 AND time <= $3",
                 lid, power.index[0], power.index[-1]) == len(actuals)


# --- tasks

def test_task_status_and_progress_are_its_stored_runs(db_url):
    locations = new_plants(db_url, "task lifecycle")
    ids = locations["location_id"].tolist()
    task_id = str(uuid.uuid4())
    runs, forecast = forecast_of(locations.iloc[:2])

    async def lifecycle(conn):
        await store.create_task(conn, task_id, {"location_ids": ids[:3], "horizon_hours": 48}, 3)
        queued = await store.read_task(conn, task_id)
        await store.update_task(conn, task_id, status="running")
        written = await store.write_forecasts(conn, runs.assign(task_id=task_id), forecast)
        await store.update_task(conn, task_id, errors={ids[0]: plant_error("batch_failed", "batch failed: stale"),
                                                       ids[2]: plant_error("no_weather", "no weather")})
        running = await store.read_task(conn, task_id)
        await store.update_task(conn, task_id, status="succeeded", timings={"wall_s": 1.5})  # a wrong claim
        return queued, running, written, await store.read_task(conn, task_id)
    queued, running, written, done = run(db_url, lifecycle)
    assert queued["status"] == "queued" and queued["started_at"] is None and queued["progress_total"] == 3
    assert queued["run_ids"] == {} and queued["progress_done"] == 0
    assert running["status"] == "running" and running["progress_done"] == 3
    # the stored runs, and the reasons of exactly the plants without one; status from the runs
    assert done["run_ids"] == {str(k): v for k, v in written.items()} and len(written) == 2
    assert done["errors"] == {str(ids[2]): {"code": "no_weather", "message": "no weather"}}
    assert done["status"] == "partial"
    assert done["timings"] == {"wall_s": 1.5} and done["request"]["horizon_hours"] == 48
    assert done["created_at"] <= done["started_at"] <= done["finished_at"] and done["lease_expires_at"] is None


def test_a_task_status_follows_its_runs(db_url):
    assert [store.task_status(n, 3) for n in (0, 1, 3)] == ["failed", "partial", "succeeded"]


def test_a_lease_is_claimed_only_once_it_expired(db_url):
    task_id = str(uuid.uuid4())

    async def leases(conn):
        await store.create_task(conn, task_id, {"location_ids": [1]}, 1, owner="a", lease_seconds=1.0)
        await store.update_task(conn, task_id, status="running")
        early = await store.claim_expired_tasks(conn, "b", 30, limit=1000)
        held_early = await store.renew_leases(conn, "a", [task_id], 1.0)
        await asyncio.sleep(1.5)
        late = [t for t in await store.claim_expired_tasks(conn, "b", 30, limit=1000) if t["task_id"] == task_id]
        held_late = await store.renew_leases(conn, "a", [task_id], 1.0)  # b holds a live lease now
        await store.release_task(conn, task_id, "b", plant_error("interrupted", "interrupted: test"))
        again = [t for t in await store.claim_expired_tasks(conn, "c", 30, limit=1000) if t["task_id"] == task_id]
        return early, held_early, late, held_late, again, await store.read_task(conn, task_id)
    early, held_early, late, held_late, again, task = run(db_url, leases)
    assert task_id not in [t["task_id"] for t in early] and held_early == [task_id]
    assert len(late) == 1 and late[0]["attempts"] == 2 and late[0]["request"] == {"location_ids": [1]}
    assert late[0]["tenant_id"] == "default" and held_late == []
    assert len(again) == 1 and again[0]["attempts"] == 3  # released: claimable at once
    assert task["status"] == "running" and task["errors"] == {"task": {"code": "interrupted",
                                                                        "message": "interrupted: test"}}


def test_a_finished_task_has_no_lease_and_is_never_claimed(db_url):
    task_id = str(uuid.uuid4())

    async def finished(conn):
        await store.create_task(conn, task_id, {}, 1, owner="a", lease_seconds=0.0)
        await store.update_task(conn, task_id, status="failed", errors={"task": plant_error("gave_up", "no plant")})
        return await store.claim_expired_tasks(conn, "b", 30, limit=1000), await store.read_task(conn, task_id)
    claimed, task = run(db_url, finished)
    assert task_id not in [t["task_id"] for t in claimed]
    assert task["status"] == "failed" and task["lease_expires_at"] is None


def test_regenerating_an_issue_time_keeps_both_versions_and_reads_the_latest(db_url):
    locations = new_plants(db_url, "regenerate")
    lid = int(locations["location_id"].iloc[0])
    runs, forecast = forecast_of(locations)
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    v1 = run(db_url, lambda conn: store.write_forecasts(conn, runs.assign(task_id=first), forecast))
    v2 = run(db_url, lambda conn: store.write_forecasts(conn, runs.assign(task_id=second), forecast))
    again = run(db_url, lambda conn: store.write_forecasts(conn, runs.assign(task_id=second), forecast))
    assert v1[lid] != v2[lid] and again == v2  # a new task: a new version; the same task: its own run
    latest, _ = run(db_url, lambda conn: store.read_forecast(conn, lid, None, None))
    assert latest["run_id"] == v2[lid] and latest["task_id"] == second
    assert run(db_url, lambda conn: store.task_runs(conn, first)) == v1


def test_the_read_selects_the_forecast_type(db_url):
    locations = new_plants(db_url, "forecast type")
    lid = int(locations["location_id"].iloc[0])
    ml = run(db_url, lambda conn: store.write_forecasts(conn, *forecast_of(locations, forecast_type="ml")))
    physics = run(db_url, lambda conn: store.write_forecasts(conn, *forecast_of(locations, forecast_type="physics")))
    for kind, ids in (("ml", ml), ("physics", physics)):
        chosen, _ = run(db_url, lambda conn: store.read_forecast(conn, lid, None, None, forecast_type=kind))
        assert chosen["run_id"] == ids[lid] and chosen["forecast_type"] == kind
    with pytest.raises(LookupError, match="forecast_type physics"):
        run(db_url, lambda conn: store.read_forecast(conn, lid, None, None, ml[lid], forecast_type="physics"))


@pytest.mark.parametrize("task_id", [str(uuid.uuid4()), "not-a-uuid"])
def test_unknown_task_reads_none(db_url, task_id):
    assert run(db_url, lambda conn: store.read_task(conn, task_id)) is None


def test_updating_an_unknown_task_is_a_lookup_error(db_url):
    with pytest.raises(LookupError, match="task_id"):
        run(db_url, lambda conn: store.update_task(conn, str(uuid.uuid4()), status="running"))


def test_pool_is_accepted_like_a_connection(db_url, plants):
    async def with_pool(_):
        pool = await asyncpg.create_pool(db_url, min_size=1, max_size=2)
        try:
            return await store.fetch_locations(pool, plants["location_id"].tolist())
        finally:
            await pool.close()
    assert len(run(db_url, with_pool)) == len(plants)

"""Plant calibrations in the real database: versions, latest reads, actuals up to a time, runs' versions."""

import asyncio

import asyncpg
import numpy as np
import pandas as pd
import pytest

from engine import adaptation, data, modelio, resources, store

from storehelpers import TRAINING, demo_locations, run

CUTOFF = pd.Timestamp("2016-07-22T00:00:00Z")


@pytest.fixture(scope="module")
def calibration():
    """A real fit: SERF East 2016 entered with capacity_dc_kw = capacity_ac_kw, actuals before 2016-07-22."""
    power, weather = data.load_serf_east_2016(1, TRAINING["data"]["wind_speed_ms"])
    location = data.site_location(TRAINING["site"], 1, 5.5, 5.5)
    actuals = pd.DataFrame({"time": power.index, "power_kw": power.to_numpy()})
    model = modelio.load_model(resources.folder("models"), "global")
    fit = adaptation.fit_calibration(location, weather, actuals, model, CUTOFF, tau_hours=1.0)
    assert fit["ok"], fit["reason"]
    return fit


@pytest.fixture(scope="module")
def location_id(db_url):
    saved = run(db_url, lambda conn: store.upsert_locations(conn, demo_locations(" [calibrations]")))
    return int(saved["location_id"].iloc[0])


def test_versions_count_up_and_latest_is_read(db_url, location_id, calibration):
    first = run(db_url, lambda conn: store.write_calibration(conn, location_id, calibration))
    second = run(db_url, lambda conn: store.write_calibration(conn, location_id, {**calibration, "dc_scale": 1.5}))
    assert second == first + 1
    latest = run(db_url, lambda conn: store.read_calibration(conn, location_id))
    older = run(db_url, lambda conn: store.read_calibration(conn, location_id, first))
    assert latest["version"] == second and latest["dc_scale"] == 1.5
    assert older["dc_scale"] == pytest.approx(calibration["dc_scale"], rel=1e-12)
    assert older["bands"]["offsets"] == calibration["bands"]["offsets"]
    assert older["cutoff"] == CUTOFF and older["diagnostics"]["days"] == calibration["diagnostics"]["days"]
    assert older["shading"]["elevation"] == calibration["shading"]["elevation"]  # the fitted skyline, stored
    many = run(db_url, lambda conn: store.read_calibrations(conn, [location_id, 10 ** 12]))
    assert list(many) == [location_id] and many[location_id]["version"] == second


def test_plant_extras_name_the_calibrated_plants_a_pass_reads_calibrations_of(db_url, calibration):
    """A forecast pass reads calibrations only of the plants ``store.plant_extras`` names (exactly those with one),
    and checks the refit policy only of those with actuals."""
    ids = run(db_url, lambda conn: store.upsert_locations(conn, demo_locations(" [extras of calibrations]")))["location_id"].tolist()
    before = run(db_url, lambda conn: store.plant_extras(conn, ids))
    run(db_url, lambda conn: store.write_calibration(conn, ids[1], calibration))
    run(db_url, lambda conn: store.write_actuals(conn, pd.DataFrame({
        "location_id": ids[0], "time": pd.date_range("2016-07-01T12:00Z", periods=3, freq="15min"),
        "power_kw": [1.0, 2.0, 0.0]})))
    after = run(db_url, lambda conn: store.plant_extras(conn, [*ids, 10 ** 12]))
    assert before["calibrations"] == [] and after["calibrations"] == [ids[1]]
    assert before["actuals"] == [] and after["actuals"] == [ids[0]]
    assert list(run(db_url, lambda conn: store.read_calibrations(conn, [*ids, 10 ** 12]))) == [ids[1]]


def test_unknown_location_and_failed_fit_are_refused(db_url, calibration):
    with pytest.raises(LookupError):
        run(db_url, lambda conn: store.write_calibration(conn, 10 ** 12, calibration))
    with pytest.raises(ValueError, match="not a successful fit"):
        run(db_url, lambda conn: store.write_calibration(conn, 1, {"ok": False, "reason": "3 days"}))
    assert run(db_url, lambda conn: store.read_calibration(conn, 10 ** 12)) is None


def test_a_refusal_is_kept_replaced_and_removed_by_the_next_version(db_url, calibration):
    """The latest refused fit of a plant is read back with its code (one per plant: the next refusal replaces
    it), its diagnostics decoded; storing a version removes it; unknown and other tenants' plants, and a code
    that is not one of engine.tuning.REFUSAL_CODES, are refused."""
    saved = run(db_url, lambda conn: store.upsert_locations(conn, demo_locations(" [refusals]")))
    lid = int(saved["location_id"].iloc[0])
    assert run(db_url, lambda conn: store.read_refusal(conn, lid)) is None
    clock = {"offset_hours": 1.02, "recent_offset_hours": 0.98, "shifted": True, "night_share": float("nan")}
    run(db_url, lambda conn: store.write_refusal(conn, lid, CUTOFF, "clock: 1 h off", {"clock": clock}, code="clock"))
    run(db_url, lambda conn: store.write_refusal(conn, lid, CUTOFF + pd.Timedelta(days=1), "3 days", {"days": 3},
                                                 code="too_few_days"))
    got = run(db_url, lambda conn: store.read_refusal(conn, lid))
    assert got["reason"] == "3 days" and got["diagnostics"] == {"days": 3} and got["code"] == "too_few_days"
    assert got["cutoff"] == CUTOFF + pd.Timedelta(days=1)
    run(db_url, lambda conn: store.write_refusal(conn, lid, CUTOFF, "clock: 1 h off", {"clock": clock}, code="clock"))
    got = run(db_url, lambda conn: store.read_refusal(conn, lid))
    assert got["diagnostics"]["clock"]["night_share"] is None and got["code"] == "clock"
    assert run(db_url, lambda conn: store.read_refusal(conn, lid, tenant_id="nobody")) is None
    with pytest.raises(LookupError) as foreign:  # another tenant's plant: refused as an unknown one (404)
        run(db_url, lambda conn: store.write_refusal(conn, lid, CUTOFF, "x", {}, code="clock", tenant_id="nobody"))
    assert (foreign.value.code, foreign.value.field) == ("unknown_location", "location_id")
    with pytest.raises(ValueError, match="code"):
        run(db_url, lambda conn: store.write_refusal(conn, lid, CUTOFF, "x", {}, code="clock: 1 h off"))
    with pytest.raises(LookupError):
        run(db_url, lambda conn: store.write_refusal(conn, 10 ** 12, CUTOFF, "x", {}, code="clock"))
    run(db_url, lambda conn: store.write_calibration(conn, lid, calibration))
    assert run(db_url, lambda conn: store.read_refusal(conn, lid)) is None


def test_read_actuals_window_is_half_open(db_url, location_id):
    """[start, end): a forecast issued at T passes end = T and never reads the sample at T."""
    times = pd.date_range("2016-07-01T18:00Z", periods=8, freq="15min")
    run(db_url, lambda conn: store.write_actuals(conn, pd.DataFrame(
        {"location_id": location_id, "time": times, "power_kw": np.arange(8.0)})))
    got = run(db_url, lambda conn: store.read_actuals(conn, [location_id], times[1], times[4]))
    assert list(got["time"]) == list(times[1:4])
    assert len(run(db_url, lambda conn: store.read_actuals(conn, [location_id], None, None))) == 8
    counts = run(db_url, lambda conn: store.count_actuals_after(conn, [location_id]))
    assert counts[location_id] == 7  # sent after the stored calibrations (before their cutoff): new to a refit


def test_actuals_keep_their_averaging_period_and_default_to_instants(db_url, location_id):
    """period_minutes is stored and read back; rows sent without it are instantaneous (0); a re-sent row
    replaces the period too."""
    times = pd.date_range("2016-06-01T18:00Z", periods=3, freq="1h")
    run(db_url, lambda conn: store.write_actuals(conn, pd.DataFrame(
        {"location_id": location_id, "time": times, "power_kw": [1.0, 2.0, 3.0], "period_minutes": [60, 60, 5]})))
    run(db_url, lambda conn: store.write_actuals(conn, pd.DataFrame(
        {"location_id": location_id, "time": times[2:] + pd.Timedelta("1h"), "power_kw": [4.0]})))
    got = run(db_url, lambda conn: store.read_actuals(conn, [location_id], times[0], times[-1] + pd.Timedelta("2h")))
    assert got["period_minutes"].tolist() == [60, 60, 5, 0] and got["period_minutes"].dtype == "int64"
    run(db_url, lambda conn: store.write_actuals(conn, pd.DataFrame(
        {"location_id": location_id, "time": times[:1], "power_kw": [1.0], "period_minutes": [15]})))
    got = run(db_url, lambda conn: store.read_actuals(conn, [location_id], times[0], times[1]))
    assert got["period_minutes"].tolist() == [15]
    with pytest.raises(ValueError, match="period_minutes"):
        run(db_url, lambda conn: store.write_actuals(conn, pd.DataFrame(
            {"location_id": location_id, "time": times[:1], "power_kw": [1.0], "period_minutes": [-15]})))


def test_runs_record_their_calibration_version(db_url, location_id):
    issue = pd.Timestamp("2016-07-22T12:00:00Z")
    valid = pd.date_range(issue + pd.Timedelta("15min"), periods=4, freq="15min")
    forecast = pd.DataFrame({"location_id": location_id, "valid_time": valid, "p10": 0.0, "p25": 0.1, "p50": 0.2,
                             "p75": 0.3, "p90": 0.4, "horizon_minutes": [15, 30, 45, 60]})
    runs = pd.DataFrame({"location_id": [location_id], "issue_time": [issue], "model_id": ["global"],
                         "model_version": ["global@test"], "forecast_type": ["ml"], "resolution_minutes": [15],
                         "horizon_hours": [1], "task_id": [None], "timings": [{}], "calibration_version": [2]})
    ids = run(db_url, lambda conn: store.write_forecasts(conn, runs, forecast))
    stored, _ = run(db_url, lambda conn: store.read_forecast(conn, location_id, None, None, ids[location_id]))
    assert stored["calibration_version"] == 2
    ids = run(db_url, lambda conn: store.write_forecasts(conn, runs.drop(columns="calibration_version"), forecast))
    stored, _ = run(db_url, lambda conn: store.read_forecast(conn, location_id, None, None, ids[location_id]))
    assert stored["calibration_version"] is None


def test_daylight_actuals_are_counted_from_the_latest_calibration_by_arrival(db_url, calibration):
    """New to a refit: daylight actuals that arrived after the latest calibration was stored, whatever their time
    (yesterday's data sent after today's fit; a past period replayed after a fit with a later cutoff)."""
    saved = run(db_url, lambda conn: store.upsert_locations(conn, demo_locations(" [refit count]")))
    lid = int(saved["location_id"].iloc[0])
    times = pd.date_range("2016-07-21T18:00Z", periods=16, freq="15min")
    power = np.where(np.arange(16) % 2 == 0, 1.0, 0.0)  # half of them zero: not counted as daylight

    def send(t, p):
        run(db_url, lambda conn: store.write_actuals(conn, pd.DataFrame({"location_id": lid, "time": t,
                                                                         "power_kw": p})))

    def count():
        return run(db_url, lambda conn: store.count_actuals_after(conn, [lid]))[lid]

    send(times[:8], power[:8])
    assert count() == 4  # no calibration: all
    run(db_url, lambda conn: store.write_calibration(conn, lid, {**calibration,
                                                                 "cutoff": pd.Timestamp("2030-01-01T00:00Z")}))
    assert count() == 0
    send(times[8:], power[8:])  # measured before the cutoff, sent after the fit: new
    assert count() == 4
    send(times[:8], power[:8])  # the same values sent again: nothing new
    assert count() == 4



def test_refit_counts_give_local_days_with_daylight_actuals_and_the_latest_actual(db_url, calibration):
    """What the refit policy decides on (engine.adaptation.refits_due): the days a first fit could use are the
    plant's LOCAL days with daylight actuals (an evening in Denver is the next UTC day), the latest actual is the
    policy's cutoff, and a calibration resets the new daylight count (the days only matter to a first fit)."""
    saved = run(db_url, lambda conn: store.upsert_locations(conn, demo_locations(" [refit counts]")))
    row = saved.iloc[0]
    lid = int(row["location_id"])
    local = pd.DatetimeIndex(["2016-07-21T14:00", "2016-07-21T19:00", "2016-07-23T03:00"])  # 2 UTC days, 1 local
    times = local.tz_localize(row["timezone"]).tz_convert("UTC")
    run(db_url, lambda conn: store.write_actuals(conn, pd.DataFrame(
        {"location_id": lid, "time": times, "power_kw": [1.0, 0.5, 0.0]})))  # the night value: no day
    got = run(db_url, lambda conn: store.refit_counts(conn, [lid, 10 ** 12]))
    assert got["location_id"].tolist() == [lid]
    assert got.iloc[0][["new_daylight", "calibrated", "daylight_days"]].tolist() == [2, False, 1]
    assert got.iloc[0]["last_time"] == times[-1]
    run(db_url, lambda conn: store.write_calibration(conn, lid, calibration))
    got = run(db_url, lambda conn: store.refit_counts(conn, [lid]))
    assert got.iloc[0][["new_daylight", "calibrated", "tuned", "daylight_days"]].tolist() == [0, True, True, 0]


def test_refit_counts_give_an_untuned_calibrations_new_local_days(db_url, calibration):
    """While the latest calibration is untuned (bands before the tuning), the days counted are the local days with
    daylight actuals after the local day of its last actual (diagnostics.actuals_end): refits_due refits it on each
    new day. A tuned calibration after it scans nothing again."""
    saved = run(db_url, lambda conn: store.upsert_locations(conn, demo_locations(" [untuned counts]")))
    row = saved.iloc[0]
    lid = int(row["location_id"])
    local = pd.DatetimeIndex(["2016-07-21T10:00", "2016-07-21T14:00", "2016-07-22T09:00", "2016-07-22T23:00",
                              "2016-07-23T12:00"])
    times = local.tz_localize(row["timezone"]).tz_convert("UTC")
    run(db_url, lambda conn: store.write_actuals(conn, pd.DataFrame(
        {"location_id": lid, "time": times[:2], "power_kw": 1.0})))
    untuned = {**calibration, "diagnostics": {**calibration["diagnostics"], "tuned": False,
                                              "actuals_end": times[1].isoformat()}}
    run(db_url, lambda conn: store.write_calibration(conn, lid, untuned))
    counted = lambda: run(db_url, lambda conn: store.refit_counts(conn, [lid])).iloc[0]  # noqa: E731
    assert counted()[["calibrated", "tuned", "daylight_days"]].tolist() == [True, False, 0]
    run(db_url, lambda conn: store.write_actuals(conn, pd.DataFrame(  # 07-22 (daylight), its night, 07-23
        {"location_id": lid, "time": times[2:], "power_kw": [1.0, 0.0, 1.0]})))
    assert counted()[["tuned", "daylight_days"]].tolist() == [False, 2]
    run(db_url, lambda conn: store.write_calibration(conn, lid, calibration))  # the tuned one that followed
    assert counted()[["tuned", "daylight_days"]].tolist() == [True, 0]


def test_refit_counts_give_the_hours_new_daylight_actuals_stand_for(db_url):
    """refit_after_daylight_hours counts hours, whatever the data's spacing: a period mean stands for its period,
    an instantaneous sample for its spacing to the previous one (at most 1 h: a gap is not daylight)."""
    saved = run(db_url, lambda conn: store.upsert_locations(conn, demo_locations(" [refit hours]")))
    hourly, quarter = (int(i) for i in saved["location_id"].iloc[:2])
    means = pd.date_range("2016-07-21T16:00Z", periods=4, freq="1h")
    samples = pd.date_range("2016-07-21T16:00Z", periods=9, freq="15min").append(
        pd.DatetimeIndex(["2016-07-21T22:00Z"]))  # the last one 3.75 h after the previous: counts 1 h
    run(db_url, lambda conn: store.write_actuals(conn, pd.DataFrame(
        {"location_id": hourly, "time": means, "power_kw": 1.0, "period_minutes": 60})))
    run(db_url, lambda conn: store.write_actuals(conn, pd.DataFrame(
        {"location_id": quarter, "time": samples, "power_kw": 1.0})))
    got = run(db_url, lambda conn: store.refit_counts(conn, [hourly, quarter])).set_index("location_id")
    assert got.loc[hourly, "new_daylight_hours"] == pytest.approx(4.0)
    assert got.loc[quarter, "new_daylight_hours"] == pytest.approx(8 * 0.25 + 1.0)  # the first has no spacing
    assert got["new_daylight"].tolist() == [4, 10]


def test_one_refit_lock_per_plant_across_sessions(db_url, location_id):
    """A second session (another Forecaster replica) cannot take a plant's refit lock until it is released."""
    async def both(conn):
        other = await asyncpg.connect(db_url)
        try:
            assert await store.try_refit_lock(conn, location_id)
            assert not await store.try_refit_lock(other, location_id)
            assert await store.try_refit_lock(other, location_id + 1)  # another plant: free
            await store.refit_unlock(conn, location_id)
            return await store.try_refit_lock(other, location_id)
        finally:
            await other.close()
    assert run(db_url, both)


def test_a_refit_lock_never_goes_back_to_a_pool_that_releases_connections_as_they_are(db_url, location_id):
    """The service's pools skip asyncpg's reset query (``store.release_as_is``): an unlock that fails (here: the
    connection's transaction is aborted) ends the connection's session, so the lock is not handed on to the next
    user of the pooled connection and another session can take it (within 5 s: the server ends the session once
    its backend has seen the disconnect)."""
    async def both(other):
        pool = await asyncpg.create_pool(db_url, min_size=1, max_size=1, reset=store.release_as_is)
        try:
            async with pool.acquire() as conn:
                assert await store.try_refit_lock(conn, location_id)
                failed = conn.transaction()
                await failed.start()
                with pytest.raises(asyncpg.DivisionByZeroError):
                    await conn.execute("SELECT 1 / 0")
                with pytest.raises(asyncpg.InFailedSQLTransactionError):
                    await store.refit_unlock(conn, location_id)
            for _ in range(50):  # the server releases a session's locks once its backend has seen the disconnect
                taken = await store.try_refit_lock(other, location_id)
                if taken:
                    break
                await asyncio.sleep(0.1)
            async with pool.acquire() as conn:  # the pool opened a new connection: usable, holding nothing
                held = await conn.fetchval("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                                           "AND pid = pg_backend_pid()")
            await store.refit_unlock(other, location_id)
            return taken, held
        finally:
            await pool.close()
    assert run(db_url, both) == (True, 0)


def test_a_forecast_issued_at_t_reads_the_calibration_fitted_on_the_latest_actuals_before_t(db_url, calibration):
    """Refits on actuals at or after T never reach a forecast issued at T; of the others, the one fitted on the
    latest actuals (its recorded last actual, else its cutoff), whatever the order the versions were stored in."""
    saved = run(db_url, lambda conn: store.upsert_locations(conn, demo_locations(" [calibration at T]")))
    lid = int(saved["location_id"].iloc[0])
    cutoffs = [CUTOFF, CUTOFF + pd.Timedelta(days=10), CUTOFF + pd.Timedelta(days=5)]  # versions 1, 2, 3
    for c in cutoffs:
        run(db_url, lambda conn, c=c: store.write_calibration(conn, lid, {**calibration, "cutoff": c}))

    def version_at(issue):
        got = run(db_url, lambda conn: store.read_calibrations(conn, [lid], issue))
        return got[lid]["version"] if lid in got else None

    assert version_at(CUTOFF - pd.Timedelta(minutes=15)) is None  # every fit saw actuals after it
    assert version_at(CUTOFF) == 1 and version_at(CUTOFF + pd.Timedelta(days=4)) == 1
    assert version_at(CUTOFF + pd.Timedelta(days=7)) == 3
    assert version_at(CUTOFF + pd.Timedelta(days=10)) == 2 and version_at(CUTOFF + pd.Timedelta(days=30)) == 2
    assert run(db_url, lambda conn: store.read_calibrations(conn, [lid]))[lid]["version"] == 3  # no time: latest
    # a late cutoff (a client replaying a past period calibrates up to a later time), its last actual read known
    end = CUTOFF + pd.Timedelta(days=8)
    late = {**calibration, "cutoff": CUTOFF + pd.Timedelta(days=400),
            "diagnostics": {**calibration["diagnostics"], "actuals_end": end.isoformat()}}
    assert run(db_url, lambda conn: store.write_calibration(conn, lid, late)) == 4
    assert version_at(end) == 3  # its last actual is not before T
    assert version_at(end + pd.Timedelta(minutes=15)) == 4 and version_at(CUTOFF + pd.Timedelta(days=9)) == 4
    assert version_at(CUTOFF + pd.Timedelta(days=10)) == 2  # fitted on later actuals than version 4


def test_hourly_means_stored_with_their_period_give_a_stored_calibration_widened_for_instants(db_url):
    """Hour-ending means stored with period_minutes 60 and read back from the database calibrate the plant with the
    within-period term (stated in band_residuals), and the stored version keeps the widened bands."""
    saved = run(db_url, lambda conn: store.upsert_locations(conn, demo_locations(" [hourly means]")))
    lid = int(saved["location_id"].iloc[0])
    power, weather = data.load_serf_east_2016(lid, TRAINING["data"]["wind_speed_ms"])
    r = power[power.index < CUTOFF].resample("1h", label="right", closed="right")
    means = r.mean()[r.count() == 4]
    run(db_url, lambda conn: store.write_actuals(conn, pd.DataFrame(
        {"location_id": lid, "time": means.index, "power_kw": means.to_numpy(), "period_minutes": 60})))
    actuals = run(db_url, lambda conn: store.read_actuals(conn, [lid], None, CUTOFF))
    assert len(actuals) == len(means) and (actuals["period_minutes"] == 60).all()
    location = data.site_location(TRAINING["site"], lid, 5.5, 5.5)
    model = modelio.load_model(resources.folder("models"), "global")
    fit = adaptation.fit_calibration(location, weather, actuals, model, CUTOFF, tau_hours=1.0)
    bare = adaptation.fit_calibration(location, weather, actuals, {**model, "within_period": None}, CUTOFF,
                                      tau_hours=1.0)
    assert fit["ok"], fit["reason"]
    version = run(db_url, lambda conn: store.write_calibration(conn, lid, fit))
    stored = run(db_url, lambda conn: store.read_calibration(conn, lid, version))
    how = stored["diagnostics"]["band_residuals"]["within_period"]
    assert how["applied"] and how["period_minutes"] == 60 and how["rows"] == stored["diagnostics"]["band_rows"]
    assert stored["bands"]["offsets"] == fit["bands"]["offsets"]
    width = {name: np.asarray(c["bands"]["pooled"])[4] - np.asarray(c["bands"]["pooled"])[0]
             for name, c in (("with", stored), ("without", bare))}
    assert width["with"] > width["without"], width

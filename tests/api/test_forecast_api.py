"""Forecasts through real HTTP: generate (wait and async), task polling, reads, plot, accuracy."""

import io
import json
import time

import numpy as np
import pandas as pd
import pytest

from apihelpers import (ISSUE, WINDOW, assert_error, assert_forecast_invariant, demo_plants, openapi_validator,
                        weather_rows)
from engine import data, metrics
from serve_app.api import to_json
from serve_app.routes_forecast import frame_records

pytestmark = pytest.mark.slow


def poll(client, task_id, timeout=300):
    deadline = time.monotonic() + timeout
    while True:
        task = client.get(f"/api/v1/forecast/task/{task_id}")
        assert task.status_code == 200, task.text
        body = task.json()
        if body["status"] in ("succeeded", "failed", "partial") or time.monotonic() > deadline:
            return body
        time.sleep(1)


def generate(client, ids, **kw):
    return client.post("/api/v1/forecast/generate",
                       json={"location_ids": ids, "issue_time": ISSUE, "horizon_hours": 48, **kw})


def test_generate_wait_returns_the_forecast_of_every_plant(client, plants):
    r = generate(client, list(plants), wait=True)
    assert r.status_code == 200, r.text
    body = r.json()
    openapi_validator(client, "GenerateResult").validate(body)
    assert body["status"] == "succeeded" and body["errors"] == []
    assert sorted(loc["location_id"] for loc in body["locations"]) == sorted(plants)
    for loc in body["locations"]:
        assert len(loc["valid_time"]) == 48 * 4
        assert pd.Timestamp(loc["valid_time"][0]) == pd.Timestamp(ISSUE) + pd.Timedelta(minutes=15)
        assert_forecast_invariant(loc["valid_time"], loc, plants[loc["location_id"]], 15)


def test_physics_type_hourly_respects_the_invariant(client, plants):
    r = generate(client, list(plants), wait=True, forecast_type="physics", resolution="1h", horizon_hours=24)
    assert r.status_code == 200, r.text
    for loc in r.json()["locations"]:
        assert len(loc["valid_time"]) == 24
        assert_forecast_invariant(loc["valid_time"], loc, plants[loc["location_id"]], 60)


def test_async_task_is_polled_to_completion(client, plants):
    r = generate(client, list(plants), resolution="1h")
    assert r.status_code == 202, r.text
    openapi_validator(client, "TaskAccepted").validate(r.json())
    task = poll(client, r.json()["task_id"])
    openapi_validator(client, "Task").validate(task)
    assert task["status"] == "succeeded", task
    assert task["progress_done"] == task["progress_total"] == len(plants)
    assert sorted(int(k) for k in task["run_ids"]) == sorted(plants)


@pytest.fixture(scope="module")
def stored_run(client, plants):
    """A 15-min ML run of every plant, stored (wait=true)."""
    r = generate(client, list(plants), wait=True, include_forecast=False)
    assert r.status_code == 200, r.text
    return r.json()["run_ids"]


def test_location_read_json_is_the_stored_run(client, plants, stored_run):
    lid = next(iter(plants))
    r = client.get(f"/api/v1/forecast/location/{lid}", params={"run_id": stored_run[str(lid)]})
    assert r.status_code == 200, r.text
    body = r.json()
    openapi_validator(client, "StoredForecast").validate(body)
    rows = pd.DataFrame(body["rows"])
    assert len(rows) == 192 and body["unit"] == "kW"
    assert_forecast_invariant(rows["valid_time"], rows, plants[lid], 15)


def test_location_read_csv(client, plants, stored_run):
    lid = next(iter(plants))
    r = client.get(f"/api/v1/forecast/location/{lid}", params={"run_id": stored_run[str(lid)], "format": "csv"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = pd.read_csv(io.StringIO(r.text))
    assert len(rows) == 192
    assert_forecast_invariant(rows["valid_time"], rows, plants[lid], 15)


@pytest.mark.parametrize("aggregate, n", [("hourly", 48), ("daily", None)])
def test_location_energy_aggregation(client, plants, stored_run, aggregate, n):
    lid = next(iter(plants))
    run_id = stored_run[str(lid)]
    kw = pd.DataFrame(client.get(f"/api/v1/forecast/location/{lid}", params={"run_id": run_id}).json()["rows"])
    r = client.get(f"/api/v1/forecast/location/{lid}", params={"run_id": run_id, "aggregate": aggregate})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["unit"] == "kWh"
    energy = pd.DataFrame(body["rows"])
    if n:
        assert len(energy) == n
    # energy of a 15-min step = kW x 0.25 h; buckets add up to the whole run
    assert energy["p50"].sum() == pytest.approx(kw["p50"].sum() * 0.25, rel=1e-6)


def test_regenerating_an_issue_time_keeps_both_versions_and_the_read_selects_the_type(client, plants):
    lid = next(iter(plants))
    issue = "2013-07-02T06:00:00Z"  # an issue time of this test only
    runs = {}
    for kind in ("ml", "physics", "ml"):
        r = client.post("/api/v1/forecast/generate", json={"location_ids": [lid], "issue_time": issue,
                                                          "horizon_hours": 24, "forecast_type": kind, "wait": True,
                                                          "include_forecast": False})
        assert r.status_code == 200 and r.headers["x-task-id"] == r.json()["task_id"], r.text
        runs.setdefault(kind, []).append(r.json()["run_ids"][str(lid)])
    assert len(set(runs["ml"])) == 2  # a re-generation is a new version; the first one is kept
    window = {"start": "2013-07-02T07:00:00Z", "end": "2013-07-02T12:00:00Z"}
    plots = {}
    for kind, expected in (("ml", runs["ml"][1]), ("physics", runs["physics"][0])):
        read = client.get(f"/api/v1/forecast/location/{lid}", params={**window, "forecast_type": kind})
        assert read.status_code == 200, read.text
        assert read.json()["run"]["run_id"] == expected and read.json()["run"]["forecast_type"] == kind
        plots[kind] = client.get(f"/api/v1/forecast/location/{lid}/plot.png", params={**window, "forecast_type": kind})
        assert plots[kind].status_code == 200, plots[kind].text
        assert plots[kind].content == client.get(f"/api/v1/forecast/location/{lid}/plot.png",
                                                 params={**window, "run_id": expected}).content
    assert plots["ml"].content != plots["physics"].content  # the plot, like the read, shows the type asked for
    first = client.get(f"/api/v1/forecast/location/{lid}", params={"run_id": runs["ml"][0]})
    assert first.status_code == 200 and len(first.json()["rows"]) == 24 * 4


def test_plot_is_a_png(client, plants, stored_run):
    lid = next(iter(plants))
    r = client.get(f"/api/v1/forecast/location/{lid}/plot.png")
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert r.content[:8] == b"\x89PNG\r\n\x1a\n" and len(r.content) > 5000


@pytest.fixture(scope="module")
def scored_plant(client, training_config):
    """A plant of its own (SERF East's configuration) with real weather, real actuals and ONE stored run."""
    saved = client.post("/api/v1/locations", json={"locations": [{**demo_plants()[0], "name": "accuracy plant"}]})
    assert saved.status_code == 200, saved.text
    plant = saved.json()["locations"][0]
    lid = plant["location_id"]
    assert client.post("/api/v1/weather", json={"rows": weather_rows([lid], training_config)}).status_code == 200
    power, _ = data.load_power(training_config)
    power = power[WINDOW[0]:WINDOW[1]].dropna()
    rows = [{"location_id": lid, "time": t.isoformat(), "power_kw": float(p)} for t, p in power.items()]
    assert client.post("/api/v1/actuals", json={"rows": rows}).status_code == 200
    run = generate(client, [lid], wait=True, include_forecast=False)
    assert run.status_code == 200, run.text
    return plant, power, run.json()["run_ids"][str(lid)]


def test_accuracy_scores_the_stored_run_against_the_ingested_actuals(client, scored_plant):
    plant, power, run_id = scored_plant
    r = client.get(f"/api/v1/forecast/accuracy/{plant['location_id']}")
    assert r.status_code == 200, r.text
    body = r.json()
    openapi_validator(client, "Accuracy").validate(body)
    # the same scores computed here from the stored values (read back) and the actuals we sent
    rows = pd.DataFrame(client.get(f"/api/v1/forecast/location/{plant['location_id']}",
                                   params={"run_id": run_id}).json()["rows"])
    rows["valid_time"] = pd.to_datetime(rows["valid_time"], utc=True)
    joined = rows.join(power.rename("power_kw"), on="valid_time", how="inner")
    day = np.asarray(data.solar_elevation(pd.DatetimeIndex(joined["valid_time"]), plant["latitude"],
                                          plant["longitude"], plant["altitude"])) > 0
    expected = metrics.evaluate(joined["power_kw"].to_numpy(), joined[["p10", "p25", "p50", "p75", "p90"]].to_numpy(),
                                plant["capacity_ac_kw"], day)
    assert body["n"] == len(joined) > 100 and body["runs"] == 1
    assert body["metrics"] == pytest.approx(expected, rel=1e-9)
    # by lead bucket: the rows of each bucket scored alone ([0, 1) h, [1, 6) h, ... of horizon_minutes)
    lead = joined["horizon_minutes"].to_numpy() / 60.0
    edges = metrics.LEAD_EDGES_HOURS
    buckets = {label: (lead >= edges[k]) & (lead < edges[k + 1]) for k, label in enumerate(metrics.lead_labels())}
    # a bucket is reported when it holds daylight rows (issued at local midnight: the first hour is night)
    assert set(body["by_lead"]) == {label for label, rows in buckets.items() if (rows & day).any()} == \
        {"1-6h", "6-24h", "24-48h"}
    for label, rows in buckets.items():
        if label in body["by_lead"]:
            part = body["by_lead"][label]
            assert part["n"] == rows.sum()
            assert part["metrics"] == pytest.approx(metrics.evaluate(
                joined["power_kw"].to_numpy()[rows], joined[["p10", "p25", "p50", "p75", "p90"]].to_numpy()[rows],
                plant["capacity_ac_kw"], day[rows]), rel=1e-9)
    assert sum(part["n"] for part in body["by_lead"].values()) == \
        sum(rows.sum() for rows in buckets.values() if (rows & day).any())
    # day-ahead: valid on the plant's local day after the issue's local day (issued 00:00 MDT on 2013-07-01)
    local = pd.DatetimeIndex(joined["valid_time"]).tz_convert(plant["timezone"]) - pd.Timedelta(microseconds=1)
    ahead = np.asarray(local.date == pd.Timestamp("2013-07-02").date())
    assert body["day_ahead"]["n"] == ahead.sum() > 0


def test_accuracy_selects_runs_by_type_run_and_issue_window_and_says_which_run_counts(client, scored_plant):
    plant, power, run_id = scored_plant
    url = f"/api/v1/forecast/accuracy/{plant['location_id']}"
    again = generate(client, [plant["location_id"]], wait=True, include_forecast=False, forecast_type="physics")
    assert again.status_code == 200, again.text
    both = client.get(url).json()
    assert both["runs"] == 2 and both["runs_counted"] == "all"
    ml = client.get(url, params={"forecast_type": "ml"}).json()
    assert ml["runs"] == 1 and ml == client.get(url, params={"run_id": run_id}).json()
    assert both["n"] == 2 * ml["n"]  # two runs over the same valid times, each scored
    latest = client.get(url, params={"runs": "latest"}).json()
    physics = client.get(url, params={"forecast_type": "physics"}).json()
    # equal issue times: the later run (higher id, the physics one) is the one that counts
    assert latest["runs_counted"] == "latest" and latest["n"] == ml["n"] and latest["metrics"] == physics["metrics"]
    assert client.get(url, params={"issued_end": "2013-06-29T00:00:00Z"}).status_code == 404
    assert client.get(url, params={"issued_start": ISSUE, "issued_end": ISSUE}).json()["runs"] == 2
    assert client.get(url, params={"runs": "newest"}).status_code == 422


def test_an_accuracy_window_is_bounded_and_a_missing_bound_follows_from_the_maximum(client, scored_plant):
    """http.accuracy_max_days (31): a longer window is refused; start alone reads start .. start + 31 d."""
    plant, power, run_id = scored_plant
    url = f"/api/v1/forecast/accuracy/{plant['location_id']}"
    everything = client.get(url, params={"run_id": run_id}).json()  # one run: bounded by its horizon
    start = pd.Timestamp(ISSUE) - pd.Timedelta(days=30)  # the run's first day inside, its second day outside
    part = client.get(url, params={"start": start.isoformat(), "forecast_type": "ml"})  # the scored run's type
    assert part.status_code == 200, part.text
    rows = pd.DataFrame(client.get(f"/api/v1/forecast/location/{plant['location_id']}",
                                   params={"run_id": run_id}).json()["rows"])
    valid = pd.to_datetime(rows["valid_time"], utc=True)
    inside = valid[(valid <= start + pd.Timedelta(days=31))].isin(power.index).sum()
    assert part.json()["n"] == inside < everything["n"]
    too_long = client.get(url, params={"start": start.isoformat(), "end": (start + pd.Timedelta(days=32)).isoformat()})
    assert_error(client, too_long, 422, "end", "window_too_large")


def test_location_without_weather_over_the_horizon_is_a_per_location_error(client, plants):
    lid = next(iter(plants))
    # the ingested weather ends 2013-07-10: a 48 h horizon from 2013-07-09 is not covered
    r = client.post("/api/v1/forecast/generate", json={"location_ids": [lid], "issue_time": "2013-07-09T06:00:00Z",
                                                      "horizon_hours": 48, "wait": True})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "failed" and body["locations"] == []
    assert [(e["location_id"], e["code"]) for e in body["errors"]] == [(lid, "weather_short")]
    assert "not the forecast times" in body["errors"][0]["error"]


def test_bad_plants_in_a_batch_are_errors_and_their_batch_mates_are_forecast(client, plants, training_config):
    """Five plants over two batches (3 per batch in the test service): three whose weather cannot drive
    the forecast, each with its own code (docs/api.md "Per-plant error codes") and sentence, and two good
    ones that are forecast and stored. The task's stored errors read back with the same codes."""
    base = demo_plants()[1]
    names = ["mixed good 1", "mixed no weather", "mixed short weather", "mixed gap", "mixed good 2"]
    saved = client.post("/api/v1/locations", json={"locations": [{**base, "name": n} for n in names]})
    assert saved.status_code == 200, saved.text
    ids = dict(zip(names, [loc["location_id"] for loc in saved.json()["locations"]]))
    good = [ids["mixed good 1"], ids["mixed good 2"]]
    rows = weather_rows(good, training_config)
    rows += weather_rows([ids["mixed short weather"]], training_config, end="2013-07-02T12:00:00Z")
    gap = weather_rows([ids["mixed gap"]], training_config)
    rows += [r for r in gap if not "2013-07-02T02:00" <= r["valid_time"][:16] <= "2013-07-02T09:00"]
    assert client.post("/api/v1/weather", json={"rows": rows}).status_code == 200
    r = generate(client, list(ids.values()), wait=True)
    assert r.status_code == 200, r.text
    body = r.json()
    openapi_validator(client, "GenerateResult").validate(body)
    errors = {e["location_id"]: e["error"] for e in body["errors"]}
    codes = {e["location_id"]: e["code"] for e in body["errors"]}
    assert body["status"] == "partial"
    assert codes == {ids["mixed no weather"]: "no_weather", ids["mixed short weather"]: "weather_short",
                     ids["mixed gap"]: "weather_gap"}
    assert "no weather" in errors[ids["mixed no weather"]]
    assert "not the forecast times" in errors[ids["mixed short weather"]]
    assert "gap of" in errors[ids["mixed gap"]]
    assert sorted(int(k) for k in body["run_ids"]) == sorted(good)
    assert sorted(loc["location_id"] for loc in body["locations"]) == sorted(good)
    task = client.get(f"/api/v1/forecast/task/{body['task_id']}").json()
    assert task["status"] == "partial" and task["progress_done"] == task["progress_total"] == 5
    openapi_validator(client, "Task").validate(task)
    assert {int(k): (e["code"], e["message"]) for k, e in task["errors"].items()} == {
        lid: (codes[lid], errors[lid]) for lid in errors}
    for lid in good:  # each good plant's run is stored whole
        stored = client.get(f"/api/v1/forecast/location/{lid}", params={"run_id": body["run_ids"][str(lid)]})
        assert stored.status_code == 200 and len(stored.json()["rows"]) == 192


def test_weather_without_wind_speed_uses_the_training_constant_and_flags_the_run(client, training_config):
    """wind_speed may be left out: the forecast uses the constant the model was trained with (1 m/s,
    configs/training.yaml) and says so on the run; the same weather with 1 m/s given is not flagged."""
    base = demo_plants()[1]
    saved = client.post("/api/v1/locations", json={"locations": [{**base, "name": "no wind given"},
                                                                 {**base, "name": "wind given"}]})
    assert saved.status_code == 200, saved.text
    without, given = (p["location_id"] for p in saved.json()["locations"])
    rows = [{k: v for k, v in r.items() if k != "wind_speed"} for r in weather_rows([without], training_config)]
    rows += [{**r, "wind_speed": training_config["data"]["wind_speed_ms"]} for r in weather_rows([given], training_config)]
    assert client.post("/api/v1/weather", json={"rows": rows}).status_code == 200
    r = generate(client, [without, given], wait=True)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "succeeded", body["errors"]
    p50 = {loc["location_id"]: loc["p50"] for loc in body["locations"]}
    assert p50[without] == p50[given] and max(p50[given]) > 0
    flags = {lid: client.get(f"/api/v1/forecast/location/{lid}", params={"run_id": body["run_ids"][str(lid)]}
                             ).json()["run"]["input_flags"] for lid in (without, given)}
    assert set(flags[without]) == {"wind_speed"} and "1 m/s" in flags[without]["wind_speed"]
    assert flags[given] == {}


def test_stored_rows_are_records_with_iso_times_and_null_for_nan():
    """A read's rows (``routes_forecast.frame_records``): one object per row, a time as ``Timestamp.isoformat()``
    (whole seconds of the grid, sub-second digits kept, another zone's offset kept), NaN and NaT as null."""
    grid = pd.DataFrame({"location_id": np.array([7, 7], dtype="int64"),
                         "valid_time": pd.date_range("2013-07-01T12:00Z", periods=2, freq="15min"),
                         "p50": [1.5, np.nan], "horizon_minutes": np.array([15, 30], dtype="int64")})
    assert json.loads(to_json({"rows": frame_records(grid)}))["rows"] == [
        {"location_id": 7, "valid_time": "2013-07-01T12:00:00+00:00", "p50": 1.5, "horizon_minutes": 15},
        {"location_id": 7, "valid_time": "2013-07-01T12:15:00+00:00", "p50": None, "horizon_minutes": 30}]
    odd = pd.DataFrame({"valid_time": pd.DatetimeIndex([pd.Timestamp("2013-07-01T12:00:00.25Z"), pd.NaT])})
    assert frame_records(odd) == [{"valid_time": "2013-07-01T12:00:00.250000+00:00"}, {"valid_time": None}]
    berlin = grid.assign(valid_time=grid["valid_time"].dt.tz_convert("Europe/Berlin"))
    assert frame_records(berlin)[0]["valid_time"] == "2013-07-01T14:00:00+02:00"

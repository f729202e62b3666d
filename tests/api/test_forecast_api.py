"""Forecasts through real HTTP: generate (wait and async), task polling, reads, plot, accuracy."""

import io
import time

import pandas as pd
import pytest

from apihelpers import ISSUE, assert_forecast_invariant, openapi_validator

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


def test_plot_is_a_png(client, plants, stored_run):
    lid = next(iter(plants))
    r = client.get(f"/api/v1/forecast/location/{lid}/plot.png")
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert r.content[:8] == b"\x89PNG\r\n\x1a\n" and len(r.content) > 5000


def test_accuracy_of_past_runs_against_real_actuals(client, plants, stored_run):
    serf = next(iter(plants))  # SERF East: the plant with measured actuals
    r = client.get(f"/api/v1/forecast/accuracy/{serf}")
    assert r.status_code == 200, r.text
    body = r.json()
    openapi_validator(client, "Accuracy").validate(body)
    assert body["n"] > 100
    assert 0 <= body["metrics"]["coverage_p10_p90_day"] <= 1
    assert 0 < body["metrics"]["mae_day"] < 1


def test_location_without_weather_over_the_horizon_is_a_per_location_error(client, plants):
    lid = next(iter(plants))
    # the ingested weather ends 2013-07-10: a 48 h horizon from 2013-07-09 is not covered
    r = client.post("/api/v1/forecast/generate", json={"location_ids": [lid], "issue_time": "2013-07-09T06:00:00Z",
                                                      "horizon_hours": 48, "wait": True})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "failed" and body["locations"] == []
    assert [e["location_id"] for e in body["errors"]] == [lid]
    assert str(lid) in body["errors"][0]["error"] or "weather" in body["errors"][0]["error"]

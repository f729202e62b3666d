"""Every invalid request gets a 4xx JSON error naming the field and the reason."""

import pytest

from apihelpers import ISSUE, demo_plants, openapi_validator

pytestmark = pytest.mark.slow


def assert_error(client, response, status, field_part, reason_part):
    assert response.status_code == status, response.text
    body = response.json()
    openapi_validator(client, "Error").validate(body)
    assert field_part in (body["error"]["field"] or "") and field_part in body["error"]["message"]
    assert reason_part in body["error"]["message"]


def post_generate(client, **body):
    return client.post("/api/v1/forecast/generate", json={"issue_time": ISSUE, **body})


def test_unknown_location(client, plants):
    r = post_generate(client, location_ids=[max(plants) + 1000], wait=True)
    assert_error(client, r, 404, "location_ids", "unknown location")


@pytest.mark.parametrize("hours", [0, 169, -5])
def test_horizon_out_of_range(client, plants, hours):
    r = post_generate(client, location_ids=list(plants), horizon_hours=hours)
    assert_error(client, r, 422, "horizon_hours", "[1, 168]")


def test_too_many_locations(client, plants):
    r = post_generate(client, location_ids=list(range(1, 10_002)))
    assert_error(client, r, 422, "location_ids", "too many locations")


def test_malformed_json(client, plants):
    r = client.post("/api/v1/forecast/generate", content=b'{"location_ids": [1,', headers={"content-type": "application/json"})
    assert_error(client, r, 400, "body", "malformed JSON")


def test_body_too_large(client, plants):
    r = client.post("/api/v1/weather", content=b" " * (64 * 1024 * 1024 + 1), headers={"content-type": "application/json"})
    assert_error(client, r, 413, "body", "too large")


def test_unknown_resolution(client, plants):
    r = post_generate(client, location_ids=list(plants), resolution="5min")
    assert_error(client, r, 422, "resolution", "must be one of")


def plant(**change):
    return {**demo_plants()[1], "name": "bad input plant", **change}


@pytest.mark.parametrize("field, value", [("latitude", 91.0), ("latitude", -90.5), ("longitude", 181.0)])
def test_location_coordinates_out_of_range(client, plants, field, value):
    r = client.post("/api/v1/locations", json={"locations": [plant(**{field: value})]})
    assert_error(client, r, 422, field, str(value).rstrip("0").rstrip("."))


@pytest.mark.parametrize("value", [0.0, -3.0])
def test_location_capacity_not_positive(client, plants, value):
    r = client.post("/api/v1/locations", json={"locations": [plant(capacity_ac_kw=value)]})
    assert_error(client, r, 422, "capacity_ac_kw", "")


def test_location_missing_field(client, plants):
    body = plant()
    del body["tilt"]
    r = client.post("/api/v1/locations", json={"locations": [body]})
    assert_error(client, r, 422, "locations[0].tilt", "required")


def weather_row(lid, **change):
    return {"location_id": lid, "valid_time": "2013-07-01T18:00:00Z", "issue_time": ISSUE, "source": "test",
            "ghi": 800.0, "temp_air": 25.0, "wind_speed": 1.0, "period_minutes": 0, **change}


def test_weather_naive_time_refused(client, plants):
    r = client.post("/api/v1/weather", json={"rows": [weather_row(next(iter(plants)), valid_time="2013-07-01T18:00:00")]})
    assert_error(client, r, 422, "rows[0].valid_time", "no UTC offset")


def test_weather_negative_irradiance_refused(client, plants):
    r = client.post("/api/v1/weather", json={"rows": [weather_row(next(iter(plants)), ghi=-10.0)]})
    assert_error(client, r, 422, "ghi", "")


def test_weather_unknown_location_refused(client, plants):
    r = client.post("/api/v1/weather", json={"rows": [weather_row(max(plants) + 1000)]})
    assert r.status_code in (404, 422), r.text
    assert "location_id" in r.json()["error"]["message"]


def test_unknown_task_and_location_reads(client, plants):
    assert client.get("/api/v1/forecast/task/00000000-0000-0000-0000-000000000000").status_code == 404
    assert client.get(f"/api/v1/forecast/location/{max(plants) + 1000}").status_code == 404
    assert client.get(f"/api/v1/locations/{max(plants) + 1000}").status_code == 404

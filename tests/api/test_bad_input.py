"""Every invalid request gets a 4xx JSON error naming the field, and nothing of it is stored."""

import pytest

from apihelpers import ISSUE, assert_error, count, demo_plants

pytestmark = pytest.mark.slow


def post_generate(client, **body):
    return client.post("/api/v1/forecast/generate", json={"issue_time": ISSUE, **body})


def test_unknown_location(client, plants):
    assert_error(client, post_generate(client, location_ids=[max(plants) + 1000], wait=True), 404, "location_ids")


@pytest.mark.parametrize("change, field", [
    ({"horizon_hours": 0}, "horizon_hours"), ({"horizon_hours": 169}, "horizon_hours"),
    ({"resolution": "5min"}, "resolution"), ({"location_ids": list(range(1, 10_002))}, "location_ids"),
    ({"location_ids": [24.9]}, "location_ids[0]"), ({"location_ids": ["24"]}, "location_ids[0]"),
    ({"location_ids": [True]}, "location_ids[0]"), ({"location_ids": [2**64]}, "location_ids[0]"),
])
def test_bad_generate_requests_start_no_task(client, plants, api_db_url, change, field):
    before = count(api_db_url, "SELECT count(*) FROM forecast_tasks")
    assert_error(client, post_generate(client, **{"location_ids": list(plants), **change}), 422, field)
    assert count(api_db_url, "SELECT count(*) FROM forecast_tasks") == before


def test_malformed_json(client, plants):
    r = client.post("/api/v1/forecast/generate", content=b'{"location_ids": [1,', headers={"content-type": "application/json"})
    assert_error(client, r, 400, "body")


def test_deeply_nested_json_is_a_400_not_a_server_error(client, plants):
    r = client.post("/api/v1/weather", content=b'{"rows": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
                    headers={"content-type": "application/json"})
    assert_error(client, r, 400, "body")


def test_body_too_large_by_content_length(client, plants):
    r = client.post("/api/v1/weather", content=b" " * (128 * 1024 * 1024 + 1), headers={"content-type": "application/json"})
    assert_error(client, r, 413, "body")


def test_chunked_body_too_large_is_refused_while_streaming(client, plants):
    def chunks():  # 320 MB without a content-length; the service must stop reading after its 128 MiB limit
        for _ in range(320):
            yield b" " * (1024 * 1024)
    r = client.post("/api/v1/weather", content=chunks(), headers={"content-type": "application/json"})
    assert_error(client, r, 413, "body")
    assert client.get("/healthz").status_code == 200


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_json_endpoints_refuse_other_content_types(client, plants, api_db_url, content_type):
    before = count(api_db_url, "SELECT count(*) FROM locations")
    headers = {"content-type": content_type} if content_type else {}
    r = client.post("/api/v1/locations", content=b'{"locations": []}', headers=headers)
    assert_error(client, r, 415, "content-type")
    assert count(api_db_url, "SELECT count(*) FROM locations") == before


def plant(**change):
    return {**demo_plants()[1], "name": "bad input plant", **change}


@pytest.mark.parametrize("change, field", [
    ({"latitude": 91.0}, "latitude"), ({"longitude": 181.0}, "longitude"), ({"capacity_ac_kw": 0.0}, "capacity_ac_kw"),
    ({"altitude": 1e300}, "altitude"), ({"altitude": -1e6}, "altitude"), ({"gamma_pdc": 1e10}, "gamma_pdc"),
    ({"temp_model_u0": 0.0, "temp_model_u1": 0.0}, "temp_model_u0"), ({"model_id": "mystery"}, "model_id"),
    ({"name": "nul\u0000name"}, "name"), ({"tilt": "30"}, "tilt"), ({"tilt": True}, "tilt"),
])
def test_bad_plants_are_refused_and_not_stored(client, plants, api_db_url, change, field):
    r = client.post("/api/v1/locations", json={"locations": [plant(**change)]})
    assert_error(client, r, 422, f"locations[0].{field}")
    assert count(api_db_url, "SELECT count(*) FROM locations WHERE name LIKE $1", "%name%") == 0
    assert count(api_db_url, "SELECT count(*) FROM locations WHERE name = 'bad input plant'") == 0


def test_dc_ac_ratio_of_a_unit_mix_up_is_refused(client, plants):
    r = client.post("/api/v1/locations", json={"locations": [plant(), plant(name="unit mix-up", capacity_ac_kw=5.0,
                                                                           capacity_dc_kw=5000.0)]})
    assert_error(client, r, 422, "locations[1].capacity_dc_kw")


def test_a_missing_plant_field_is_named(client, plants):
    body = plant()
    del body["tilt"]
    assert_error(client, client.post("/api/v1/locations", json={"locations": [body]}), 422, "locations[0].tilt")


def weather_row(lid, **change):
    return {"location_id": lid, "valid_time": "2013-07-01T18:00:00Z", "issue_time": ISSUE, "source": "bad-input",
            "ghi": 800.0, "temp_air": 25.0, "wind_speed": 1.0, "period_minutes": 0, **change}


@pytest.mark.parametrize("change, field", [
    ({"location_id": 24.9}, "location_id"), ({"location_id": "24"}, "location_id"),
    ({"location_id": True}, "location_id"), ({"location_id": None}, "location_id"),
    ({"location_id": 2**64}, "location_id"), ({"period_minutes": 30.7}, "period_minutes"),
    ({"period_minutes": 3e9}, "period_minutes"), ({"ghi": "5"}, "ghi"), ({"ghi": True}, "ghi"),
    ({"ghi": -10.0}, "ghi"), ({"wind_speed": 1e300}, "wind_speed"), ({"valid_time": "2013-07-01T18:00:00"}, "valid_time"),
    ({"source": "nul\u0000"}, "source"),
])
def test_bad_weather_rows_are_refused_and_nothing_is_stored(client, plants, api_db_url, change, field):
    lid = next(iter(plants))
    r = client.post("/api/v1/weather", json={"rows": [weather_row(lid), weather_row(lid, **change)]})
    assert_error(client, r, 422, f"rows[1].{field}")
    assert count(api_db_url, "SELECT count(*) FROM weather WHERE source = 'bad-input'") == 0


def test_weather_of_an_unknown_location_is_a_404_and_nothing_is_stored(client, plants, api_db_url):
    lid = next(iter(plants))
    r = client.post("/api/v1/weather", json={"rows": [weather_row(lid), weather_row(max(plants) + 1000)]})
    assert_error(client, r, 404, "rows[1].location_id")
    assert count(api_db_url, "SELECT count(*) FROM weather WHERE source = 'bad-input'") == 0


@pytest.mark.parametrize("power_kw, status, field", [
    (500.0, 422, "rows[0].power_kw"), (-100.0, 422, "rows[0].power_kw"), (1e300, 422, "rows[0].power_kw"), ("2.5", 422, "rows[0].power_kw"),
])
def test_physically_impossible_actuals_are_refused(client, plants, api_db_url, power_kw, status, field):
    small = next(lid for lid, p in plants.items() if p["capacity_ac_kw"] <= 10)
    before = count(api_db_url, "SELECT count(*) FROM actuals WHERE location_id = $1", small)
    r = client.post("/api/v1/actuals", json={"rows": [{"location_id": small, "time": "2013-07-01T18:00:00Z",
                                                       "power_kw": power_kw}]})
    assert_error(client, r, status, field)
    assert count(api_db_url, "SELECT count(*) FROM actuals WHERE location_id = $1", small) == before


@pytest.mark.parametrize("path", ["/api/v1/locations/{big}", "/api/v1/forecast/location/{big}",
                                  "/api/v1/forecast/accuracy/{big}", "/api/v1/locations/1.5"])
def test_ids_beyond_64_bits_or_not_integers_in_urls(client, plants, path):
    assert_error(client, client.get(path.format(big=2**64)), 422, "location_id")


def test_unknown_task_and_location_reads(client, plants):
    assert_error(client, client.get("/api/v1/forecast/task/00000000-0000-0000-0000-000000000000"), 404, "task_id")
    assert_error(client, client.get("/api/v1/forecast/task/not-a-uuid"), 422, "task_id")
    assert_error(client, client.get(f"/api/v1/forecast/location/{max(plants) + 1000}"), 404, "location_id")
    assert_error(client, client.get(f"/api/v1/forecast/location/{min(plants)}?forecast_type=hybrid"), 422,
                 "forecast_type")
    assert_error(client, client.get(f"/api/v1/locations/{max(plants) + 1000}"), 404, "location_id")

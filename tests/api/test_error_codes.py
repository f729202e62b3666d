"""A careless client can act on every refusal: each answer carries a stable ``error.code`` (docs/api.md "Error codes").

Real HTTP through the real service (tests/api/conftest.py), real plants and real SERF East 2016 power: each
code a client can cause is reached by the careless request that causes it and asserted by code, never by
its sentence. The codes of the definition that no request here can cause are listed with the test that
reaches them (or why none does): adding a code without reaching it fails.
"""

import uuid

import httpx
import pytest

import local_instance as local
from apihelpers import ISSUE, TENANT, assert_error, demo_plants
from engine import data, tuning, validation
from serve_app import api

pytestmark = pytest.mark.slow
API = "/api/v1"
ROW = {"time": "2016-07-01T19:00:00Z", "power_kw": 3.0}


def actuals(client, ctx, *rows, raw=None):
    if raw is not None:
        return client.post(f"{API}/actuals", content=raw, headers={"content-type": "application/json"})
    return client.post(f"{API}/actuals", json={"rows": [{"location_id": ctx["plant"], **ROW, **r} for r in rows]})


def weather(client, ctx, **change):
    row = {"location_id": ctx["plant"], "valid_time": "2016-07-01T19:00:00Z", "issue_time": "2016-07-01T06:00:00Z",
           "source": "careless", "ghi": 800.0, "temp_air": 25.0, "wind_speed": 1.0, "period_minutes": 60, **change}
    return client.post(f"{API}/weather", json={"rows": [{k: v for k, v in row.items() if v is not ...}]})


def plant(client, *changes):
    base = {**demo_plants()[1], "name": "careless plant"}
    return client.post(f"{API}/locations", json={"locations": [{**base, **c} for c in changes]})


def generate(client, **body):
    return client.post(f"{API}/forecast/generate", json={"issue_time": ISSUE, **body})


def watts(client, ctx):
    """A day of SERF East 2016 power sent in W (the logger's unit) as power_kw."""
    power, _ = data.load_serf_east_2016(ctx["plant"], 1.0)
    day = power["2016-07-02":"2016-07-02"] * 1000.0
    rows = [{"time": t.isoformat(), "power_kw": float(p)} for t, p in day.items()]
    first = next(i for i, r in enumerate(rows) if r["power_kw"] > 1.25 * ctx["capacity_ac_kw"])
    return actuals(client, ctx, *rows), f"rows[{first}].power_kw"


#: (request(client, ctx) -> response or (response, field), status, field, code): one careless request per code
CARELESS = {
    "power in W as kW": (watts, 422, None, "above_capacity"),
    "actuals without power_kw": (lambda c, x: c.post(f"{API}/actuals", json={"rows": [
        {"location_id": x["plant"], "time": ROW["time"]}]}), 422, "rows[0].power_kw", "missing_field"),
    "actuals of an unknown plant": (lambda c, x: c.post(f"{API}/actuals", json={"rows": [
        {"location_id": x["unknown"], **ROW}]}), 404, "rows[0].location_id", "unknown_location"),
    "a row sent twice": (lambda c, x: actuals(c, x, {}, {}), 422, "rows[1].time", "duplicate"),
    "a naive time": (lambda c, x: actuals(c, x, {"time": "2016-07-01T19:00:00"}), 422, "rows[0].time", "bad_time"),
    "a local date": (lambda c, x: actuals(c, x, {"time": "01/07/2016 19:00"}), 422, "rows[0].time", "bad_time"),
    "a year typed 1016": (lambda c, x: actuals(c, x, {"time": "1016-07-01T19:00:00Z"}), 422, "rows[0].time",
                          "bad_time"),
    "a number as text": (lambda c, x: actuals(c, x, {"power_kw": "3.2"}), 422, "rows[0].power_kw", "wrong_type"),
    "NaN power": (lambda c, x: actuals(c, x, raw=b'{"rows": [{"location_id": %d, "time": "2016-07-01T19:00:00Z", '
                                                 b'"power_kw": NaN}]}' % x["plant"]),
                  422, "rows[0].power_kw", "not_finite"),
    "temp_air in kelvin": (lambda c, x: weather(c, x, temp_air=298.15), 422, "rows[0].temp_air", "out_of_bounds"),
    "a field of another tool": (lambda c, x: weather(c, x, ghi_wm2=800.0), 422, "rows[0].ghi_wm2",
                                "unknown_field"),
    "no temp_air": (lambda c, x: weather(c, x, temp_air=...), 422, "rows[0].temp_air", "missing_field"),
    "tracking in lower case": (lambda c, x: plant(c, {"tracking": "fixed"}), 422, "locations[0].tracking",
                               "not_one_of"),
    "a time zone that is not one": (lambda c, x: plant(c, {"timezone": "Mountain Time"}),
                                    422, "locations[0].timezone", "not_one_of"),
    "a name with a tab": (lambda c, x: plant(c, {"name": "roof\tsouth"}), 422, "locations[0].name", "bad_text"),
    "capacity in W": (lambda c, x: plant(c, {"capacity_ac_kw": 5.0e7, "capacity_dc_kw": 6.0e7}),
                      422, "locations[0].capacity_ac_kw", "out_of_bounds"),
    "two plants of one name": (lambda c, x: plant(c, {}, {}), 422, "locations[1].name", "duplicate"),
    "a skyline not sorted": (lambda c, x: plant(c, {"horizon": {"azimuth": [0.0, 90.0, 45.0],
                                                                "elevation": [1.0, 2.0, 3.0]}}),
                             422, "locations[0].horizon.azimuth[2]", "unsorted"),
    "a skyline of unequal lists": (lambda c, x: plant(c, {"horizon": {"azimuth": [0.0, 90.0, 180.0],
                                                                      "elevation": [1.0, 2.0]}}),
                                   422, "locations[0].horizon", "bad_length"),
    "a DC sum that is not the planes'": (lambda c, x: plant(c, {"capacity_dc_kw": 9.0, "planes": [
        {"tilt": 30.0, "azimuth": 90.0, "capacity_dc_kw": 2.0}, {"tilt": 30.0, "azimuth": 270.0, "capacity_dc_kw": 2.0}]}),
        422, "locations[0].capacity_dc_kw", "invalid_value"),
    "a plant asked twice": (lambda c, x: generate(c, location_ids=[x["plant"], x["plant"]]), 422, "location_ids",
                            "duplicate"),
    "no plant asked": (lambda c, x: generate(c, location_ids=[]), 422, "location_ids", "bad_length"),
    "an unknown plant forecast": (lambda c, x: generate(c, location_ids=[x["unknown"]]), 404, "location_ids",
                                  "unknown_location"),
    "a cut body": (lambda c, x: c.post(f"{API}/forecast/generate", content=b'{"location_ids": [1,',
                                       headers={"content-type": "application/json"}), 400, "body", "malformed_json"),
    "a form instead of JSON": (lambda c, x: c.post(f"{API}/locations", data={"name": "x"}), 415, "content-type",
                               "not_json"),
    "a multipart without boundary": (lambda c, x: c.post(f"{API}/weather/nwp", content=b"x", headers={
        "content-type": "multipart/form-data"}), 400, "content-type", "malformed_multipart"),
    "an upload over its limit": (lambda c, x: c.post(f"{API}/weather/nwp", files={
        "files": ("big.grib2", b"\0" * (5 * 1024 * 1024))}), 413, "body", "body_too_large"),
    "a file outside the import directory": (lambda c, x: c.post(f"{API}/weather/nwp", json={"files": [
        "../../etc/passwd"]}), 403, "files[0]", "forbidden"),
    "a file not there": (lambda c, x: c.post(f"{API}/weather/nwp", json={"files": ["nothing.grib2"]}), 404,
                         "files[0]", "not_found"),
    "a path of another API": (lambda c, x: c.get(f"{API}/plants"), 404, "path", "unknown_path"),
    "a DELETE": (lambda c, x: c.delete(f"{API}/locations"), 405, "method", "method_not_allowed"),
    "no key": (lambda c, x: httpx.get(f"{x['service']}{API}/locations"), 401, "authorization", "unauthenticated"),
    "a read key writing": (lambda c, x: httpx.post(f"{x['service']}{API}/forecast/generate", headers=x["reader"],
                                                   json={"location_ids": [x["plant"]]}),
                           403, "authorization", "forbidden"),
    "an unknown task": (lambda c, x: c.get(f"{API}/forecast/task/{uuid.uuid4()}"), 404, "task_id", "unknown_task"),
    "a task id that is not one": (lambda c, x: c.get(f"{API}/forecast/task/latest"), 422, "task_id", "wrong_type"),
    "an unknown plant read": (lambda c, x: c.get(f"{API}/locations/{x['unknown']}"), 404, "location_id",
                              "unknown_location"),
    "a page of 0": (lambda c, x: c.get(f"{API}/locations", params={"limit": 0}), 422, "limit", "out_of_bounds"),
    "a cutoff in the future": (lambda c, x: c.post(f"{API}/locations/{x['plant']}/calibrate", json={
        "cutoff": "2100-01-01T00:00:00Z"}), 422, "cutoff", "bad_time"),
    "a year of accuracy": (lambda c, x: c.get(f"{API}/forecast/accuracy/{x['plant']}", params={
        "start": "2013-01-01T00:00:00Z", "end": "2014-01-01T00:00:00Z"}), 422, "end", "window_too_large"),
    "a calibration never made": (lambda c, x: c.get(f"{API}/locations/{x['bare']}/calibration"), 404,
                                 "location_id", "not_found"),
}

#: Codes of the definition no request above causes, and where they are reached (or why not here).
REACHED_ELSEWHERE = {
    "body_timeout": "tests/api/test_abuse.py: a stalled body (408; raw socket, status line)",
    "too_many_slow_bodies": "tests/api/test_abuse.py: one slow body too many (429; raw socket, status line)",
    "conflict": "tests/api/test_abuse.py: concurrent refits of one plant (409)",
    "location_limit": "tests/api/test_location_limits.py (409)",
    "too_many_requests": "tests/api/test_tenant_limits.py: one request of a tenant in flight too many (429)",
    "task_limit": "tests/api/test_tenant_limits.py: one unfinished asynchronous task too many (429)",
    "overloaded": "tests/api/test_merged_calls.py: a burst shed by the Forecaster's queue (503)",
    "unavailable": "tests/api/test_task_lifecycle.py: the database stalled (503)",
    "internal_error": "a bug: no request may cause it (tests/api/test_schemathesis.py finds none)",
    # the edge proxy's refusals (serve_app/edge.py), in front of the service
    "rate_limited": "tests/api/test_edge.py: a key beyond its rate (429)",
    "too_many_connections": "tests/api/test_edge.py: a key's or an address' requests in progress (429)",
    "malformed_request": "tests/api/test_edge.py: headers too large (400)",
    "service_unavailable": "tests/api/test_edge.py: the service does not answer (503)",
}


@pytest.fixture(scope="module")
def ctx(service, plants, api_db_url):
    """The plants and clients the careless requests use."""
    first, bare = list(plants)[:2]
    reader = local.bearer(local.api_key(api_db_url, TENANT, "read", "tests/api/test_error_codes.py reader"))
    return {"service": service, "plant": first, "capacity_ac_kw": plants[first]["capacity_ac_kw"], "bare": bare,
            "unknown": max(plants) + 1000, "reader": reader}


@pytest.mark.parametrize("case", list(CARELESS))
def test_a_careless_request_is_refused_with_its_code(client, ctx, case):
    request, status, field, code = CARELESS[case]
    answer = request(client, ctx)
    response, field = answer if isinstance(answer, tuple) else (answer, field)
    assert_error(client, response, status, field, code)


def test_every_code_is_reached_by_a_request_or_listed_with_the_test_that_reaches_it():
    reached = {code for *_, code in CARELESS.values()}
    assert reached | set(REACHED_ELSEWHERE) == set(validation.ERRORS), set(validation.ERRORS) ^ (
        reached | set(REACHED_ELSEWHERE))


def test_the_served_enum_of_a_per_plant_error_code_is_the_definition(client):
    """``errors[].code`` of a generate answer and ``errors.*.code`` of a task: engine.validation.PLANT_ERRORS."""
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    for name in ("LocationError", "TaskError"):
        assert schemas[name]["properties"]["code"]["enum"] == list(validation.PLANT_ERRORS), name
        assert "code" in schemas[name]["required"], name  # an error without a code breaks the contract
    assert schemas["Task"]["properties"]["errors"]["additionalProperties"] == {"$ref": "#/components/schemas/TaskError"}
    assert schemas["GenerateResult"]["properties"]["errors"]["items"] == {"$ref": "#/components/schemas/LocationError"}


def test_the_served_enum_of_error_code_is_the_definition(client):
    detail = client.get("/openapi.json").json()["components"]["schemas"]["ErrorDetail"]
    assert detail["properties"]["code"]["enum"] == [*validation.ERRORS, *tuning.REFUSAL_CODES] == list(api.ERROR_CODES)
    assert "code" in detail["required"]  # an answer without a code breaks the contract (assert_error validates it)


def test_a_plant_without_weather_is_answered_with_its_code_and_its_task_keeps_it(client):
    """A careless client forecasts a plant it never sent weather for: the answer's per-plant error says
    ``no_weather`` (docs/api.md "Per-plant error codes": retrying helps after sending its weather), and
    the task's stored errors read back with the same code and sentence."""
    created = plant(client, {"name": "careless plant without weather"})
    assert created.status_code == 200, created.text
    lid = created.json()["locations"][0]["location_id"]
    r = generate(client, location_ids=[lid], wait=True)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "failed" and [(e["location_id"], e["code"]) for e in body["errors"]] == [
        (lid, "no_weather")], body
    task = client.get(f"{API}/forecast/task/{body['task_id']}").json()
    assert task["errors"] == {str(lid): {"code": "no_weather", "message": body["errors"][0]["error"]}}, task

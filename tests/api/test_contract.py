"""The HTTP contract (serve_app/schemas.py): one source for validation and /openapi.json (no service needed)."""

import json
import typing

import pandas as pd
import pytest
from fastapi import HTTPException

from pydantic_core.core_schema import ErrorType

from engine import tuning, validation
from serve_app import api, ingress, routes_data, schemas
from serve_app.routes_forecast import accuracy_window, generate_params
from serve_app.settings import load_settings

from apihelpers import ROOT

SETTINGS = load_settings()
ADAPTERS = schemas.adapters(schemas.build(SETTINGS))
NOW = pd.Timestamp("2013-07-01T06:00:00Z")
ROW = {"location_id": 1, "valid_time": "2013-07-01T18:00:00Z", "issue_time": "2013-07-01T06:00:00Z",
       "source": "test", "ghi": 800.0, "temp_air": 25.0, "wind_speed": 1.0, "period_minutes": 0}
PLANT = {"name": "p", "latitude": 39.7, "longitude": -105.2, "capacity_ac_kw": 5.0, "capacity_dc_kw": 6.0,
         "tilt": 30.0, "azimuth": 180.0}


def validate(schema, body):
    """(status, field, message, code) of a body refused by ``schema``, or the validated value."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    value, error = api.validate_json(ADAPTERS[schema], raw)
    return error if error is not None else value


def test_the_committed_openapi_document_is_the_generated_one():
    committed = json.loads(ingress.OPENAPI.read_text())
    assert committed == json.loads(json.dumps(ingress.document(SETTINGS))), \
        "serve_app/openapi.json is stale: run `.venv/bin/python -m serve_app.ingress --write`"


def test_every_route_documents_its_body_and_responses_with_components():
    doc = ingress.document(SETTINGS)
    components = doc["components"]["schemas"]
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            if method in ("post", "put"):
                name = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"].split("/")[-1]
                assert name in components, (path, name)
            assert "422" in operation["responses"] or not operation.get("parameters"), (path, method)
    assert "HTTPValidationError" not in components and "PUT" not in json.dumps(doc)  # ours is "Error"
    assert "put" in doc["paths"]["/api/v1/locations"]


def test_bounds_in_the_document_are_engine_validation_bounds():
    from engine import validation
    location = ingress.document(SETTINGS)["components"]["schemas"]["LocationIn"]["properties"]
    for column, spec in validation.LOCATION_BOUNDS.items():
        documented = location[column].get("anyOf", [location[column]])[0]
        for key, name in (("ge", "minimum"), ("gt", "exclusiveMinimum"), ("le", "maximum"), ("lt", "exclusiveMaximum")):
            assert documented.get(name) == spec.get(key), (column, key)


def test_generate_defaults_come_from_the_service_config():
    p = generate_params(validate("GenerateRequest", {"location_ids": [1, 2]}), SETTINGS, NOW)
    assert p["horizon_hours"] == SETTINGS["forecast"]["default_horizon_hours"]
    assert p["resolution_minutes"] == 15 and p["forecast_type"] == "ml" and p["wait"] is False
    assert p["issue_time"] == NOW.isoformat() and p["quantiles"] == ["p10", "p25", "p50", "p75", "p90"]


def test_issue_time_is_converted_to_utc():
    body = validate("GenerateRequest", {"location_ids": [1], "issue_time": "2013-07-01T00:00:00-06:00"})
    assert generate_params(body, SETTINGS, NOW)["issue_time"] == "2013-07-01T06:00:00+00:00"


@pytest.mark.parametrize("change, status, field", [
    ({"horizon_hours": 0}, 422, "horizon_hours"),
    ({"horizon_hours": 169}, 422, "horizon_hours"),
    ({"horizon_hours": 2.5}, 422, "horizon_hours"),
    ({"horizon_hours": True}, 422, "horizon_hours"),
    ({"horizon_hours": "48"}, 422, "horizon_hours"),
    ({"resolution": "30min"}, 422, "resolution"),
    ({"forecast_type": "nwp"}, 422, "forecast_type"),
    ({"quantiles": ["p5"]}, 422, "quantiles[0]"),
    ({"quantiles": ["p50", "p50"]}, 422, "quantiles"),
    ({"issue_time": "2013-07-01T00:00:00"}, 422, "issue_time"),
    ({"issue_time": "yesterday"}, 422, "issue_time"),
    ({"issue_time": "9999-07-01T00:00:00Z"}, 422, "issue_time"),
    ({"wait": "yes"}, 422, "wait"),
    ({"location_ids": []}, 422, "location_ids"),
    ({"location_ids": [1, 1]}, 422, "location_ids"),
    ({"location_ids": [1, -2]}, 422, "location_ids[1]"),
    ({"location_ids": [1, 24.9]}, 422, "location_ids[1]"),
    ({"location_ids": ["24"]}, 422, "location_ids[0]"),
    ({"location_ids": [True]}, 422, "location_ids[0]"),
    ({"location_ids": [None]}, 422, "location_ids[0]"),
    ({"location_ids": [2**64]}, 422, "location_ids[0]"),
    ({"location_ids": list(range(1, 10_002))}, 422, "location_ids"),
    ({"colour": "blue"}, 422, "colour"),
])
def test_bad_generate_bodies_name_the_field(change, status, field):
    error = validate("GenerateRequest", {"location_ids": [1, 2], **change})
    assert isinstance(error, tuple), f"accepted: {change}"
    assert error[:2] == (status, field) and error[2].startswith(field)


def test_ten_thousand_locations_are_accepted():
    assert len(validate("GenerateRequest", {"location_ids": list(range(1, 10_001))}).location_ids) == 10_000


@pytest.mark.parametrize("body, status, field", [
    (b'{"location_ids": [1,', 400, "body"),
    (b"[" * 5000 + b"]" * 5000, 400, "body"),
    (b'{"location_ids": [NaN]}', 422, "location_ids[0]"),  # JSON extensions parse, then are refused
    (b'{"location_ids": [1], "horizon_hours": Infinity}', 422, "horizon_hours"),
])
def test_malformed_too_deep_or_non_finite_json_is_refused(body, status, field):
    assert validate("GenerateRequest", body)[:2] == (status, field)


@pytest.mark.parametrize("change, field", [
    ({"location_id": 24.9}, "rows[0].location_id"),
    ({"location_id": "24"}, "rows[0].location_id"),
    ({"location_id": True}, "rows[0].location_id"),
    ({"location_id": None}, "rows[0].location_id"),
    ({"location_id": 2**64}, "rows[0].location_id"),
    ({"period_minutes": 30.7}, "rows[0].period_minutes"),
    ({"period_minutes": 3e9}, "rows[0].period_minutes"),
    ({"ghi": "5"}, "rows[0].ghi"),
    ({"ghi": True}, "rows[0].ghi"),
    ({"ghi": -1.0}, "rows[0].ghi"),
    ({"wind_speed": 1e300}, "rows[0].wind_speed"),
    ({"temp_air": 300.0}, "rows[0].temp_air"),
    ({"valid_time": "2013-07-01T18:00:00"}, "rows[0].valid_time"),
    ({"source": "a\u0000b"}, "rows[0].source"),
    ({"source": ""}, "rows[0].source"),
    ({"humidity": 50}, "rows[0].humidity"),
])
def test_bad_weather_rows_name_row_and_column(change, field):
    error = validate("WeatherIngest", {"rows": [ROW, {**ROW, **change}]})
    assert isinstance(error, tuple), f"accepted: {change}"
    assert error[:2] == (422, field.replace("[0]", "[1]"))


def test_weather_with_optional_columns_absent_or_null_is_valid():
    rows = validate("WeatherIngest", {"rows": [ROW, {**ROW, "dni": None, "dhi": 100.0, "cloud_cover": None}]}).rows
    assert len(rows) == 2 and rows[1]["dhi"] == 100.0


@pytest.mark.parametrize("change, field", [
    ({"power_kw": 1e300}, "rows[0].power_kw"),
    ({"power_kw": "2.5"}, "rows[0].power_kw"),
    ({"time": "2013-07-01T18:00:00"}, "rows[0].time"),
    ({"period_minutes": -1}, "rows[0].period_minutes"), ({"period_minutes": 1441}, "rows[0].period_minutes"),
    ({"period_minutes": 60.5}, "rows[0].period_minutes"),
])
def test_bad_actuals_rows_name_row_and_column(change, field):
    row = {"location_id": 1, "time": "2013-07-01T18:00:00Z", "power_kw": 2.5}
    assert validate("ActualsIngest", {"rows": [{**row, **change}]})[:2] == (422, field)


@pytest.mark.parametrize("change, field", [
    ({"altitude": 1e300}, "altitude"), ({"altitude": -1e6}, "altitude"), ({"gamma_pdc": 1e10}, "gamma_pdc"),
    ({"temp_model_u0": 0.0, "temp_model_u1": 0.0}, "temp_model_u0"), ({"model_id": "mystery"}, "model_id"),
    ({"name": "a\u0000b"}, "name"), ({"capacity_ac_kw": 0.0}, "capacity_ac_kw"), ({"latitude": 91.0}, "latitude"),
    ({"tracking": "DUAL_AXIS"}, "tracking"), ({"location_id": 3}, "location_id"), ({"tilt": "30"}, "tilt"),
])
def test_bad_plants_name_the_field(change, field):
    error = validate("LocationsUpsert", {"locations": [{**PLANT, **change}]})
    assert isinstance(error, tuple), f"accepted: {change}"
    assert error[:2] == (422, f"locations[0].{field}")


def test_a_missing_plant_field_is_named():
    """tilt may be left out only with planes (the schema cannot say so): the engine's check names it."""
    body = dict(PLANT)
    del body["tilt"]
    with pytest.raises(HTTPException) as refused:
        routes_data.checked_plants(validate("LocationsUpsert", {"locations": [body]}), SETTINGS["model_ids"])
    assert (refused.value.status_code, refused.value.detail[0]) == (422, "locations[0].tilt")


def test_plant_defaults_come_from_the_service_config():
    plant = validate("LocationsUpsert", {"locations": [PLANT]}).locations[0].model_dump()
    for column, default in SETTINGS["location_defaults"].items():
        assert plant[column] == default, column


def test_the_nwp_upload_and_the_named_import_take_the_same_options():
    doc = ingress.document(SETTINGS)["components"]["schemas"]
    upload, named = doc["NwpUpload"]["properties"], doc["NwpImport"]["properties"]
    assert set(upload) == set(named) == {"files", "location_ids", "source"}
    assert upload["location_ids"] == named["location_ids"] and upload["source"] == named["source"]
    assert upload["files"]["items"] == {"type": "string", "format": "binary"}
    assert upload["files"]["maxItems"] == named["files"]["maxItems"] == SETTINGS["nwp"]["max_files"]


@pytest.mark.parametrize("body, field", [
    ({"files": []}, "files"), ({"files": ["a.nc", "b\u0000.nc"]}, "files[1]"), ({"files": "a.nc"}, "files"),
    ({"files": ["a.nc"], "source": "gefs_spr"}, "source"),
    ({"files": ["a.nc"], "location_ids": [1, 1]}, "location_ids"),
    ({"files": ["a.nc"], "location_ids": ["1"]}, "location_ids[0]"), ({"files": ["a.nc"], "directory": "/etc"}, "directory"),
])
def test_bad_named_nwp_imports_name_the_field(body, field):
    assert validate("NwpImport", body)[:2] == (422, field)


@pytest.mark.parametrize("exc, status, code", [
    (PermissionError("files[0]: outside"), 403, "forbidden"), (FileNotFoundError("files[0]: gone"), 404, "not_found"),
    (LookupError("location_ids: unknown"), 404, "not_found"), (ValueError("files[1]: rap.nc: no ghi"), 422,
                                                               "invalid_value"),
    (ConnectionRefusedError(), 503, "unavailable"), (KeyError("bug"), 500, "internal_error"),
    (OSError("disk full"), 500, "internal_error"),
    (validation.field_error("location_ids", "unknown", LookupError, code="unknown_location"), 404, "unknown_location"),
])
def test_the_one_table_maps_the_import_errors(exc, status, code):
    assert api.status_of(exc) == status and api.status_and_code(exc) == (status, code)


def test_a_code_attribute_of_another_library_is_not_taken_for_ours():
    exc = ValueError("x: odd")
    exc.code = "E042"  # not one of ours: the type's code answers
    assert api.status_and_code(exc) == (422, "invalid_value")


def test_every_pydantic_error_type_has_a_code_of_the_definition():
    types = typing.get_args(ErrorType)
    assert len(types) > 50 and {api.pydantic_code(t) for t in types} <= set(validation.ERRORS)
    assert api.pydantic_code("greater_than_equal") == "out_of_bounds" and api.pydantic_code("missing") == "missing_field"


def test_the_one_table_gives_codes_of_the_definition():
    assert {code for _, _, code in api.STATUS_OF} <= set(validation.ERRORS)
    assert api.ERROR_CODES == (*validation.ERRORS, *tuning.REFUSAL_CODES) and len(set(api.ERROR_CODES)) == len(
        api.ERROR_CODES)


def test_an_error_answer_without_a_code_of_the_definition_is_a_bug():
    for code in (None, "W_not_kW"):
        with pytest.raises(ValueError, match="not one of serve_app.api.ERROR_CODES"):
            api.error_response(422, "rows[0].power_kw", "rows[0].power_kw: too high", code)


def table(heading):
    """{code: meaning} of the table under ``### heading`` of docs/api.md."""
    text = (ROOT / "docs/api.md").read_text().split(f"### {heading}\n", 1)[1].split("\n#", 1)[0]
    rows = [line.split(" | ", 1) for line in text.splitlines() if line.startswith("| `")]
    return {code.strip("| `"): meaning.rstrip(" |") for code, meaning in rows}


def test_docs_list_every_error_code_with_its_meaning():
    assert table("Error codes") == validation.ERRORS
    assert list(table("Refusal codes")) == list(tuning.REFUSAL_CODES)


def test_docs_list_every_per_plant_error_code_with_its_meaning_and_whether_retrying_helps():
    rows = table("Per-plant error codes")
    documented = {code: dict(zip(("meaning", "retry"), cells.split(" | "))) for code, cells in rows.items()}
    assert list(documented) == list(validation.PLANT_ERRORS) and documented == validation.PLANT_ERRORS


def test_a_per_plant_error_without_a_code_of_the_definition_is_a_bug():
    assert validation.plant_error("no_weather", "no weather") == {"code": "no_weather", "message": "no weather"}
    for code in (None, "no weather", "unavailable "):
        with pytest.raises(ValueError, match="not one of engine.validation.PLANT_ERRORS"):
            validation.plant_error(code, "a sentence")


@pytest.mark.parametrize("body, code", [
    ({"rows": [{**ROW, "temp_air": 300.0}]}, "out_of_bounds"), ({"rows": [{**ROW, "ghi": "5"}]}, "wrong_type"),
    ({"rows": [{**ROW, "valid_time": "2013-07-01T18:00:00"}]}, "bad_time"),
    ({"rows": [{**ROW, "valid_time": "1013-07-01T18:00:00Z"}]}, "bad_time"),
    ({"rows": [{**ROW, "humidity": 50}]}, "unknown_field"), ({"rows": [{**ROW, "source": "a\u0000b"}]}, "bad_text"),
    ({"rows": [{k: v for k, v in ROW.items() if k != "temp_air"}]}, "missing_field"), ({"rows": []}, "bad_length"),
    (json.dumps({"rows": [{**ROW, "ghi": float("nan")}]}).encode(), "not_finite"), (b'{"rows": [', "malformed_json"),
])
def test_a_refused_body_carries_the_code_of_its_first_error(body, code):
    assert validate("WeatherIngest", body)[3] == code


def test_a_field_named_like_a_request_part_keeps_its_name():
    """Only FastAPI's parameter errors start with the request part ('query', 'path', ...)."""
    from serve_app.api import location_of, validation_error
    assert location_of(("path",)) == "path" and location_of(("rows", 3, "ghi")) == "rows[3].ghi"
    error = {"type": "int_parsing", "loc": ("path", "location_id"), "msg": "bad", "input": "x"}
    assert validation_error([error], request_part=True)[1] == "location_id"
    assert validation_error([{**error, "loc": ("body",)}])[1] == "body"


def test_actuals_rows_without_a_period_are_instantaneous_samples():
    """period_minutes may be left out of an actuals row: the frame written then says 0 (an instant)."""
    from serve_app import ingest
    row = {"location_id": 1, "time": "2013-07-01T18:00:00Z", "power_kw": 2.5}
    body = validate("ActualsIngest", {"rows": [row, {**row, "time": "2013-07-01T19:00:00Z", "period_minutes": 60}]})
    _, columns, times, ints, _ = ingest.KINDS["actuals"]
    frame = ingest.rows_frame(body.rows, columns, times, ints, ingest.DEFAULTS["actuals"])
    assert frame["period_minutes"].tolist() == [0, 60] and frame["period_minutes"].dtype == "int64"


def test_an_accuracy_window_is_at_most_its_maximum_and_a_missing_bound_follows_from_it():
    t = pd.Timestamp("2016-07-01T00:00:00Z")
    day = pd.Timedelta(days=1)
    assert accuracy_window(t, t + 31 * day, None, 31) == (t, t + 31 * day)
    assert accuracy_window(t, None, None, 31) == (t, t + 31 * day)
    assert accuracy_window(None, t, None, 31) == (t - 31 * day, t)
    assert accuracy_window(None, None, t, 31) == (t - 31 * day, t)  # the days up to the latest run's end
    with pytest.raises(ValueError) as refused:
        accuracy_window(t, t + 31 * day + pd.Timedelta(seconds=1), None, 31)
    assert (refused.value.field, refused.value.code) == ("end", "window_too_large")

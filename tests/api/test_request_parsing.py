"""engine.requests: JSON bodies to validated parameters and frames (pure; no service needed)."""

import pandas as pd
import pytest
import yaml

from apihelpers import ROOT
from engine import requests

SETTINGS = yaml.safe_load((ROOT / "configs/service.yaml").read_text())
NOW = pd.Timestamp("2013-07-01T06:00:00Z")


def params(**body):
    return requests.generate_params({"location_ids": [1, 2], **body}, SETTINGS["forecast"], NOW)


def test_defaults_come_from_the_service_config():
    p = params()
    assert p["horizon_hours"] == 48 and p["resolution_minutes"] == 15 and p["forecast_type"] == "ml"
    assert p["issue_time"] == NOW.isoformat() and p["quantiles"] == ["p10", "p25", "p50", "p75", "p90"]
    assert p["wait"] is False


def test_issue_time_is_converted_to_utc():
    assert params(issue_time="2013-07-01T00:00:00-06:00")["issue_time"] == "2013-07-01T06:00:00+00:00"


@pytest.mark.parametrize("body, field, reason", [
    ({"horizon_hours": 0}, "horizon_hours", "[1, 168]"),
    ({"horizon_hours": 169}, "horizon_hours", "[1, 168]"),
    ({"horizon_hours": 2.5}, "horizon_hours", "integer"),
    ({"horizon_hours": True}, "horizon_hours", "integer"),
    ({"resolution": "30min"}, "resolution", "one of"),
    ({"forecast_type": "nwp"}, "forecast_type", "one of"),
    ({"quantiles": ["p5"]}, "quantiles", "p10"),
    ({"issue_time": "2013-07-01T00:00:00"}, "issue_time", "no UTC offset"),
    ({"issue_time": "yesterday"}, "issue_time", "not an ISO-8601"),
    ({"wait": "yes"}, "wait", "true or false"),
    ({"location_ids": []}, "location_ids", "non-empty"),
    ({"location_ids": [1, 1]}, "location_ids", "repeats location id 1"),
    ({"location_ids": [1, -2]}, "location_ids[1]", "positive integer"),
    ({"location_ids": list(range(1, 10_002))}, "location_ids", "too many locations"),
    ({"colour": "blue"}, "colour", "not a known field"),
])
def test_bad_generate_bodies_name_field_and_reason(body, field, reason):
    with pytest.raises(ValueError) as err:
        params(**body)
    assert requests.error_field(err.value) == field and reason in str(err.value)


def test_ten_thousand_locations_are_accepted():
    assert len(params(location_ids=list(range(1, 10_001)))["location_ids"]) == 10_000


def test_malformed_and_oversized_bodies():
    with pytest.raises(ValueError, match="^body is malformed JSON"):
        requests.parse_json(b'{"a": ', 100)
    with pytest.raises(ValueError, match="^body too large: 101 bytes > limit 100"):
        requests.parse_json(b" " * 101, 100)


def test_rows_frame_applies_defaults_and_parses_utc_times():
    body = {"rows": [{"location_id": 1, "time": "2013-07-01T12:00:00-07:00", "power_kw": 2.5}]}
    frame = requests.rows_frame(body, "rows", ("location_id", "time", "power_kw"), {"flag": "x"}, ("time",), 10)
    assert frame.loc[0, "time"] == pd.Timestamp("2013-07-01T19:00:00Z") and str(frame["time"].dt.tz) == "UTC"
    assert frame.loc[0, "flag"] == "x"


@pytest.mark.parametrize("row, message", [
    ({"location_id": 1, "time": "2013-07-01T12:00:00Z"}, "rows[0].power_kw is required"),
    ({"location_id": 1, "time": "2013-07-01T12:00:00Z", "power_kw": 1, "extra": 0}, "rows[0].extra is not a known"),
    ({"location_id": 1, "time": "2013-07-01T12:00:00", "power_kw": 1}, "rows[0].time '2013-07-01T12:00:00' has no UTC offset"),
])
def test_rows_frame_names_row_and_column(row, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        requests.rows_frame({"rows": [row]}, "rows", ("location_id", "time", "power_kw"), {}, ("time",), 10)


def test_numeric_names_the_cell():
    frame = pd.DataFrame({"ghi": [1.0, "bright"]})
    with pytest.raises(ValueError, match=r"rows\[1\].ghi must be a number"):
        requests.numeric(frame, ["ghi"], "rows")

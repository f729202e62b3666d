"""Plants of several planes and behind a horizon through real HTTP (issue 13): create, read, update,
forecast, and the refusals that name the request field with nothing stored."""

import asyncio

import asyncpg

import numpy as np
import pandas as pd
import pytest

from apihelpers import ISSUE, assert_error, assert_forecast_invariant, count, demo_plants, openapi_validator
from engine import features, forecast, modelio, store, validation
from serve_app.settings import load_settings

pytestmark = pytest.mark.slow

EAST_WEST, SKYLINE = 4, 5  # positions in configs/demo_plants.yaml


def by_name(plants, position):
    name = demo_plants()[position]["name"]
    return next(p for p in plants.values() if p["name"] == name)


def test_planes_and_horizon_read_back_as_given_with_the_summary_derived(client, plants):
    given = demo_plants()
    east_west = client.get(f"/api/v1/locations/{by_name(plants, EAST_WEST)['location_id']}").json()
    openapi_validator(client, "Location").validate(east_west)
    assert [(p["plane"], p["tilt"], p["azimuth"], p["capacity_dc_kw"]) for p in east_west["planes"]] == \
        [(k, p["tilt"], p["azimuth"], p["capacity_dc_kw"]) for k, p in enumerate(given[EAST_WEST]["planes"])]
    assert [p["losses_pct"] for p in east_west["planes"]] == [None, 12.0]  # own value; null = the location's
    assert east_west["capacity_dc_kw"] == pytest.approx(10.4) and east_west["capacity_ac_kw"] == 8.0
    assert east_west["horizon"] is None
    skyline = client.get(f"/api/v1/locations/{by_name(plants, SKYLINE)['location_id']}").json()
    assert skyline["planes"] == [] and skyline["horizon"] == given[SKYLINE]["horizon"]
    listed = {p["location_id"]: p for p in client.get("/api/v1/locations").json()["locations"]}
    assert listed[east_west["location_id"]] == east_west and listed[skyline["location_id"]] == skyline


def stored_inputs(url, ids, issue, horizon_hours=48, resolution_minutes=15, margin_minutes=180):
    """What the Forecaster reads for ``ids``: plants with planes and horizon, weather issued before ``issue``."""
    times = forecast.forecast_times(pd.Timestamp(issue), horizon_hours, resolution_minutes)
    margin = pd.Timedelta(minutes=margin_minutes)

    async def read():
        conn = await asyncpg.connect(url)
        try:
            plants = await store.fetch_plants(conn, ids)
            weather = await store.read_weather(conn, ids, times[0] - margin, times[-1] + margin, pd.Timestamp(issue))
        finally:
            await conn.close()
        return plants, weather
    plants, weather = asyncio.run(read())
    return plants, weather, times


def test_multi_plane_and_horizon_forecasts_are_the_engine_with_their_planes_and_horizon(client, plants, api_db_url):
    """The served forecast equals the engine's with the stored planes and horizon, and differs from the
    engine's without them (a service that dropped the planes or the horizon fails here)."""
    ids = [by_name(plants, EAST_WEST)["location_id"], by_name(plants, SKYLINE)["location_id"]]
    r = client.post("/api/v1/forecast/generate", json={"location_ids": ids, "issue_time": ISSUE, "horizon_hours": 48,
                                                       "forecast_type": "physics", "wait": True})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "succeeded", body["errors"]
    served = {loc["location_id"]: loc for loc in body["locations"]}
    for loc in served.values():
        assert_forecast_invariant(loc["valid_time"], loc, plants[loc["location_id"]], 15)

    stored, weather, times = stored_inputs(api_db_url, ids, ISSUE)
    models = {"global": modelio.load_model(load_settings()["models_dir"], "global")}
    locations = stored["locations"]

    def engine(planes, horizon):
        feats = features.feature_frame(locations, weather, times, planes=planes, horizon=horizon)
        frame, errors = forecast.forecast_batch(feats, locations, models, "physics", pd.Timestamp(ISSUE))
        assert not errors
        return {i: g["p50"].to_numpy() for i, g in frame.groupby("location_id")}

    with_geometry = engine(stored["planes"], stored["horizon"])
    without = engine(None, None)
    for lid in ids:
        assert np.allclose(served[lid]["p50"], with_geometry[lid], rtol=1e-9, atol=1e-9)
        assert not np.allclose(served[lid]["p50"], without[lid], rtol=1e-6, atol=1e-6)


def test_update_to_one_plane_replaces_the_planes(client):
    plant = {**demo_plants()[EAST_WEST], "name": "planes then one plane"}
    first = client.post("/api/v1/locations", json={"locations": [plant]})
    assert first.status_code == 200 and len(first.json()["locations"][0]["planes"]) == 2
    one = {k: v for k, v in plant.items() if k != "planes"} | {"tilt": 20.0, "azimuth": 180.0, "capacity_dc_kw": 9.0}
    second = client.put("/api/v1/locations", json={"locations": [one]})
    assert second.status_code == 200, second.text
    saved = second.json()["locations"][0]
    assert saved["location_id"] == first.json()["locations"][0]["location_id"]
    assert saved["planes"] == [] and (saved["tilt"], saved["capacity_dc_kw"]) == (20.0, 9.0)


def plane(**change):
    return {"tilt": 15.0, "azimuth": 90.0, "capacity_dc_kw": 5.0, **change}


BAD = {
    "tilt above 90": ({"planes": [plane(), plane(tilt=95.0)]}, "locations[0].planes[1].tilt"),
    "azimuth 360": ({"planes": [plane(azimuth=360.0)]}, "locations[0].planes[0].azimuth"),
    "DC of 0": ({"planes": [plane(capacity_dc_kw=0.0)]}, "locations[0].planes[0].capacity_dc_kw"),
    "more than MAX_PLANES": ({"planes": [plane()] * (validation.MAX_PLANES + 1)}, "locations[0].planes"),
    "no planes": ({"planes": []}, "locations[0].planes"),
    "unknown plane field": ({"planes": [plane(roll=3.0)]}, "locations[0].planes[0].roll"),
    "summary differs from the planes": ({"planes": [plane()], "tilt": 30.0}, "locations[0].tilt"),
    "DC/AC of the planes out of range": ({"planes": [plane(capacity_dc_kw=40.0)]}, "locations[0].capacity_dc_kw"),
    "horizon azimuth repeated": ({"horizon": {"azimuth": [0.0, 90.0, 90.0], "elevation": [1.0, 2.0, 3.0]}},
                                 "locations[0].horizon.azimuth[2]"),
    "horizon azimuth decreasing": ({"horizon": {"azimuth": [0.0, 180.0, 90.0], "elevation": [1.0, 2.0, 3.0]}},
                                   "locations[0].horizon.azimuth[2]"),
    "horizon lengths differ": ({"horizon": {"azimuth": [0.0, 90.0, 180.0], "elevation": [1.0, 2.0]}},
                               "locations[0].horizon"),
    "horizon elevation 90": ({"horizon": {"azimuth": [0.0, 180.0], "elevation": [1.0, 90.0]}},
                             "locations[0].horizon.elevation[1]"),
    "one plane without tilt": ({"tilt": None}, "locations[0].tilt"),
}


@pytest.mark.parametrize("change,field", BAD.values(), ids=BAD.keys())
def test_a_bad_plane_or_horizon_is_a_422_naming_the_field_and_nothing_is_stored(client, api_db_url, change, field):
    base = demo_plants()[1]
    if "planes" in change:
        base = {k: v for k, v in base.items() if k not in ("tilt", "azimuth", "capacity_dc_kw", "tracking")}
    name = f"bad plane {field} {sorted(change)}"
    r = client.post("/api/v1/locations", json={"locations": [{**base, **change, "name": name}]})
    assert_error(client, r, 422, field)
    assert count(api_db_url, "SELECT count(*) FROM locations WHERE name = $1", name) == 0


def test_a_name_repeated_in_one_write_is_a_422_before_planes_are_matched_to_it(client, api_db_url):
    """Plane rows are keyed by the plant's name: a repeated name is refused by name (it was a 500)."""
    name = "repeated name with planes"
    plants = [{**demo_plants()[EAST_WEST], "name": name}, {**demo_plants()[1], "name": name}]
    assert_error(client, client.post("/api/v1/locations", json={"locations": plants}), 422, "locations[1].name")
    assert count(api_db_url, "SELECT count(*) FROM locations WHERE name = $1", name) == 0

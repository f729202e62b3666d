"""Plant adaptation through real HTTP: calibrate, read the calibration, forecasts that use it (issue 10).

The plant is SERF East in 2016 (a period neither trained on nor held out), entered with
capacity_dc_kw = capacity_ac_kw; its real PSM3 weather is stamped as issued at 18:00 UTC of
the local day before (what a day-ahead user would have) and its real actuals are ingested.
"""

import time

import numpy as np
import pandas as pd
import pytest

from apihelpers import assert_error, assert_forecast_invariant, openapi_validator
from engine import adaptation, data, features, intraday

pytestmark = pytest.mark.slow

CUTOFF = "2016-07-25T00:00:00+00:00"
PLANT = {"name": "SERF East 2016 [calibration]", "latitude": 39.742, "longitude": -105.1727, "altitude": 1730.0,
         "timezone": "America/Denver", "capacity_ac_kw": 5.5, "capacity_dc_kw": 5.5, "tilt": 45.0, "azimuth": 158.0}


def rows(frame, columns):
    out = frame[columns].copy()
    for c in out.columns:
        if str(out[c].dtype).startswith("datetime64"):
            out[c] = out[c].map(pd.Timestamp.isoformat)
    return out.astype(object).where(out.notna(), None).to_dict(orient="records")


def stored_plant(client, training_config, name, skyline=None, until="2016-08-05", settle=True, period=0,
                 clock_hours=0.0, **described):
    """(location record, measured power Series) with weather 2016-07-01..08-05 and actuals before ``until`` stored.

    ``period`` (min): the actuals sent as means of the ``period`` ending at each label (``period_minutes``),
    from the 15-min samples; 0: the samples themselves.

    ``described`` overrides fields of :data:`PLANT` (a plant described otherwise); ``skyline`` (azimuth,
    elevation points, deg): the actuals behind it, imposed physically (:func:`behind`). Their arrival makes the
    plant due for the refit policy (10+ days: tests/api/conftest.py); ``settle``: wait for that first
    calibration, so that the tests' own fits are later versions. ``clock_hours``: the actuals' time labels
    moved by that much (a client's clock error).
    """
    saved = client.post("/api/v1/locations", json={"locations": [{**PLANT, **described, "name": name}]})
    assert saved.status_code == 200, saved.text
    loc = saved.json()["locations"][0]
    power, weather = data.load_serf_east_2016(loc["location_id"], training_config["data"]["wind_speed_ms"])
    weather = weather[weather["valid_time"] < "2016-08-06"]
    local = pd.DatetimeIndex(weather["valid_time"]).tz_convert(PLANT["timezone"]).tz_localize(None).normalize()
    weather = weather.assign(issue_time=(local - pd.Timedelta(hours=6)).tz_localize("UTC"))  # day before, 18 UTC
    cols = ["location_id", "valid_time", "issue_time", "source", "ghi", "temp_air", "wind_speed", "period_minutes"]
    r = client.post("/api/v1/weather", json={"rows": rows(weather, cols)})
    assert r.status_code == 200, r.text
    power = power[power.index < until]
    if skyline is not None:
        power = behind(power, weather, loc, skyline)
    sent = power
    if period:
        r = power.resample(f"{period}min", label="right", closed="right")
        sent = r.mean()[r.count() == period // 15]
    actuals = pd.DataFrame({"location_id": loc["location_id"], "time": sent.index + pd.Timedelta(hours=clock_hours),
                            "power_kw": sent.to_numpy(),
                            "period_minutes": period})
    r = client.post("/api/v1/actuals", json={"rows": rows(actuals, ["location_id", "time", "power_kw",
                                                                    "period_minutes"])})
    assert r.status_code == 200, r.text
    if settle:
        assert policy_calibration(client, loc["location_id"]).status_code == 200
    return loc, power


def policy_calibration(client, location_id, timeout=300):
    """GET the plant's calibration once the refit policy stored one (404 after ``timeout`` s without)."""
    deadline = time.monotonic() + timeout
    while (got := client.get(f"/api/v1/locations/{location_id}/calibration")).status_code == 404 \
            and time.monotonic() < deadline:
        time.sleep(1)
    return got


def behind(power, weather, loc, skyline):
    """Real actuals behind a skyline: x (physical with it / without it) of the true description (DC 1.2 x AC,
    tilt 45, azimuth 158), the skyline applied by engine.horizon: a known transformation of real data."""
    true = pd.DataFrame([{**PLANT, "location_id": loc["location_id"], "capacity_dc_kw": 1.2 * PLANT["capacity_ac_kw"],
                          "export_limit_kw": np.nan, "tracking": "FIXED", "axis_azimuth": 0.0, "max_angle": 0.0,
                          "gcr": 0.0, "losses_pct": 14.0, "gamma_pdc": -0.004, "temp_model_u0": 25.0,
                          "temp_model_u1": 6.84, "model_id": "global"}])
    horizon = pd.DataFrame({"location_id": loc["location_id"], **skyline})
    free = features.feature_frame(true, weather, power.index)["physical_ac_kw"].to_numpy()
    shaded = features.feature_frame(true, weather, power.index, horizon=horizon)["physical_ac_kw"].to_numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        return power * np.where(free > 0, shaded / free, 1.0)


def post_actuals(client, frame):
    return client.post("/api/v1/actuals", json={"rows": rows(frame, ["location_id", "time", "power_kw"])})


@pytest.fixture(scope="module")
def plant(client, training_config):
    return stored_plant(client, training_config, PLANT["name"])


def test_unknown_plant_and_no_calibration_are_404(client, plant):
    assert_error(client, client.get("/api/v1/locations/999999999/calibration"), 404, "location_id")
    assert_error(client, client.post("/api/v1/locations/999999999/calibrate", json={}), 404, "location_id")
    bare = client.post("/api/v1/locations", json={"locations": [{**PLANT, "name": "SERF East 2016 [no actuals]"}]})
    lid = bare.json()["locations"][0]["location_id"]
    assert_error(client, client.get(f"/api/v1/locations/{lid}/calibration"), 404, "location_id")


def test_too_little_history_is_422_with_the_reason(client, plant):
    """1 local day (27 h of actuals, the night before sunrise on the second): fewer than the bands alone need
    (engine.adaptation.MIN_BAND_DAYS), so nothing is fitted."""
    assert adaptation.MIN_BAND_DAYS > 1
    r = client.post(f"/api/v1/locations/{plant[0]['location_id']}/calibrate",
                    json={"cutoff": "2016-07-02T10:00:00+00:00"})
    assert_error(client, r, 422, "actuals")
    assert r.json()["error"]["code"] == "too_few_days"  # engine.tuning.REFUSAL_CODES; the sentence is for people
    got = client.get(f"/api/v1/locations/{plant[0]['location_id']}/calibration")  # the policy's version, and why
    assert got.status_code == 200, got.text                                      # the refit after it stored nothing
    assert got.json()["last_refusal"]["cutoff"].startswith("2016-07-02")
    assert got.json()["last_refusal"]["code"] == "too_few_days"


def test_four_days_give_bands_before_the_tuning_through_http(client, training_config):
    """4 local days of actuals (fewer than the tuning's 7, at least the bands' 2): POST .../calibrate stores a
    calibration that serves the entered description untuned with the plant's own bands, and says so."""
    loc, _ = stored_plant(client, training_config, "SERF East 2016 [4 days]", until="2016-07-05T06:00:00+00:00",
                          settle=False)
    r = client.post(f"/api/v1/locations/{loc['location_id']}/calibrate", json={"cutoff": "2016-07-05T06:00:00+00:00"})
    assert r.status_code == 200, r.text
    cal = r.json()
    assert cal["diagnostics"]["tuned"] is False and cal["diagnostics"]["untuned_code"] == "too_few_days"
    assert cal["dc_scale"] == 1.0 and cal["clip_kw"] is None and cal["capacity_dc_kw"] == PLANT["capacity_dc_kw"]
    assert cal["diagnostics"]["band_rows"] > 0
    got = client.get(f"/api/v1/locations/{loc['location_id']}/calibration")
    assert got.status_code == 200 and got.json()["version"] == cal["version"]


def test_an_untuned_calibration_shows_bands_relative_to_the_forecast_level_and_forecasts_keep_the_invariant(
        client, training_config):
    """adaptation.relative_untuned (configs/service.yaml: true): the 4-day calibration's band offsets are fractions of
    the forecast level, floored at 0.05 of capacity (bands.level_floor, diagnostics.band_level_floor, in the
    OpenAPI document); a forecast issued after it records its version and keeps 0 <= p10 <= ... <= p90 <= limit,
    0 at night."""
    loc, _ = stored_plant(client, training_config, "SERF East 2016 [4 days, relative]",
                          until="2016-07-05T06:00:00+00:00", settle=False, export_limit_kw=4.0)
    r = client.post(f"/api/v1/locations/{loc['location_id']}/calibrate", json={"cutoff": "2016-07-05T06:00:00+00:00"})
    assert r.status_code == 200, r.text
    cal = client.get(f"/api/v1/locations/{loc['location_id']}/calibration").json()
    openapi_validator(client, "Calibration").validate(cal)
    assert cal["diagnostics"]["tuned"] is False
    assert cal["bands"]["level_floor"] == cal["diagnostics"]["band_level_floor"] == 0.05
    values, run_id = forecast(client, loc["location_id"], "2016-07-05T18:00:00+00:00", 30)
    assert_forecast_invariant(values["valid_time"], values, loc, 15)
    run = client.get(f"/api/v1/forecast/location/{loc['location_id']}", params={"run_id": run_id}).json()["run"]
    assert run["calibration_version"] == cal["version"]


def test_actuals_an_hour_off_the_sun_are_refused_not_learnt(client, training_config):
    """A logger an hour off (DST ignored): calibrate is 422 on the actuals saying the clock is off, and
    nothing is stored (neither by the call nor by the refit policy), so the plant keeps the global forecast."""
    loc, _ = stored_plant(client, training_config, "SERF East 2016 [clock +1 h]", settle=False, clock_hours=1.0)
    r = client.post(f"/api/v1/locations/{loc['location_id']}/calibrate", json={"cutoff": CUTOFF})
    assert_error(client, r, 422, "actuals")
    assert r.json()["error"]["code"] == "clock"  # engine.tuning.clock_offset's refusal
    got = client.get(f"/api/v1/locations/{loc['location_id']}/calibration")
    assert_error(client, got, 404, "location_id")
    assert got.json()["error"]["code"] == "clock"  # the stored refusal's code


def test_future_cutoff_is_refused(client, plant):
    assert_error(client, client.post(f"/api/v1/locations/{plant[0]['location_id']}/calibrate",
                                     json={"cutoff": "2099-01-01T00:00:00+00:00"}), 422, "cutoff")


@pytest.fixture(scope="module")
def calibrated(client, plant):
    r = client.post(f"/api/v1/locations/{plant[0]['location_id']}/calibrate", json={"cutoff": CUTOFF})
    assert r.status_code == 200, r.text
    return r.json()


def test_calibrate_stores_a_version_the_get_returns(client, plant, calibrated):
    openapi_validator(client, "Calibration").validate(calibrated)
    assert calibrated["version"] >= 1 and pd.Timestamp(calibrated["cutoff"]) == pd.Timestamp(CUTOFF)
    assert pd.Timestamp(calibrated["window_end"]) < pd.Timestamp(CUTOFF)
    assert 1.0 < calibrated["dc_scale"] < 1.3  # entered DC = AC; the plant's DC is larger
    shade = calibrated["shading"]  # SERF East is unshaded: a judged profile, no fitted skyline
    assert shade["ok"] and not shade["shaded"] and not any(shade["elevation"]), shade
    assert shade["diagnostics"]["min_bin_days"] >= 1 and shade["diagnostics"]["max_elevation"] > 0
    got = client.get(f"/api/v1/locations/{plant[0]['location_id']}/calibration")
    assert got.status_code == 200 and got.json() == calibrated


def forecast(client, location_id, issue, hours):
    r = client.post("/api/v1/forecast/generate", json={"location_ids": [location_id], "issue_time": issue,
                                                       "horizon_hours": hours, "wait": True})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "succeeded", body
    return body["locations"][0], body["run_ids"][str(location_id)]


def test_a_shaded_plant_shows_its_fitted_skyline_and_its_forecasts_use_it(client, training_config, plant,
                                                                          calibrated):
    """The same real actuals behind a tree line (20 deg from azimuth 70 to 120): the calibration shows a fitted
    skyline there (within 3 deg where fitted, nothing elsewhere), and while the sun is behind it the plant's
    morning P50 is far below the unshaded plant's (same weather, same entered description); at noon they agree."""
    skyline = {"azimuth": [0.0, 65.0, 70.0, 120.0, 125.0], "elevation": [0.0, 0.0, 20.0, 20.0, 0.0]}
    loc, _ = stored_plant(client, training_config, "SERF East 2016 [behind a tree line]", skyline=skyline)
    r = client.post(f"/api/v1/locations/{loc['location_id']}/calibrate", json={"cutoff": CUTOFF})
    assert r.status_code == 200, r.text
    shade = client.get(f"/api/v1/locations/{loc['location_id']}/calibration").json()["shading"]
    az, el = np.asarray(shade["azimuth"]), np.asarray(shade["elevation"])
    assert shade["shaded"] and np.all(np.abs(el[el > 0] - 20.0) <= 3.0) and not el[(az < 60) | (az > 130)].any()
    issue = "2016-07-26T18:00:00+00:00"
    shaded, _ = forecast(client, loc["location_id"], issue, 30)
    free, _ = forecast(client, plant[0]["location_id"], issue, 30)
    times = pd.DatetimeIndex(shaded["valid_time"])
    sun = features.feature_frame(pd.DataFrame([{**PLANT, "location_id": 1, "export_limit_kw": np.nan,
                                                "tracking": "FIXED", "axis_azimuth": 0.0, "max_angle": 0.0,
                                                "gcr": 0.0, "losses_pct": 14.0, "gamma_pdc": -0.004,
                                                "temp_model_u0": 25.0, "temp_model_u1": 6.84, "model_id": "global"}]),
                                 data.load_serf_east_2016(1, training_config["data"]["wind_speed_ms"])[1], times)
    sun_az, sun_el = sun["solar_azimuth"].to_numpy(), sun["solar_elevation"].to_numpy()
    bins = np.floor(sun_az / shade["bin_deg"]).astype(int) % len(el)
    behind_it = (sun_el > 5.0) & (sun_el < el[bins] - 2.0)
    noon = (sun_az > 150.0) & (sun_az < 210.0)
    assert behind_it.sum() >= 2 and noon.sum() >= 8
    p_shaded, p_free = np.asarray(shaded["p50"]), np.asarray(free["p50"])
    assert p_shaded[behind_it].sum() < 0.7 * p_free[behind_it].sum()
    assert p_shaded[noon].sum() == pytest.approx(p_free[noon].sum(), rel=0.15)


def test_forecasts_record_the_version_and_keep_the_invariant(client, plant, calibrated):
    loc, power = plant
    values, run_id = forecast(client, loc["location_id"], "2016-07-26T18:00:00+00:00", 30)
    assert_forecast_invariant(values["valid_time"], values, loc, 15)
    run = client.get(f"/api/v1/forecast/location/{loc['location_id']}", params={"run_id": run_id}).json()["run"]
    assert run["calibration_version"] == calibrated["version"]


def test_intraday_uses_actuals_up_to_the_issue_time_only(client, plant, calibrated):
    """Changing actuals after T leaves the forecast issued at T unchanged; changing the last hour before T does not."""
    loc, power = plant
    issue = pd.Timestamp("2016-07-28T17:00:00Z")
    before, _ = forecast(client, loc["location_id"], issue.isoformat(), 6)
    after_t = power[(power.index > issue) & (power.index <= issue + pd.Timedelta(hours=6))]
    frame = pd.DataFrame({"location_id": loc["location_id"], "time": after_t.index, "power_kw": 0.1})
    assert post_actuals(client, frame).status_code == 200
    same, _ = forecast(client, loc["location_id"], issue.isoformat(), 6)
    last_hour = power[(power.index > issue - pd.Timedelta(hours=1)) & (power.index <= issue)]
    frame = pd.DataFrame({"location_id": loc["location_id"], "time": last_hour.index, "power_kw": 0.1})
    assert post_actuals(client, frame).status_code == 200
    changed, _ = forecast(client, loc["location_id"], issue.isoformat(), 6)
    restore = pd.DataFrame({"location_id": loc["location_id"], "time": pd.concat([after_t, last_hour]).index,
                            "power_kw": pd.concat([after_t, last_hour]).to_numpy()})
    assert post_actuals(client, restore).status_code == 200
    assert same["p50"] == before["p50"] and same["p90"] == before["p90"]
    assert np.asarray(changed["p50"])[:4].sum() < 0.8 * np.asarray(before["p50"])[:4].sum()


def test_calibrated_plant_with_actuals_before_t_gets_the_fitted_blend(client, plant, calibrated):
    """The calibration shows the intraday blend fitted on its own past (weight on the last sample's clear-sky
    index at the first leads). A forecast issued at T whose last 15 min are measured 60 % lower, the hour's sum
    kept (the power index and the hour's clear-sky index unchanged: the fixed ratio update would not move), has
    a lower first step, and nothing after 6 h moves: the fitted blend is served."""
    blend = calibrated["intraday"]["blend"]
    assert blend["ok"] and blend["reason"] is None, blend
    assert blend["candidates"] == ["power_index", "clear_sky_index", "clear_sky_index_last"]
    assert blend["shrink"][0] * blend["fitted"][0][2] > 0, blend
    loc, power = plant
    lid = loc["location_id"]
    issue = pd.Timestamp("2016-07-27T18:00:00Z")
    before, _ = forecast(client, lid, issue.isoformat(), 12)
    hour = power[(power.index >= issue - pd.Timedelta(hours=1)) & (power.index < issue)]
    assert len(hour) == 4 and hour.min() > 1.0
    moved = hour.copy()
    drop = 0.6 * moved.iloc[-1]
    moved.iloc[-1] -= drop
    moved.iloc[0] += drop
    assert post_actuals(client, pd.DataFrame({"location_id": lid, "time": hour.index, "power_kw": moved})
                        ).status_code == 200
    after, _ = forecast(client, lid, issue.isoformat(), 12)
    assert post_actuals(client, pd.DataFrame({"location_id": lid, "time": hour.index, "power_kw": hour})
                        ).status_code == 200
    assert after["p50"][0] < before["p50"][0] - 0.05, (before["p50"][:4], after["p50"][:4])
    late = [i for i, t in enumerate(before["valid_time"]) if pd.Timestamp(t) > issue + pd.Timedelta(hours=6)]
    assert late and [after["p50"][i] for i in late] == [before["p50"][i] for i in late]
    assert_forecast_invariant(after["valid_time"], after, loc, 15)


def test_calibration_shows_the_fitted_orientation_and_forecasts_use_it(client, training_config):
    """Entered with azimuth 180 / tilt 30 (true 158 / 45): the calibration shows the fitted orientation, and the
    plant's forecasts after the intraday blend's leads are those of a plant entered with that orientation
    (whose own fit keeps it) up to the band offsets: the wrong plant's band residuals come from tunings that fitted the orientation block by
    block (docs/model.md "Which residuals"), the twin's from tunings that kept it."""
    wrong, _ = stored_plant(client, training_config, "SERF East 2016 [wrong orientation]", tilt=30.0, azimuth=180.0)
    r = client.post(f"/api/v1/locations/{wrong['location_id']}/calibrate", json={"cutoff": CUTOFF})
    assert r.status_code == 200, r.text
    openapi_validator(client, "Calibration").validate(r.json())
    assert r.json()["diagnostics"]["band_residuals"]["method"].startswith("forward day blocks")
    offsets = np.asarray(r.json()["bands"]["offsets"])
    fitted = r.json()["orientation"]
    assert fitted["ok"] and (fitted["stated_tilt"], fitted["stated_azimuth"]) == (30.0, 180.0), fitted
    assert abs(fitted["azimuth"] - PLANT["azimuth"]) <= 5.0 and abs(fitted["tilt"] - PLANT["tilt"]) <= 10.0
    assert client.get(f"/api/v1/locations/{wrong['location_id']}/calibration").json()["orientation"] == fitted
    twin, _ = stored_plant(client, training_config, "SERF East 2016 [fitted orientation]", tilt=fitted["tilt"],
                           azimuth=fitted["azimuth"])
    r = client.post(f"/api/v1/locations/{twin['location_id']}/calibrate", json={"cutoff": CUTOFF})
    assert r.status_code == 200, r.text
    assert not r.json()["orientation"]["ok"] and "stated kept" in r.json()["orientation"]["reason"]
    bound = np.abs(offsets - np.asarray(r.json()["bands"]["offsets"])).max() * PLANT["capacity_ac_kw"] + 1e-9
    issue = "2016-07-26T18:00:00+00:00"
    got, _ = forecast(client, wrong["location_id"], issue, 30)
    same, _ = forecast(client, twin["location_id"], issue, 30)
    assert_forecast_invariant(got["valid_time"], got, wrong, 15)
    # after the intraday blend's last lead (each plant's blend weights are its own fit) only the bands differ
    later = (pd.DatetimeIndex(got["valid_time"]) - pd.Timestamp(issue)) > pd.Timedelta(
        hours=intraday.BLEND_LEAD_EDGES_HOURS[-1])
    assert later.sum() >= 4 * 24 and list(got["valid_time"]) == list(same["valid_time"])
    for column in ("p10", "p50", "p90"):  # sorting and clipping never widen a difference
        assert np.abs(np.asarray(got[column])[later] - np.asarray(same[column])[later]).max() <= bound, column


def test_refit_policy_calibrates_a_plant_once_its_actuals_arrived_without_a_forecast(client, training_config):
    """Its ~1,900 daylight actuals, ~475 h (the session service refits after 250 h: tests/api/conftest.py) make the plant
    due when they ARRIVE: a calibration is stored with no forecast in between, fitted on every actual sent (cutoff
    just after the last one), and the next forecast uses it. A forecast issued meanwhile (its own refit check
    finds the plant due too) starts no second refit: one version only."""
    t0 = time.monotonic()
    loc, power = stored_plant(client, training_config, "SERF East 2016 [refit policy]", settle=False)
    lid = loc["location_id"]
    issue = "2016-08-05T00:00:00+00:00"  # after the last actual (08-04 23:45 UTC)
    forecast(client, lid, issue, 6)
    got = policy_calibration(client, lid)
    fit_s = time.monotonic() - t0
    assert got.status_code == 200, got.text
    assert got.json()["version"] == 1
    assert pd.Timestamp(got.json()["diagnostics"]["actuals_end"]) == power.index.max()
    assert pd.Timestamp(got.json()["cutoff"]) == power.index.max() + pd.Timedelta(microseconds=1)
    time.sleep(fit_s)  # a duplicate refit started by the forecast's check would be stored by now
    assert client.get(f"/api/v1/locations/{lid}/calibration", params={"version": 2}).status_code == 404
    _, run_id = forecast(client, lid, issue, 6)
    run = client.get(f"/api/v1/forecast/location/{lid}", params={"run_id": run_id}).json()["run"]
    assert run["calibration_version"] == 1


def test_refit_policy_fits_a_new_plant_once_it_has_enough_days_before_the_threshold(client, training_config):
    """A plant without a calibration is refit as soon as its actuals cover refit_first_after_days local days (10
    in the session service), not after the full threshold: 12 days, fewer than 250 h of daylight actuals."""
    loc, power = stored_plant(client, training_config, "SERF East 2016 [first fit]", until="2016-07-13T06:00:00Z",
                              settle=False)
    assert (power > 0).sum() * 0.25 < 250  # 15-min instants: 0.25 h each
    got = policy_calibration(client, loc["location_id"])
    assert got.status_code == 200, got.text
    assert got.json()["version"] == 1
    assert pd.Timestamp(got.json()["diagnostics"]["actuals_end"]) == power.index.max()


def test_a_forecast_reissued_at_t_after_a_later_refit_is_unchanged(client, plant, calibrated):
    """A refit with a cutoff after T (actuals after T) never reaches a forecast issued at T: re-issued after it,
    the run records the calibration it used before and its values are the same (issue 10: no future data)."""
    lid = plant[0]["location_id"]
    issue = "2016-07-29T18:00:00+00:00"
    before, run_before = forecast(client, lid, issue, 12)
    later = client.post(f"/api/v1/locations/{lid}/calibrate", json={"cutoff": "2016-08-04T00:00:00+00:00"})
    assert later.status_code == 200 and later.json()["version"] > calibrated["version"], later.text
    again, run_again = forecast(client, lid, issue, 12)
    used = [client.get(f"/api/v1/forecast/location/{lid}", params={"run_id": r}).json()["run"]["calibration_version"]
            for r in (run_before, run_again)]
    assert used == [calibrated["version"], calibrated["version"]]
    assert again["p50"] == before["p50"] and again["p10"] == before["p10"] and again["p90"] == before["p90"]
    _, run_after = forecast(client, lid, "2016-08-04T18:00:00+00:00", 12)  # issued after its cutoff: used
    run = client.get(f"/api/v1/forecast/location/{lid}", params={"run_id": run_after}).json()["run"]
    assert run["calibration_version"] == later.json()["version"]


def test_a_calibration_serves_forecasts_issued_after_its_last_actual_even_before_its_cutoff(client, plant, calibrated):
    """A cutoff after the last stored actual (a client replaying a past period calibrates "up to now"): the fit
    records the last actual it read, and a forecast issued after that actual uses the fit while one issued at it
    does not (its actuals are not all before T)."""
    lid = plant[0]["location_id"]
    fit = client.post(f"/api/v1/locations/{lid}/calibrate", json={"cutoff": "2016-08-20T00:00:00+00:00"})
    assert fit.status_code == 200, fit.text
    end = pd.Timestamp(fit.json()["diagnostics"]["actuals_end"])
    assert end == plant[1].index.max()  # the last actual stored (2016-08-04 23:45 UTC)
    used = {}
    for issue in (end, end + pd.Timedelta(hours=18)):
        _, run_id = forecast(client, lid, issue.isoformat(), 6)
        used[issue] = client.get(f"/api/v1/forecast/location/{lid}",
                                 params={"run_id": run_id}).json()["run"]["calibration_version"]
    assert used[end] != fit.json()["version"] and used[end] is not None
    assert used[end + pd.Timedelta(hours=18)] == fit.json()["version"]


def test_hourly_means_calibrate_bands_of_instants_and_say_so(client, training_config):
    """Hour-ending means sent with period_minutes 60: the calibration widens their residuals by the within-period
    deviations of instants and says so in its band residuals; its forecasts keep the invariant."""
    loc, _ = stored_plant(client, training_config, "SERF East 2016 [hourly means]", period=60)
    r = client.post(f"/api/v1/locations/{loc['location_id']}/calibrate", json={"cutoff": CUTOFF})
    assert r.status_code == 200, r.text
    openapi_validator(client, "Calibration").validate(r.json())
    how = r.json()["diagnostics"]["band_residuals"]["within_period"]
    assert how["applied"] and how["period_minutes"] == how["table_period_minutes"] == 60, how
    assert how["rows"] == r.json()["diagnostics"]["band_rows"] and how["instants_per_row"] == 4.0
    got, _ = forecast(client, loc["location_id"], "2016-07-26T18:00:00+00:00", 30)
    assert_forecast_invariant(got["valid_time"], got, loc, 15)


def turned(power, weather, loc, tilt, azimuth, size):
    """Another plant's real actuals: the measured power x (physical of a plant turned to (tilt, azimuth) and ``size``
    x as large / physical of the true one, DC 1.2 x AC, tilt 45, azimuth 158; 0 where the true one makes under 2 %
    of AC): a known transformation of real data (bench/bench_careless.py's "another plant")."""
    true = pd.DataFrame([{**PLANT, "location_id": loc["location_id"], "capacity_dc_kw": 1.2 * PLANT["capacity_ac_kw"],
                          "export_limit_kw": np.nan, "tracking": "FIXED", "axis_azimuth": 0.0, "max_angle": 0.0,
                          "gcr": 0.0, "losses_pct": 14.0, "gamma_pdc": -0.004, "temp_model_u0": 25.0,
                          "temp_model_u1": 6.84, "model_id": "global"}])
    other = true.assign(tilt=tilt, azimuth=azimuth, capacity_dc_kw=size * true["capacity_dc_kw"])
    mine = features.feature_frame(true, weather, power.index)["physical_ac_kw"].to_numpy()
    theirs = features.feature_frame(other, weather, power.index)["physical_ac_kw"].to_numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        return power * np.where(mine > 0.02 * PLANT["capacity_ac_kw"], theirs / np.where(mine > 0, mine, 1.0), 0.0)


def resent_and_refused(client, training_config, name, mistake):
    """A calibrated plant (the policy's version from its real actuals) whose client sends its history again with a
    mistake (the same times: the new values replace the old): POST .../calibrate is 422 on the actuals, and GET
    .../calibration still serves the last good version with the refusal beside it. Returns (POST, GET) bodies."""
    loc, power = stored_plant(client, training_config, name)
    lid = loc["location_id"]
    good = client.get(f"/api/v1/locations/{lid}/calibration").json()
    weather = data.load_serf_east_2016(lid, training_config["data"]["wind_speed_ms"])[1]
    wrong = mistake(power, weather, loc)
    assert post_actuals(client, pd.DataFrame({"location_id": lid, "time": wrong.index,
                                              "power_kw": wrong.to_numpy()})).status_code == 200
    deadline = time.monotonic() + 300
    while (r := client.post(f"/api/v1/locations/{lid}/calibrate", json={"cutoff": CUTOFF})).status_code == 409 \
            and time.monotonic() < deadline:  # a refit the policy started on the new actuals is running
        time.sleep(1)
    assert_error(client, r, 422, "actuals")
    got = client.get(f"/api/v1/locations/{lid}/calibration")
    assert got.status_code == 200, got.text
    openapi_validator(client, "Calibration").validate(got.json())
    assert got.json()["version"] == good["version"] and got.json()["dc_scale"] == good["dc_scale"]  # nothing learnt
    return r.json(), got.json()


def test_energy_per_15_min_sent_as_power_is_refused_with_the_code_scale(client, training_config):
    """kWh per 15 min sent as kW (0.25 x the power): POST .../calibrate's error and GET's ``last_refusal`` carry the
    code ``scale`` (engine.tuning.REFUSALS), and the plant keeps the version learnt from its power in kW."""
    posted, got = resent_and_refused(client, training_config, "SERF East 2016 [kWh per 15 min as kW]",
                                     lambda power, weather, loc: power / 4.0)
    assert posted["error"]["code"] == "scale", posted
    assert got["last_refusal"]["code"] == "scale", got["last_refusal"]


def test_another_plants_actuals_are_refused_with_the_code_orientation(client, training_config):
    """Actuals of another plant (tilt 20, azimuth 240, 0.6 x as large) sent for this one (tilt 45, azimuth 158): the
    best orientation lies on the edge of the window searched, so POST's error and GET's ``last_refusal`` carry the
    code ``orientation``, and the plant keeps the version learnt from its own actuals."""
    posted, got = resent_and_refused(client, training_config, "SERF East 2016 [another plant's actuals]",
                                     lambda power, weather, loc: turned(power, weather, loc, 20.0, 240.0, 0.6))
    assert posted["error"]["code"] == "orientation", posted
    assert got["last_refusal"]["code"] == "orientation", got["last_refusal"]

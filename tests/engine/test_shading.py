"""Fitted shading (engine.shading) on a real plant-period outside training and hold-out: SERF East 2016.

SERF East is essentially unshaded (its true orientation is the training site's: tilt 45, azimuth 158).
The shaded plant is the same real actuals behind a known tree line, imposed physically: measured power x
(physical estimate with the skyline / without it), the skyline applied by our own engine.horizon.
"""

import numpy as np
import pandas as pd
import pytest

from engine import adaptation, data, features, forecast, horizon, modelio, resources, shading, training, tuning

CONFIG = training.load_config()
CAP = 5.5
CUTOFF = pd.Timestamp("2016-09-01T00:00:00Z")  # 62 days of history; scored on 09-01..10-13
RIGHT = {"capacity_dc_kw": 1.2 * CAP}
WRONG = {"capacity_dc_kw": CAP, "tilt": 30.0, "azimuth": 180.0}  # issue 10's wrong description
SKYLINE = pd.DataFrame({"location_id": 1, "azimuth": [0.0, 65.0, 70.0, 120.0, 125.0],
                        "elevation": [0.0, 0.0, 20.0, 20.0, 0.0]})  # a tree line, 20 deg from azimuth 70 to 120
ELEVATION_TOLERANCE = 3.0  # deg, on bins the sun crossed both below and above the skyline


@pytest.fixture(scope="module")
def plant():
    power, weather = data.load_serf_east_2016(1, CONFIG["data"]["wind_speed_ms"])
    location = data.site_location(CONFIG["site"], 1, CAP, CAP)
    model = modelio.load_model(resources.folder("models"), "global")
    return power, weather, location, model


def behind_skyline(plant, power=None):
    """The real actuals x (physical with SKYLINE / without), true description: a known skyline, imposed."""
    p, weather, location, _ = plant
    p = p if power is None else power
    true = location.assign(**RIGHT)
    free = features.feature_frame(true, weather, p.index)["physical_ac_kw"].to_numpy()
    behind = features.feature_frame(true, weather, p.index, horizon=SKYLINE)["physical_ac_kw"].to_numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        return p * np.where(free > 0, behind / free, 1.0)


def calibrate(plant, description, power, orientation=True):
    _, weather, location, model = plant
    actuals = pd.DataFrame({"time": power.index, "power_kw": power.to_numpy()})
    cal = adaptation.fit_calibration(location.assign(**description), weather, actuals, model, CUTOFF,
                                     orientation=orientation)
    assert cal["ok"], cal["reason"]
    return cal


@pytest.fixture(scope="module", params=["right", "wrong", "wrong, stated orientation kept"])
def unshaded(plant, request):
    description = RIGHT if request.param == "right" else WRONG
    return request.param, calibrate(plant, description, plant[0], orientation=not request.param.endswith("kept"))


@pytest.fixture(scope="module")
def shaded(plant):
    return calibrate(plant, RIGHT, behind_skyline(plant))


def test_no_false_shading_on_the_unshaded_plant(unshaded):
    """Right AND wrong description (DC = AC, tilt 30, azimuth 180), the latter also with its orientation kept
    (not tuned): the real, unshaded plant gets no skyline. The wrong plane's evening misfit (the sun behind the
    true plane at azimuth ~285: a total beam loss at every elevation the sun took there) is not read as shading:
    without the observed edge rule it was (24 deg at azimuth 280-290)."""
    label, cal = unshaded
    s = cal["shading"]
    assert s["ok"], s["reason"]
    assert s["diagnostics"]["judged_bins"] >= 15  # the data were enough to judge: the sun's path was seen
    assert not s["shaded"] and not any(s["elevation"]), (label, s["elevation"])


def test_the_imposed_skyline_is_recovered(plant, shaded):
    """Bins the sun crossed below and above the tree line get its 20 deg within 3 deg; no bin away from it is
    shaded; bins the sun only crossed above it stay open (no evidence), never above the true skyline."""
    s = shaded["shading"]
    assert s["shaded"]
    az, el = np.asarray(s["azimuth"]), np.asarray(s["elevation"])
    truth = np.interp(az, SKYLINE["azimuth"], SKYLINE["elevation"])
    inside = (az > 70) & (az < 100)  # the sun crossed 20 deg there before the cutoff (Jul-Aug mornings)
    assert np.all(np.abs(el[inside] - 20.0) <= ELEVATION_TOLERANCE), el[inside]
    assert not el[(az < 60) | (az > 130)].any()
    assert np.all(el <= truth + ELEVATION_TOLERANCE)
    d = s["diagnostics"]
    assert d["max_elevation"] == shading.MAX_ELEVATION and d["min_bin_days"] == shading.MIN_BIN_DAYS
    assert pd.Timestamp(s["window_end"]) < CUTOFF


def later_p50_nmae(plant, cal, power, skyline):
    """Daylight P50 nMAE (% of AC) after the cutoff of the tuned plant with or without its fitted skyline."""
    _, weather, location, model = plant
    times = power.index[(power.index >= CUTOFF) & (power.index <= weather["valid_time"].max())]
    tuned = tuning.tuned_locations(location.assign(**RIGHT), None,
                                   adaptation.tuning_table({1: {**cal, "version": 1}}))[0]
    horizon = shading.served_horizon(None, {1: cal["shading"]}) if skyline else None
    f = features.feature_frame(tuned, weather, times, horizon=horizon)
    p50 = forecast.forecast_quantiles(f, tuned, model, "ml", times[0])["p50"].to_numpy()
    y = power.reindex(times).to_numpy()
    day = (f["solar_elevation"].to_numpy() > 0) & np.isfinite(y)
    return 100 * np.mean(np.abs(y[day] - p50[day])) / CAP


def test_the_fitted_skyline_improves_later_day_p50(plant, shaded):
    """On the shaded plant's later days, the fitted skyline brings the P50 error down (measured: 10.65 -> 9.73 %)."""
    power = behind_skyline(plant)
    with_profile = later_p50_nmae(plant, shaded, power, True)
    without = later_p50_nmae(plant, shaded, power, False)
    assert with_profile < 0.95 * without, (with_profile, without)


def test_actuals_at_or_after_the_cutoff_change_nothing(plant):
    """The shading fit sees only samples before the cutoff: the skyline imposed from the cutoff on (or the
    actuals erased there) leaves the fitted profile as it was."""
    power, weather, location, _ = plant
    loc = location.assign(**RIGHT)
    feats = features.feature_frame(loc, weather, power.index)
    later = power.index >= CUTOFF
    changed = power.where(~later, behind_skyline(plant))
    erased = power.where(~later, 0.0)
    fits = [shading.fit_plant_shading(loc, p, feats, CUTOFF) for p in (power, changed, erased)]
    assert fits[0] == fits[1] == fits[2]
    assert pd.Timestamp(fits[0]["window_end"]) < CUTOFF


def test_too_little_history_is_refused_and_says_why(plant):
    """Two days of actuals: no bin has MIN_BIN_DAYS clear days; nothing is shaded and the reason says so."""
    power, weather, location, _ = plant
    loc = location.assign(**RIGHT)
    short = behind_skyline(plant)[:"2016-07-02"]
    s = shading.fit_plant_shading(loc, short, features.feature_frame(loc, weather, short.index), CUTOFF)
    assert not s["ok"] and not s["shaded"] and f"{shading.MIN_BIN_DAYS} clear days" in s["reason"]


def test_without_a_fitted_skyline_the_horizon_is_the_entered_one(plant):
    """No calibration, a calibration before shading existed (None) or an unshaded one: the same horizon object,
    hence exactly the forecast of today."""
    entered = SKYLINE.assign(location_id=1)
    unshaded = {"ok": True, "shaded": False, "bin_deg": 10.0, "elevation": [0.0] * 36}
    for calibrations in ({}, {1: None}, {1: unshaded}):
        assert shading.served_horizon(entered, calibrations) is entered
        assert shading.served_horizon(None, calibrations) is None


def test_served_horizon_is_the_maximum_of_entered_and_fitted(plant):
    """A fitted bin above the entered skyline raises it; elsewhere the entered skyline is kept as it was."""
    entered = pd.DataFrame({"location_id": [1, 1, 1, 2], "azimuth": [0.0, 180.0, 270.0, 90.0],
                            "elevation": [5.0, 12.0, 8.0, 30.0]})
    fitted = np.zeros(36)
    fitted[8] = 25.0  # azimuth 80..90
    served = shading.served_horizon(entered, {1: {"ok": True, "shaded": True, "bin_deg": 10.0,
                                                  "elevation": fitted.tolist()}})
    ids = np.array([1, 2])
    before, after = horizon.profiles(entered, ids), horizon.profiles(served, ids)
    az = np.arange(0.0, 360.0, 0.25)
    e0 = horizon.elevation_at(before["support"], np.zeros(len(az), dtype=int), az)
    e1 = horizon.elevation_at(after["support"], np.zeros(len(az), dtype=int), az)
    in_bin = (az >= 80.5) & (az <= 89.5)
    assert np.allclose(e1[in_bin], 25.0)
    far = (az < 79) | (az > 91)
    assert np.allclose(e1[far], e0[far])
    assert served[served["location_id"] == 2].reset_index(drop=True).equals(
        entered[entered["location_id"] == 2].reset_index(drop=True))

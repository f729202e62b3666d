"""After a change of the plant (strings off or back on, ``engine.tuning.level_changes``) its bands are fitted in
the same state as its DC scale: the days after the last change (``engine.tuning.present_state``). Real data: SERF
East 2016 (outside training and hold-out) with half the strings off from 2016-07-17 (a known transformation of
the real measured power), calibrated at 2016-08-01 as ``POST .../calibrate`` does."""

import numpy as np
import pandas as pd
import pytest

from engine import adaptation, data, modelio, resources, training, tuning

CONFIG = training.load_config()
TZ = CONFIG["site"]["timezone"]
CUTOFF = pd.Timestamp("2016-08-01T00:00:00Z")
STEP = pd.Timestamp("2016-07-17", tz=TZ)


@pytest.fixture(scope="module")
def serf():
    power, weather = data.load_serf_east_2016(1, CONFIG["data"]["wind_speed_ms"])
    power = power[power.index < CUTOFF]
    location = data.site_location(CONFIG["site"], 1, 5.5, 6.6)  # entered rightly (DC/AC 1.2, tilt 45, azimuth 158)
    return power, weather, location, modelio.load_model(resources.folder("models"), "global")


def actuals(power):
    return pd.DataFrame({"time": power.index, "power_kw": power.to_numpy()})


@pytest.fixture(scope="module", params=["still off", "back on"])
def changed(serf, request):
    """Half the strings off from 07-17 (still off at the cutoff), or until 07-17 (back on): the calibration."""
    power, weather, location, model = serf
    after = power.index.tz_convert(TZ) >= STEP
    halved = power.where(~after if request.param == "still off" else after, 0.5 * power)
    return halved, adaptation.fit_calibration(location, weather, actuals(halved), model, CUTOFF)


def test_present_state_is_every_time_without_a_change():
    times = pd.date_range("2016-07-01", periods=10, freq="6h", tz="UTC")
    assert tuning.present_state(times, TZ, []).all() and tuning.present_state(times, TZ, None).all()


def test_present_state_starts_at_the_last_changes_local_midnight():
    """Local days of the plant's zone (UTC-6 in July at Golden, CO): 06:00 UTC is the first instant of 07-17."""
    times = pd.DatetimeIndex(["2016-07-16T05:45Z", "2016-07-17T05:45Z", "2016-07-17T06:00Z", "2016-07-20T12:00Z"])
    changes = [{"first_day": "2016-07-10", "factor": 0.5}, {"first_day": "2016-07-17", "factor": 2.0}]
    np.testing.assert_array_equal(tuning.present_state(times, TZ, changes), [False, False, True, True])
    as_timestamp = [{"first_day": pd.Timestamp("2016-07-17"), "factor": 2.0}]
    np.testing.assert_array_equal(tuning.present_state(times, TZ, as_timestamp), [False, False, True, True])


def test_the_band_residuals_before_a_change_are_left_out_and_stated(changed):
    """The change is found (within 3 days, engine/tuning.py: the split's day can be early) and every band residual
    row before its first day is left out: ``band_residuals.present_state`` states the day, the factor and how many
    rows; the residual rows used are all after it."""
    power, cal = changed
    assert cal["ok"], cal["reason"]
    state = cal["diagnostics"]["band_residuals"]["present_state"]
    first = pd.Timestamp(state["first_day"], tz=TZ)
    assert abs(first - STEP) <= pd.Timedelta(days=3), state
    assert state["factor"] == cal["diagnostics"]["level_changes"][-1]["factor"]
    before = int((power.index.tz_convert(TZ) < first).sum())
    assert state["rows_left_out"] == before > 0
    assert cal["diagnostics"]["band_rows"] <= len(power) - before


def test_bands_after_a_change_are_those_of_the_present_state_alone(serf, changed):
    """The bands (and the DC scale) are bit for bit those of a calibration sent only the actuals from the change's
    first day on: the plant's former state, at another level, teaches its bands nothing (before, its residuals
    were in them: P10-P90 94 % for the plant still at half, bench/bench_careless.py)."""
    power, cal = changed
    _, weather, location, model = serf
    first = pd.Timestamp(cal["diagnostics"]["band_residuals"]["present_state"]["first_day"], tz=TZ)
    alone = adaptation.fit_calibration(location, weather, actuals(power[power.index.tz_convert(TZ) >= first]), model,
                                       CUTOFF)
    assert alone["ok"] and alone["diagnostics"]["band_residuals"]["present_state"]["rows_left_out"] == 0
    assert alone["dc_scale"] == cal["dc_scale"]
    np.testing.assert_array_equal(np.asarray(alone["bands"]["offsets"]), np.asarray(cal["bands"]["offsets"]))


def test_an_unchanged_plant_leaves_no_band_residual_out(serf):
    power, weather, location, model = serf
    cal = adaptation.fit_calibration(location, weather, actuals(power), model, CUTOFF)
    assert cal["ok"] and cal["diagnostics"]["level_changes"] == []
    assert cal["diagnostics"]["band_residuals"]["present_state"] == {"first_day": None, "factor": None,
                                                                      "rows_left_out": 0}

"""Changes of a plant: its bands are fitted in the same state as its DC scale, the days after the last change
(``engine.tuning.present_state``), and smaller changes (a fifth of its strings off, a soiling step) are followed
when they are sharp while a drift of the same size is not taken for one (``engine.tuning.level_changes``,
``SHARP_CHANGE``). Real data: SERF East 2016 (outside training and hold-out) entered rightly (DC 1.2 x AC, tilt
45, azimuth 158), history 2016-07-01..07-31, calibrated at 2016-08-01 as ``POST .../calibrate`` does; the
changes are known transformations of its real measured power (half the strings off from 2016-07-17, ...)."""

import numpy as np
import pandas as pd
import pytest

from engine import adaptation, data, features, modelio, resources, training, tuning

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


@pytest.fixture(scope="module")
def frame(serf):
    """The feature frame of the plant as entered at the history's times."""
    power, weather, location, _ = serf
    return features.feature_frame(location, weather, power.index)


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


def fit(frame, power):
    return tuning.fit_tuning(power, frame["physical_ac_kw"], frame["solar_elevation"], frame["csi"], 5.5, 6.6, CUTOFF,
                             TZ)


@pytest.mark.parametrize("factor", [0.8, 0.85])
def test_a_sharp_step_of_15_to_20_percent_is_followed(serf, frame, factor):
    """x0.8 / x0.85 from 07-17 (15 days of 31): found within 3 days and within 5 % of its size, and the DC scale is
    the present state's (factor x the unchanged plant's, within 3 %); the x1.3 rule alone averages it (a mix)."""
    power = serf[0]
    changed = power.where(power.index.tz_convert(TZ) < STEP, factor * power)
    whole, result = fit(frame, power), fit(frame, changed)
    steps = result["diagnostics"]["level_changes"]
    assert len(steps) == 1 and steps[0]["factor"] == pytest.approx(factor, rel=0.05), steps
    assert abs(pd.Timestamp(steps[0]["first_day"], tz=TZ) - STEP) <= pd.Timedelta(days=3), steps
    assert result["dc_scale"] == pytest.approx(factor * whole["dc_scale"], rel=0.03)
    day = np.asarray(power.index.tz_convert(TZ).tz_localize(None).normalize())
    phys = frame["physical_ac_kw"].to_numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = changed.to_numpy() / phys
    clear = tuning.clear_samples(ratio, phys, frame["solar_elevation"].to_numpy(), frame["csi"].to_numpy(), 5.5) \
        & (phys < 0.85 * 5.5) & (ratio > 0)
    assert tuning.level_changes(day[clear], ratio[clear], sharp_factor=None) == []  # main's rule alone: averaged


def test_a_drift_of_the_same_size_is_not_a_step(serf, frame):
    """x0.7 reached by a steady drift over the 31 days (soiling that builds up): the medians of the two sides of the
    best split differ by x0.86 (a x1.15 rule on the sides alone cuts it at 07-10), but the 10 days either side of it
    differ by less than x1.15: no change is found (the season drifts too; a drift is followed by refits, not by
    cutting the history)."""
    power = serf[0]
    days = (power.index - power.index[0]) / (power.index[-1] - power.index[0])
    drifted = power * (1.0 - 0.3 * np.asarray(days, dtype=float))
    assert fit(frame, drifted)["diagnostics"]["level_changes"] == []


def test_the_unchanged_plant_has_no_sharp_step(serf, frame):
    assert fit(frame, serf[0])["diagnostics"]["level_changes"] == []


def test_sharp_step_needs_the_days_either_side_to_agree():
    """Daily levels (log) whose windows' medians differ by x0.78 but with 8 of the 20 days on the other side of the
    midpoint: not sharp; x0.8 with every day on its side is."""
    clean = np.r_[np.zeros(10), np.full(10, np.log(0.8))]
    assert tuning.sharp_step(clean, 10, 10, tuning.SHARP_CHANGE, tuning.SHARP_AGREE)
    mixed = np.r_[np.zeros(6), np.full(4, -0.5), np.full(6, -0.25), np.full(4, 0.1)]  # medians 0 and -0.25 (x0.78)
    assert not tuning.sharp_step(mixed, 10, 10, tuning.SHARP_CHANGE, tuning.SHARP_AGREE)

"""The clock of a plant's actuals (engine.tuning.clock_offset): a shifted time label is refused, not learnt.

Real measured power: SERF East 2016 (outside training and hold-out), entered right (DC 1.2 x AC, tilt 45,
azimuth 158) and wrong (DC = AC, tilt 30, azimuth 180). A client's clock error is imposed by moving the
time labels of the real samples, as a logger in local time labelled UTC or one ignoring DST would.
"""

import numpy as np
import pandas as pd
import pytest

from engine import adaptation, data, modelio, resources, training, tuning

CONFIG = training.load_config()
CUTOFF = pd.Timestamp("2016-08-20T18:00:00Z")
CAP = 5.5
TABLE = modelio.load_model(resources.folder("models"), "global")["within_period"]
DESCRIPTIONS = {"right": {"capacity_dc_kw": 1.2 * CAP, "tilt": 45.0, "azimuth": 158.0},
                "wrong": {"capacity_dc_kw": CAP, "tilt": 30.0, "azimuth": 180.0}}


@pytest.fixture(scope="module")
def plant():
    power, weather = data.load_serf_east_2016(1, CONFIG["data"]["wind_speed_ms"])
    location = data.site_location(CONFIG["site"], 1, CAP, CAP)
    return power, weather, location


def actuals_of(power, shift_hours=0.0, period=0, since=None):
    """The plant's samples with their time labels moved by ``shift_hours`` (from ``since`` on, when given);
    ``period`` 60: hour-ending means."""
    p = power.copy()
    moved = np.ones(len(p), dtype=bool) if since is None else (p.index >= since)
    p.index = pd.DatetimeIndex(np.where(moved, p.index + pd.Timedelta(hours=shift_hours), p.index))
    if period:
        r = p.resample(f"{period}min", label="right", closed="right")
        p = r.mean()[r.count() == period // 15]
    return pd.DataFrame({"time": p.index, "power_kw": p.to_numpy(), "period_minutes": period})


def clock_of(plant, description, shift_hours=0.0, period=0, since=None, cutoff=CUTOFF):
    power, weather, location = plant
    loc = location.assign(**DESCRIPTIONS[description])
    act, _ = adaptation.actual_instants(actuals_of(power, shift_hours, period, since), cutoff)
    valid = pd.DatetimeIndex(weather["valid_time"])
    act = act[(act["time"] >= valid.min()) & (act["time"] <= valid.max())]
    times = pd.DatetimeIndex(act["time"])
    modelled = adaptation.clear_sky_period_means_kw(loc, weather, times, act["period_minutes"].to_numpy(), TABLE)
    series = pd.Series(act["power_kw"].to_numpy(dtype=float), index=times)
    return tuning.clock_offset(series, modelled, float(loc.loc[0, "longitude"]), CAP)


@pytest.mark.parametrize("description", ["right", "wrong"])
@pytest.mark.parametrize("shift", [0.0, 1.0, -1.0])
def test_the_offset_of_15_min_samples_is_the_imposed_shift(plant, description, shift):
    """15-min samples: the median midpoint offset is the clock error within 0.1 h, whatever the description
    (the samples' own labels put them ~0.1 h early against the sun)."""
    clock = clock_of(plant, description, shift)
    assert clock["days"] >= tuning.MIN_CLOCK_DAYS
    assert clock["offset_hours"] == pytest.approx(shift - 0.1, abs=0.05)
    assert clock["shifted"] == (shift != 0.0)
    assert (clock["reason"] is None) == (shift == 0.0)


@pytest.mark.parametrize("description", ["right", "wrong"])
def test_hourly_means_with_a_right_clock_are_not_refused_and_an_hour_off_is(plant, description):
    """Hour-ending means compared with the clear-sky power's mean over the instants they stand for: a right
    clock reads within 0.15 h of the 15-min samples it averages (0.26-0.34 h early with instants centred in the
    hour, a second definition of the period's instants), labels an hour early (hour-beginning labels) or late
    are refused."""
    right = clock_of(plant, description, 0.0, 60)
    assert right["offset_hours"] == pytest.approx(clock_of(plant, description)["offset_hours"], abs=0.15)
    assert not right["shifted"]
    for shift in (-1.0, 1.0):
        off = clock_of(plant, description, shift, 60)
        assert off["shifted"] and off["offset_hours"] * shift >= tuning.CLOCK_TOLERANCE_HOURS


def test_local_time_labelled_utc_is_caught_by_the_power_at_night(plant):
    """Mountain daylight time labelled as UTC (6 h early): the days no longer match, the night share tells."""
    clock = clock_of(plant, "right", -6.0)
    assert clock["shifted"] and clock["night_share"] >= tuning.CLOCK_NIGHT_SHARE
    assert clock_of(plant, "right")["night_share"] < tuning.CLOCK_NIGHT_SHARE / 5


@pytest.mark.parametrize("description", ["right", "wrong"])
def test_a_clock_an_hour_late_for_the_last_weeks_only_is_caught_by_the_recent_days(plant, description):
    """A logger that ignores daylight saving time is an hour off for part of the history: the last two weeks
    tell even while the median of all days does not (1 of 2 months shifted)."""
    clock = clock_of(plant, description, 1.0, since=pd.Timestamp("2016-09-05T00:00:00Z"),
                     cutoff=pd.Timestamp("2016-10-05T00:00:00Z"))
    assert abs(clock["offset_hours"]) < tuning.CLOCK_TOLERANCE_HOURS
    assert clock["shifted"] and clock["recent_offset_hours"] >= tuning.CLOCK_TOLERANCE_HOURS
    right = clock_of(plant, description, cutoff=pd.Timestamp("2016-10-05T00:00:00Z"))
    assert not right["shifted"] and abs(right["recent_offset_hours"]) < tuning.CLOCK_TOLERANCE_HOURS - 0.3


def test_a_weather_source_an_hour_off_is_not_the_actuals_clock(plant):
    """The reference is the sun's clear-sky power, not the weather's estimate: weather labelled an hour late
    leaves right actuals judged right (the tuning may then learn to live with that weather)."""
    power, weather, location = plant
    late = weather.assign(valid_time=weather["valid_time"] + pd.Timedelta(hours=1),
                          issue_time=weather["issue_time"] + pd.Timedelta(hours=1))
    clock = clock_of((power, late, location), "right")
    assert not clock["shifted"] and abs(clock["offset_hours"]) < 0.2


def test_a_meters_noise_at_night_is_not_read_as_a_clock(plant):
    """Night samples of up to 3 % of capacity (a noisy meter) leave the clock judged right."""
    power, weather, location = plant
    night = power.fillna(0.0) <= 0.0
    noisy = power.where(~night, np.random.default_rng(0).uniform(0.0, 0.03 * CAP, len(power)))
    clock = clock_of((noisy, weather, location), "right")
    assert not clock["shifted"] and clock["night_share"] < tuning.CLOCK_NIGHT_SHARE / 5


def test_daylight_edges_are_interpolated_between_samples():
    """A ramp sampled hourly crosses the limit between two samples; a lone sample above it is its own edge."""
    t = np.array([5.0, 6.0, 7.0, 8.0, 9.0, 29.0, 30.0, 31.0])
    day = np.array([0, 0, 0, 0, 0, 1, 1, 1])
    v = np.array([0.0, 2.0, 6.0, 4.0, 0.0, 0.0, 3.0, 0.0])
    edges = tuning.daylight_edges(t, day, v, 1.0)
    assert edges.loc[0, "first"] == pytest.approx(5.5) and edges.loc[0, "last"] == pytest.approx(8.75)
    assert edges.loc[1, "first"] == pytest.approx(29 + 1 / 3) and edges.loc[1, "last"] == pytest.approx(30 + 2 / 3)


@pytest.fixture(scope="module")
def model():
    return modelio.load_model(resources.folder("models"), "global")


def test_a_calibration_on_shifted_actuals_is_refused_and_says_why(plant, model):
    """An hour's clock error would be learnt as a turned plane (azimuth ~+30 deg) with bands far too wide for
    the true clock; the calibration refuses it (the global prior serves) and reports the offset."""
    power, weather, location = plant
    loc = location.assign(**DESCRIPTIONS["right"])
    shifted = adaptation.fit_calibration(loc, weather, actuals_of(power, 1.0), model, CUTOFF)
    assert not shifted["ok"]
    clock = shifted["diagnostics"]["clock"]
    assert clock["shifted"] and clock["offset_hours"] == pytest.approx(1.0, abs=0.1)
    assert shifted["reason"] == clock["reason"]
    right = adaptation.fit_calibration(loc, weather, actuals_of(power), model, CUTOFF)
    assert right["ok"] and not right["diagnostics"]["clock"]["shifted"]
    assert abs(right["diagnostics"]["clock"]["offset_hours"]) < 0.1


def test_period_means_of_the_clear_sky_power_average_instants_within_the_period(plant):
    """Instants (period 0) are the clear-sky power at the instant; an hour's mean is the mean of the four 15-min
    instants in (end - 60, end] that the bands score it at (adaptation.period_sample_instants: one definition)."""
    from engine import features
    _, weather, location = plant
    loc = location.assign(**DESCRIPTIONS["right"])
    mid = pd.DatetimeIndex(["2016-08-01T17:30:00Z", "2016-08-01T18:00:00Z"])
    got = adaptation.clear_sky_period_means_kw(loc, weather, mid, np.array([60, 0]), TABLE)
    inner = pd.DatetimeIndex(["2016-08-01T17:15:00Z", "2016-08-01T17:30:00Z", "2016-08-01T17:45:00Z",
                              "2016-08-01T18:00:00Z", "2016-08-01T18:00:00Z"])
    assert (adaptation.period_sample_instants(mid, [60, 0], TABLE)[1] == inner).all()
    kw = adaptation.clear_sky_physical_kw(loc, features.feature_frame(loc, weather, inner[:4]))
    assert got[0] == pytest.approx(kw.mean(), rel=1e-12) and got[1] == pytest.approx(kw[3], rel=1e-12)
    weather_kw = features.feature_frame(loc, weather, inner[:4])["physical_ac_kw"].to_numpy()
    assert not np.allclose(kw, weather_kw)  # the sun's, not the weather's

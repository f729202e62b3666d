"""Smaller changes of a plant (a fifth of its strings off, a soiling step) are followed when they are sharp, and a
drift of the same size is not taken for one (``engine.tuning.level_changes``, ``SHARP_CHANGE``). Real data:
SERF East 2016 entered rightly (DC 1.2 x AC, tilt 45, azimuth 158), history 2016-07-01..07-31; the changes are
known transformations of its real measured power."""

import numpy as np
import pandas as pd
import pytest

from engine import data, features, training, tuning

CONFIG = training.load_config()
TZ = CONFIG["site"]["timezone"]
CUTOFF = pd.Timestamp("2016-08-01T00:00:00Z")
STEP = pd.Timestamp("2016-07-17", tz=TZ)


@pytest.fixture(scope="module")
def serf():
    power, weather = data.load_serf_east_2016(1, CONFIG["data"]["wind_speed_ms"])
    power = power[power.index < CUTOFF]
    location = data.site_location(CONFIG["site"], 1, 5.5, 6.6)
    return power, features.feature_frame(location, weather, power.index)


def fit(serf, power):
    f = serf[1]
    return tuning.fit_tuning(power, f["physical_ac_kw"], f["solar_elevation"], f["csi"], 5.5, 6.6, CUTOFF, TZ)


@pytest.mark.parametrize("factor", [0.8, 0.85])
def test_a_sharp_step_of_15_to_20_percent_is_followed(serf, factor):
    """x0.8 / x0.85 from 07-17 (15 days of 31): found within 3 days and within 5 % of its size, and the DC scale is
    the present state's (factor x the unchanged plant's, within 3 %); the x1.3 rule alone averages it (a mix)."""
    power = serf[0]
    changed = power.where(power.index.tz_convert(TZ) < STEP, factor * power)
    whole, result = fit(serf, power), fit(serf, changed)
    steps = result["diagnostics"]["level_changes"]
    assert len(steps) == 1 and steps[0]["factor"] == pytest.approx(factor, rel=0.05), steps
    assert abs(pd.Timestamp(steps[0]["first_day"], tz=TZ) - STEP) <= pd.Timedelta(days=3), steps
    assert result["dc_scale"] == pytest.approx(factor * whole["dc_scale"], rel=0.03)
    day = np.asarray(power.index.tz_convert(TZ).tz_localize(None).normalize())
    f = serf[1]
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = changed.to_numpy() / f["physical_ac_kw"].to_numpy()
    clear = (f["csi"].to_numpy() >= tuning.CLEAR_CSI) & (f["solar_elevation"].to_numpy() > 15) & (ratio > 0) \
        & (f["physical_ac_kw"].to_numpy() > 0.55) & (f["physical_ac_kw"].to_numpy() < 0.85 * 5.5)
    assert tuning.level_changes(day[clear], ratio[clear], sharp_factor=None) == []  # main's rule alone: averaged


def test_a_drift_of_the_same_size_is_not_a_step(serf):
    """x0.7 reached by a steady drift over the 31 days (soiling that builds up): the medians of the two sides of the
    best split differ by x0.86 (a x1.15 rule on the sides alone cuts it at 07-10), but the 10 days either side of it
    differ by less than x1.15: no change is found (the season drifts too; a drift is followed by refits, not by
    cutting the history)."""
    power = serf[0]
    days = (power.index - power.index[0]) / (power.index[-1] - power.index[0])
    drifted = power * (1.0 - 0.3 * np.asarray(days, dtype=float))
    assert fit(serf, drifted)["diagnostics"]["level_changes"] == []


def test_the_unchanged_plant_has_no_sharp_step(serf):
    assert fit(serf, serf[0])["diagnostics"]["level_changes"] == []


def test_sharp_step_needs_the_days_either_side_to_agree():
    """Daily levels (log) whose windows' medians differ by x0.78 but with 8 of the 20 days on the other side of the
    midpoint: not sharp; x0.8 with every day on its side is."""
    clean = np.r_[np.zeros(10), np.full(10, np.log(0.8))]
    assert tuning.sharp_step(clean, 10, 10, tuning.SHARP_CHANGE, tuning.SHARP_AGREE)
    mixed = np.r_[np.zeros(6), np.full(4, -0.5), np.full(6, -0.25), np.full(4, 0.1)]  # medians 0 and -0.25 (x0.78)
    assert not tuning.sharp_step(mixed, 10, 10, tuning.SHARP_CHANGE, tuning.SHARP_AGREE)

"""The automatic refit policy's decision (engine.adaptation.refits_due) on a real plant's actuals arriving day by day
(SERF East 2016, 15-min; counted as engine.store.refit_counts counts them: daylight values and local days)."""

import numpy as np
import pandas as pd
import pytest

from engine import adaptation, data, training, tuning

CONFIG = training.load_config()
THRESHOLD = 400  # daylight values (100 h at 15 min; configs/service.yaml counts hours: refit_after_daylight_hours)


@pytest.fixture(scope="module")
def days():
    """Per local day of July 2016: the cumulative daylight actuals and local days with daylight actuals."""
    power = data.load_serf_east_2016(1, CONFIG["data"]["wind_speed_ms"])[0]
    power = power[(power.index >= "2016-07-01T06:00Z") & (power.index < "2016-08-01T06:00Z")]
    local = power.index.tz_convert(CONFIG["site"]["timezone"]).normalize()
    daylight = (power > 0).groupby(local).sum()
    return pd.DataFrame({"new_daylight": daylight.cumsum().to_numpy("int64"),
                         "daylight_days": np.cumsum(daylight.to_numpy() > 0)})


def counts(row, calibrated=False, location_id=1, tuned=None):
    return pd.DataFrame({"location_id": [location_id], "new_daylight": [int(row["new_daylight"])],
                         "calibrated": [calibrated], "tuned": [calibrated if tuned is None else tuned],
                         "daylight_days": [int(row["daylight_days"])]})


def due_days(days, **kwargs):
    return [k for k in range(len(days)) if len(adaptation.refits_due(counts(days.iloc[k]), THRESHOLD, **kwargs))]


def test_a_new_plant_is_due_once_it_has_the_days_of_a_fit_not_the_threshold(days):
    first = due_days(days, first_days=tuning.MIN_DAYS)[0]
    assert days.iloc[first]["daylight_days"] == tuning.MIN_DAYS
    assert days.iloc[first]["new_daylight"] < THRESHOLD  # the threshold alone comes later
    assert due_days(days, first_days=0)[0] > first
    assert days.iloc[due_days(days, first_days=0)[0]]["new_daylight"] >= THRESHOLD


def test_a_refused_first_fit_waits_for_one_more_day_not_the_next_ingest(days):
    k = due_days(days, first_days=tuning.MIN_DAYS)[0]
    refused = {1: (int(days.iloc[k]["new_daylight"]), int(days.iloc[k]["daylight_days"]))}
    same_day = counts(days.iloc[k])
    assert not len(adaptation.refits_due(same_day, THRESHOLD, tuning.MIN_DAYS, refused))
    assert len(adaptation.refits_due(counts(days.iloc[k + 1]), THRESHOLD, tuning.MIN_DAYS, refused))


def test_a_calibrated_plant_waits_for_the_threshold_and_zero_turns_the_policy_off(days):
    k = int(np.argmax(days["new_daylight"].to_numpy() >= THRESHOLD))
    assert not len(adaptation.refits_due(counts(days.iloc[k - 1], calibrated=True), THRESHOLD, tuning.MIN_DAYS))
    assert len(adaptation.refits_due(counts(days.iloc[k], calibrated=True), THRESHOLD, tuning.MIN_DAYS))
    assert not len(adaptation.refits_due(counts(days.iloc[-1]), 0, tuning.MIN_DAYS))


def test_counted_in_hours_hourly_and_quarter_hourly_actuals_refit_after_the_same_days(days):
    """refit_after_daylight_hours: 100 h of daylight is 400 15-min values or 100 hourly means, the same days."""
    quarter = days.assign(new_daylight_hours=days["new_daylight"] * 0.25)
    hourly = days.assign(new_daylight=days["new_daylight"] // 4, new_daylight_hours=days["new_daylight"] // 4)

    def first_due(frame, threshold, column):
        return next(k for k in range(len(frame)) if len(adaptation.refits_due(
            counts(frame.iloc[k], calibrated=True).assign(new_daylight_hours=frame.iloc[k]["new_daylight_hours"]),
            threshold, tuning.MIN_DAYS, None, column)))
    by_hours = (first_due(quarter, 100, "new_daylight_hours"), first_due(hourly, 100, "new_daylight_hours"))
    assert by_hours[0] == by_hours[1] == first_due(quarter, 400, "new_daylight")
    assert first_due(hourly, 400, "new_daylight") > by_hours[1]  # counted in values, hourly data waits 4x longer
    settings = {"refit_after_daylight_hours": 100, "refit_first_after_days": 7}
    assert adaptation.refit_policy(settings) == (100, 7, "new_daylight_hours")  # the service counts hours
    assert adaptation.refit_policy({**settings, "refit_after_daylight_hours": None})[0] == 0  # off


def test_an_untuned_calibration_is_refit_on_each_new_local_day_a_tuned_one_waits(days):
    """Bands before the tuning (engine.adaptation.untuned_description): the day the tuning has its days must not
    wait for the threshold's cadence. daylight_days of an untuned plant counts the local days after its fit's last
    actual (engine.store.refit_counts); a refused refit of it waits for one more day."""
    fresh = days.iloc[0].copy()
    fresh["new_daylight"], fresh["daylight_days"] = 50, 0  # part of the day after the fit: no new local day yet
    assert not len(adaptation.refits_due(counts(fresh, calibrated=True, tuned=False), THRESHOLD, tuning.MIN_DAYS))
    one = fresh.copy()
    one["daylight_days"] = 1
    assert len(adaptation.refits_due(counts(one, calibrated=True, tuned=False), THRESHOLD, tuning.MIN_DAYS))
    assert not len(adaptation.refits_due(counts(one, calibrated=True, tuned=True), THRESHOLD, tuning.MIN_DAYS))
    assert not len(adaptation.refits_due(counts(one, calibrated=True, tuned=False), THRESHOLD, 0))  # first_days off
    refused = {1: (50, 1)}
    assert not len(adaptation.refits_due(counts(one, calibrated=True, tuned=False), THRESHOLD, tuning.MIN_DAYS,
                                         refused))
    two = one.copy()
    two["daylight_days"] = 2
    assert len(adaptation.refits_due(counts(two, calibrated=True, tuned=False), THRESHOLD, tuning.MIN_DAYS, refused))

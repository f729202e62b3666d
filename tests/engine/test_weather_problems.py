"""Which plants' weather cannot drive a forecast, and why: one pass over a fleet's real weather (errors as data)."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from engine import data, forecast, resample

ROOT = Path(__file__).parents[2]
CONFIG = yaml.safe_load((ROOT / "configs" / "training.yaml").read_text())
ISSUE = pd.Timestamp("2013-06-01 06:00", tz="UTC")
TIMES = forecast.forecast_times(ISSUE, 48, 15)
REQUIRED = ["ghi", "temp_air", "wind_speed", "period_minutes"]


@pytest.fixture(scope="module")
def fleet_weather():
    """Real NSRDB PSM3 weather of SERF East for plants 1..8, rows shuffled (a database read has no order)."""
    w = data.load_weather(CONFIG, 0)
    w = w[(w["valid_time"] >= "2013-05-31") & (w["valid_time"] < "2013-06-05")].reset_index(drop=True)
    w = w.assign(wind_speed=2.0, period_minutes=0)
    return pd.concat([w.assign(location_id=i) for i in range(1, 9)], ignore_index=True)


def test_each_plant_gets_the_reason_of_its_first_problem_and_good_plants_none(fleet_weather):
    w = fleet_weather.copy()
    t = w["valid_time"]
    w.loc[(w["location_id"] == 2) & (t == "2013-06-01 12:00"), "temp_air"] = np.nan
    w.loc[(w["location_id"] == 3) & (t == "2013-06-02 00:00"), "ghi"] = np.inf
    w = pd.concat([w, w[(w["location_id"] == 4) & (t == "2013-06-01 18:30")]], ignore_index=True)  # sent twice
    w = w[~((w["location_id"] == 5) & (w["valid_time"] > "2013-06-02 12:00"))]  # ends before the horizon
    w = w[~((w["location_id"] == 6) & (w["valid_time"] > "2013-06-02 10:00") & (w["valid_time"] < "2013-06-02 16:00"))]
    w = w[w["location_id"] != 7]
    w = w.sample(frac=1.0, random_state=7).reset_index(drop=True)
    got = resample.weather_problems([1, 2, 3, 4, 5, 6, 7, 8], w, TIMES, REQUIRED)
    assert got == {
        7: {"code": "no_weather", "message": "no weather issued at or before issue_time for the forecast window"},
        2: {"code": "weather_not_finite", "message": "weather temp_air is not finite at 2013-06-01 12:00:00+00:00"},
        3: {"code": "weather_not_finite", "message": "weather ghi is not finite at 2013-06-02 00:00:00+00:00"},
        4: {"code": "duplicate_weather", "message": "duplicate weather valid_time 2013-06-01 18:30:00+00:00"},
        5: {"code": "weather_short",
            "message": "weather covers 2013-05-31T00:00:00+00:00 .. 2013-06-02T12:00:00+00:00, not the forecast "
                       "times 2013-06-01T06:15:00+00:00 .. 2013-06-03T06:00:00+00:00"},
        6: {"code": "weather_gap",
            "message": "weather has a gap of 6.0 h from 2013-06-02T10:00:00+00:00 inside the forecast times"}}


def test_rows_of_other_plants_and_a_single_plant_alone(fleet_weather):
    one = fleet_weather[fleet_weather["location_id"] == 3]
    assert resample.weather_problems([3], one, TIMES, REQUIRED) == {}
    assert resample.weather_problems([3], fleet_weather, TIMES, REQUIRED) == {}  # the others' rows are ignored
    none = {"code": "no_weather", "message": "no weather issued at or before issue_time for the forecast window"}
    assert resample.weather_problems([9, 3], one, TIMES, REQUIRED) == {9: none}
    assert resample.weather_problems([3], one.iloc[:0], TIMES, REQUIRED) == {3: none}

"""Real PVDAQ system 50 + PSM3 data: DST fix, weather format, cleaning, capacity."""

from pathlib import Path

import numpy as np
import pandas as pd
import pvlib
import pytest
import yaml

from engine import data

CONFIG = yaml.safe_load((Path(__file__).parents[2] / "configs" / "training.yaml").read_text())
SITE = CONFIG["site"]


@pytest.fixture(scope="module")
def raw_power():
    """Measured power with the index exactly as shipped (fixed UTC-07:00), kW."""
    raw = pd.read_parquet(data.data_file(CONFIG["data"]["power_file"]))
    return pd.Series(raw["ac_power_2"].to_numpy(dtype=float) / 1000.0,
                     index=pd.DatetimeIndex(raw["measured_on"]).tz_convert("UTC"))


@pytest.fixture(scope="module")
def fixed_power():
    return data.load_power(CONFIG)[0]


@pytest.fixture(scope="module")
def weather():
    return data.load_weather(CONFIG, 50)


def clear_days(weather, start, end):
    """UTC days of [start, end) whose PSM3 daily GHI is >= 90 % of clear-sky GHI."""
    w = weather.set_index("valid_time")[start:end]
    daily = w[["ghi", "ghi_clear"]].resample("1D").sum()
    return daily.index[daily["ghi"] >= 0.9 * daily["ghi_clear"]]


def lag_minutes(power, days):
    """Shift (min) of modelled clear-sky POA that best correlates with measured power.

    Positive = the power's time labels are late relative to the sun.
    """
    p = power[np.isin(power.index.normalize(), days)].dropna()
    loc = pvlib.location.Location(SITE["latitude"], SITE["longitude"], altitude=SITE["altitude"])
    scores = {}
    for lag in range(-90, 91, 5):
        t = p.index - pd.Timedelta(minutes=lag)
        sp = loc.get_solarposition(t)
        cs = loc.get_clearsky(t, solar_position=sp)
        poa = pvlib.irradiance.get_total_irradiance(SITE["tilt"], SITE["azimuth"], sp["apparent_zenith"],
                                                    sp["azimuth"], cs["dni"], cs["ghi"], cs["dhi"])["poa_global"]
        scores[lag] = np.corrcoef(p.to_numpy(), poa.to_numpy())[0, 1]
    return max(scores, key=scores.get)


def test_raw_index_runs_60_min_late_in_july(raw_power, weather):
    days = clear_days(weather, "2012-07-01", "2012-08-01")
    assert len(days) >= 3
    assert 50 <= lag_minutes(raw_power, days) <= 70


@pytest.mark.parametrize("start,end", [("2012-07-01", "2012-08-01"), ("2012-01-01", "2012-02-01"),
                                       ("2013-07-01", "2013-08-01")])
def test_dst_fix_puts_power_in_phase_with_poa(fixed_power, weather, start, end):
    days = clear_days(weather, start, end)
    assert len(days) >= 3
    assert abs(lag_minutes(fixed_power, days)) <= 10


def test_fix_dst_drops_only_nonexistent_and_ambiguous_wall_times():
    index = pd.DatetimeIndex(["2012-03-11 02:15", "2012-03-11 03:15", "2012-07-01 12:00",
                              "2012-11-04 01:30", "2012-12-01 12:00"]).tz_localize("Etc/GMT+7")
    fixed = data.fix_dst(index, "America/Denver")
    assert fixed.isna().tolist() == [True, False, False, True, False]
    assert fixed[2] == pd.Timestamp("2012-07-01 18:00", tz="UTC")  # MDT = UTC-6
    assert fixed[4] == pd.Timestamp("2012-12-01 19:00", tz="UTC")  # MST = UTC-7


def test_psm3_labels_are_instantaneous_utc(weather):
    """PSM3 clear-sky GHI matches pvlib's Ineichen at the label itself, better than +-15 min."""
    w = weather[(weather["valid_time"] >= "2012-01-01") & (weather["valid_time"] < "2013-01-01")]
    assert str(w["valid_time"].dt.tz) == "UTC"
    loc = pvlib.location.Location(SITE["latitude"], SITE["longitude"], altitude=SITE["altitude"])
    err = {off: np.abs(loc.get_clearsky(pd.DatetimeIndex(w["valid_time"]) + pd.Timedelta(minutes=off))["ghi"]
                       .to_numpy() - w["ghi_clear"].to_numpy()).mean() for off in (-15, 0, 15)}
    assert err[0] < err[-15] and err[0] < err[15]


def test_weather_frame_has_architecture_columns(weather):
    for col in ("location_id", "valid_time", "issue_time", "source", "ghi", "dni", "dhi", "temp_air",
                "wind_speed", "cloud_cover", "period_minutes"):
        assert col in weather.columns, col
    assert (weather["ghi"] >= 0).all() and weather["temp_air"].notna().all()
    assert (weather["period_minutes"] == 0).all()


def test_cleaning_counts_and_capacity():
    loaded = data.load_serf_east(CONFIG)
    counts, power = loaded["counts"], loaded["power"]
    assert counts["missing_raw"] > 2000  # ~3 % NaN in the file
    assert counts["outage"] > 0
    assert counts["valid_after_cleaning"] == power.notna().sum()
    assert (power.dropna() >= 0).all()
    # ac_power_2 peaks near 3.3 kW, well below the 6 kW metadata
    assert 2.9 < loaded["capacity_ac_kw"] < 3.4
    assert loaded["location"].loc[0, "capacity_ac_kw"] == loaded["capacity_ac_kw"]

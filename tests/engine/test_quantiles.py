"""Forecast limits on real model output for real (PSM3) weather, many plants at once."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from engine import data, features, forecast, modelio, quantiles

ROOT = Path(__file__).parents[2]
CONFIG = yaml.safe_load((ROOT / "configs" / "training.yaml").read_text())
COLS = list(quantiles.QUANTILE_COLUMNS)


@pytest.fixture(scope="module")
def model():
    return modelio.load_model(ROOT / "models", CONFIG["model_id"])


@pytest.fixture(scope="module")
def plants(model):
    """24 plant configurations around SERF East: capacities, export limits, orientations."""
    base = pd.DataFrame([model["card"]["location"]])
    n = 24
    rows = base.loc[np.zeros(n, dtype=int)].reset_index(drop=True)
    rows["location_id"] = np.arange(1, n + 1, dtype="int64")
    rows["name"] = [f"plant-{i}" for i in range(n)]
    rows["capacity_ac_kw"] = np.linspace(2.0, 5000.0, n)
    rows["capacity_dc_kw"] = rows["capacity_ac_kw"] * np.linspace(1.0, 1.4, n)
    rows["export_limit_kw"] = np.where(np.arange(n) % 3 == 0, rows["capacity_ac_kw"] * 0.6, np.nan)
    rows["tilt"] = np.linspace(0.0, 60.0, n)
    rows["azimuth"] = np.linspace(90.0, 270.0, n)
    rows["export_limit_kw"] = rows["export_limit_kw"].astype(float)
    return rows


def real_weather(location_ids):
    """The real PSM3 weather of SERF East, one copy per plant id."""
    w = data.load_weather(CONFIG, 0)
    w = w[(w["valid_time"] >= "2013-06-01") & (w["valid_time"] < "2013-06-09")
          | (w["valid_time"] >= "2013-12-01") & (w["valid_time"] < "2013-12-09")]
    w = w.drop(columns=["ghi_clear"])
    return pd.concat([w.assign(location_id=i) for i in location_ids], ignore_index=True)


@pytest.fixture(scope="module", params=["ml", "physics"])
def output(request, model, plants):
    weather = real_weather(plants["location_id"])
    frames = []
    for start in ("2013-06-01 06:00", "2013-12-01 06:00"):
        issue = pd.Timestamp(start, tz="UTC")
        times = forecast.forecast_times(issue, 48, 15)
        feats = features.feature_frame(plants, weather, times)
        fx = forecast.forecast_quantiles(feats, plants, model, request.param, issue)
        frames.append((fx, feats))
    fx = pd.concat([f for f, _ in frames], ignore_index=True)
    elevation = np.concatenate([f["solar_elevation"].to_numpy() for _, f in frames])
    return fx, elevation


def test_quantiles_never_cross(output):
    fx, _ = output
    q = fx[COLS].to_numpy()
    assert (np.diff(q, axis=1) >= 0).all()


def test_quantiles_within_zero_and_capacity_and_export_limit(output, plants):
    fx, _ = output
    limit = plants.set_index("location_id")[["capacity_ac_kw", "export_limit_kw"]].min(axis=1)
    upper = fx["location_id"].map(limit).to_numpy()
    q = fx[COLS].to_numpy()
    assert (q >= 0).all()
    assert (q <= upper[:, None]).all()
    limited = fx["location_id"].map(plants.set_index("location_id")["export_limit_kw"]).notna().to_numpy()
    # the export limit really binds on sunny June middays for the limited plants
    assert np.isclose(fx.loc[limited, "p90"].to_numpy(), upper[limited]).any()


def test_exactly_zero_when_sun_is_down(output):
    fx, elevation = output
    night = elevation <= 0
    assert night.sum() > 1000
    assert (fx.loc[night, COLS].to_numpy() == 0.0).all()
    assert (fx.loc[~night, "p90"].to_numpy() > 0).mean() > 0.9


def test_forecast_frame_columns_and_horizon(output):
    fx, _ = output
    assert list(fx.columns) == ["location_id", "valid_time"] + COLS + ["horizon_minutes"]
    assert str(fx["valid_time"].dt.tz) == "UTC"
    assert set(fx["horizon_minutes"].unique()) == set(range(15, 48 * 60 + 1, 15))


def test_apply_limits_sorts_raw_model_output(model, plants):
    """Raw MultiQuantile output, shuffled across columns, comes back sorted and bounded."""
    weather = real_weather(plants["location_id"][:4])
    issue = pd.Timestamp("2013-06-01 06:00", tz="UTC")
    feats = features.feature_frame(plants[:4], weather, forecast.forecast_times(issue, 24, 15))
    raw = quantiles.predict_normalised(model["model"], feats[model["card"]["features"]])
    shuffled = raw[:, [4, 2, 0, 3, 1]]
    cap = np.full(len(raw), 3.0)
    kw = quantiles.apply_limits(shuffled, cap, np.full(len(raw), np.nan), feats["solar_elevation"].to_numpy())
    assert (np.diff(kw, axis=1) >= 0).all()
    assert (kw <= 3.0).all() and (kw >= 0).all()


def test_apply_limits_refuses_nan():
    with pytest.raises(ValueError, match="NaN"):
        quantiles.apply_limits(np.array([[0.1, np.nan, 0.2, 0.3, 0.4]]), [1.0], [np.nan], [10.0])


def test_forecast_times_start_after_issue_time():
    t = forecast.forecast_times(pd.Timestamp("2026-11-28 10:07", tz="UTC"), 2, 15)
    assert t[0] == pd.Timestamp("2026-11-28 10:15", tz="UTC")
    assert len(t) == 8 and str(t.tz) == "UTC"
    t = forecast.forecast_times(pd.Timestamp("2026-11-28 10:15", tz="UTC"), 1, 60)
    assert t[0] == pd.Timestamp("2026-11-28 11:00", tz="UTC")
    with pytest.raises(ValueError, match="tz-aware"):
        forecast.forecast_times(pd.Timestamp("2026-11-28 10:15"), 1, 60)
    with pytest.raises(ValueError, match="resolution_minutes"):
        forecast.forecast_times(pd.Timestamp("2026-11-28 10:15", tz="UTC"), 1, 7)

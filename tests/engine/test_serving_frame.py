"""The serving feature frame (``feature_frame(serving=True)``) forecasts exactly what the full frame does.

Serving computes only the daylight elements and keeps only what the forecast
reads, most of it float32 (the precision CatBoost evaluates at); the forecasts
must not change by one bit. Real weather: the bench fleet's four sites (NSRDB
PSM3 Golden CO, pvlib's TMY files), plants of one to three planes, some behind
a horizon profile.
"""

import numpy as np
import pandas as pd
import pytest

import fleet as bench_fleet  # bench/fleet.py (pytest pythonpath)
from engine import features, forecast, modelio, quantiles
from engine import resources

START, END = pd.Timestamp("2013-06-30T06:00:00Z"), pd.Timestamp("2013-07-02T18:00:00Z")
ISSUE = pd.Timestamp("2013-06-30T12:00:00Z")
TIMES = forecast.forecast_times(ISSUE, 48, 15)
SEED = 20130630


@pytest.fixture(scope="module")
def plants():
    """120 plants at the four sites: a third of multi-plane plants, some behind a skyline; their weather."""
    weather = {s: bench_fleet.site_weather(s, START, END).reset_index() for s in bench_fleet.SITES}
    drawn = bench_fleet.plants(120, SEED, list(bench_fleet.SITES)).assign(
        gamma_pdc=-0.004, temp_model_u0=25.0, temp_model_u1=6.84, model_id="global")
    rows, drawn = bench_fleet.multi_plane(drawn, SEED, share_two=0.25, share_three=0.10)
    skyline = bench_fleet.skylines(drawn, SEED, share=0.3)
    ids = dict(zip(drawn["name"], range(1, len(drawn) + 1)))
    locations = drawn.assign(location_id=drawn["name"].map(ids))
    w = pd.concat([weather[s].assign(location_id=i) for i, s in zip(locations["location_id"], locations["site"])],
                  ignore_index=True)
    w["wind_speed"] = w["wind_speed"].fillna(1.0)
    return (locations, w, rows.assign(location_id=rows["name"].map(ids)),
            skyline.assign(location_id=skyline["name"].map(ids)))


@pytest.fixture(scope="module")
def frames(plants):
    locations, weather, rows, skyline = plants
    assert rows["location_id"].nunique() > 20 and skyline["location_id"].nunique() > 20
    return tuple(features.feature_frame(locations, weather, TIMES, planes=rows, horizon=skyline, serving=serving)
                 for serving in (False, True))


@pytest.mark.parametrize("forecast_type", ["ml", "physics"])
def test_serving_frame_gives_the_same_forecasts(plants, frames, forecast_type):
    """Both forecast types from the serving frame equal those from the full frame, bit for bit."""
    full, serving = frames
    models = {"global": modelio.load_model(resources.folder("models"), "global")}
    expected, errors = forecast.forecast_batch(full, plants[0], models, forecast_type, ISSUE, 1)
    got, errors_serving = forecast.forecast_batch(serving, plants[0], models, forecast_type, ISSUE, 1)
    assert errors == errors_serving == {}
    assert (expected["p90"] > 0).mean() > 0.4  # daylight in the window: the model was evaluated
    pd.testing.assert_frame_equal(got, expected, check_exact=True)


@pytest.mark.parametrize("serving", [False, True])
def test_model_matrix_predicts_what_the_frame_predicts(frames, serving):
    """The model's inputs cast once to float32 (``forecast.model_matrix``) give CatBoost's predictions of the
    frame's columns (float64 or float32) exactly."""
    frame = frames[serving]
    model = modelio.load_model(resources.folder("models"), "global")
    day = frame["solar_elevation"].to_numpy() > 0
    expected = quantiles.predict_normalised(model["model"], frame.loc[day, model["card"]["features"]], 1)
    matrix = forecast.model_matrix(frame, model, day)
    assert matrix.dtype == np.float32 and matrix.shape == (day.sum(), len(model["card"]["features"]))
    np.testing.assert_array_equal(quantiles.predict_normalised(model["model"], matrix, 1), expected)


def test_serving_frame_is_the_full_frame_by_day_and_geometry_by_night(frames):
    """Daylight rows hold the full frame's values (float32 where stated); night rows the sun and zero power."""
    full, serving = frames
    assert list(serving.columns) == list(features.SERVING_COLUMNS)
    narrow = [c for c in features.SERVING_COLUMNS if c not in features.SERVING_FLOAT64]
    assert (serving[narrow].dtypes == np.float32).all() and (serving[list(features.SERVING_FLOAT64)].dtypes ==
                                                            np.float64).all()
    expected = full[list(features.SERVING_COLUMNS)].astype({c: np.float32 for c in narrow})
    day = full["solar_elevation"].to_numpy() > 0
    assert 0.2 < 1 - day.mean() < 0.5  # a 48 h grid is about a third night
    pd.testing.assert_frame_equal(serving[day], expected[day], check_exact=True)
    night = serving[~day]
    np.testing.assert_array_equal(night["solar_elevation"], full["solar_elevation"][~day])
    assert (night["physical_ac_kw"] == 0).all() and (full["physical_ac_kw"][~day] == 0).all()
    assert night["csi_mean_3h"].isna().all()  # not computed at night
    assert serving.memory_usage().sum() < 0.5 * full.memory_usage().sum()


def test_plants_that_cannot_be_forecast_are_errors_with_their_code_and_their_batch_mates_are_forecast(plants, frames):
    """``forecast_batch`` gives each plant it cannot forecast its code (engine.validation.PLANT_ERRORS) with its
    sentence: a model id the service has not loaded, a physical estimate that is not finite."""
    locations = plants[0].copy()
    ids = locations["location_id"].tolist()
    locations.loc[locations["location_id"] == ids[0], "model_id"] = "not loaded"
    serving = frames[1].copy()
    serving.loc[serving.index.get_level_values("location_id") == ids[1], "physical_ac_kw"] = np.nan
    models = {"global": modelio.load_model(resources.folder("models"), "global")}
    got, errors = forecast.forecast_batch(serving, locations, models, "physics", ISSUE, 1)
    assert {k: e["code"] for k, e in errors.items()} == {ids[0]: "model_not_loaded", ids[1]: "physics_not_finite"}
    assert "'not loaded' is not loaded" in errors[ids[0]]["message"]
    assert sorted(got["location_id"].unique()) == sorted(ids[2:])

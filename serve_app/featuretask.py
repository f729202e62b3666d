"""The feature step of a forecast pass: a Ray task (a fleet's batches) or a call in a Forecaster replica (small passes).

A module of its own, importing only what the task runs (``engine.features``,
``engine.resample``): a Ray worker that runs its first feature task imports
this module, not the Forecaster's (CatBoost, Ray Serve, asyncpg, the
adaptation code), ~0.8 instead of ~2.3 CPU-s in a new worker process.
"""

import ray

from engine import resample
from engine.features import feature_frame


def feature_task(locations, weather, times, planes=None, horizon=None, lookback_times=None, lookback_ids=(),
                 wind_speed_ms=None):
    """Features of the plants whose weather can drive a forecast, and the others' reasons.

    ``engine.resample.weather_problems`` finds, in one pass, every plant whose
    weather is missing, not finite or does not cover ``times``; the rest go
    through ``engine.features.feature_frame`` with their planes and horizon
    (frames keyed by ``location_id``; None: one plane each, free horizon).
    Runs as a Ray task (never on a replica's event loop). ``lookback_times``
    (the times of the actuals up to the issue) give the features of the model
    P50 and the clear-sky power the intraday blend compares the actuals with,
    for the plants ``lookback_ids``; a plant whose weather does not cover them
    (``engine.resample.weather_problems``) has no lookback rows, i.e. no
    intraday update, never an error (its batch-mates keep theirs). A missing ``wind_speed`` is
    ``wind_speed_ms`` (``engine.resample.fill_wind_speed``).

    Returns
    -------
    features : DataFrame or None
    locations : DataFrame
        The plants of ``features``.
    errors : dict
        location_id -> error (``engine.validation.plant_error``: code and sentence).
    lookback : DataFrame or None
    wind_defaulted : ndarray of int
        Plants whose missing wind speed was replaced (flagged on their runs).
    """
    weather, wind_defaulted = resample.fill_wind_speed(weather, wind_speed_ms)
    errors = resample.weather_problems(locations["location_id"].to_numpy("int64"), weather, times)
    good = locations[~locations["location_id"].isin(list(errors))] if errors else locations
    lookback = None
    past = good[good["location_id"].isin(list(lookback_ids))] if len(lookback_ids) else good.iloc[:0]
    if lookback_times is not None and len(lookback_times) and len(past):
        uncovered = resample.weather_problems(past["location_id"].to_numpy("int64"), weather, lookback_times)
        past = past[~past["location_id"].isin(list(uncovered))]
        if len(past):
            lookback = feature_frame(past, weather, lookback_times, planes=planes, horizon=horizon, serving=True)
    features = feature_frame(good, weather, times, planes=planes, horizon=horizon, serving=True) if len(good) else None
    return features, good, errors, lookback, wind_defaulted


#: :func:`feature_task` as a Ray task (a fleet's batches, placed by Ray over the cluster's nodes).
remote_feature_task = ray.remote(feature_task)

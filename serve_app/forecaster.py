"""Forecaster deployment: holds the verified CatBoost models, forecasts batches of plants."""

import asyncio
import time

import asyncpg
import numpy as np
import pandas as pd
import ray
from ray import serve

from engine import forecast, modelio, quantiles, resample, store, validation
from engine.features import feature_frame
from serve_app.observability import CLIPPED, event


def model_version(card):
    """``<model_id>@<first 12 hex of the model file sha256>`` (the card's identity of the file)."""
    return f"{card['model_id']}@{card['sha256'][:12]}"


@ray.remote
def feature_task(locations, weather, times, planes=None, horizon=None):
    """Features of the plants whose weather can drive a forecast, and the others' reasons.

    ``engine.resample.weather_problems`` finds, in one pass, every plant whose
    weather is missing, not finite or does not cover ``times``; the rest go
    through ``engine.features.feature_frame`` with their planes and horizon
    (frames keyed by ``location_id``; None: one plane each, free horizon).
    Runs as a Ray task (never on a replica's event loop).

    Returns
    -------
    features : DataFrame or None
    locations : DataFrame
        The plants of ``features``.
    errors : dict
        location_id -> reason.
    """
    errors = resample.weather_problems(locations["location_id"].to_numpy("int64"), weather, times)
    good = locations[~locations["location_id"].isin(list(errors))]
    features = feature_frame(good, weather, times, planes=planes, horizon=horizon) if len(good) else None
    return features, good, errors


@serve.deployment
class Forecaster:
    """Loads every configured model once (checked against its card) and keeps it."""

    def __init__(self, settings, writer):
        self.settings = settings
        self.writer = writer
        self.models = {m: modelio.load_model(settings["models_dir"], m) for m in settings["model_ids"]}
        self.pool = None

    async def ready(self):
        """Model ids and versions (called by the ingress' /readyz)."""
        return {m: model_version(model["card"]) for m, model in self.models.items()}

    async def forecast(self, locations, params, task_id):
        """Forecast, store and summarise one batch of plants.

        Returns
        -------
        dict
            ``run_ids`` {location_id: run_id}, ``errors`` {location_id: reason},
            ``timings`` (s by stage), ``clipped`` (count), ``forecast`` (frame or None).
        """
        t0 = time.perf_counter()
        issue = pd.Timestamp(params["issue_time"])
        times = forecast.forecast_times(issue, params["horizon_hours"], params["resolution_minutes"])
        margin = pd.Timedelta(minutes=self.settings["forecast"]["weather_margin_minutes"])
        if self.pool is None:
            self.pool = await asyncpg.create_pool(store.database_url(), min_size=1, max_size=2)
        ids = locations["location_id"].tolist()
        weather = await store.read_weather(self.pool, ids, times[0] - margin, times[-1] + margin, issue)
        geometry = {"planes": await store.fetch_planes(self.pool, ids),
                    "horizon": await store.fetch_horizons(self.pool, ids)}
        t_read = time.perf_counter()
        task_cpus = self.settings["forecast"]["feature_task_num_cpus"]
        feats, locs, errors = await feature_task.options(num_cpus=task_cpus).remote(locations, weather, times,
                                                                                    **geometry)
        t_feat = time.perf_counter()
        frame, model_errors = await asyncio.get_running_loop().run_in_executor(
            None, self.predict, feats, locs, params, issue)
        errors.update(model_errors)
        t_pred = time.perf_counter()
        run_ids = {}
        if len(frame):
            written = locs[locs["location_id"].isin(frame["location_id"].unique())]
            run_ids = await self.writer.write.remote(self.runs_frame(written, params, issue, task_id), frame)
        t_write = time.perf_counter()
        clipped = clipped_values(frame, locs)
        if clipped:  # a Ray Counter refuses inc(0)
            CLIPPED.inc(clipped)
        timings = {"read_weather_s": t_read - t0, "features_s": t_feat - t_read, "predict_s": t_pred - t_feat,
                   "write_s": t_write - t_pred}
        event("batch_done", task_id=task_id, locations=len(locations), errors=len(errors), runs=len(run_ids),
              timings=timings)
        return {"run_ids": run_ids, "errors": errors, "timings": timings, "clipped": clipped,
                "forecast": frame if params["wait"] and params["include_forecast"] else None}

    def predict(self, feats, locations, params, issue):
        """``engine.forecast.forecast_batch`` (blocking; runs in the replica's executor)."""
        if feats is None:  # every plant of the batch already has its error
            return pd.DataFrame(columns=list(validation.FORECAST_COLUMNS)), {}
        return forecast.forecast_batch(feats, locations, self.models, params["forecast_type"], issue,
                                       self.settings["forecast"]["predict_threads"])

    def runs_frame(self, locations, params, issue, task_id):
        """One runs row per location (ARCHITECTURE 'runs')."""
        card = {m: self.models[m]["card"] for m in locations["model_id"].unique()}
        return pd.DataFrame({
            "location_id": locations["location_id"].to_numpy(dtype="int64"), "issue_time": issue,
            "model_id": locations["model_id"].to_numpy(),
            "model_version": [model_version(card[m]) for m in locations["model_id"]],
            "forecast_type": params["forecast_type"], "resolution_minutes": params["resolution_minutes"],
            "horizon_hours": params["horizon_hours"], "task_id": task_id, "timings": [{}] * len(locations)})


def clipped_values(frame, locations):
    """Number of quantile values at the plant's power limit while the sun is up (p90 > 0)."""
    if not len(frame):
        return 0
    plants = locations.set_index("location_id").loc[frame["location_id"]]
    limit = quantiles.power_limit_kw(plants["capacity_ac_kw"].to_numpy(), plants["export_limit_kw"].to_numpy())
    values = frame[list(quantiles.QUANTILE_COLUMNS)].to_numpy()
    return int(((values >= limit[:, None]) & (frame[["p90"]].to_numpy() > 0)).sum())

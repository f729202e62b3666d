"""Forecaster deployment: holds the verified CatBoost models, forecasts batches of plants."""

import asyncio
import re
import time

import asyncpg
import numpy as np
import pandas as pd
import ray
from ray import serve

from engine import forecast, modelio, quantiles, store
from engine.features import feature_frame
from serve_app.observability import CLIPPED, event, reason

LOCATION_IN_MESSAGE = re.compile(r"location_id[^0-9]{0,4}(\d+)")


def model_version(card):
    """``<model_id>@<first 12 hex of the model file sha256>`` (the card's identity of the file)."""
    return f"{card['model_id']}@{card['sha256'][:12]}"


@ray.remote
def feature_task(locations, weather, times):
    """``engine.features.feature_frame`` as a Ray task (never on a replica's event loop)."""
    return feature_frame(locations, weather, times)


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
        t_read = time.perf_counter()
        errors = {int(i): "no weather issued at or before issue_time covers the horizon"
                  for i in set(ids) - set(weather["location_id"].unique().tolist())}
        feats, locs = await self.features(locations[~locations["location_id"].isin(list(errors))], weather, times, errors)
        t_feat = time.perf_counter()
        frame = await asyncio.get_running_loop().run_in_executor(None, self.predict, feats, locs, params, issue)
        t_pred = time.perf_counter()
        run_ids = {}
        if len(frame):
            runs = self.runs_frame(locs, params, issue, task_id)
            run_ids = await self.writer.write.remote(runs, frame)
        t_write = time.perf_counter()
        limit = quantiles.power_limit_kw(*[locs.set_index("location_id").loc[frame["location_id"], c].to_numpy()
                                          for c in ("capacity_ac_kw", "export_limit_kw")]) if len(frame) else 0
        clipped = int(((frame[list(quantiles.QUANTILE_COLUMNS)].to_numpy() >= np.reshape(limit, (-1, 1)))
                       & (frame[["p90"]].to_numpy() > 0)).sum()) if len(frame) else 0
        if clipped:  # a Ray Counter refuses inc(0)
            CLIPPED.inc(clipped)
        timings = {"read_weather_s": t_read - t0, "features_s": t_feat - t_read, "predict_s": t_pred - t_feat,
                   "write_s": t_write - t_pred}
        event("batch_done", task_id=task_id, locations=len(ids), errors=len(errors), runs=len(run_ids),
              timings=timings)
        return {"run_ids": run_ids, "errors": errors, "timings": timings, "clipped": clipped,
                "forecast": frame if params["wait"] and params["include_forecast"] else None}

    async def features(self, locations, weather, times, errors):
        """Feature frame of a batch; a location whose weather fails is an error, never filled.

        ``feature_frame`` names the first failing location in its ``ValueError``;
        that location gets the message as its error and the rest are retried.
        """
        task_cpus = self.settings["forecast"]["feature_task_num_cpus"]
        while len(locations):
            try:
                feats = await feature_task.options(num_cpus=task_cpus).remote(locations, weather, times)
                return feats, locations
            except ValueError as exc:
                match = LOCATION_IN_MESSAGE.search(reason(exc))
                bad = int(match.group(1)) if match else None
                if bad not in set(locations["location_id"].tolist()):
                    raise
                errors[bad] = reason(exc)
                locations = locations[locations["location_id"] != bad]
        return None, locations

    def predict(self, feats, locations, params, issue):
        """Quantile frame of the batch, one predict call per model id (blocking; executor)."""
        if feats is None or not len(locations):
            return pd.DataFrame(columns=["location_id", "valid_time", *quantiles.QUANTILE_COLUMNS, "horizon_minutes"])
        frames = []
        for model_id, group in locations.groupby("model_id"):
            if model_id not in self.models:
                raise LookupError(f"model_id {model_id!r} is not loaded (configured: {list(self.models)})")
            rows = feats[feats.index.get_level_values("location_id").isin(group["location_id"])]
            frames.append(forecast.forecast_quantiles(rows, group, self.models[model_id],
                                                      params["forecast_type"], issue,
                                                      self.settings["forecast"]["predict_threads"]))
        return pd.concat(frames, ignore_index=True)

    def runs_frame(self, locations, params, issue, task_id):
        """One runs row per location (ARCHITECTURE 'runs')."""
        card = {m: self.models[m]["card"] for m in locations["model_id"].unique()}
        return pd.DataFrame({
            "location_id": locations["location_id"].to_numpy(dtype="int64"), "issue_time": issue,
            "model_id": locations["model_id"].to_numpy(),
            "model_version": [model_version(card[m]) for m in locations["model_id"]],
            "forecast_type": params["forecast_type"], "resolution_minutes": params["resolution_minutes"],
            "horizon_hours": params["horizon_hours"], "task_id": task_id, "timings": [{}] * len(locations)})

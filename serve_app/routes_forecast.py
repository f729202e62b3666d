"""Forecast endpoints: generate, task status, location read (json/csv/energy), plot, accuracy."""

import asyncio
import io
import uuid

import numpy as np
import pandas as pd
from starlette.responses import Response
from starlette.routing import Route

from engine import data, metrics, plots, quantiles, requests, store
from serve_app.http import handles_errors, json_response
from serve_app.routes_data import read_json
from serve_app.tasks import run_task

AGGREGATES = {"hourly": "1 hour", "daily": "1 day"}


def window(request):
    """``start``/``end`` query parameters (ISO-8601 UTC) or None."""
    q = request.query_params
    return [requests.utc_timestamp(q[k], k) if k in q else None for k in ("start", "end")]


def location_payload(frame, location, run_ids, wanted):
    """Columnar forecast of one location (kW) with its capacity and limit."""
    return {"location_id": int(location["location_id"]), "run_id": run_ids.get(int(location["location_id"])),
            "capacity_ac_kw": float(location["capacity_ac_kw"]),
            "power_limit_kw": float(quantiles.power_limit_kw(location["capacity_ac_kw"], location["export_limit_kw"])),
            "valid_time": [t.isoformat() for t in frame["valid_time"]],
            "horizon_minutes": frame["horizon_minutes"].astype(int).tolist(),
            **{q: frame[q].astype(float).tolist() for q in wanted}}


def routes(app):
    """Starlette routes bound to the ingress ``app`` (pool, forecaster handle, settings)."""
    settings = app.settings

    @handles_errors
    async def generate(request):
        params = requests.generate_params(await read_json(request, settings), settings["forecast"],
                                          pd.Timestamp.now(tz="UTC").floor("s"))
        locations = await store.fetch_locations(app.pool, params["location_ids"])
        unknown = sorted(set(params["location_ids"]) - set(locations["location_id"].tolist()))
        if unknown:
            raise LookupError(f"location_ids: unknown location {unknown[:5]} ({len(unknown)} unknown)")
        task_id = str(uuid.uuid4())
        await store.create_task(app.pool, task_id, params, len(locations))
        job = run_task(app.pool, app.forecaster, task_id, locations, params, settings["forecast"]["batch_locations"])
        if not params["wait"]:
            app.start_background(task_id, job)
            return json_response({"task_id": task_id, "status": "queued",
                                  "status_url": f"/api/v1/forecast/task/{task_id}"}, 202)
        result = await job
        frame = pd.concat(result.pop("frames"), ignore_index=True) if params["include_forecast"] and result["frames"] else None
        result.pop("frames", None)
        out = {**result, "issue_time": params["issue_time"], "forecast_type": params["forecast_type"],
               "resolution_minutes": params["resolution_minutes"], "horizon_hours": params["horizon_hours"],
               "errors": [{"location_id": k, "error": v} for k, v in result["errors"].items()],
               "run_ids": {str(k): v for k, v in result["run_ids"].items()}, "locations": []}
        if frame is not None:
            groups = dict(tuple(frame.groupby("location_id", sort=True)))
            out["locations"] = [location_payload(groups[int(row["location_id"])], row, result["run_ids"],
                                                 params["quantiles"])
                                for _, row in locations.iterrows() if int(row["location_id"]) in groups]
        return json_response(out, 200)

    @handles_errors
    async def task_status(request):
        task = await store.read_task(app.pool, request.path_params["task_id"])
        if task is None:
            raise LookupError(f"task_id {request.path_params['task_id']} is unknown")
        return json_response(task)

    async def read_run(request):
        lid = int(request.path_params["location_id"])
        start, end = window(request)
        run_id = int(request.query_params["run_id"]) if "run_id" in request.query_params else None
        locs = await store.fetch_locations(app.pool, [lid])
        if not len(locs):
            raise LookupError(f"location_id {lid} is unknown")
        run, frame = await store.read_forecast(app.pool, lid, start, end, run_id)
        return locs.iloc[0], run, frame

    @handles_errors
    async def location_forecast(request):
        location, run, frame = await read_run(request)
        fmt = request.query_params.get("format", "json")
        aggregate = request.query_params.get("aggregate")
        if fmt not in ("json", "csv"):
            raise ValueError(f"format must be 'json' or 'csv', got {fmt!r}")
        if aggregate is not None and aggregate not in AGGREGATES:
            raise ValueError(f"aggregate must be one of {list(AGGREGATES)}, got {aggregate!r}")
        if aggregate:
            frame = await store.read_energy(app.pool, run["run_id"], AGGREGATES[aggregate])
        if fmt == "csv":
            return Response(frame.to_csv(index=False), media_type="text/csv")
        body = {"location_id": int(location["location_id"]), "capacity_ac_kw": float(location["capacity_ac_kw"]),
                "power_limit_kw": float(quantiles.power_limit_kw(location["capacity_ac_kw"], location["export_limit_kw"])),
                "run": run, "aggregate": aggregate, "unit": "kWh" if aggregate else "kW",
                "rows": frame.astype(object).where(frame.notna(), None).to_dict(orient="records")}
        return json_response(body)

    @handles_errors
    async def plot(request):
        location, run, frame = await read_run(request)
        obs = np.full(len(frame), np.nan)
        buffer = io.BytesIO()
        title = f"{location['name']}: issued {run['issue_time']} ({run['forecast_type']}, {run['model_version']})"
        await asyncio.get_running_loop().run_in_executor(
            None, plots.fan_chart, pd.DatetimeIndex(frame["valid_time"]), obs,
            frame[list(quantiles.QUANTILE_COLUMNS)].to_numpy(dtype=float), buffer, title)
        return Response(buffer.getvalue(), media_type="image/png")

    @handles_errors
    async def accuracy(request):
        lid = int(request.path_params["location_id"])
        start, end = window(request)
        locs = await store.fetch_locations(app.pool, [lid])
        if not len(locs):
            raise LookupError(f"location_id {lid} is unknown")
        joined = await store.read_forecast_with_actuals(app.pool, lid, start, end)
        joined = joined.dropna(subset=["power_kw"])
        if not len(joined):
            raise LookupError(f"location_id {lid}: no forecast overlaps measured actuals in the window")
        loc = locs.iloc[0]
        times = pd.DatetimeIndex(joined["valid_time"])
        elevation = data.solar_elevation(times, loc["latitude"], loc["longitude"], loc["altitude"])
        scores = metrics.evaluate(joined["power_kw"].to_numpy(float), joined[list(quantiles.QUANTILE_COLUMNS)].to_numpy(float),
                                  float(loc["capacity_ac_kw"]), np.asarray(elevation) > 0)
        return json_response({"location_id": lid, "n": len(joined), "runs": int(joined["run_id"].nunique()),
                              "start": times.min(), "end": times.max(), "metrics": scores,
                              "normalised_by": "capacity_ac_kw"})

    return [
        Route("/api/v1/forecast/generate", generate, methods=["POST"]),
        Route("/api/v1/forecast/task/{task_id}", task_status, methods=["GET"]),
        Route("/api/v1/forecast/location/{location_id:int}", location_forecast, methods=["GET"]),
        Route("/api/v1/forecast/location/{location_id:int}/plot.png", plot, methods=["GET"]),
        Route("/api/v1/forecast/accuracy/{location_id:int}", accuracy, methods=["GET"]),
    ]

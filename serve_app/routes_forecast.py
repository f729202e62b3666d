"""Forecast endpoints: generate, task status, location read (json/csv/energy), plot, accuracy."""

import asyncio
import functools
import io
import uuid
from typing import Annotated, Literal, Optional

import numpy as np
import pandas as pd
from fastapi import Depends, HTTPException, Path, Query, Request
from fastapi.responses import Response

from engine import data, metrics, plots, quantiles, store, validation
from serve_app.api import (TASK_HEADER, body_doc, ingress, json_body, json_response, json_response_off_loop,
                           responses_doc, to_json)
from serve_app.auth import Caller, api_router
from serve_app.schemas import Instant
from serve_app.tasks import in_statement, run_task

router = api_router("/api/v1/forecast")
AGGREGATES = {"hourly": "1 hour", "daily": "1 day"}
LocationPath = Annotated[int, Path(**validation.ID_BOUNDS, description="location id")]
Start = Annotated[Optional[Instant], Query(description="window start (valid_time), ISO-8601 with offset")]
End = Annotated[Optional[Instant], Query(description="window end (valid_time), ISO-8601 with offset")]
ForecastType = Annotated[Optional[Literal[validation.FORECAST_TYPES]], Query(
    description="only runs of this type (default: any); of a re-generated issue time the latest written run")]


def generate_params(body, settings, now):
    """Task parameters of a validated ``GenerateRequest`` (JSON-ready; the issue time as ISO string)."""
    issue = pd.Timestamp(body.issue_time).tz_convert("UTC") if body.issue_time is not None else pd.Timestamp(now)
    return {"location_ids": list(body.location_ids), "horizon_hours": body.horizon_hours,
            "resolution_minutes": int(settings["forecast"]["resolutions"][body.resolution]),
            "forecast_type": body.forecast_type,
            "quantiles": [q for q in quantiles.QUANTILE_COLUMNS if q in body.quantiles],
            "issue_time": issue.isoformat(), "wait": body.wait, "include_forecast": body.include_forecast}


def locations_payload(frame, locations, run_ids, wanted):
    """Columnar forecast of every location (kW) with its capacity and limit, without a per-row loop.

    Every location of ``frame`` has the same forecast grid, so the values are
    reshaped to (locations, steps) once and the times serialised once (numpy:
    a single-plant answer is built in well under a millisecond).
    """
    ids_all = frame["location_id"].to_numpy("int64")
    valid = frame["valid_time"].to_numpy("datetime64[us]")  # tz-aware UTC (validation.FORECAST_COLUMNS)
    order = np.lexsort((valid, ids_all))
    ids, counts = np.unique(ids_all, return_counts=True)
    if len(ids) == 0:
        return []
    steps = int(counts[0])
    if (counts != steps).any():
        raise RuntimeError(f"forecast frames of unequal length per location: {sorted(set(counts.tolist()))}")
    first = order[:steps]
    times = np.char.add(np.datetime_as_string(valid[first], unit="s"), "+00:00").tolist()  # Timestamp.isoformat()
    horizon = frame["horizon_minutes"].to_numpy()[first].astype(int).tolist()
    values = {q: frame[q].to_numpy(float)[order].reshape(len(ids), steps).tolist() for q in wanted}
    cap, limit = quantiles.plant_limits_kw(locations, ids)
    return [{"location_id": i, "run_id": run_ids.get(i), "capacity_ac_kw": c, "power_limit_kw": lim,
             "valid_time": times, "horizon_minutes": horizon, **{q: values[q][k] for q in wanted}}
            for k, (i, c, lim) in enumerate(zip(ids.tolist(), cap.tolist(), limit.tolist()))]


def generate_result(result, params, locations):
    """JSON bytes of a finished ``wait=true`` generate (built off the event loop)."""
    frames = [f for f in result.pop("frames") if len(f)]
    out = {**result, "issue_time": params["issue_time"], "forecast_type": params["forecast_type"],
           "resolution_minutes": params["resolution_minutes"], "horizon_hours": params["horizon_hours"],
           "errors": [{"location_id": k, "code": v["code"], "error": v["message"]}
                      for k, v in sorted(result["errors"].items())],
           "run_ids": {str(k): v for k, v in result["run_ids"].items()}, "locations": []}
    if params["include_forecast"] and frames:
        frame = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
        out["locations"] = locations_payload(frame, locations, result["run_ids"], params["quantiles"])
    return to_json(out)


async def start_task(service, params, tenant_id, bounded=False):
    """Record a forecast task of ``params`` for ``tenant_id``, leased to this replica, and start it in the background.

    Used by ``generate`` and the NWP import trigger. The task runs as an
    asyncio task of the replica (``service.start_background``), never as part
    of a request: a ``wait=true`` request awaits it shielded, so a client that
    disconnects cancels its wait, not the task. A ``wait=true`` task is
    created 'running' (its client awaits it; one statement less per request),
    else 'queued' until its first pass starts. The task rows of requests that
    start while the previous such statement runs are created by one
    (``store.create_tasks_of_locations``, :func:`serve_app.tasks.in_statement`).
    ``bounded`` (a ``wait=false`` generate): the task is recorded only while its tenant has fewer than
    ``tasks.max_unfinished_per_tenant`` asynchronous tasks queued or running (null: no bound), counted in the
    database (``store.create_tasks_within``: concurrent creations never pass it together).

    Returns
    -------
    task : dict
        ``TaskAccepted`` (task id, status 'queued', status URL).
    locations : DataFrame
        The task's plants.
    job : asyncio.Task
        The running task (its result: ``run_task``'s summary).

    Raises
    ------
    LookupError
        An unknown location id, or another tenant's (field ``location_ids``); no task is recorded.
    HTTPException
        429 (code ``task_limit``, Retry-After): the tenant has its unfinished tasks already; no task is recorded.
    """
    task_id = str(uuid.uuid4())
    most = service.settings["tasks"]["max_unfinished_per_tenant"] if bounded and not params["wait"] else None
    item = (task_id, params, params["location_ids"], tenant_id, service.owner,
            service.settings["tasks"]["lease_seconds"], params["wait"])
    # the task row only if every plant is known: one statement, shared by the tasks that start meanwhile
    if most is None:
        locations, unfinished = await in_statement(service, "starts", item, store.create_tasks_of_locations), None
    else:
        locations, unfinished = await in_statement(service, "bounded starts", item,
                                                   functools.partial(store.create_tasks_within, most=most))
    unknown = sorted(set(params["location_ids"]) - set(locations["location_id"].tolist()))
    if unknown:
        raise validation.field_error("location_ids", f"unknown location {unknown[:5]} ({len(unknown)} unknown)",
                                     LookupError, code="unknown_location")
    if unfinished is not None:
        raise HTTPException(429, ("wait", f"wait: this tenant has {unfinished} asynchronous forecast tasks queued or "
                                          f"running; at most {most} (tasks.max_unfinished_per_tenant): retry once "
                                          "one ended, or wait=true", "task_limit"))
    job = service.start_background(task_id, run_task(service, task_id, params, locations, fresh=True,
                                                     running=params["wait"]))
    return {"task_id": task_id, "status": "queued", "status_url": f"/api/v1/forecast/task/{task_id}"}, locations, job


@router.post("/generate", openapi_extra=body_doc("GenerateRequest"),
             responses=responses_doc("GenerateResult", more={202: "TaskAccepted"}),
             summary="Forecast plants (wait=true: the result; else 202 and a task to poll)")
async def generate(request: Request, who: Caller, service=Depends(ingress)):
    body = await json_body(request, service, "GenerateRequest")
    params = generate_params(body, service.settings, pd.Timestamp.now(tz="UTC").floor("s"))
    task, locations, job = await start_task(service, params, who.tenant_id, bounded=True)
    headers = {TASK_HEADER: task["task_id"]}
    if not params["wait"]:
        return json_response(task, 202, headers)
    try:
        result = await asyncio.shield(job)  # a disconnect cancels this wait, never the task
    except Exception as exc:  # the answer names the task, which goes on (api.on_error)
        exc.task_id = task["task_id"]
        raise
    body = await asyncio.get_running_loop().run_in_executor(None, generate_result, result, params, locations)
    return Response(body, media_type="application/json", headers=headers)


@router.get("/task/{task_id}", responses=responses_doc("Task"), summary="Status of a forecast task")
async def task_status(task_id: uuid.UUID, who: Caller, service=Depends(ingress)):
    task = await store.read_task(service.pool, str(task_id), tenant_id=who.tenant_id)
    if task is None:
        raise validation.field_error("task_id", f"{task_id} is unknown", LookupError, code="unknown_task")
    return json_response(task)


async def read_run(service, location_id, start, end, run_id, tenant_id, forecast_type=None):
    """The plant, the run and its values; another tenant's plant is unknown (404)."""
    locs = await store.fetch_locations(service.pool, [location_id], tenant_id=tenant_id)
    if not len(locs):
        raise validation.field_error("location_id", f"{location_id} is unknown", LookupError, code="unknown_location")
    run, frame = await store.read_forecast(service.pool, location_id, start, end, run_id, tenant_id=tenant_id,
                                           forecast_type=forecast_type)
    return locs.iloc[0], run, frame


@router.get("/location/{location_id}", responses=responses_doc("StoredForecast", text_types=("text/csv",)),
            summary="A stored run of a plant (latest by default), kW or energy kWh, JSON or CSV")
async def location_forecast(location_id: LocationPath, start: Start = None, end: End = None,
                            run_id: Annotated[Optional[int], Query(**validation.ID_BOUNDS)] = None,
                            forecast_type: ForecastType = None,
                            format: Literal["json", "csv"] = "json",
                            aggregate: Optional[Literal["hourly", "daily"]] = None,
                            *, who: Caller, service=Depends(ingress)):
    location, run, frame = await read_run(service, location_id, start, end, run_id, who.tenant_id, forecast_type)
    if aggregate:
        frame = await store.read_energy(service.pool, run["run_id"], AGGREGATES[aggregate], tenant_id=who.tenant_id)
    if format == "csv":
        return Response(frame.to_csv(index=False), media_type="text/csv")
    body = await asyncio.get_running_loop().run_in_executor(None, stored_forecast, location, run, frame, aggregate)
    return Response(body, media_type="application/json")


def stored_forecast(location, run, frame, aggregate):
    """JSON bytes of a ``StoredForecast`` (its rows built and serialised off the event loop)."""
    limit = quantiles.power_limit_kw(location["capacity_ac_kw"], location["export_limit_kw"])
    return to_json({
        "location_id": int(location["location_id"]), "capacity_ac_kw": float(location["capacity_ac_kw"]),
        "power_limit_kw": float(limit), "run": run, "aggregate": aggregate, "unit": "kWh" if aggregate else "kW",
        "rows": frame_records(frame)})


def frame_records(frame):
    """The rows of a frame as dicts (``DataFrame.to_dict(orient="records")``) ready for JSON, built from one list
    per column instead of a boxed cell each: NaN/NaT as None, numbers as Python numbers, tz-aware times as the
    ISO-8601 text of ``Timestamp.isoformat()`` (:func:`iso_times`). A 192-row read: ~2x cheaper, same bytes."""
    columns = [column_values(frame[c]) for c in frame.columns]
    names = [str(c) for c in frame.columns]
    return [dict(zip(names, row)) for row in zip(*columns)]


def column_values(series):
    """A column as a list for JSON: NaN/NaT as None, tz-aware times as ISO-8601 text (:func:`iso_times`)."""
    if isinstance(series.dtype, pd.DatetimeTZDtype):
        return iso_times(series)
    values = series.astype(object).where(series.notna(), None) if series.hasnans else series
    return values.tolist()


def iso_times(series):
    """``Timestamp.isoformat()`` of each time of a tz-aware column (None for NaT), by numpy for UTC times in
    whole seconds (the forecast grid; ``'2013-07-01T12:00:00+00:00'``), else per value."""
    index = pd.DatetimeIndex(series)
    per_second = {"s": 1, "ms": 10 ** 3, "us": 10 ** 6, "ns": 10 ** 9}[index.unit]
    if str(index.tz) == "UTC" and not index.hasnans and not (index.asi8 % per_second).any():
        naive = index.asi8.view(f"datetime64[{index.unit}]")
        return np.char.add(np.datetime_as_string(naive, unit="s"), "+00:00").tolist()
    return [None if t is pd.NaT else t.isoformat() for t in series]


@router.get("/location/{location_id}/plot.png", responses=responses_doc(None, media_type="image/png"),
            summary="Fan chart of a stored run")
async def plot(location_id: LocationPath, start: Start = None, end: End = None,
               run_id: Annotated[Optional[int], Query(**validation.ID_BOUNDS)] = None,
               forecast_type: ForecastType = None, *, who: Caller, service=Depends(ingress)):
    location, run, frame = await read_run(service, location_id, start, end, run_id, who.tenant_id, forecast_type)
    buffer = io.BytesIO()
    title = f"{location['name']}: issued {run['issue_time']} ({run['forecast_type']}, {run['model_version']})"
    await asyncio.get_running_loop().run_in_executor(
        None, plots.fan_chart, pd.DatetimeIndex(frame["valid_time"]), np.full(len(frame), np.nan),
        frame[list(quantiles.QUANTILE_COLUMNS)].to_numpy(dtype=float), buffer, title)
    return Response(buffer.getvalue(), media_type="image/png")


def accuracy_scores(joined, location, runs):
    """Scores of stored values vs actuals, normalised by AC capacity (``engine.metrics``; CPU: executor).

    ``runs='latest'`` keeps, for each valid time, the latest-issued run only
    (``metrics.latest_per_valid_time``); ``'all'`` scores every stored run's
    value. Returns the ``Accuracy`` body's scores: all rows, by lead bucket
    and the day-ahead view (valid on the plant's local day after the issue's).
    """
    if runs == "latest":
        joined = metrics.latest_per_valid_time(joined)
    times = pd.DatetimeIndex(joined["valid_time"])
    daylight = np.asarray(data.solar_elevation(times, location["latitude"], location["longitude"],
                                               location["altitude"])) > 0
    obs, q = joined["power_kw"].to_numpy(float), joined[list(quantiles.QUANTILE_COLUMNS)].to_numpy(float)
    cap = float(location["capacity_ac_kw"])
    ahead = metrics.day_ahead(joined["valid_time"], joined["issue_time"], location["timezone"])
    return {"n": len(joined), "runs": int(joined["run_id"].nunique()),
            "start": joined["valid_time"].min(), "end": joined["valid_time"].max(),
            "metrics": metrics.evaluate(obs, q, cap, daylight),
            "by_lead": metrics.evaluate_by_lead(obs, q, cap, daylight, joined["horizon_minutes"].to_numpy() / 60.0),
            "day_ahead": ({"n": int(ahead.sum()), "metrics": metrics.evaluate(obs[ahead], q[ahead], cap,
                                                                             daylight[ahead])}
                          if (ahead & daylight).any() else None)}


Issued = Annotated[Optional[Instant], Query(description="only runs issued at or after / before this time")]


async def latest_run_end(service, location_id, forecast_type, tenant_id):
    """End (issue_time + horizon_hours) of the plant's latest run (of ``forecast_type``): its run row alone.

    Raises
    ------
    LookupError
        The plant has no run (404, field ``location_id``, code ``not_found``).
    """
    try:
        run = await store.read_run(service.pool, location_id, None, None, forecast_type=forecast_type,
                                   tenant_id=tenant_id)
    except LookupError:
        of_type = "" if forecast_type is None else f" of forecast_type {forecast_type}"
        raise validation.field_error("location_id", f"{location_id} has no forecast run{of_type} to score",
                                     LookupError, code="not_found") from None
    return pd.Timestamp(run["issue_time"]) + pd.Timedelta(hours=int(run["horizon_hours"]))


def accuracy_window(start, end, latest_end, max_days):
    """The valid-time window [start, end] an accuracy read covers: at most ``max_days`` long.

    Parameters
    ----------
    start, end : Timestamp or None
        The window asked (None: not given).
    latest_end : Timestamp or None
        End of the plant's latest run (issue_time + horizon_hours): the window's end when
        neither bound is given.
    max_days : float
        ``http.accuracy_max_days``.

    Returns
    -------
    (start, end) : Timestamps
        One bound given: the other is it +- ``max_days``; none: the ``max_days`` up to ``latest_end``.

    Raises
    ------
    ValueError
        ``end`` - ``start`` > ``max_days`` (code ``window_too_large``, field ``end``).
    """
    span = pd.Timedelta(days=max_days)
    if start is not None and end is not None and end - start > span:
        raise validation.field_error("end", f"the window {start.isoformat()} .. {end.isoformat()} is longer than "
                                     f"http.accuracy_max_days = {max_days:g} days; ask for shorter windows",
                                     code="window_too_large")
    if start is None and end is None:
        end = latest_end
    return (end - span if start is None else start), (start + span if end is None else end)


@router.get("/accuracy/{location_id}", responses=responses_doc("Accuracy"),
            summary="Scores of stored runs against measured actuals, by lead-time bucket and day-ahead")
async def accuracy(location_id: LocationPath, start: Start = None, end: End = None,
                   forecast_type: ForecastType = None,
                   run_id: Annotated[Optional[int], Query(**validation.ID_BOUNDS, description="only this run")] = None,
                   issued_start: Issued = None, issued_end: Issued = None,
                   runs: Annotated[Literal["all", "latest"], Query(
                       description="all: every stored run's value counts; latest: for each valid time only the "
                                   "latest-issued run's (what a user acted on)")] = "all",
                   *, who: Caller, service=Depends(ingress)):
    locs = await store.fetch_locations(service.pool, [location_id], tenant_id=who.tenant_id)
    if not len(locs):
        raise validation.field_error("location_id", f"{location_id} is unknown", LookupError, code="unknown_location")
    if run_id is None:  # a run's values are bounded by its horizon; else the window is (http.accuracy_max_days)
        latest = (await latest_run_end(service, location_id, forecast_type, who.tenant_id)
                  if start is None and end is None else None)
        start, end = accuracy_window(None if start is None else pd.Timestamp(start),
                                     None if end is None else pd.Timestamp(end), latest,
                                     float(service.settings["http"]["accuracy_max_days"]))
    joined = (await store.read_forecast_with_actuals(
        service.pool, location_id, start, end, forecast_type=forecast_type, run_id=run_id, issued_start=issued_start,
        issued_end=issued_end, tenant_id=who.tenant_id)).dropna(subset=["power_kw"])
    if not len(joined):
        raise validation.field_error("location_id", f"{location_id}: no forecast of the selection overlaps measured "
                                     "actuals", LookupError)
    scores = await asyncio.get_running_loop().run_in_executor(None, accuracy_scores, joined, locs.iloc[0], runs)
    return await json_response_off_loop({"location_id": location_id, **scores, "runs_counted": runs,
                                         "normalised_by": "capacity_ac_kw"})

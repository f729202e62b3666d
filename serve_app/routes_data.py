"""Locations, weather and actuals endpoints."""

import asyncio
import contextvars
from typing import Annotated, Optional

import pandas as pd
import ray
from fastapi import Depends, HTTPException, Path, Query, Request

from engine import adaptation, planes, store, validation
from serve_app.api import (body_doc, ingress, json_body, json_response, json_response_off_loop, query_value, read_body,
                           responses_doc, status_and_code)
from serve_app.auth import Caller, api_router
from serve_app.ingest import ingest_task, row_field
from serve_app.observability import event

router = api_router("/api/v1")
LocationPath = Annotated[int, Path(**validation.ID_BOUNDS, description="location id")]
PageLimit = Annotated[Optional[int], Query(description="plants per page")]  # bounds: schemas.page_limit
After = Annotated[Optional[int], Query(**validation.ID_BOUNDS, description=(
    "only plants whose location_id is greater: the `next_after` of the previous page"))]


def location_records(plants):
    """``store.fetch_plants`` result -> JSON-ready records with their ``planes`` and ``horizon``.

    One-plane locations (no plane rows) have ``planes: []``: their own
    columns are the plane; a free horizon is ``null``.
    """
    frame = plants["locations"]
    records = frame.astype(object).where(frame.notna(), None).to_dict(orient="records")
    if not records:
        return records
    planes = plants["planes"]
    plane_records = planes.astype(object).where(planes.notna(), None).to_dict(orient="records")
    by_location = {int(i): [] for i in frame["location_id"]}
    for row in plane_records:  # plane rows only of multi-plane plants (at most MAX_PLANES each)
        by_location[int(row.pop("location_id"))].append(row)
    horizon = plants["horizon"]
    skylines = {int(i): {c: g[c].tolist() for c in validation.HORIZON_COLUMNS}
                for i, g in horizon.groupby("location_id", sort=False)} if len(horizon) else {}
    for record in records:
        record["planes"] = by_location[record["location_id"]]
        record["horizon"] = skylines.get(record["location_id"])
    return records


def plants_frames(body):
    """Validated ``LocationsUpsert`` body -> (locations, planes, horizon) frames keyed by name, and the origin
    ``(location, item)`` of every plane and horizon row (to name a field in request terms).

    A plant given with ``planes`` keeps only the plane summary columns the
    client set (the rest are derived from its planes).
    """
    rows, plane_rows, plane_origin, skylines, horizon_origin = [], [], [], [], []
    for i, plant in enumerate(body.locations):
        row = plant.model_dump(exclude={"planes", "horizon"})
        if plant.planes is not None:
            for column in planes.SUMMARY_COLUMNS:
                if column not in plant.model_fields_set:
                    row[column] = None
            for j, plane in enumerate(plant.planes):
                plane_rows.append({"name": plant.name, "plane": j, **plane.model_dump()})
                plane_origin.append((i, j))
        if plant.horizon is not None:
            skylines.append(pd.DataFrame({"name": plant.name, **plant.horizon.model_dump()}))
            horizon_origin += [(i, j) for j in range(len(plant.horizon.azimuth))]
        rows.append(row)
    frame = pd.DataFrame(rows, columns=list(validation.LOCATION_COLUMNS))
    for column in validation.LOCATION_BOUNDS:
        frame[column] = frame[column].astype("float64")
    plane_frame = (pd.DataFrame(plane_rows, columns=["name", *validation.PLANE_COLUMNS]) if plane_rows
                   else planes.empty_planes("name"))
    for column in validation.PLANE_INHERITED:
        plane_frame[column] = plane_frame[column].astype("float64")
    horizon = (pd.concat(skylines, ignore_index=True) if skylines
               else pd.DataFrame({"name": [], **{c: [] for c in validation.HORIZON_COLUMNS}}))
    return (frame, plane_frame, horizon), {"planes": plane_origin, "horizon": horizon_origin}


def request_field(exc, origin):
    """(field, message) of an engine error about the plants frames, in request terms.

    ``planes.tilt`` row r -> ``locations[i].planes[j].tilt``; ``horizon.azimuth``
    row r -> ``locations[i].horizon.azimuth[j]``; a location column row i ->
    ``locations[i].<column>``.
    """
    field, row = getattr(exc, "field", None), getattr(exc, "row", None)
    frame, _, column = (field or "").partition(".")
    if row is None or frame not in origin:
        return row_field(exc, "locations")
    i, j = origin[frame][row]
    name = (f"locations[{i}].planes[{j}].{column}" if frame == "planes"
            else f"locations[{i}].horizon.{column}[{j}]")
    return name, f"{name}: {getattr(exc, 'reason', exc)}"


def checked_plants(body, model_ids, time_zones=None):
    """Frames of a ``LocationsUpsert`` body checked by ``engine.store.checked_plants`` (CPU: in an executor)."""
    frames, origin = plants_frames(body)
    try:
        return store.checked_plants(*frames, model_ids=model_ids, time_zones=time_zones)
    except ValueError as exc:
        raise HTTPException(422, (*request_field(exc, origin), status_and_code(exc)[1])) from None


@router.post("/locations", openapi_extra=body_doc("LocationsUpsert"), responses=responses_doc("LocationList"),
             summary="Create or update plants by name (with their planes and horizon)")
@router.put("/locations", openapi_extra=body_doc("LocationsUpsert"), responses=responses_doc("LocationList"),
            summary="Create or update plants by name (with their planes and horizon)")
async def upsert_locations(request: Request, who: Caller, service=Depends(ingress)):
    body = await json_body(request, service, "LocationsUpsert")
    loop = asyncio.get_running_loop()
    frame, plane_rows, horizon = await loop.run_in_executor(None, checked_plants, body, service.settings["model_ids"],
                                                            service.time_zones)
    most = service.settings["http"]["max_locations_per_tenant"]
    saved, over = await store.write_plants_within(service.pool, frame, plane_rows, horizon, most,
                                                  tenant_id=who.tenant_id)
    if over is not None:
        raise HTTPException(409, ("locations", f"locations: {over[1]} new plants would give this tenant "
                                               f"{sum(over)}; at most {most} (http.max_locations_per_tenant, "
                                               f"{over[0]} stored); updating stored plants is allowed",
                                  "location_limit"))
    plants = await store.fetch_plants(service.pool, saved["location_id"].tolist(), tenant_id=who.tenant_id)
    return await json_response_off_loop({"locations": await loop.run_in_executor(None, location_records, plants)})


@router.get("/locations", responses=responses_doc("LocationPage"), summary="List plants, a page at a time")
async def list_locations(request: Request, who: Caller, service=Depends(ingress), limit: PageLimit = None,
                         after: After = None):
    """The caller's plants in `location_id` order, a page at a time: `next_after` (and `Link: rel="next"`) names
    the next page, null (no Link) on the last."""
    limit = query_value(service, "PageLimit", "limit", service.settings["http"]["page_limit_default"]
                        if limit is None else limit)
    plants, last = await store.location_page(service.pool, limit, after, tenant_id=who.tenant_id)
    records = await asyncio.get_running_loop().run_in_executor(None, location_records, plants)
    following = request.url.include_query_params(limit=limit, after=last)  # a relative link: proxies keep it right
    headers = None if last is None else {"Link": f'<{following.path}?{following.query}>; rel="next"'}
    return await json_response_off_loop({"locations": records, "next_after": last}, headers=headers)


@router.get("/locations/{location_id}", responses=responses_doc("Location"), summary="One plant")
async def get_location(location_id: LocationPath, who: Caller, service=Depends(ingress)):
    plants = await store.fetch_plants(service.pool, [location_id], tenant_id=who.tenant_id)
    if not len(plants["locations"]):
        raise validation.field_error("location_id", f"{location_id} is unknown", LookupError, code="unknown_location")
    return json_response(location_records(plants)[0])


async def ingest(request, service, kind, tenant_id):
    """Stream the body in, then validate + store it in a Ray task (``serve_app.ingest``); tenant_id's plants only."""
    body = await read_body(request, service.settings["http"]["max_body_bytes"])
    # copying ~100 MB into the object store is CPU work too: off the event loop
    body_ref = await asyncio.get_running_loop().run_in_executor(None, ray.put, body)
    del body
    result = await ingest_task.options(num_cpus=service.settings["http"]["ingest_task_num_cpus"]).remote(
        kind, body_ref, service.settings, tenant_id)
    if "error" in result:
        raise HTTPException(result["error"][0], result["error"][1:])
    arrived = result.pop("location_ids", None)
    if arrived and adaptation.refit_policy(service.settings["adaptation"])[0]:
        notify_arrival(service, arrived)
    return json_response(result)


def notify_arrival(service, location_ids):
    """Tell the Forecaster whose actuals arrived (its refit policy: ``Forecaster.actuals_arrived``) without waiting.

    The ingest's answer neither waits for nor fails by it: the call runs as an
    asyncio task of the replica, in a context of its own (not cancelled with
    the request), held in ``service.notices`` until it ended; a failure is an event.
    """
    async def notify():
        try:
            await service.forecaster.actuals_arrived.remote(location_ids)
        except Exception as exc:  # the actuals are stored; the next forecast's check still sees them
            event("refit_notice_failed", locations=len(location_ids), error=repr(exc))
    task = asyncio.get_running_loop().create_task(notify(), context=contextvars.Context())
    service.notices.add(task)
    task.add_done_callback(service.notices.discard)


@router.post("/weather", openapi_extra=body_doc("WeatherIngest"), responses=responses_doc("RowCount"),
             summary="Store weather rows (bitemporal: valid_time x issue_time x source)")
async def ingest_weather(request: Request, who: Caller, service=Depends(ingress)):
    return await ingest(request, service, "weather", who.tenant_id)


@router.post("/actuals", openapi_extra=body_doc("ActualsIngest"), responses=responses_doc("RowCount"),
             summary="Store measured AC power")
async def ingest_actuals(request: Request, who: Caller, service=Depends(ingress)):
    return await ingest(request, service, "actuals", who.tenant_id)

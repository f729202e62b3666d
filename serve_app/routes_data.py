"""Locations, weather and actuals endpoints."""

import asyncio
from typing import Annotated

import pandas as pd
import ray
from fastapi import Depends, HTTPException, Path, Request

from engine import store, validation
from serve_app.api import body_doc, ingress, json_body, json_response, json_response_off_loop, read_body, responses_doc
from serve_app.auth import Caller, api_router
from serve_app.ingest import ingest_task, row_field

router = api_router("/api/v1")
LocationPath = Annotated[int, Path(**validation.ID_BOUNDS, description="location id")]


def location_records(frame):
    """Locations frame -> JSON-ready records (NaN export limit -> null)."""
    return frame.astype(object).where(frame.notna(), None).to_dict(orient="records")


def locations_frame(body):
    """Validated ``LocationsUpsert`` body -> locations frame, checked by ``engine.validation``."""
    frame = pd.DataFrame([plant.model_dump() for plant in body.locations], columns=list(validation.LOCATION_COLUMNS))
    frame["export_limit_kw"] = frame["export_limit_kw"].astype("float64")
    return frame


@router.post("/locations", openapi_extra=body_doc("LocationsUpsert"), responses=responses_doc("LocationList"),
             summary="Create or update plants by name")
@router.put("/locations", openapi_extra=body_doc("LocationsUpsert"), responses=responses_doc("LocationList"),
            summary="Create or update plants by name")
async def upsert_locations(request: Request, who: Caller, service=Depends(ingress)):
    body = await json_body(request, service, "LocationsUpsert")
    loop = asyncio.get_running_loop()
    frame = await loop.run_in_executor(None, locations_frame, body)
    try:
        await loop.run_in_executor(None, validation.validate_locations, frame, service.settings["model_ids"])
    except ValueError as exc:
        raise HTTPException(422, row_field(exc, "locations")) from None
    saved = await store.upsert_locations(service.pool, frame, tenant_id=who.tenant_id)
    return await json_response_off_loop({"locations": location_records(saved)})


@router.get("/locations", responses=responses_doc("LocationList"), summary="List plants")
async def list_locations(who: Caller, service=Depends(ingress)):
    locations = await store.fetch_locations(service.pool, tenant_id=who.tenant_id)
    return await json_response_off_loop({"locations": location_records(locations)})


@router.get("/locations/{location_id}", responses=responses_doc("Location"), summary="One plant")
async def get_location(location_id: LocationPath, who: Caller, service=Depends(ingress)):
    frame = await store.fetch_locations(service.pool, [location_id], tenant_id=who.tenant_id)
    if not len(frame):
        raise validation.field_error("location_id", f"{location_id} is unknown", LookupError)
    return json_response(location_records(frame)[0])


async def ingest(request, service, kind, tenant_id):
    """Stream the body in, then validate + store it in a Ray task (``serve_app.ingest``); tenant_id's plants only."""
    body = await read_body(request, service.settings["http"]["max_body_bytes"])
    # copying ~100 MB into the object store is CPU work too: off the event loop
    body_ref = await asyncio.get_running_loop().run_in_executor(None, ray.put, body)
    del body
    result = await ingest_task.options(num_cpus=service.settings["http"]["ingest_task_num_cpus"]).remote(
        kind, body_ref, service.settings, tenant_id)
    if "error" in result:
        status, field, message = result["error"]
        raise HTTPException(status, (field, message))
    return json_response(result)


@router.post("/weather", openapi_extra=body_doc("WeatherIngest"), responses=responses_doc("RowCount"),
             summary="Store weather rows (bitemporal: valid_time x issue_time x source)")
async def ingest_weather(request: Request, who: Caller, service=Depends(ingress)):
    return await ingest(request, service, "weather", who.tenant_id)


@router.post("/actuals", openapi_extra=body_doc("ActualsIngest"), responses=responses_doc("RowCount"),
             summary="Store measured AC power")
async def ingest_actuals(request: Request, who: Caller, service=Depends(ingress)):
    return await ingest(request, service, "actuals", who.tenant_id)

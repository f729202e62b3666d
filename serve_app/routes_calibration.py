"""Plant calibration endpoints (issue 10): the current calibration of a plant, and a refit.

The fit is CPU work: it runs in the Forecaster replica's executor (the replica
holds the models), never on the ingress' event loop. Access control is added
as a router-level dependency (``APIRouter(dependencies=[...])``), not here.
"""

from typing import Annotated, Optional

import pandas as pd
from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request

from engine import store, validation
from serve_app.api import body_doc, ingress, json_body, json_response, responses_doc

router = APIRouter(prefix="/api/v1/locations")
LocationPath = Annotated[int, Path(**validation.ID_BOUNDS, description="location id")]
Version = Annotated[Optional[int], Query(ge=1, description="a stored version (default: the latest)")]


async def known_location(service, location_id):
    """404 (``LookupError``, field ``location_id``) unless the plant exists."""
    if not len(await store.fetch_locations(service.pool, [location_id])):
        raise validation.field_error("location_id", f"{location_id} is unknown", LookupError)


@router.get("/{location_id}/calibration", responses=responses_doc("Calibration"),
            summary="The plant's calibration learned from its actuals (latest version), with diagnostics")
async def get_calibration(location_id: LocationPath, version: Version = None, service=Depends(ingress)):
    await known_location(service, location_id)
    calibration = await store.read_calibration(service.pool, location_id, version)
    if calibration is None:
        which = f"version {version}" if version else "calibration yet (POST .../calibrate once it has actuals)"
        raise validation.field_error("location_id", f"{location_id} has no {which}", LookupError)
    return json_response(calibration)


@router.post("/{location_id}/calibrate", openapi_extra=body_doc("CalibrateRequest"),
             responses=responses_doc("Calibration"),
             summary="Refit the plant's calibration from its actuals before the cutoff (a new version)")
async def calibrate(location_id: LocationPath, request: Request, service=Depends(ingress)):
    body = await json_body(request, service, "CalibrateRequest")
    now = pd.Timestamp.now(tz="UTC")
    cutoff = now if body.cutoff is None else pd.Timestamp(body.cutoff).tz_convert("UTC")
    if cutoff > now:
        raise validation.field_error("cutoff", f"{cutoff.isoformat()} is in the future", ValueError)
    await known_location(service, location_id)
    result = await service.forecaster.calibrate.remote(location_id, cutoff)
    if "error" in result:
        status, field, message = result["error"]
        raise HTTPException(status, (field, message))
    return json_response(result)

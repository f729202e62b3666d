"""Plant calibration endpoints (issue 10): the current calibration of a plant, and a refit.

The fit is CPU work: it runs in the Forecaster replica's executor (the replica
holds the models), never on the ingress' event loop. Every route needs an API
key (:func:`serve_app.auth.api_router`); another tenant's plant is unknown (404).
"""

from typing import Annotated, Optional

import pandas as pd
from fastapi import Depends, HTTPException, Path, Query, Request

from engine import store, validation
from serve_app.admission import admitted_fit
from serve_app.api import body_doc, ingress, json_body, json_response, responses_doc
from serve_app.auth import Caller, api_router

router = api_router("/api/v1/locations")
LocationPath = Annotated[int, Path(**validation.ID_BOUNDS, description="location id")]
Version = Annotated[Optional[int], Query(**validation.VERSION_BOUNDS,
                                         description="a stored version (default: the latest)")]


async def known_location(service, location_id, tenant_id):
    """404 (``LookupError``, field ``location_id``) unless the plant exists and is ``tenant_id``'s."""
    if not len(await store.fetch_locations(service.pool, [location_id], tenant_id=tenant_id)):
        raise validation.field_error("location_id", f"{location_id} is unknown", LookupError, code="unknown_location")


@router.get("/{location_id}/calibration", responses=responses_doc("Calibration"),
            summary="The plant's calibration learned from its actuals (latest version), with diagnostics")
async def get_calibration(location_id: LocationPath, who: Caller, version: Version = None,
                          service=Depends(ingress)):
    await known_location(service, location_id, who.tenant_id)
    calibration = await store.read_calibration(service.pool, location_id, version, tenant_id=who.tenant_id)
    refusal = await store.read_refusal(service.pool, location_id, tenant_id=who.tenant_id)
    if calibration is None:
        which = f"version {version}" if version else "calibration yet (POST .../calibrate once it has actuals)"
        refused = refusal is not None and not version
        why = f"; its last fit (cutoff {refusal['cutoff'].isoformat()}) was refused: {refusal['reason']}" if refused \
            else ""
        raise HTTPException(404, ("location_id", f"location_id: {location_id} has no {which}{why}",
                                  refusal["code"] if refused and refusal["code"] else "not_found"))
    return json_response({**calibration, "last_refusal": refusal})


@router.post("/{location_id}/calibrate", openapi_extra=body_doc("CalibrateRequest"),
             responses=responses_doc("Calibration", errors={409: "A fit of this plant is running"}),
             summary="Refit the plant's calibration from its actuals before the cutoff (a new version)")
async def calibrate(location_id: LocationPath, request: Request, who: Caller, service=Depends(ingress)):
    body = await json_body(request, service, "CalibrateRequest")
    now = pd.Timestamp.now(tz="UTC")
    cutoff = now if body.cutoff is None else pd.Timestamp(body.cutoff).tz_convert("UTC")
    if cutoff > now:
        raise validation.field_error("cutoff", f"{cutoff.isoformat()} is in the future", ValueError, code="bad_time")
    await known_location(service, location_id, who.tenant_id)
    result = await admitted_fit(service, location_id,  # bounded: serve_app/admission.py
                                lambda: service.forecaster.calibrate.remote(location_id, cutoff, who.tenant_id))
    if "error" in result:  # a refused fit's code (engine.tuning.REFUSAL_CODES) goes into the body beside its sentence
        raise HTTPException(result["error"][0], result["error"][1:])
    return json_response({**result, "last_refusal": None})  # a stored version removes the plant's refusal

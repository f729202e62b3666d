"""``POST /api/v1/weather/nwp``: NWP files (GRIB2/netCDF) -> weather of the plants -> forecasts (optional).

Two bodies (docs/weather.md, docs/api.md):

- ``multipart/form-data`` (``NwpUpload``): the ingress only streams the body
  into a spool file under ``nwp.spool_dir``, refusing it (413) as soon as
  more than ``nwp.max_upload_bytes`` arrive; the Ray task of
  :mod:`serve_app.nwpimport` parses, decodes and stores it.
- ``application/json`` (``NwpImport``): names of files under
  ``nwp.import_dir``, each confined there by
  :func:`engine.weatherimport.confined_path` (403 outside, 404 missing),
  then the same task.

The task runs on this node (the files are local) and returns its result or
its error as data. The spool directory is removed in every case. When
``nwp.trigger_forecast`` is on, the forecasts the import calls for
(:func:`engine.weatherimport.forecast_trigger`) are started as tasks of
``generate`` (:func:`serve_app.routes_forecast.start_task`) and listed in the
answer.
"""

import asyncio
import json
import os
import shutil
import tempfile

import pandas as pd
import ray
from fastapi import Depends, HTTPException, Request
from python_multipart.multipart import parse_options_header
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from engine import validation, weatherimport
from serve_app.api import body_chunks, body_doc, ingress, is_json, json_body, json_response_off_loop, media_type, \
    responses_doc
from serve_app.auth import Caller, api_router
from serve_app.nwpimport import CHUNK_BYTES, import_task
from serve_app.routes_forecast import generate_params, start_task

router = api_router("/api/v1/weather")
UPLOAD = "multipart/form-data"


async def spool_body(request, limit, path):
    """Stream the request body into the file ``path`` (written in the default executor); 413 past ``limit``."""
    loop = asyncio.get_running_loop()
    with open(path, "wb") as out:
        buffer = bytearray()
        async for chunk in body_chunks(request, limit):
            buffer += chunk
            if len(buffer) >= CHUNK_BYTES:
                await loop.run_in_executor(None, out.write, buffer)
                buffer.clear()
        await loop.run_in_executor(None, out.write, buffer)


def make_spool(directory):
    """A new private directory under ``directory`` (None: the system's temporary directory).

    A configured directory that does not exist is the server's fault (500, logged), not a 404 of the request.
    """
    try:
        return tempfile.mkdtemp(prefix="pvcast-nwp-", dir=directory)
    except FileNotFoundError:
        raise RuntimeError(f"nwp.spool_dir {directory!r} does not exist") from None


def confined_paths(root, names):
    """:func:`engine.weatherimport.confined_path` of every name; the error's field is ``files[k]``."""
    paths = []
    for k, name in enumerate(names):
        try:
            paths.append(str(weatherimport.confined_path(root, name)))
        except (PermissionError, FileNotFoundError) as exc:
            raise validation.field_error(f"files[{k}]", exc, type(exc)) from None
    return paths


async def in_task(service, **kwargs):
    """:func:`serve_app.nwpimport.import_nwp` as a Ray task on this node; cancelled with the request."""
    here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
    ref = import_task.options(num_cpus=service.settings["nwp"]["task_num_cpus"], scheduling_strategy=here).remote(
        service.settings, **kwargs)
    try:
        return await ref
    except asyncio.CancelledError:
        ray.cancel(ref)
        raise


async def import_upload(request, service, tenant_id):
    """Spool a multipart body (size limit while streaming), then import it in the task (``tenant_id``'s plants)."""
    boundary = parse_options_header(request.headers.get("content-type"))[1].get(b"boundary")
    if not boundary:
        raise HTTPException(400, ("content-type", "content-type: multipart/form-data needs a boundary",
                                  "malformed_multipart"))
    cfg = service.settings["nwp"]
    spool = await asyncio.get_running_loop().run_in_executor(None, make_spool, cfg["spool_dir"])
    try:
        body = os.path.join(spool, "body")
        await spool_body(request, cfg["max_upload_bytes"], body)
        return await in_task(service, upload=(body, boundary), tenant_id=tenant_id)
    finally:  # also when cancelled: not awaited, so it cannot be skipped (a few unlinks)
        shutil.rmtree(spool, ignore_errors=True)


async def import_named(request, service, tenant_id):
    """Confine the named files to ``nwp.import_dir`` (nothing opened before), then import them in the task."""
    body = await json_body(request, service, "NwpImport")
    paths = await asyncio.get_running_loop().run_in_executor(
        None, confined_paths, service.settings["nwp"]["import_dir"], body.files)
    return await in_task(service, paths=paths, location_ids=body.location_ids, source=body.source,
                         tenant_id=tenant_id)


async def start_forecasts(service, bodies, tenant_id):
    """A ``generate`` task (wait=false) of ``tenant_id`` per body of :func:`~engine.weatherimport.forecast_trigger`."""
    now, tasks = pd.Timestamp.now(tz="UTC").floor("s"), []
    for body in bodies:  # validated by the schema of generate, as if a client had posted it
        request = service.adapters["GenerateRequest"].validate_json(json.dumps({**body, "wait": False}))
        task, _, _ = await start_task(service, generate_params(request, service.settings, now), tenant_id)
        tasks.append(task)
    return tasks


@router.post("/nwp", openapi_extra=body_doc("NwpImport", {UPLOAD: "NwpUpload"}),
             responses=responses_doc("NwpImportResult", errors={
                 400: "Malformed JSON or multipart body",
                 403: "Path outside nwp.import_dir, or server-side import disabled",
                 404: "Unknown location id, or no such file in nwp.import_dir",
                 413: "Upload larger than nwp.max_upload_bytes, or more than nwp.max_files files",
                 415: "Neither application/json nor multipart/form-data",
                 422: "Invalid field, or a file that cannot be imported (named)"}),
             summary="Import NWP files (GRIB2/netCDF) into the weather of the plants; all files or nothing")
async def import_nwp(request: Request, who: Caller, service=Depends(ingress)):
    if is_json(request):
        result = await import_named(request, service, who.tenant_id)
    elif media_type(request) == UPLOAD:
        result = await import_upload(request, service, who.tenant_id)
    else:
        raise HTTPException(415, ("content-type", f"content-type must be {UPLOAD} or application/json, "
                                                  f"got {media_type(request)!r}", "not_json"))
    if "error" in result:
        raise HTTPException(result["error"][0], result["error"][1:])
    tasks = await start_forecasts(service, result["forecasts"], who.tenant_id)
    return await json_response_off_loop({**result["summary"], "forecast_tasks": tasks})

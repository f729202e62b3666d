"""Admission of plant refits asked through HTTP (``POST /api/v1/locations/{id}/calibrate``).

A fit costs seconds of CPU in a Forecaster replica's executor, which the
replica's forecasts share (measured: 20 concurrent calibrate requests of one
plant were all run, and a single-plant forecast took 16.8 s instead of 0.08 s;
docs/ARCHITECTURE.md "Probes"). An Ingress replica therefore runs at most
``calibrate.max_running`` of them at once and keeps at most
``calibrate.max_waiting`` more waiting (configs/service.yaml); beyond, the
request is shed (503 + Retry-After, :class:`serve_app.api.Overloaded`). A plant
has one fit at a time in the whole service: a second request for it while one
is admitted answers 409 (:class:`serve_app.api.Conflict`, field ``location_id``);
an admitted fit waits for a policy refit of the plant that holds its lock
(:func:`engine.store.try_refit_lock`, the lock of ``Forecaster.refit``) at most
``calibrate.lock_wait_seconds``, then answers 409 too. An
admitted fit runs to its end and keeps its slot even if its client
disconnects (a fit that cannot be cancelled is still counted).

Requests of one tenant in flight: an Ingress replica serves at most
``http.max_ongoing_per_tenant`` requests of a tenant at once
(:func:`tenant_request`, counted in ``Ingress.ongoing``); beyond, the request is
answered at once 429 with Retry-After (code ``too_many_requests``), so one tenant's
slow requests (a leaked key, a retry loop) never hold every one of the replica's
``max_ongoing_requests`` slots (serve_config.yaml) and other tenants are still served.
"""

import asyncio
import contextlib
import contextvars
import types

from fastapi import HTTPException

from engine import store, validation
from serve_app.api import Conflict, Overloaded

LOCK_POLL_SECONDS = 0.5  # how often an admitted fit tries the plant's refit lock while a policy refit holds it


def fit_admission(settings):
    """The admission state of an Ingress replica (``Ingress.fits``, made in ``Ingress.__init__``).

    ``admitted``: location ids of its admitted fits (waiting or running);
    ``jobs``: their asyncio tasks (held referenced until they end); ``running``:
    the semaphore of ``calibrate.max_running`` running fits.
    """
    return types.SimpleNamespace(admitted=set(), jobs=set(),
                                 running=asyncio.Semaphore(settings["calibrate"]["max_running"]))


async def admitted_fit(service, location_id, call):
    """``await call()`` (a fit of ``location_id``) once admitted; its result.

    Raises
    ------
    Overloaded
        ``max_running`` + ``max_waiting`` fits are admitted already (503).
    Conflict
        A fit of this plant is admitted or running (409).
    """
    conf, fits = service.settings["calibrate"], service.fits
    if location_id in fits.admitted:
        raise validation.field_error("location_id", f"a calibration of location {location_id} is already running; "
                                     "retry once it ended", Conflict)
    if len(fits.admitted) >= conf["max_running"] + conf["max_waiting"]:
        raise Overloaded(f"{len(fits.admitted)} calibrations admitted (calibrate.max_running {conf['max_running']} "
                         f"+ max_waiting {conf['max_waiting']})")
    fits.admitted.add(location_id)

    async def fit():
        try:
            async with fits.running, service.pool.acquire() as conn:
                waited = 0.0  # a policy refit of the plant (seconds) is waited for, within lock_wait_seconds
                while not await store.try_refit_lock(conn, location_id):
                    if waited >= conf["lock_wait_seconds"]:
                        raise validation.field_error("location_id", f"location {location_id} is being refit "
                                                     f"(its refit policy) for more than {waited:.0f} s; retry "
                                                     "once it ended", Conflict)
                    await asyncio.sleep(LOCK_POLL_SECONDS)
                    waited += LOCK_POLL_SECONDS
                try:
                    return await call()
                finally:
                    await store.refit_unlock(conn, location_id)
        finally:
            fits.admitted.discard(location_id)
    # its own context: the fit is not cancelled with the request (Ray Serve cancels a disconnected request's calls)
    job = asyncio.get_running_loop().create_task(fit(), context=contextvars.Context())
    fits.jobs.add(job)
    job.add_done_callback(fits.jobs.discard)
    return await asyncio.shield(job)


@contextlib.contextmanager
def tenant_request(service, tenant_id):
    """Count a request of ``tenant_id`` in flight in this replica (``service.ongoing``) while the block runs.

    Raises
    ------
    HTTPException
        429 (field ``authorization``, code ``too_many_requests``, Retry-After): the tenant has
        ``http.max_ongoing_per_tenant`` requests in flight here already (null: no bound); not counted.
    """
    most, ongoing = service.settings["http"]["max_ongoing_per_tenant"], service.ongoing
    if most is not None and ongoing[tenant_id] >= most:
        raise HTTPException(429, ("authorization", f"authorization: {ongoing[tenant_id]} requests of this tenant are "
                                                   f"in flight; at most {most} at once (http.max_ongoing_per_tenant)",
                                  "too_many_requests"))
    ongoing[tenant_id] += 1
    try:
        yield
    finally:
        ongoing[tenant_id] -= 1
        if ongoing[tenant_id] <= 0:
            del ongoing[tenant_id]

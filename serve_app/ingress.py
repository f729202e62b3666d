"""Ingress deployment: the FastAPI app (``@serve.ingress(app)``), health, OpenAPI, task ownership.

``python -m serve_app.ingress`` prints the OpenAPI document generated from the
schemas; ``--write`` replaces the committed ``serve_app/openapi.json`` with it.
"""

import argparse
import asyncio
import collections
import contextvars
import importlib.metadata
import json
import sys
from pathlib import Path

import asyncpg
from fastapi import Depends, Request
from ray import serve

from engine import store
from engine.validation import plant_error
from serve_app import admission, api, leases, routes_calibration, routes_data, routes_forecast, routes_nwp, schemas
from serve_app.api import ingress, json_response, responses_doc
from serve_app.observability import event, reason
from serve_app.settings import load_settings, pool_options

OPENAPI = Path(__file__).with_name("openapi.json")
app = api.app


@app.get("/healthz", responses=responses_doc("Health"), summary="The process is up")
async def healthz():
    return json_response({"status": "ok"})


@app.get("/readyz", responses=responses_doc("Ready"), summary="Models loaded and database reachable")
async def readyz(service=Depends(ingress)):
    try:
        models = await service.forecaster.ready.remote()
        await service.pool.fetchval("select 1")
    except Exception as exc:  # not ready, whatever the cause: the reason is reported, the status is 503
        return api.error_response(503, "readyz", f"not ready: {type(exc).__name__}: {exc}", "unavailable")
    return json_response({"status": "ready", "models": models, "database": "reachable"})


@app.get("/openapi.json", summary="This document", responses={200: {"description": "OpenAPI 3.1 document"}})
async def openapi(request: Request, service=Depends(ingress)):
    return json_response(service.openapi)


app.include_router(routes_forecast.router)
app.include_router(routes_data.router)
app.include_router(routes_nwp.router)
app.include_router(routes_calibration.router)


def document(settings):
    """The OpenAPI document of the app under ``settings`` (what ``/openapi.json`` serves)."""
    return api.openapi_document(app, schemas.build(settings), importlib.metadata.version("pvcast"))


@serve.deployment
@serve.ingress(app)
class Ingress:
    """Holds the database pool, the Forecaster handle and the schemas; owns (leases) the tasks it runs."""

    async def __init__(self, forecaster, settings):
        self.forecaster = forecaster
        self.settings = settings
        self.schemas = schemas.build(settings)
        self.adapters = schemas.adapters(self.schemas)
        self.openapi = document(settings)
        self.pool = await asyncpg.create_pool(store.database_url(), min_size=1, max_size=8, **pool_options(settings))
        self.time_zones = await store.time_zones(self.pool)  # a plant's timezone must be one (store.checked_plants)
        self.background, self.endings = {}, set()
        self.notices = set()  # calls telling the Forecaster whose actuals arrived (routes_data.notify_arrival)
        self.small_calls, self.small_groups = [], set()  # small Forecaster calls waiting, groups in flight (tasks.py)
        self.statements = {}  # task rows waiting for their batched statement, by kind (tasks.in_statement)
        self.fits = admission.fit_admission(settings)  # refits asked through HTTP (serve_app/admission.py)
        self.slow_bodies = collections.Counter()  # tenant id -> its bodies arriving for long (api.body_chunks)
        self.ongoing = collections.Counter()  # tenant id -> its requests in flight here (admission.tenant_request)
        self.accepted_keys = {}  # sha256 of a key -> (monotonic expiry, Principal) (auth.principal)
        self.owner = leases.owner_id()
        self.leases = asyncio.get_running_loop().create_task(leases.keep(self))  # resumes orphaned tasks at once

    def start_background(self, task_id, job):
        """Run a task as an asyncio task of this replica (leased: serve_app/leases.py); returns it.

        A task that raises (the database stayed away, a bug) or is cancelled
        gives its lease back with the reason, so that it is resumed
        (``tasks.max_attempts`` bounds the attempts), never left running
        without an owner. It runs in a context of its own: Ray Serve cancels
        the calls a request made when its client disconnects, and the task's
        Forecaster calls are not the request's.
        """
        loop = asyncio.get_running_loop()
        task = loop.create_task(job, context=contextvars.Context())
        self.background[task_id] = task

        def on_done(done):  # the ending is kept referenced until it ran (asyncio holds tasks weakly)
            ending = loop.create_task(self.ended(task_id, done))
            self.endings.add(ending)
            ending.add_done_callback(self.endings.discard)
        task.add_done_callback(on_done)
        return task

    async def ended(self, task_id, done):
        self.background.pop(task_id, None)
        if not done.cancelled() and done.exception() is None:
            return
        why = "cancelled" if done.cancelled() else reason(done.exception())
        event("task_interrupted", task_id=task_id, error=why)
        try:
            await store.release_task(self.pool, task_id, self.owner, plant_error("interrupted", f"interrupted: {why}"))
        except Exception as db_exc:  # the lease lapses by itself
            event("task_state_unsaved", task_id=task_id, error=repr(db_exc))


def main(argv=None):
    parser = argparse.ArgumentParser(description="Print the OpenAPI document generated from the schemas.",
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--config", default="configs/service.yaml", help="service settings")
    parser.add_argument("--write", action="store_true", help=f"replace the committed {OPENAPI.name} with it")
    args = parser.parse_args(argv)
    text = json.dumps(document(load_settings(args.config)), indent=1, sort_keys=False) + "\n"
    if args.write:
        OPENAPI.write_text(text)
        print(f"wrote {OPENAPI}", file=sys.stderr)
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    main()

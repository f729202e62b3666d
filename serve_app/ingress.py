"""Ingress deployment: the HTTP API (Starlette), request validation, task fan-out."""

import asyncio
from pathlib import Path

import asyncpg
from ray import serve
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

from engine import store
from serve_app import routes_data, routes_forecast
from serve_app.http import error_response, json_response
from serve_app.observability import event

OPENAPI = Path(__file__).with_name("openapi.json")


@serve.deployment
@serve.ingress()
class Ingress:
    """Holds the database pool and the Forecaster handle; owns the tasks it starts."""

    async def __init__(self, forecaster, settings):
        self.forecaster = forecaster
        self.settings = settings
        self.pool = await asyncpg.create_pool(store.database_url(), min_size=1, max_size=8)
        self.background = {}
        if settings["tasks"]["fail_interrupted_on_start"]:
            failed = await store.fail_interrupted_tasks(self.pool)
            event("interrupted_tasks_failed", count=failed)

    def __serve_build_asgi_app__(self):
        return Starlette(routes=[
            Route("/healthz", self.healthz), Route("/readyz", self.readyz),
            Route("/openapi.json", self.openapi),
            *routes_forecast.routes(self), *routes_data.routes(self)])

    def start_background(self, task_id, job):
        """Run a task off the request path; an unexpected failure still ends the task 'failed'."""
        async def guarded():
            try:
                await job
            except Exception as exc:
                event("task_failed", task_id=task_id, error=repr(exc))
                try:
                    await store.update_task(self.pool, task_id, status="failed", errors={"task": repr(exc)})
                except Exception as db_exc:  # the next replica start marks it failed
                    event("task_state_unsaved", task_id=task_id, error=repr(db_exc))
            finally:
                self.background.pop(task_id, None)
        self.background[task_id] = asyncio.get_running_loop().create_task(guarded())

    async def healthz(self, request):
        return json_response({"status": "ok"})

    async def readyz(self, request):
        try:
            models = await self.forecaster.ready.remote()
            await self.pool.fetchval("select 1")
        except Exception as exc:
            return error_response(503, f"not ready: {exc}", "readyz")
        return json_response({"status": "ready", "models": models, "database": "reachable"})

    async def openapi(self, request):
        return Response(OPENAPI.read_bytes(), media_type="application/json")

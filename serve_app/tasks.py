"""A forecast task: batches fanned out to the Forecaster until every plant has a stored run or its reason.

The task's truth is the database: its runs are the stored runs carrying its id
(``store.task_runs``), so a task that is resumed (another attempt in this
process, or another owner after this one died: serve_app/leases.py) forecasts
only its plants without a run, and its status is computed from them
(``store.task_status``). docs/ARCHITECTURE.md "Task lifecycle".
"""

import asyncio
import contextvars
import time

import asyncpg
from ray.serve.exceptions import BackPressureError

from engine import store
from engine.validation import plant_error
from serve_app import api
from serve_app.observability import LATENCY, LOCATION_ERRORS, LOCATIONS_PER_REQUEST, event, reason

#: Errors that mean "the database is unreachable", not "the task is wrong": the task waits and retries.
DATABASE_ERRORS = (OSError, asyncio.TimeoutError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError)


def batches(locations, size):
    """Consecutive slices of the locations frame, ``size`` rows each."""
    return [locations.iloc[i:i + size] for i in range(0, len(locations), size)]


async def until_reachable(pool, timeout):
    """Wait until the database answers (polled each second, at most ``timeout`` s); whether it did."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            await asyncio.wait_for(pool.fetchval("SELECT 1"), 5)
            return True
        except DATABASE_ERRORS:
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(1)


async def forecast_batches(service, task_id, pending, params, errors, frames, timings, runs):
    """One pass over the pending plants; returns ({location_id: error} of the batches that failed whole, shed).

    Per-plant errors (data, ``engine.validation.plant_error``: no weather, unknown model) go into ``errors`` (and,
    for a task of several batches, the task's stored errors as each batch
    ends), the runs reported by the writer into ``runs``; a batch that raises
    (the writer gave up on the database, a Forecaster replica died) is an
    infrastructure failure, returned for another attempt (code ``overloaded`` when the
    Forecaster's queue refused it, else ``batch_failed``). ``shed``: the
    back-pressure error of a batch the Forecaster's full queue refused (Ray
    Serve ``max_queued_requests``), else None.
    """
    size = service.settings["forecast"]["batch_locations"]
    split = batches(pending, size)
    calls = [(b, forecast_call(service, b, params, task_id, len(split))) for b in split]
    failed, shed = {}, None

    async def one(batch, ref):
        try:
            return batch, await ref, None
        except Exception as exc:  # the batch's plants are tried again, never dropped
            return batch, None, exc

    for done in asyncio.as_completed([one(b, r) for b, r in calls]):
        batch, result, failure = await done
        if failure is not None:
            why = plant_error("overloaded" if isinstance(failure, BackPressureError) else "batch_failed",
                              f"batch failed: {reason(failure)}")
            failed.update({int(i): why for i in batch["location_id"]})
            if isinstance(failure, BackPressureError):
                shed = failure
            continue
        errors.update(result["errors"])
        runs.update(result["run_ids"])
        if result["forecast"] is not None:
            frames.append(result["forecast"])
        for stage, seconds in result["timings"].items():
            timings[stage] = timings.get(stage, 0.0) + seconds
        if result["errors"] and len(calls) > 1:  # progress of a long task; finish() records them anyway
            await store.update_task(service.pool, task_id, errors=result["errors"])
    return failed, shed


def forecast_call(service, batch, params, task_id, batches):
    """The Forecaster's answer to one batch of a task, awaitable (its result, or the error of the call).

    A small call (at most ``forecast.merge.max_locations`` plants, a task of
    one batch) joins the Ingress replica's next group: calls that arrive while
    ``forecast.merge.ingress_groups`` groups are in flight wait and go
    together, in ONE Forecaster handle call (:func:`send_groups`), where they
    are merged into passes as separate calls would be
    (``Forecaster.forecast_group``). One handle call per group instead of one
    per request: each saves both processes a Serve request (routing,
    serialisation, metrics). A lone call is sent at once. Other calls: a
    handle call of their own.
    """
    merge = service.settings["forecast"]["merge"]
    if batches > 1 or len(batch) > merge["max_locations"] or merge["ingress_groups"] == 0:
        return service.forecaster.forecast.remote(batch, params, task_id, batches)
    answer = asyncio.get_running_loop().create_future()
    service.small_calls.append(((batch, params, task_id, batches), answer))
    send_groups(service)
    return answer


def send_groups(service):
    """Send the waiting small calls in groups of at most ``forecast.merge.max_calls`` while fewer than
    ``forecast.merge.ingress_groups`` groups are in flight (each in a context of its own: no request's
    disconnection cancels a group)."""
    merge = service.settings["forecast"]["merge"]
    while service.small_calls and len(service.small_groups) < merge["ingress_groups"]:
        taken, service.small_calls = service.small_calls[:merge["max_calls"]], service.small_calls[merge["max_calls"]:]
        job = asyncio.get_running_loop().create_task(send_group(service, taken), context=contextvars.Context())
        service.small_groups.add(job)

        def ended(done):
            service.small_groups.discard(done)
            send_groups(service)
        job.add_done_callback(ended)


async def send_group(service, taken):
    """One Forecaster call for (call, future) pairs; each future gets its call's result or error. A call
    that fails whole (its queue was full, the replica died) fails every call of the group."""
    try:
        results = await service.forecaster.forecast_group.remote([call for call, _ in taken])
    except BaseException as exc:  # never a future left waiting
        results = [exc] * len(taken)
    for result in results:
        if not isinstance(result, BaseException):
            result["timings"]["grouped_calls"] = len(taken)  # the calls of its Forecaster handle call
    settle(taken, results)


def settle(taken, outcomes):
    """Give each (item, future) pair's future still waiting its outcome: a result, or an exception to raise."""
    for (_, answer), outcome in zip(taken, outcomes):
        if answer.done():
            continue
        if isinstance(outcome, BaseException):
            answer.set_exception(outcome)
        else:
            answer.set_result(outcome)


async def run_task(service, task_id, params, locations=None, tenant_id=None, fresh=False, running=False):
    """Run (or resume) one task to its end and record it; returns the summary (+ frames if asked).

    Plants with a stored run of this task are skipped (``fresh``: the task was
    just created, so none has one and the first pass reads nothing). Batches
    that fail whole are forecast again up to ``tasks.batch_attempts`` times,
    each time once the database answers (waiting at most
    ``tasks.database_wait_seconds``). ``running``: the fresh task's row was
    created 'running' (``store.create_task_of_locations``), so its first pass
    does not mark it. The task then ends with the status of
    its stored runs and the reason of every plant without one. A database
    that stays unreachable raises: the lease lapses and a live owner resumes
    the task when the database is back.

    A batch refused by the Forecaster's full queue sheds the task of a waiting
    client (``params['wait']``): it ends with the reasons and
    :data:`serve_app.api.Overloaded` is raised (503 and Retry-After; the
    client retries). A background task waits the Retry-After and tries again.
    """
    cfg, pool = service.settings["tasks"], service.pool
    t0 = time.perf_counter()
    if locations is None:
        locations = await store.fetch_locations(pool, params["location_ids"], tenant_id=tenant_id)
    LOCATIONS_PER_REQUEST.observe(len(locations))
    errors, frames, timings, failed, runs = {}, [], {}, {}, {}
    clean = fresh  # every run of the task came back from this process's batches: no need to read them
    for attempt in range(1, cfg["batch_attempts"] + 1):
        shed = None
        try:
            first = fresh and attempt == 1
            stored = {} if first else await store.task_runs(pool, task_id)
            done = [*stored, *errors]  # a fresh task's first pass: none (no frame filtered and copied)
            pending = locations[~locations["location_id"].isin(done)] if done else locations
            if not len(pending):
                failed = {}
                break
            work = asyncio.ensure_future(  # the pass starts while the task is marked running
                forecast_batches(service, task_id, pending, params, errors, frames, timings, runs))
            try:
                if not (first and running):
                    await store.update_task(pool, task_id, status="running",
                                            clear_errors=None if first else pending["location_id"].tolist())
            finally:  # the pass ends before anything else happens, even when the mark failed
                failed, shed = await work
        except DATABASE_ERRORS as exc:
            failed = {"task": plant_error("unavailable", f"database unreachable: {reason(exc)}")}
        if not failed:
            break
        clean = False
        event("task_retry", task_id=task_id, attempt=attempt, failed=len(failed),
              error=next(iter(failed.values()))["message"])
        if shed is not None and params["wait"]:
            await finish(service, task_id, locations, {**failed, **errors}, frames, timings, t0)
            raise api.overloaded(shed)
        if shed is not None:
            await asyncio.sleep(api.overloaded(shed).retry_after_s)
        if attempt < cfg["batch_attempts"] and not await until_reachable(pool, cfg["database_wait_seconds"]):
            raise ConnectionError(f"task {task_id}: database unreachable for {cfg['database_wait_seconds']} s")
    return await finish(service, task_id, locations, {**failed, **errors}, frames, timings, t0,
                        runs if clean else None)


def in_statement(service, name, item, statement):
    """``item``'s outcome of ``statement(pool, items) -> outcomes`` (one per item, an exception for a failed
    item), awaitable. Items that arrive while the replica's previous ``name`` statement runs wait and go
    together in the next one: one round trip for the tasks of a merged pass instead of one each (a lone
    item goes at once). A statement that raises fails each of its items."""
    queue = service.statements.setdefault(name, {"waiting": [], "running": None})
    answer = asyncio.get_running_loop().create_future()
    queue["waiting"].append((item, answer))
    if queue["running"] is None:
        queue["running"] = asyncio.get_running_loop().create_task(run_statements(service, queue, statement),
                                                                  context=contextvars.Context())
    return answer


async def run_statements(service, queue, statement):
    """Run ``statement`` over the waiting items until none waits; each future gets its outcome."""
    try:
        while queue["waiting"]:
            taken, queue["waiting"] = queue["waiting"], []
            try:
                outcomes = await statement(service.pool, [item for item, _ in taken])
            except BaseException as exc:  # every item of the statement gets its error, none hangs
                outcomes = [exc] * len(taken)
                if not isinstance(exc, Exception):
                    for _, answer in taken + queue["waiting"]:
                        if not answer.done():
                            answer.set_exception(exc)
                    raise
            settle(taken, outcomes)
    finally:
        queue["running"] = None


async def store_ends(pool, ends):
    """``store.finish_tasks`` of (task_id, status, errors, timings); per end None, or LookupError (unknown task)."""
    found = await store.finish_tasks(pool, ends)
    return [None if str(end[0]) in found else LookupError(f"task_id {end[0]} is unknown") for end in ends]


def record_end(service, task_id, status, errors, timings):
    """Store the end of a task (:func:`store_ends`, batched by :func:`in_statement`), awaitable."""
    return in_statement(service, "ends", (task_id, status, errors, timings), store_ends)


async def finish(service, task_id, locations, errors, frames, timings, t0, stored=None):
    """Record the end of a task: status of its stored runs, the errors of the plants without one.

    ``errors``: {location_id or "task": ``engine.validation.plant_error``}; the task-level error (the
    database failed the pass) becomes the error of every plant left without a run and one, else
    ``no_run_stored``.

    ``stored``: the task's runs as its batches reported them, when those are all
    it can have (a fresh task, one clean pass: every write committed before its
    batch returned); None: read from the database.
    """
    if stored is None:
        stored = await store.task_runs(service.pool, task_id)
    task_reason = errors.pop("task", None)  # the database failed the pass itself: every plant left has it
    errors = {k: v for k, v in errors.items() if k not in stored}
    left = task_reason or plant_error("no_run_stored", "no run stored")
    errors.update({i: left for i in locations["location_id"].tolist() if i not in stored and i not in errors})
    status = store.task_status(len(stored), len(locations))
    timings["wall_s"] = time.perf_counter() - t0
    await record_end(service, task_id, status, errors, timings)  # an interruption survived is no reason
    LATENCY.observe(timings["wall_s"])
    if errors:  # a Ray Counter refuses inc(0)
        LOCATION_ERRORS.inc(len(errors))
    event("task_done", task_id=task_id, status=status, locations=len(locations), runs=len(stored),
          errors=len(errors), timings=timings)
    if status == "failed":
        event("task_failed", task_id=task_id, reason=next(iter(errors.values()), {"message": "no plant"})["message"],
              errors=len(errors))
    return {"task_id": task_id, "status": status, "run_ids": stored, "errors": errors, "timings": timings,
            "frames": frames}

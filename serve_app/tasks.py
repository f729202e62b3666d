"""A forecast task: batches fanned out to the Forecaster, progress kept in the database."""

import asyncio
import time

from engine import store
from serve_app.observability import LATENCY, LOCATION_ERRORS, LOCATIONS_PER_REQUEST, event, reason


def batches(locations, size):
    """Consecutive slices of the locations frame, ``size`` rows each."""
    return [locations.iloc[i:i + size] for i in range(0, len(locations), size)]


def final_status(n_runs, n_errors):
    """succeeded (no error), partial (some runs, some errors) or failed (no run)."""
    if not n_errors:
        return "succeeded"
    return "partial" if n_runs else "failed"


async def run_task(pool, forecaster, task_id, locations, params, batch_size):
    """Run one task to its end and record it; returns the summary (+ frames if asked).

    Every batch's locations end either with a run id or with an error; an
    infrastructure failure of a batch (e.g. database down after the writer's
    retries) becomes the error of each of its locations.
    """
    t0 = time.perf_counter()
    LOCATIONS_PER_REQUEST.observe(len(locations))
    await store.update_task(pool, task_id, status="running")
    run_ids, errors, frames, timings = {}, {}, [], {}
    calls = [(b, forecaster.forecast.remote(b, params, task_id)) for b in batches(locations, batch_size)]

    async def one(batch, ref):
        try:
            return batch, await ref
        except Exception as exc:  # a failed batch is reported per location, never dropped
            return batch, {"run_ids": {}, "errors": {int(i): f"batch failed: {reason(exc)}" for i in batch["location_id"]},
                           "timings": {}, "forecast": None}

    for done in asyncio.as_completed([one(b, r) for b, r in calls]):
        batch, result = await done
        run_ids.update(result["run_ids"])
        errors.update(result["errors"])
        if result["forecast"] is not None:
            frames.append(result["forecast"])
        for stage, seconds in result["timings"].items():
            timings[stage] = timings.get(stage, 0.0) + seconds
        await store.update_task(pool, task_id, progress_done=len(run_ids) + len(errors),
                                run_ids=run_ids, errors=errors)
    timings["wall_s"] = time.perf_counter() - t0
    status = final_status(len(run_ids), len(errors))
    await store.update_task(pool, task_id, status=status, run_ids=run_ids, errors=errors, timings=timings)
    LATENCY.observe(timings["wall_s"])
    if errors:  # a Ray Counter refuses inc(0)
        LOCATION_ERRORS.inc(len(errors))
    event("task_done", task_id=task_id, status=status, locations=len(locations), runs=len(run_ids),
          errors=len(errors), timings=timings)
    return {"task_id": task_id, "status": status, "run_ids": run_ids, "errors": errors, "timings": timings,
            "frames": frames}

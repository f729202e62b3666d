"""Task leases of an Ingress replica: renew the leases of its tasks, resume the tasks nobody owns.

Every ``tasks.scan_seconds`` (and at start) the replica renews, for
``tasks.lease_seconds``, the lease of each task it runs, then claims the open
tasks whose lease expired (their owner died, or lost the database for longer
than a lease) and resumes them: only their plants without a stored run are
forecast (serve_app/tasks.py). A task claimed more than ``tasks.max_attempts``
times ends 'failed' with its last reason. docs/ARCHITECTURE.md "Task lifecycle".
"""

import asyncio
import os
import socket
import uuid

from engine import store
from engine.validation import plant_error
from serve_app.observability import event
from serve_app.tasks import run_task


def owner_id():
    """A replica's owner id: host, process id and a random part (unique across restarts)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


async def keep(service):
    """Forever: :func:`scan` every ``tasks.scan_seconds``; a scan that fails (database down) is logged."""
    while True:
        try:
            await scan(service)
        except Exception as exc:  # the database is unreachable: leases lapse, the next scan catches up
            event("lease_scan_failed", owner=service.owner, error=repr(exc))
        await asyncio.sleep(service.settings["tasks"]["scan_seconds"])


async def scan(service):
    """Renew the leases of the replica's tasks, claim and resume the expired ones; returns the claimed ids."""
    cfg = service.settings["tasks"]
    mine = list(service.background)
    if mine:
        held = set(await store.renew_leases(service.pool, service.owner, mine, cfg["lease_seconds"]))
        for task_id in set(mine) - held:  # finished meanwhile, or claimed by another owner after a lapse
            if task_id in service.background:
                event("lease_lost", task_id=task_id, owner=service.owner)
    claimed = []
    for task in await store.claim_expired_tasks(service.pool, service.owner, cfg["lease_seconds"]):
        if task["task_id"] in service.background:  # ours: the lease lapsed while the database was away
            continue
        event("task_resumed", task_id=task["task_id"], owner=service.owner, attempts=task["attempts"])
        service.start_background(task["task_id"], resume(service, task))
        claimed.append(task["task_id"])
    return claimed


async def resume(service, task):
    """Run a claimed task again (its tenant's plants, no waiting client); past ``max_attempts`` it fails."""
    cfg = service.settings["tasks"]
    if task["attempts"] > cfg["max_attempts"]:
        stored = await store.task_runs(service.pool, task["task_id"])
        status = store.task_status(len(stored), task["progress_total"])
        why = f"gave up after {task['attempts'] - 1} attempts (owner lost or database unreachable each time)"
        await store.update_task(service.pool, task["task_id"], status=status,
                                errors={"task": plant_error("gave_up", why)})
        event("task_failed", task_id=task["task_id"], reason=why, runs=len(stored))
        return None
    params = {**task["request"], "wait": False, "include_forecast": False}
    return await run_task(service, task["task_id"], params, tenant_id=task["tenant_id"])

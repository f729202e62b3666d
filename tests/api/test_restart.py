"""A crash of the ingress replica in the middle of a task loses nothing: the task is resumed.

Policy (configs/service.yaml ``tasks``, docs/ARCHITECTURE.md "Task lifecycle"): the Ingress replica
holds a lease on each task it runs; when it dies the lease lapses, the restarted replica claims the
task and forecasts only its plants without a stored run (each write is one transaction).
"""

import os
import signal
import time

import httpx
import psutil
import pytest

from apihelpers import ISSUE, count, demo_plants, weather_rows
import local_instance as local

pytestmark = pytest.mark.slow


def ingress_processes(sessions):
    """Ingress replica processes of OUR service (its process sessions): never another instance on the machine."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        if any("ServeReplica:pvcast:Ingress" in part for part in (proc.info["cmdline"] or [])) \
                and local.session_of(proc.pid) in sessions:
            found.append(proc)
    return found


def wait_ready(client, timeout=180):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if client.get("/readyz").status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(1)
    return False


def test_task_interrupted_by_a_replica_crash_is_resumed(client, served, plants, training_config, api_db_url):
    # 60 more plants at the same site (real configuration varied over tilt/azimuth), 168 h horizon
    base = demo_plants()[1]
    fleet = [{**base, "name": f"restart fleet {i}", "tilt": 5.0 + i % 40, "azimuth": 120.0 + 2 * i} for i in range(60)]
    saved = client.post("/api/v1/locations", json={"locations": fleet})
    assert saved.status_code == 200, saved.text
    ids = [loc["location_id"] for loc in saved.json()["locations"]]
    rows = weather_rows(ids, training_config)
    assert client.post("/api/v1/weather", json={"rows": rows}).status_code == 200
    r = client.post("/api/v1/forecast/generate", json={"location_ids": ids, "issue_time": ISSUE,
                                                      "horizon_hours": 168})
    assert r.status_code == 202, r.text
    task_id = r.json()["task_id"]
    victims = ingress_processes(served[1])
    assert victims, "no Ingress replica process found"
    for proc in victims:
        os.kill(proc.pid, signal.SIGKILL)
    assert wait_ready(client), "service did not come back after the replica crash"
    deadline = time.monotonic() + 120
    while True:
        task = client.get(f"/api/v1/forecast/task/{task_id}").json()
        if task["status"] not in ("queued", "running") or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert task["status"] == "succeeded", task
    assert sorted(int(k) for k in task["run_ids"]) == sorted(ids)
    # exactly one run of the task per plant, each complete
    assert count(api_db_url, "SELECT count(*) FROM forecast_runs WHERE task_id = $1::uuid", task_id) == len(ids)
    assert count(api_db_url, """SELECT count(*) FROM forecast_runs r WHERE r.task_id = $1::uuid
                                AND r.n_steps <> (SELECT count(*) FROM forecasts f WHERE f.run_id = r.run_id)""",
                 task_id) == 0

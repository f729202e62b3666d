"""A restart of the ingress replica in the middle of a task never leaves the task 'running'.

Policy (configs/service.yaml ``tasks``): the single Ingress replica owns the tasks it
starts; when a replica starts it marks every task still 'queued'/'running' as failed with
the reason. Runs already stored by that task stay complete (each write is one transaction).
"""

import os
import signal
import time

import httpx
import psutil
import pytest

from apihelpers import ISSUE, demo_plants, weather_rows
from serve_app import local

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


def test_task_interrupted_by_a_replica_crash_ends_failed_or_succeeded(client, served, plants, training_config):
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
    assert task["status"] in ("failed", "succeeded"), task
    if task["status"] == "failed":
        assert "interrupted" in str(task["errors"])

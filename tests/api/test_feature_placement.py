"""Where a forecast pass computes its features (configs/service.yaml ``forecast.local_features_max_locations``)
and writes its runs (``writer.local_max_locations``).

A pass of a few plants (a single-plant request) computes them in the Forecaster replica's executor:
no Ray task to schedule, no frames crossing processes; and writes them with the replica's own Writer
instance, not through the Writer deployment. A task the ingress split into several
batches keeps one Ray task (``feature_task``) per batch, whatever the batches' size: the split is
there to spread the task over replicas and nodes (tests/cluster/test_two_node.py). Checked with
Ray's state API on the session's service.
"""

import time

import psutil
import pytest

import local_instance as local
from apihelpers import ISSUE

pytestmark = pytest.mark.slow


def ray_cluster(served):
    """``local.ray_state``'s cluster dict of the session's service (its dashboard port: the head's command line)."""
    for pid in served[1]:
        for arg in psutil.Process(pid).cmdline():
            if arg.startswith("--dashboard-port="):
                return {"dashboard": f"http://127.0.0.1:{arg.split('=', 1)[1]}", "env": local.ray_env()}
    raise LookupError(f"no Ray head among {served[1]}")


def feature_tasks(cluster):
    """Feature tasks the cluster ran, once the count stops changing (task events reach the state API late)."""
    seen = None
    for _ in range(30):
        now = len(local.ray_state(cluster, "tasks", "name=feature_task"))
        if now == seen:
            return now
        seen = now
        time.sleep(2)
    raise TimeoutError(f"feature task count still changing: {seen}")


def generate(client, ids):
    r = client.post("/api/v1/forecast/generate", json={"location_ids": ids, "issue_time": ISSUE,
                                                      "horizon_hours": 48, "wait": True})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "succeeded", r.json()["errors"]
    return r.json()["timings"]


def test_a_single_plant_pass_computes_features_in_the_replica_a_split_task_in_ray_tasks(client, served, plants):
    cluster = ray_cluster(served)
    ids = sorted(plants)
    assert len(ids) > 3  # the fleet request is split into batches (tests/api/conftest.py: 3 plants each)
    timings = generate(client, ids)
    assert timings["local_feature_passes"] == 0
    assert timings["local_writes"] == 0  # every batch of a split task through the Writer deployment
    after_fleet = feature_tasks(cluster)  # (Ray's CLI lists no rows as text, not JSON: count after this request)
    assert after_fleet >= 2  # a Ray task per batch
    timings = generate(client, ids[:1])
    assert timings["local_feature_passes"] == 1
    assert timings["local_writes"] == 1
    assert feature_tasks(cluster) == after_fleet  # no Ray task for the single plant

"""Tasks end with the truth under faults: database cut, Forecaster killed, client gone, service SIGTERMed.

A service of its own (serve_config.yaml, 3 plants a batch, short leases) whose database
connections go through a TCP proxy of the test process (tests/api/dbproxy.py): cutting
it is a real network fault. The invariant checked after each fault: the task ends,
its status and run ids are exactly its stored runs, each plant has at most one run of
the task and every run is complete (its n_steps values stored).
"""

import asyncio
import contextlib
import json
import os
import re
import signal
import threading
import time
import uuid
from pathlib import Path

import asyncpg
import httpx
import psutil
import pytest
import yaml

from apihelpers import WINDOW, count, demo_plants, weather_rows
from dbproxy import Proxy, pgpass_with_port
from engine import store, validation
from serve_app.routes_forecast import generate_params
from serve_app.schemas import generate_request
from serve_app.settings import load_settings
import local_instance as local

pytestmark = pytest.mark.slow

#: Leases of the test service: a lapsed owner is replaced within LEASE + SCAN s.
TASKS = {"lease_seconds": 6, "scan_seconds": 2, "batch_attempts": 3, "database_wait_seconds": 5, "max_attempts": 5}
SETTINGS = {"forecast": {"batch_locations": 3}, "tasks": TASKS}
FLEET = 60            # plants: 20 batches of 3, one at a time (serve_config below): a task of ~3 s, faults land mid-task
HORIZON_HOURS = 168
WRITER_RETRY_S = 1 + 2 + 4  # writer.retry_wait_seconds of configs/service.yaml
OUTAGE_S = 20         # longer than the writer's retry budget plus tasks.database_wait_seconds
#: A task ends within this many seconds of the database's return (lease + scan + one pass of the fleet).
RETURN_BOUND_S = 60


def final(client, task_id, timeout=RETURN_BOUND_S):
    deadline = time.monotonic() + timeout
    while True:
        task = client.get(f"/api/v1/forecast/task/{task_id}")
        if task.status_code == 200 and task.json()["status"] not in ("queued", "running"):
            return task.json()
        assert time.monotonic() < deadline, f"task {task_id} not finished in {timeout} s: {task.text}"
        time.sleep(0.5)


def stored_runs(db, task_id):
    """{location_id: (run_id, n_steps, values stored, written_at)} of the task's runs."""
    rows = count(db, """
        SELECT coalesce(json_agg(json_build_object('location_id', r.location_id, 'run_id', r.run_id,
               'n_steps', r.n_steps, 'values', (SELECT count(*) FROM forecasts f WHERE f.run_id = r.run_id),
               'written_at', r.written_at)), '[]')
        FROM forecast_runs r WHERE r.task_id = $1::uuid""", task_id)
    runs = json.loads(rows)
    by_plant = {}
    for r in runs:
        assert r["location_id"] not in by_plant, f"two runs of plant {r['location_id']} in task {task_id}"
        by_plant[r["location_id"]] = (r["run_id"], r["n_steps"], r["values"], r["written_at"])
    return by_plant


def wait_for_runs(db, task_id, n=1, timeout=120):
    deadline = time.monotonic() + timeout
    while len(runs := stored_runs(db, task_id)) < n:
        assert time.monotonic() < deadline, f"no run of task {task_id} stored in {timeout} s"
        time.sleep(0.1)
    return runs


def assert_task_is_its_runs(task, db, ids):
    """Status, run ids and errors of the task answer = what is stored; every run complete."""
    runs = stored_runs(db, task["task_id"])
    assert {int(k): v for k, v in task["run_ids"].items()} == {k: v[0] for k, v in runs.items()}
    assert all(n_steps == values == HORIZON_HOURS * 4 for _, n_steps, values, _ in runs.values()), runs
    assert set(runs) <= set(ids)
    assert task["status"] == store.task_status(len(runs), len(ids))
    assert {int(k) for k in task["errors"] if k != "task"} == set(ids) - set(runs)
    assert all(e["code"] in validation.PLANT_ERRORS for e in task["errors"].values()), task["errors"]
    assert task["progress_done"] == len(ids) or task["status"] == "failed"
    return runs


def processes(sessions, marker):
    return [p for p in psutil.process_iter(["cmdline"])
            if any(marker in part for part in (p.info["cmdline"] or [])) and local.session_of(p.pid) in sessions]


def session_dir(sessions):
    """The Ray session directory of OUR service (its raylet's --session_dir), not session_latest."""
    for proc in processes(sessions, "--session_dir="):
        for part in proc.info["cmdline"]:
            if part.startswith("--session_dir="):
                return Path(part.split("=", 1)[1])
    raise AssertionError("no raylet with --session_dir in the service's sessions")


def log_events(sessions):
    """The JSON events of every replica log of the service: list of dicts."""
    events = []
    for path in (session_dir(sessions) / "logs" / "serve").glob("replica_*.log"):
        for line in path.read_text(errors="replace").splitlines():
            found = re.search(r'\{"event": .*\}', line)
            if found:
                with contextlib.suppress(json.JSONDecodeError):
                    events.append(json.loads(found.group(0)))
    return events


@pytest.fixture(scope="module")
def faults(tmp_path_factory, training_config):
    """The service behind the proxy: dict with proxy, db (direct URL), client, sessions, ids, restart()."""
    direct_port = int(local.server_url("service").rsplit(":", 1)[1].split("/")[0])
    proxy = Proxy("127.0.0.1", direct_port)
    saved = os.environ.get("PGPASSFILE")
    os.environ["PGPASSFILE"] = pgpass_with_port(tmp_path_factory.mktemp("pgpass") / "pgpass", proxy.port,
                                                direct_port)
    stack = contextlib.ExitStack()
    try:
        with local.scratch_database("pvcast_faults") as (db, _):
            state = {"proxy": proxy, "db": db}
            key = local.api_key(db, "faults", description="tests/api/test_task_lifecycle.py")

            def start():
                proxied = db.replace(f":{direct_port}/", f":{proxy.port}/")
                workdir = tmp_path_factory.mktemp("faults")
                base, sessions = stack.enter_context(local.serve_instance(
                    proxied, workdir, serve_config=one_batch_at_a_time(workdir / "one_batch.yaml"),
                    service_settings=SETTINGS))
                client = stack.enter_context(httpx.Client(base_url=base, timeout=600, headers=local.bearer(key)))
                state.update(base=base, sessions=sessions, client=client,
                             ports=json.loads((workdir / "ports.json").read_text()))

            def restart():
                stack.close()  # SIGTERM to the whole service (local.stop), its processes gone
                start()
            state["restart"] = restart
            start()
            base = demo_plants()[1]
            fleet = [{**base, "name": f"fault fleet {i}", "tilt": 5.0 + i % 40, "azimuth": 120.0 + 2 * i}
                     for i in range(FLEET)]
            saved_plants = state["client"].post("/api/v1/locations", json={"locations": fleet})
            assert saved_plants.status_code == 200, saved_plants.text
            state["ids"] = [p["location_id"] for p in saved_plants.json()["locations"]]
            weather = state["client"].post("/api/v1/weather", json={"rows": weather_rows(state["ids"],
                                                                                          training_config)})
            assert weather.status_code == 200, weather.text
            yield state
            stack.close()
    finally:
        stack.close()
        proxy.close()
        if saved is None:
            os.environ.pop("PGPASSFILE", None)
        else:
            os.environ["PGPASSFILE"] = saved


def one_batch_at_a_time(path):
    """serve_config.yaml with one Forecaster replica taking one batch at a time (written to ``path``)."""
    cfg = yaml.safe_load((local.ROOT / "serve_config.yaml").read_text())
    for deployment in cfg["applications"][0]["deployments"]:
        if deployment["name"] == "Forecaster":
            deployment["max_ongoing_requests"] = 1
            deployment["autoscaling_config"].update(min_replicas=1, initial_replicas=1, max_replicas=1)
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


@contextlib.contextmanager
def write_in_flight(db, timeout=30):
    """Hold a SHARE lock on forecast_runs until a forecast write waits on it; release it on exit.

    A real lock of the database (no double): the writer's transaction is open
    and blocked in its run upsert while the body of the ``with`` runs.
    """
    async def hold():
        conn = await asyncpg.connect(db)
        tx = conn.transaction()
        await tx.start()
        await conn.execute("LOCK TABLE forecast_runs IN SHARE MODE")
        return conn, tx

    async def waiting(conn):
        await conn.execute("SELECT pg_stat_clear_snapshot()")  # the statistics snapshot lasts a transaction
        return await conn.fetchval("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                                   "AND query LIKE '%INSERT INTO forecast_runs%'")

    loop = asyncio.new_event_loop()
    conn, tx = loop.run_until_complete(hold())
    try:
        deadline = time.monotonic() + timeout
        while not loop.run_until_complete(waiting(conn)):
            assert time.monotonic() < deadline, "no forecast write waited on the lock"
            time.sleep(0.05)
        yield
    finally:
        loop.run_until_complete(tx.rollback())
        loop.run_until_complete(conn.close())
        loop.close()


def issue_of(k):
    """The issue time of test ``k``: each test's task has its own (the weather is issued at 06:00)."""
    return f"2013-07-01T{6 + k:02d}:00:00+00:00"


def task_of(faults, k, timeout=60):
    """The id of the task of test ``k``, read from the database (its client may never have seen it)."""
    deadline = time.monotonic() + timeout
    while not (task_id := count(faults["db"], "SELECT task_id::text FROM forecast_tasks "
                                              "WHERE request->>'issue_time' = $1", issue_of(k))):
        assert time.monotonic() < deadline, f"no task of issue time {issue_of(k)}"
        time.sleep(0.1)
    return task_id


def generate(faults, k, wait=False, timeout=600):
    issue = issue_of(k)
    return faults["client"].post("/api/v1/forecast/generate", timeout=timeout, json={
        "location_ids": faults["ids"], "issue_time": issue, "horizon_hours": HORIZON_HOURS, "wait": wait,
        "include_forecast": False})


def test_a_database_outage_longer_than_the_retries_ends_the_task_after_the_database_returns(faults):
    answer = {}
    waiter = threading.Thread(target=lambda: answer.update(r=generate(faults, 1, wait=True)))
    waiter.start()
    task_id = task_of(faults, 1)
    before = wait_for_runs(faults["db"], task_id)
    with write_in_flight(faults["db"]):  # the next batch's write waits on our lock: the cut meets it mid-write
        assert len(before) < FLEET, "the task ended before the cut: use a bigger fleet"
        faults["proxy"].cut()
    time.sleep(OUTAGE_S)
    faults["proxy"].restore()
    back = time.monotonic()
    waiter.join(120)
    r = answer["r"]
    # the waiting client is answered with the task's id: the result, or a 503 naming the task that goes on
    assert r.headers["x-task-id"] == task_id
    if r.status_code == 503:
        assert r.json()["error"]["task_id"] == task_id and r.headers["retry-after"]
    else:
        assert r.status_code == 200, r.text
    task = final(faults["client"], task_id)
    assert time.monotonic() - back < RETURN_BOUND_S
    runs = assert_task_is_its_runs(task, faults["db"], faults["ids"])
    assert task["status"] == "succeeded", task
    # plants stored before the cut were not forecast again: their runs untouched
    assert all(runs[lid][3] == before[lid][3] for lid in before)


def test_a_killed_forecaster_leaves_the_task_status_equal_to_its_runs(faults):
    r = generate(faults, 2)
    assert r.status_code == 202 and r.headers["x-task-id"] == r.json()["task_id"], r.text
    task_id = r.json()["task_id"]
    wait_for_runs(faults["db"], task_id)
    victims = processes(faults["sessions"], "ServeReplica:pvcast:Forecaster")
    assert victims, "no Forecaster replica process found"
    for proc in victims:
        os.kill(proc.pid, signal.SIGKILL)
    assert len(stored_runs(faults["db"], task_id)) < FLEET, "the task ended before the kill"
    task = final(faults["client"], task_id, timeout=180)
    assert_task_is_its_runs(task, faults["db"], faults["ids"])


def test_a_client_that_disconnects_does_not_stop_its_task(faults):
    with pytest.raises(httpx.ReadTimeout):  # the client gives up after 1 s and closes the connection
        generate(faults, 3, wait=True, timeout=1.0)
    task_id = task_of(faults, 3)
    assert len(stored_runs(faults["db"], task_id)) < FLEET, "the task ended before the client left"
    task = final(faults["client"], task_id, timeout=180)
    runs = assert_task_is_its_runs(task, faults["db"], faults["ids"])
    assert task["status"] == "succeeded" and len(runs) == FLEET, task
    assert task["attempts"] == 1, task  # ran on to its end: neither stopped nor resumed after a lapse


def test_the_events_are_in_the_replica_logs_and_the_metrics_on_the_metrics_endpoint(faults):
    # a plant without weather: a failed task (task_failed), next to the tasks of the tests above
    lonely = faults["client"].post("/api/v1/locations", json={"locations": [
        {**demo_plants()[1], "name": "fault plant without weather"}]}).json()["locations"][0]["location_id"]
    r = faults["client"].post("/api/v1/forecast/generate", json={
        "location_ids": [lonely], "issue_time": WINDOW[0], "horizon_hours": 24, "wait": True})
    assert r.status_code == 200 and r.json()["status"] == "failed", r.text
    failed_id = r.json()["task_id"]
    deadline = time.monotonic() + 30
    while True:
        events = log_events(faults["sessions"])
        names = {e["event"] for e in events}
        if {"batch_done", "task_done", "write_retry", "task_failed"} <= names or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert {"batch_done", "task_done", "write_retry", "task_failed"} <= names, names
    assert any(e["event"] == "task_failed" and e["task_id"] == failed_id for e in events)
    assert any(e["event"] == "task_done" and e["task_id"] == failed_id and e["status"] == "failed" for e in events)
    metrics_port = faults["ports"]["metrics"]  # Ray's Prometheus endpoint (ray start --metrics-export-port)
    deadline = time.monotonic() + 60
    while True:
        text = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).text
        if ("pvcast_forecasts_produced" in text and "pvcast_task_seconds" in text) or time.monotonic() > deadline:
            break
        time.sleep(2)
    produced = [line for line in text.splitlines() if "pvcast_forecasts_produced" in line and not line.startswith("#")]
    assert produced and any(float(line.rsplit(" ", 1)[1]) >= FLEET for line in produced), produced
    assert "pvcast_task_seconds" in text


def test_sigterm_of_the_whole_service_and_a_restart_lose_nothing(faults):
    r = generate(faults, 4)
    assert r.status_code == 202, r.text
    task_id = r.json()["task_id"]
    before = wait_for_runs(faults["db"], task_id)
    assert len(before) < FLEET, "the task ended before the SIGTERM: use a bigger fleet"
    faults["restart"]()
    task = final(faults["client"], task_id, timeout=120)
    runs = assert_task_is_its_runs(task, faults["db"], faults["ids"])
    assert task["status"] == "succeeded" and len(runs) == FLEET, task  # every plant: exactly one complete run


def orphaned_task(faults, k, claims):
    """A task of test ``k`` (3 plants) as owners that died ``claims`` times leave it: open, lease lapsed.

    Its request is built by the service's own ``generate_params`` from a validated
    GenerateRequest; the database row is what ``store.create_task`` writes plus the
    claim count that ``claim_expired_tasks`` would have reached.
    """
    settings = load_settings()
    body = generate_request(settings).model_validate_json(json.dumps({
        "location_ids": faults["ids"][:3], "issue_time": issue_of(k), "horizon_hours": HORIZON_HOURS}))
    params = generate_params(body, settings, now=None)
    task_id = str(uuid.uuid4())

    async def create():
        conn = await asyncpg.connect(faults["db"])
        try:
            await store.create_task(conn, task_id, params, 3, tenant_id="faults", owner="dead:1:owner",
                                    lease_seconds=0)
            await conn.execute("UPDATE forecast_tasks SET attempts = $2 WHERE task_id = $1::uuid", task_id, claims)
        finally:
            await conn.close()
    asyncio.run(create())
    return task_id


def test_a_task_claimed_max_attempts_times_ends_failed_with_its_reason_one_claim_less_is_resumed(faults):
    max_attempts = TASKS["max_attempts"]
    last_chance = orphaned_task(faults, 5, claims=max_attempts - 1)   # the next claim is attempt max_attempts
    given_up = orphaned_task(faults, 6, claims=max_attempts)         # the next claim is one too many
    resumed = final(faults["client"], last_chance)
    assert resumed["status"] == "succeeded" and resumed["attempts"] == max_attempts, resumed
    assert len(assert_task_is_its_runs(resumed, faults["db"], faults["ids"][:3])) == 3
    failed = final(faults["client"], given_up)
    assert failed["status"] == "failed" and failed["attempts"] == max_attempts + 1, failed
    assert set(failed["errors"]) == {"task"} and stored_runs(faults["db"], given_up) == {}
    assert failed["errors"]["task"]["code"] == "gave_up", failed


def test_a_database_that_stops_answering_gets_503s_in_bounded_time_then_serves_again(faults):
    # a host that stops answering (connections open, nothing comes back): a request ends 503 within the pools'
    # statement timeout and asyncpg's wait for the statement's cancellation (configs/service.yaml database), it
    # does not hang; the service answers once the database returns
    bound = 2 * load_settings()["database"]["command_timeout_seconds"] + 15
    client = faults["client"]
    assert client.get("/api/v1/locations").status_code == 200
    faults["proxy"].stall()
    try:
        t0 = time.monotonic()
        r = client.get("/api/v1/locations", timeout=bound + 60)
        assert r.status_code == 503 and r.json()["error"]["field"] == "database" and r.headers["retry-after"], r.text
        assert r.json()["error"]["code"] == "unavailable", r.text
        assert time.monotonic() - t0 < bound
    finally:
        faults["proxy"].flow()
    deadline = time.monotonic() + 60
    while client.get("/api/v1/locations").status_code != 200:
        assert time.monotonic() < deadline, "the service did not serve again after the database returned"
        time.sleep(1)

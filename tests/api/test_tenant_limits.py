"""One tenant cannot starve the others (docs/api.md "Limits of one client", docs/ARCHITECTURE.md "Probes").

Real service, real database, real Ray, on an instance of its own with small bounds
(:data:`BOUNDS`): a tenant has at most ``http.max_ongoing_per_tenant`` requests in flight in
an Ingress replica, more are answered at once 429 with Retry-After (``error.code``
``too_many_requests``) while another tenant is served; a tenant has at most
``tasks.max_unfinished_per_tenant`` asynchronous tasks (generate ``wait=false``) queued or
running, the next one is refused 429 (``task_limit``) and nothing is recorded, and accepted again
once one ended; concurrent creations, over HTTP or in concurrent transactions, never pass the bound
together.
"""

import asyncio
import socket
import time
import uuid
from urllib.parse import urlsplit

import asyncpg
import httpx
import pytest

import local_instance as local
from apihelpers import ISSUE, assert_error, count, demo_plants, weather_rows
from engine import store

pytestmark = pytest.mark.slow
API = "/api/v1"
MOST_ONGOING, MOST_TASKS = 8, 3
#: The instance's bounds; bodies may stall for a minute (a held request is answered 408 only after it).
BOUNDS = {"http": {"max_ongoing_per_tenant": MOST_ONGOING, "body_grace_seconds": 60},
          "tasks": {"max_unfinished_per_tenant": MOST_TASKS}, "forecast": {"batch_locations": 3}}
FLEET = 30  # plants of a task that lasts seconds: 10 batches of 3


@pytest.fixture(scope="module")
def bounded(tmp_path_factory, training_config):
    """(base URL, database URL, {tenant: key}, {tenant: plant ids with weather}) of an instance with :data:`BOUNDS`."""
    with local.scratch_database("pvcast_tenants") as (url, _), local.serve_instance(
            url, tmp_path_factory.mktemp("tenants"), service_settings=BOUNDS) as (base, _):
        keys, ids = {}, {}
        for tenant, n in (("noisy", FLEET), ("quiet", 1)):
            keys[tenant] = local.api_key(url, tenant, "read,write", "tests/api/test_tenant_limits.py")
            with httpx.Client(base_url=base, timeout=600, headers=local.bearer(keys[tenant])) as c:
                plants = [{**demo_plants()[1], "name": f"{tenant} {i}"} for i in range(n)]
                saved = c.post(f"{API}/locations", json={"locations": plants})
                assert saved.status_code == 200, saved.text
                ids[tenant] = [p["location_id"] for p in saved.json()["locations"]]
                written = c.post(f"{API}/weather", json={"rows": weather_rows(ids[tenant], training_config)})
                assert written.status_code == 200, written.text
        yield base, url, keys, ids


def client_of(bounded, tenant):
    base, _, keys, _ = bounded
    return httpx.Client(base_url=base, timeout=600, headers=local.bearer(keys[tenant]))


def generate(c, ids, wait):
    return c.post(f"{API}/forecast/generate", json={"location_ids": ids, "issue_time": ISSUE, "horizon_hours": 48,
                                                    "wait": wait, "include_forecast": False})


def stalled(base, key):
    """A socket that sent a generate request's headers and the start of its body, then stalls (in flight)."""
    address = urlsplit(base)
    s = socket.create_connection((address.hostname, address.port))
    s.sendall((f"POST {API}/forecast/generate HTTP/1.1\r\nHost: {address.netloc}\r\nAuthorization: Bearer {key}\r\n"
               f"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n" '{"location_ids": [').encode())
    return s


def until(answer, check, timeout=60):
    """``answer()`` until ``check`` holds for it (polled), at most ``timeout`` s; the last answer."""
    deadline = time.monotonic() + timeout
    while True:
        r = answer()
        if check(r) or time.monotonic() > deadline:
            return r
        time.sleep(0.2)


def test_beyond_its_requests_in_flight_a_tenant_is_answered_429_while_another_is_served(bounded):
    base, _, keys, ids = bounded
    held = [stalled(base, keys["noisy"]) for _ in range(MOST_ONGOING)]
    try:
        with client_of(bounded, "noisy") as noisy, client_of(bounded, "quiet") as quiet:
            # once the held requests reached the Ingress, the tenant's next request is one too many
            r = until(lambda: noisy.get(f"{API}/locations"), lambda r: r.status_code != 200)
            assert_error(noisy, r, 429, "authorization", "too_many_requests")
            assert r.headers["retry-after"].isdigit()
            assert_error(noisy, generate(noisy, ids["noisy"][:1], True), 429, "authorization", "too_many_requests")
            # the other tenant is served, its forecast made; probes are not counted
            assert quiet.get(f"{API}/locations").status_code == 200
            served = generate(quiet, ids["quiet"], True)
            assert served.status_code == 200 and served.json()["status"] == "succeeded", served.text
            assert httpx.get(f"{base}/healthz", timeout=30).status_code == 200
            for s in held:
                s.close()
            # the held requests ended with their clients: the tenant is served again
            r = until(lambda: noisy.get(f"{API}/locations"), lambda r: r.status_code == 200)
            assert r.status_code == 200, r.text
    finally:
        for s in held:
            s.close()


def open_tasks(url, tenant):
    return count(url, "SELECT count(*) FROM forecast_tasks WHERE tenant_id = $1 AND status IN ('queued', 'running')",
                 tenant)


def ended(c, task_id, timeout=300):
    r = until(lambda: c.get(f"{API}/forecast/task/{task_id}"), lambda r: r.json()["status"] not in
              ("queued", "running"), timeout)
    return r.json()


def test_the_task_bound_refuses_the_next_task_and_accepts_again_once_one_ended(bounded):
    _, url, _, ids = bounded
    tenant = "noisy"
    with client_of(bounded, tenant) as c, client_of(bounded, "quiet") as quiet:
        for task in [generate(c, ids[tenant][:1], False) for _ in range(MOST_TASKS)]:  # none left running
            assert task.status_code == 202, task.text
            ended(c, task.json()["task_id"])
        # tasks of another Ingress replica, alive (its lease runs for an hour): unfinished, never claimed here
        elsewhere = [str(uuid.uuid4()) for _ in range(MOST_TASKS)]

        async def record(conn):
            for task_id in elsewhere:
                await store.create_task(conn, task_id, {"location_ids": ids[tenant][:1], "wait": False}, 1,
                                        tenant_id=tenant, owner="elsewhere:1", lease_seconds=3600.0)
        run(url, record)
        try:
            before = count(url, "SELECT count(*) FROM forecast_tasks WHERE tenant_id = $1", tenant)
            r = generate(c, ids[tenant][:1], False)
            assert_error(c, r, 429, "wait", "task_limit")
            assert r.headers["retry-after"].isdigit()
            assert count(url, "SELECT count(*) FROM forecast_tasks WHERE tenant_id = $1", tenant) == before  # none
            # a waiting client is bounded by its request, not by this; another tenant's queue is its own
            assert generate(c, ids[tenant][:1], True).status_code == 200
            assert generate(quiet, ids["quiet"], False).status_code == 202
            run(url, lambda conn: store.update_task(conn, elsewhere[0], status="succeeded"))
            again = generate(c, ids[tenant][:1], False)
            assert again.status_code == 202, again.text
            assert ended(c, again.json()["task_id"])["status"] == "succeeded"
        finally:  # the other replica's tasks end: the next test starts without unfinished tasks
            run(url, lambda conn: conn.execute("UPDATE forecast_tasks SET status = 'failed', owner = NULL, "
                                               "lease_expires_at = NULL WHERE task_id = ANY($1::uuid[])", elsewhere))


def test_concurrent_task_creations_over_http_never_pass_the_bound_together(bounded):
    base, url, keys, ids = bounded
    tenant = "noisy"
    assert open_tasks(url, tenant) == 0

    async def burst():  # tasks of seconds each (10 batches): none ends before the last creation
        async with httpx.AsyncClient(base_url=base, timeout=600, headers=local.bearer(keys[tenant]),
                                     limits=httpx.Limits(max_connections=2 * MOST_TASKS)) as c:
            return await asyncio.gather(*[c.post(f"{API}/forecast/generate", json={
                "location_ids": ids[tenant], "issue_time": ISSUE, "horizon_hours": 48, "wait": False})
                for _ in range(2 * MOST_TASKS)])
    answers = asyncio.run(burst())
    statuses = sorted(r.status_code for r in answers)
    assert statuses == [202] * MOST_TASKS + [429] * MOST_TASKS, [r.text[:200] for r in answers]
    with client_of(bounded, tenant) as c:
        for r in answers:
            if r.status_code == 429:
                assert_error(c, r, 429, "wait", "task_limit")
        for r in answers:
            if r.status_code == 202:
                ended(c, r.json()["task_id"])


def run(url, job):
    """``await job(conn)`` on a connection of ``url``."""
    async def go():
        conn = await asyncpg.connect(url)
        try:
            return await job(conn)
        finally:
            await conn.close()
    return asyncio.run(go())


def tasks_of(tenant, n):
    return [(str(uuid.uuid4()), {"location_ids": [], "wait": False}, [], tenant, "owner-1", 60.0, False)
            for _ in range(n)]


def test_tasks_of_one_statement_are_counted_in_their_order(bounded):
    _, url, _, _ = bounded
    tenant = f"order-{uuid.uuid4().hex[:8]}"

    async def go(conn):
        await conn.execute("INSERT INTO tenants (tenant_id) VALUES ($1)", tenant)
        return await store.create_tasks_within(conn, tasks_of(tenant, MOST_TASKS + 2), MOST_TASKS)
    got = run(url, go)
    assert [over for _, over in got] == [None] * MOST_TASKS + [MOST_TASKS, MOST_TASKS + 1]
    assert open_tasks(url, tenant) == MOST_TASKS


def test_a_creation_of_the_same_tenant_waits_for_the_one_in_progress_and_counts_its_task(bounded):
    """Two transactions on the real database: the second is counted after the first committed, never beside it."""
    _, url, _, _ = bounded
    tenant = f"race-{uuid.uuid4().hex[:8]}"

    async def race():
        first, second = await asyncpg.connect(url), await asyncpg.connect(url)
        try:
            await first.execute("INSERT INTO tenants (tenant_id) VALUES ($1)", tenant)
            open_tx = first.transaction()
            await open_tx.start()
            mine = await store.create_tasks_within(first, tasks_of(tenant, MOST_TASKS), MOST_TASKS)
            assert [over for _, over in mine] == [None] * MOST_TASKS  # recorded, not committed yet
            pending = asyncio.ensure_future(store.create_tasks_within(second, tasks_of(tenant, 1), MOST_TASKS))
            await asyncio.sleep(1.0)
            waited = not pending.done()  # without the tenant's lock it counted 0 unfinished tasks and recorded one
            await open_tx.commit()
            return waited, await pending
        finally:
            await first.close()
            await second.close()
    waited, [(_, over)] = asyncio.run(race())
    assert waited
    assert over == MOST_TASKS
    assert open_tasks(url, tenant) == MOST_TASKS

"""A generate request's task row and its plants in one statement (store.create_task_of_locations).

The task is recorded only when every asked plant is known to the asking tenant; the plants come
back as fetch_locations gives them, whether or not the task was recorded.
"""

import uuid

import pandas as pd
import pytest

from engine import store
from engine.validation import plant_error
from storehelpers import demo_locations, run


def tenant():
    return f"t-{uuid.uuid4().hex[:10]}"


def create(url, ids, tenant_id, owner="owner-1", running=False):
    """(plants returned, fetch_locations of the same ids, the task row or None) of a new task."""
    task_id = str(uuid.uuid4())

    async def go(conn):
        got = await store.create_task_of_locations(conn, task_id, {"location_ids": ids}, ids, tenant_id=tenant_id,
                                                   owner=owner, lease_seconds=20.0, running=running)
        row = await conn.fetchrow("SELECT *, lease_expires_at - now() AS lease FROM forecast_tasks "
                                  "WHERE task_id = $1::uuid", task_id)
        return got, await store.fetch_locations(conn, ids, tenant_id=tenant_id), row
    return run(url, go)


def plants_of_two_tenants(url):
    a, b = tenant(), tenant()

    async def go(conn):
        for t in (a, b):
            await store.create_key(conn, t, "read,write")
        return (await store.upsert_locations(conn, demo_locations(" [task creation]"), tenant_id=a),
                await store.upsert_locations(conn, demo_locations(" [task creation]"), tenant_id=b))
    return a, b, *run(url, go)


def test_a_task_of_known_plants_is_recorded_with_them(service_url):
    a, _, mine, _ = plants_of_two_tenants(service_url)
    ids = mine["location_id"].tolist()
    got, fetched, row = create(service_url, ids + ids[:1], a)  # an id asked twice is one plant
    pd.testing.assert_frame_equal(got, fetched)
    assert got["location_id"].tolist() == sorted(ids)
    assert row is not None and row["status"] == "queued" and row["progress_total"] == len(ids)
    assert row["started_at"] is None
    assert row["tenant_id"] == a and row["owner"] == "owner-1"
    assert 0 < row["lease"].total_seconds() <= 20


def test_a_task_its_creator_starts_at_once_is_recorded_running(service_url):
    """A wait=true generate's task: created 'running' with its start time (no separate status update)."""
    a, _, mine, _ = plants_of_two_tenants(service_url)
    ids = mine["location_id"].tolist()
    got, _, row = create(service_url, ids, a, running=True)
    assert got["location_id"].tolist() == sorted(ids)
    assert row["status"] == "running" and row["started_at"] is not None and row["finished_at"] is None
    assert row["progress_total"] == len(ids) and row["owner"] == "owner-1"
    _, _, none = create(service_url, ids + [max(ids) + 10**9], a, running=True)
    assert none is None  # an unknown plant: no task, running or not


def test_no_task_when_a_plant_is_unknown_or_another_tenants(service_url):
    a, _, mine, theirs = plants_of_two_tenants(service_url)
    ids = mine["location_id"].tolist()
    got, fetched, row = create(service_url, ids + [theirs["location_id"].iloc[0]], a)
    assert row is None
    pd.testing.assert_frame_equal(got, fetched)
    assert got["location_id"].tolist() == sorted(ids)  # the caller names the missing one
    got, _, row = create(service_url, [max(ids) + 10**9], a)
    assert row is None and got.empty


def test_ends_of_several_tasks_in_one_statement_equal_their_ends_one_by_one(service_url):
    """store.finish_tasks records what update_task(final status, errors, timings, clear_errors=["task"]) does."""
    a, _, mine, _ = plants_of_two_tenants(service_url)
    ids = mine["location_id"].tolist()
    one, batch = [str(uuid.uuid4()) for _ in range(3)], [str(uuid.uuid4()) for _ in range(3)]
    none, old = plant_error("no_run_stored", "no run stored"), plant_error("batch_failed", "old")
    ends = [("partial", {ids[0]: plant_error("no_weather", "no weather")}, {"wall_s": 0.5}),
            ("succeeded", {}, {"wall_s": 0.25}),
            ("failed", {ids[0]: none, ids[1]: none}, {"wall_s": 1.0, "features_s": 0.1})]

    async def go(conn):
        for task_id in one + batch:
            await store.create_task(conn, task_id, {"location_ids": ids}, len(ids), tenant_id=a, owner="o",
                                    lease_seconds=20)
            await store.update_task(conn, task_id, status="running", timings={"read_s": 0.1},
                                    errors={"task": plant_error("interrupted", "interrupted: x"), ids[1]: old})
        for task_id, (status, errors, timings) in zip(one, ends):
            await store.update_task(conn, task_id, status=status, errors=errors, timings=timings, clear_errors=["task"])
        unknown = str(uuid.uuid4())
        found = await store.finish_tasks(conn, [(t, *e) for t, e in zip(batch + [unknown], ends + ends[:1])])
        rows = {t: await conn.fetchrow("SELECT status, errors::text, timings::text, owner, lease_expires_at, "
                                       "finished_at IS NOT NULL AS finished FROM forecast_tasks "
                                       "WHERE task_id = $1::uuid", t) for t in one + batch}
        return found, rows
    found, rows = run(service_url, go)
    assert found == set(batch)  # the unknown task is not recorded
    for by_one, together in zip(one, batch):
        assert dict(rows[together]) == dict(rows[by_one]), (dict(rows[together]), dict(rows[by_one]))
        assert rows[together]["finished"] and rows[together]["owner"] is None
    assert "task" not in rows[batch[0]]["errors"] and '"old"' in rows[batch[0]]["errors"]
    with pytest.raises(ValueError, match="status must be one of"):
        run(service_url, lambda conn: store.finish_tasks(conn, [(batch[0], "running", {}, {})]))


def test_several_tasks_in_one_statement_are_each_recorded_or_not_on_their_own(service_url):
    a, b, mine, theirs = plants_of_two_tenants(service_url)
    ids, other = mine["location_id"].tolist(), theirs["location_id"].tolist()
    tasks = [(str(uuid.uuid4()), {"k": 0}, ids, a, "o", 20.0, True),  # every plant known: recorded, running
             (str(uuid.uuid4()), {"k": 1}, ids[:1] + other[:1], a, "o", 20.0, True),  # another tenant's: none
             (str(uuid.uuid4()), {"k": 2}, other[::-1], b, None, None, False),  # recorded, queued, no lease
             (str(uuid.uuid4()), {"k": 3}, ids[:1] + [max(ids + other) + 10**9], None, "o", 20.0, False)]  # unknown

    async def go(conn):
        got = await store.create_tasks_of_locations(conn, tasks)
        rows = [await conn.fetchrow("SELECT status, tenant_id, owner, progress_total, request, lease_expires_at, "
                                    "started_at FROM forecast_tasks WHERE task_id = $1::uuid", t[0]) for t in tasks]
        alone = [await store.fetch_locations(conn, t[2], tenant_id=t[3]) for t in tasks]
        return got, rows, alone
    got, rows, alone = run(service_url, go)
    for frame, expected in zip(got, alone):
        pd.testing.assert_frame_equal(frame, expected)  # each task's plants, as fetch_locations gives them
    assert rows[0]["status"] == "running" and rows[0]["started_at"] is not None and rows[0]["progress_total"] == len(ids)
    assert rows[1] is None and rows[3] is None
    assert rows[2]["status"] == "queued" and rows[2]["tenant_id"] == b and rows[2]["owner"] is None
    assert rows[2]["lease_expires_at"] is None and rows[2]["progress_total"] == len(other)

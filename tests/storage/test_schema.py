"""Migration runner and TimescaleDB capability detection on the project's TimescaleDB."""

import asyncio
import json
import uuid

import asyncpg
import pytest

from engine import schema, store

from storehelpers import drop_database, fresh_database, run


@pytest.fixture
def empty_url(server_url):
    url = fresh_database(server_url, "pvcast_schema")
    yield url
    drop_database(url)


def test_migrations_applied_twice_apply_each_file_once(empty_url):
    names = [p.name for p in schema.migration_files()]
    assert run(empty_url, schema.apply_migrations) == names
    assert run(empty_url, schema.apply_migrations) == []
    recorded = run(empty_url, lambda conn: conn.fetch("SELECT name FROM schema_migrations ORDER BY name"))
    assert [r["name"] for r in recorded] == names


def test_concurrent_runners_apply_each_file_once(empty_url):
    async def both():
        conns = [await asyncpg.connect(empty_url) for _ in range(2)]
        try:
            return await asyncio.gather(*(schema.apply_migrations(c) for c in conns))
        finally:
            for c in conns:
                await c.close()
    first, second = asyncio.run(both())
    assert sorted(first + second) == [p.name for p in schema.migration_files()]


def test_a_changed_applied_migration_is_refused(empty_url, tmp_path):
    for path in schema.migration_files():
        (tmp_path / path.name).write_text(path.read_text())
    (tmp_path / "9999_probe.sql").write_text("CREATE TABLE probe (x int);")
    assert run(empty_url, lambda conn: schema.apply_migrations(conn, tmp_path))[-1] == "9999_probe.sql"
    (tmp_path / "9999_probe.sql").write_text("CREATE TABLE probe (x bigint);")
    with pytest.raises(RuntimeError, match="9999_probe.sql changed"):
        run(empty_url, lambda conn: schema.apply_migrations(conn, tmp_path))


def test_capabilities_of_the_apache_edition(db_url):
    caps = run(db_url, schema.capabilities)
    assert caps["timescaledb"] and caps["hypertables"] and caps["license"] == "apache"
    assert caps["compression"] is False and caps["policies"] is False


def test_forecasts_weather_actuals_are_hypertables(db_url):
    rows = run(db_url, lambda conn: conn.fetch(
        "SELECT hypertable_name, compression_enabled FROM timescaledb_information.hypertables"))
    assert {r["hypertable_name"] for r in rows} == {"forecasts", "weather", "actuals"}
    assert not any(r["compression_enabled"] for r in rows)  # not in the Apache-2 edition


def test_forecasts_have_only_their_primary_key_index(db_url):
    """Forecasts are read by run: no time index (TimescaleDB's default) slows their writes."""
    rows = run(db_url, lambda conn: conn.fetch("SELECT indexname FROM pg_indexes WHERE tablename = 'forecasts'"))
    assert [r["indexname"] for r in rows] == ["forecasts_pkey"]


def test_task_errors_stored_before_codes_are_converted_by_their_migration(empty_url, tmp_path):
    """0015_task_error_codes.sql: a task stored with sentences only reads back with the code ``legacy``
    (never one guessed from its text), its coded errors are kept, and the old shape is refused afterwards."""
    coded = "0015_task_error_codes.sql"
    for path in schema.migration_files():
        if path.name < coded:
            (tmp_path / path.name).write_text(path.read_text())
    old, new = str(uuid.uuid4()), str(uuid.uuid4())
    kept = {"code": "no_weather", "message": "no weather issued at or before issue_time for the forecast window"}

    async def before_and_after(conn):
        await schema.apply_migrations(conn, tmp_path)
        for task_id in (old, new):
            await store.create_task(conn, task_id, {"location_ids": [7, 8]}, 2)
        await conn.execute("UPDATE forecast_tasks SET errors = $2::jsonb WHERE task_id = $1::uuid", old, json.dumps(
            {"7": "no weather issued at or before issue_time for the forecast window", "task": "interrupted: x"}))
        await conn.execute("UPDATE forecast_tasks SET errors = $2::jsonb WHERE task_id = $1::uuid", new,
                           json.dumps({"8": kept}))
        applied = await schema.apply_migrations(conn)
        return applied, await store.read_task(conn, old), await store.read_task(conn, new)
    applied, converted, untouched = run(empty_url, before_and_after)
    assert applied[0] == coded  # and the migrations after it
    assert converted["errors"] == {
        "7": {"code": "legacy", "message": "no weather issued at or before issue_time for the forecast window"},
        "task": {"code": "legacy", "message": "interrupted: x"}}
    assert untouched["errors"] == {"8": kept}
    with pytest.raises(asyncpg.CheckViolationError, match="forecast_tasks_errors_coded"):
        run(empty_url, lambda conn: store.update_task(conn, old, errors={8: "a sentence without a code"}))

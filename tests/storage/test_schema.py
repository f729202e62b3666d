"""Migration runner and TimescaleDB capability detection on the project's TimescaleDB."""

import asyncio

import asyncpg
import pytest

from engine import schema

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

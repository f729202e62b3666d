"""Least-privilege database access: the service role reads and writes data, nothing else.

Against the project's TimescaleDB as ``scripts/tsdb start`` leaves it: a session database
owned by the owner role, migrated by it, the service role granted (bench/local_instance.py).
"""

import asyncio
import stat
import subprocess
import urllib.parse
from pathlib import Path

import asyncpg
import pytest
import yaml

from engine import store
import local_instance as local

from storehelpers import ROOT, demo_locations, forecast_of, real_weather, run


def refused(url, sql):
    """Run ``sql`` on ``url``; the asyncpg error class it raised (None when it succeeded)."""
    async def go(conn):
        try:
            await conn.execute(sql)
        except asyncpg.PostgresError as exc:
            return type(exc)
        return None
    return run(url, go)


@pytest.mark.parametrize("sql", [
    "CREATE TABLE intruder (x int)",
    "DROP TABLE locations",
    "ALTER TABLE locations ADD COLUMN intruder int",
    "TRUNCATE weather",
    "CREATE INDEX intruder ON actuals (power_kw)",
    "SELECT * FROM pg_authid",
    "CREATE ROLE intruder",
    "CREATE DATABASE intruder",
    "CREATE FUNCTION intruder() RETURNS int LANGUAGE sql AS 'SELECT 1'",
    "CREATE TRIGGER intruder BEFORE INSERT ON locations FOR EACH ROW EXECUTE FUNCTION suppress_redundant_updates_trigger()",
    "INSERT INTO schema_migrations (name, sha256) VALUES ('9999_intruder.sql', '')",
])
def test_service_role_cannot_change_structure_or_read_secrets(service_url, sql):
    assert refused(service_url, sql) is asyncpg.InsufficientPrivilegeError


def test_service_role_has_no_role_attributes(service_url):
    row = run(service_url, lambda conn: conn.fetchrow(
        "SELECT rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolbypassrls FROM pg_roles "
        "WHERE rolname = current_user"))
    assert not any(row.values())


def test_service_role_does_the_service_work(service_url):
    """Plants, weather (COPY through a temporary staging table), forecasts: written and read back."""
    async def work(conn):
        saved = await store.upsert_locations(conn, demo_locations(" [service role]"))
        lid = int(saved["location_id"].iloc[0])
        weather = real_weather(lid)
        stored = await store.write_weather(conn, weather)
        run_ids = await store.write_forecasts(conn, *forecast_of(saved))
        _, values = await store.read_forecast(conn, lid, None, None, run_ids[lid])
        return len(weather), stored, len(values)
    n_weather, stored, n_values = run(service_url, work)
    assert stored == n_weather > 0 and n_values == 192


def test_tables_of_later_migrations_are_granted_to_the_service(db_url, service_url):
    """Default privileges of the owner: a table created after the grants is usable by the service at once."""
    run(db_url, lambda conn: conn.execute("CREATE TABLE later_migration (x int)"))
    try:
        assert refused(service_url, "INSERT INTO later_migration VALUES (1)") is None
        assert run(service_url, lambda conn: conn.fetchval("SELECT sum(x) FROM later_migration")) == 1
        assert refused(service_url, "DROP TABLE later_migration") is asyncpg.InsufficientPrivilegeError
    finally:
        run(db_url, lambda conn: conn.execute("DROP TABLE later_migration"))


@pytest.mark.parametrize("role", ["service", "owner", "admin"])
def test_a_connection_without_the_password_is_refused(service_url, role, tmp_path, monkeypatch):
    monkeypatch.delenv("PGPASSWORD", raising=False)
    url = local.database_url(role, service_url.rsplit("/", 1)[1])
    empty = tmp_path / "pgpass"
    empty.write_text("")
    empty.chmod(0o600)

    async def connect(password):
        conn = await asyncpg.connect(url, passfile=str(empty), password=password)
        await conn.close()
    with pytest.raises(asyncpg.InvalidPasswordError):
        asyncio.run(connect(None))
    with pytest.raises(asyncpg.InvalidPasswordError):
        asyncio.run(connect("not-the-password"))


def test_every_login_needs_scram_except_the_superuser_on_the_server_socket(server_url):
    rules = run(server_url, lambda conn: conn.fetch(
        "SELECT type, database, user_name, address, auth_method, error FROM pg_hba_file_rules"))
    assert all(r["error"] is None for r in rules)
    assert {(r["type"], r["auth_method"], tuple(r["user_name"]), r["address"]) for r in rules} == {
        ("local", "peer", ("postgres",), None), ("host", "scram-sha-256", ("all",), "127.0.0.1")}
    stored = run(server_url, lambda conn: conn.fetch(
        "SELECT rolname, rolpassword FROM pg_authid WHERE rolname = ANY($1)",
        ["postgres", store.url_role(store.OWNER_URL), store.url_role(store.DEFAULT_URL)]))
    assert len(stored) == 3 and all(r["rolpassword"].startswith("SCRAM-SHA-256$") for r in stored)


def test_passwords_are_in_private_files_and_not_in_the_repository(server_url):
    pgpass = Path(subprocess.run(["bash", "-c", 'echo "${PGPASSFILE:-$HOME/.pgpass}"'], capture_output=True,
                                 text=True, check=True).stdout.strip())
    assert stat.S_IMODE(pgpass.stat().st_mode) == 0o600
    port = str(urllib.parse.urlparse(server_url).port)
    lines = [line.split(":") for line in pgpass.read_text().splitlines()]
    passwords = {f[3]: f[4] for f in lines if len(f) == 5 and f[0] == "127.0.0.1" and f[1] == port}
    roles = {store.url_role(store.DEFAULT_URL), store.url_role(store.OWNER_URL), "postgres"}
    assert roles <= set(passwords) and all(len(passwords[r]) == 64 for r in roles)
    tracked = subprocess.run(["git", "grep", "-l", "-F", *sum((["-e", passwords[r]] for r in roles), [])],
                             cwd=ROOT, capture_output=True, text=True)
    assert tracked.returncode == 1 and tracked.stdout == ""  # 1: no tracked file holds a password


def test_the_service_urls_name_the_roles_of_scripts_tsdb():
    """One definition of the URLs: scripts/tsdb, store defaults and serve_config.yaml agree."""
    def tsdb_url(role):
        env = {"PATH": "/usr/bin:/bin", "HOME": str(Path.home())}  # the default port, whatever the caller's
        return subprocess.run([str(ROOT / "scripts/tsdb"), "url", role], capture_output=True, text=True,
                              check=True, env=env).stdout.strip()
    config = yaml.safe_load((ROOT / "serve_config.yaml").read_text())
    assert tsdb_url("service") == store.DEFAULT_URL
    assert tsdb_url("owner") == store.OWNER_URL
    assert config["applications"][0]["runtime_env"]["env_vars"]["PVCAST_DATABASE_URL"] == store.DEFAULT_URL
    assert all(urllib.parse.urlparse(url).password is None for url in (store.DEFAULT_URL, store.OWNER_URL))

"""Database schema: the migration runner and TimescaleDB capability detection.

Migrations are the plain SQL files ``engine/sql/NNNN_*.sql``, applied in file
name order, each in its own transaction, and recorded (name, sha256) in
``schema_migrations``. A session-level advisory lock serialises concurrent
starters (several replicas, the demo, a test session), so running the runner
twice, or twice at once, applies every file exactly once.

TimescaleDB is optional. When the extension is available the tables of
``configs/storage.yaml`` become hypertables; compression and retention
policies are added only when the extension's license allows them
(``timescaledb.license = 'timescale'``; the Apache-2 edition has neither).
On plain PostgreSQL the hypertables are skipped with a log line.

Least privilege: the migrations run as the role that owns the tables (the
owner role of ``scripts/tsdb``); the service connects as another role that
is granted data access only (:func:`grant_service`: SELECT, INSERT, UPDATE,
DELETE on the tables, USAGE on the sequences, also on every table a later
migration creates), never DDL.
"""

import hashlib
import logging
from pathlib import Path

import yaml

from engine import resources

log = logging.getLogger(__name__)

SQL_DIR = Path(__file__).with_name("sql")
STORAGE_CONFIG = resources.config_path("storage.yaml")
LOCK_KEY = 0x7076636173_74  # "pvcast": pg_advisory_lock key of the migration runner


def migration_files(sql_dir=SQL_DIR):
    """Migration files in the order they are applied (by name, ``NNNN_*.sql``)."""
    return sorted(sql_dir.glob("[0-9][0-9][0-9][0-9]_*.sql"))


async def capabilities(conn):
    """What the server can do for pvcast.

    Parameters
    ----------
    conn : asyncpg.Connection

    Returns
    -------
    dict
        ``postgres`` (server version), ``timescaledb_available`` (in
        ``pg_available_extensions``), ``timescaledb`` (installed in this
        database), ``timescaledb_version``, ``license`` (``'apache'`` |
        ``'timescale'`` | None), ``hypertables`` (bool), ``compression`` and
        ``policies`` (bool: the license allows compression and background
        retention/compression policies).
    """
    row = await conn.fetchrow("""
        SELECT current_setting('server_version') AS postgres,
               EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb') AS available,
               (SELECT extversion FROM pg_extension WHERE extname = 'timescaledb') AS version,
               current_setting('timescaledb.license', true) AS license""")
    installed = row["version"] is not None
    licensed = installed and row["license"] == "timescale"
    return {"postgres": row["postgres"], "timescaledb_available": bool(row["available"]),
            "timescaledb": installed, "timescaledb_version": row["version"],
            "license": row["license"] if installed else None,
            "hypertables": installed, "compression": licensed, "policies": licensed}


async def apply_migrations(conn, sql_dir=SQL_DIR, service_role=None):
    """Apply the migrations not applied yet, the TimescaleDB layout, the service role's grants.

    Parameters
    ----------
    conn : asyncpg.Connection
        Held for the whole run (the advisory lock is session-level).
    sql_dir : pathlib.Path, optional
        Folder of the ``NNNN_*.sql`` files.
    service_role : str, optional
        Role the service connects as (the user of its database URL); granted
        data access by :func:`grant_service`. None: no grants (a database
        used by its owner only, e.g. plain PostgreSQL in the tests).

    Returns
    -------
    list of str
        File names applied by this call (empty when up to date).

    Raises
    ------
    RuntimeError
        A migration already applied has changed since (its sha256 differs):
        migrations are append-only.
    """
    await conn.execute("SELECT pg_advisory_lock($1)", LOCK_KEY)
    try:
        await conn.execute("""
            CREATE TABLE IF NOT EXISTS schema_migrations (
                name       text PRIMARY KEY,
                sha256     text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now())""")
        done = dict(await conn.fetch("SELECT name, sha256 FROM schema_migrations"))
        applied = []
        for path in migration_files(sql_dir):
            text = path.read_text()
            digest = hashlib.sha256(text.encode()).hexdigest()
            if path.name in done:
                if done[path.name] != digest:
                    raise RuntimeError(f"migration {path.name} changed after it was applied "
                                       f"(sha256 {done[path.name][:12]} -> {digest[:12]}); add a new file instead")
                continue
            async with conn.transaction():
                await conn.execute(text)
                await conn.execute("INSERT INTO schema_migrations (name, sha256) VALUES ($1, $2)", path.name, digest)
            log.info("applied migration %s", path.name)
            applied.append(path.name)
        await apply_timescale(conn, yaml.safe_load(STORAGE_CONFIG.read_text())["hypertables"])
        if service_role is not None:
            await grant_service(conn, service_role)
        return applied
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", LOCK_KEY)


async def grant_service(conn, role):
    """Data access, not structure, for ``role`` on the tables of schema public (idempotent).

    SELECT, INSERT, UPDATE, DELETE on every table (SELECT only on
    ``schema_migrations``) and USAGE, SELECT on every sequence, now and, by
    default privileges of the role running this (the tables' owner), on the
    tables and sequences later migrations create. TimescaleDB copies a
    hypertable's grants to its chunks. The role gets no CREATE on the schema
    (PostgreSQL >= 15 gives PUBLIC none), so it cannot create, alter or drop
    tables; the temporary staging tables of :mod:`engine.store` need only the
    database's TEMPORARY privilege.

    Parameters
    ----------
    conn : asyncpg.Connection
        Connected as the tables' owner.
    role : str
        An existing role.
    """
    ident = '"' + role.replace('"', '""') + '"'
    await conn.execute(f"""
        GRANT USAGE ON SCHEMA public TO {ident};
        GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {ident};
        REVOKE INSERT, UPDATE, DELETE ON schema_migrations FROM {ident};
        GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {ident};
        ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {ident};
        ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO {ident};""")


async def apply_timescale(conn, hypertables):
    """Hypertables, and compression + retention policies where licensed (idempotent).

    Parameters
    ----------
    conn : asyncpg.Connection
    hypertables : dict
        Table -> ``time_column``, ``chunk_interval``, ``segment_by``,
        ``order_by``, ``compress_after``, ``drop_after`` (intervals as text,
        ``drop_after`` None = keep forever), optional ``default_indexes``
        (TimescaleDB's time index, default true); ``configs/storage.yaml``.

    Returns
    -------
    dict
        The capabilities the layout was chosen by.
    """
    caps = await capabilities(conn)
    if caps["timescaledb_available"] and not caps["timescaledb"]:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
        caps = await capabilities(conn)
    if not caps["timescaledb"]:
        log.info("TimescaleDB not available on this server (PostgreSQL %s): hypertables skipped, "
                 "tables %s stay plain PostgreSQL tables", caps["postgres"], ", ".join(hypertables))
        return caps
    for table, spec in hypertables.items():
        await conn.execute(
            "SELECT create_hypertable($1::text::regclass, $2::name, chunk_time_interval => $3::text::interval, "
            "if_not_exists => true, migrate_data => true, create_default_indexes => $4)",
            table, spec["time_column"], spec["chunk_interval"], spec.get("default_indexes", True))
    if not caps["compression"]:
        log.info("TimescaleDB %s license %r: hypertables %s created; compression and retention policies "
                 "skipped (not in this edition)", caps["timescaledb_version"], caps["license"], ", ".join(hypertables))
        return caps
    for table, spec in hypertables.items():
        enabled = await conn.fetchval(
            "SELECT compression_enabled FROM timescaledb_information.hypertables WHERE hypertable_name = $1", table)
        if not enabled:
            await conn.execute(
                f"ALTER TABLE {table} SET (timescaledb.compress, "
                f"timescaledb.compress_segmentby = '{spec['segment_by']}', "
                f"timescaledb.compress_orderby = '{spec['order_by']}')")
        await conn.execute("SELECT add_compression_policy($1::text::regclass, compress_after => $2::text::interval, "
                           "if_not_exists => true)", table, spec["compress_after"])
        if spec.get("drop_after"):
            await conn.execute("SELECT add_retention_policy($1::text::regclass, drop_after => $2::text::interval, "
                               "if_not_exists => true)", table, spec["drop_after"])
    log.info("TimescaleDB %s (license timescale): compression and retention policies applied to %s",
             caps["timescaledb_version"], ", ".join(hypertables))
    return caps

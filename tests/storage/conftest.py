"""One fresh, migrated database on the project's TimescaleDB (scripts/tsdb) per test session."""

import subprocess

import pytest

from engine import schema, store

from storehelpers import ROOT, demo_frames, drop_database, fresh_database, run

PLAIN_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"


def tsdb_url():
    subprocess.run([str(ROOT / "scripts/tsdb"), "start"], check=True)
    return subprocess.run([str(ROOT / "scripts/tsdb"), "url"], capture_output=True, text=True,
                          check=True).stdout.strip()


@pytest.fixture(scope="session")
def server_url():
    """URL of the ``postgres`` database of the project's TimescaleDB server."""
    return tsdb_url()


@pytest.fixture(scope="session")
def db_url(server_url):
    """A fresh migrated database, dropped at the end of the session."""
    url = fresh_database(server_url, "pvcast_storage")
    run(url, schema.apply_migrations)
    yield url
    drop_database(url)


@pytest.fixture(scope="session")
def plants(db_url):
    """The demo plants (real configuration, with their planes and horizon), stored; locations frame with location_id."""
    return run(db_url, lambda conn: store.upsert_locations(conn, *demo_frames()))


@pytest.fixture
def plain_url():
    """A fresh empty database on the plain PostgreSQL server (no TimescaleDB), dropped after the test."""
    try:
        url = fresh_database(PLAIN_POSTGRES, "pvcast_plain")
    except OSError as exc:
        pytest.skip(f"plain PostgreSQL at {PLAIN_POSTGRES} not reachable: {exc}")
    yield url
    drop_database(url)

"""One fresh, migrated database on the project's TimescaleDB (scripts/tsdb) per test session."""

import pytest

from engine import store
import local_instance as local

from storehelpers import demo_frames, run


@pytest.fixture(scope="session")
def server_url():
    """Admin URL (superuser, database ``postgres``) of the project's TimescaleDB server."""
    return local.server_url()


@pytest.fixture(scope="session")
def service_url():
    """The service role's URL of a fresh migrated database (owned by the owner role), dropped at the end."""
    with local.scratch_database("pvcast_storage") as (url, _):
        yield url


@pytest.fixture(scope="session")
def db_url(service_url):
    """The owner role's URL of the same database (DDL allowed: triggers of the failure tests)."""
    return local.database_url("owner", service_url.rsplit("/", 1)[1])


@pytest.fixture(scope="session")
def plants(db_url):
    """The demo plants (real configuration, with their planes and horizon), stored; locations frame with location_id."""
    return run(db_url, lambda conn: store.upsert_locations(conn, *demo_frames()))

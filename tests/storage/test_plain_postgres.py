"""The storage layer on plain PostgreSQL (127.0.0.1:5432, no TimescaleDB): hypertables skipped, date_bin.

pvcast supports PostgreSQL without the TimescaleDB extension (most managed PostgreSQL services
do not offer it): the migrations skip the hypertables and ``store.read_energy`` uses
``date_bin`` instead of ``time_bucket``. The machine's plain PostgreSQL 15 cluster (Debian
``postgresql-15``, 127.0.0.1:5432, trust) is started here when it is down; a machine without it
fails these tests with the reason, it never skips them.
"""

import logging
import subprocess

import pytest

from engine import schema, store
from engine.quantiles import QUANTILE_COLUMNS

from storehelpers import demo_locations, drop_database, forecast_of, fresh_database, run

PLAIN_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"
START = ["pg_ctlcluster", "--skip-systemctl-redirect", "15", "main", "start"]


def reachable(url):
    """Whether a PostgreSQL server answers at ``url``."""
    try:
        return run(url, lambda conn: conn.fetchval("SELECT 1")) == 1
    except OSError:
        return False


@pytest.fixture(scope="module")
def plain_server():
    """URL of the plain PostgreSQL server, started with ``pg_ctlcluster`` if it is down (left running)."""
    if not reachable(PLAIN_POSTGRES):
        try:
            proc = subprocess.run(START, capture_output=True, text=True, check=False, timeout=60)
            detail = (proc.stdout + proc.stderr).strip()
        except FileNotFoundError as exc:
            detail = str(exc)
        if not reachable(PLAIN_POSTGRES):
            pytest.fail(f"plain PostgreSQL at {PLAIN_POSTGRES} is down and `{' '.join(START)}` did not start it: "
                        f"{detail}")
    return PLAIN_POSTGRES


@pytest.fixture
def plain_url(plain_server):
    """A fresh empty database on the plain PostgreSQL server (no TimescaleDB), dropped after the test."""
    url = fresh_database(plain_server, "pvcast_plain")
    yield url
    drop_database(url)


def test_migrations_skip_hypertables_with_a_log_line(plain_url, caplog):
    with caplog.at_level(logging.INFO, logger="engine.schema"):
        assert run(plain_url, schema.apply_migrations) == [p.name for p in schema.migration_files()]
    assert "hypertables skipped" in caplog.text
    caps = run(plain_url, schema.capabilities)
    assert not caps["timescaledb_available"] and not caps["hypertables"] and not caps["compression"]
    assert run(plain_url, lambda conn: conn.fetchval("SELECT to_regclass('timescaledb_information.hypertables')")) is None


def test_energy_uses_date_bin_in_the_plant_time_zone(plain_url):
    run(plain_url, schema.apply_migrations)
    locations = run(plain_url, lambda conn: store.upsert_locations(conn, demo_locations()))
    runs, forecast = forecast_of(locations)
    run_ids = run(plain_url, lambda conn: store.write_forecasts(conn, runs, forecast))
    lid = int(locations["location_id"].iloc[0])
    hourly = run(plain_url, lambda conn: store.read_energy(conn, run_ids[lid], "1 hour"))
    daily = run(plain_url, lambda conn: store.read_energy(conn, run_ids[lid], "1 day"))
    kw = forecast[forecast["location_id"] == lid]
    assert len(hourly) == 48 and len(daily) == 2
    for q in QUANTILE_COLUMNS:
        assert hourly[q].sum() == pytest.approx(kw[q].sum() * 0.25, rel=1e-9)
        assert daily[q].sum() == pytest.approx(kw[q].sum() * 0.25, rel=1e-9)
    assert str(daily["time"].iloc[0]) == "2013-07-01 06:00:00+00:00"  # local midnight, America/Denver

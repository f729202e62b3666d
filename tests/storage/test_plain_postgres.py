"""The storage layer on plain PostgreSQL (127.0.0.1:5432, no TimescaleDB): hypertables skipped, date_bin."""

import logging

import pytest

from engine import schema, store
from engine.quantiles import QUANTILE_COLUMNS

from storehelpers import demo_locations, forecast_of, run



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

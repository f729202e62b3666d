"""One definition per concept: the copies that cannot import it are read back and compared.

The SQL CHECK constraints of ``engine/sql`` (read from ``pg_constraint`` of a migrated scratch
database), the columns of the ``forecasts`` table, ``serve_config.yaml`` and ``scripts/tsdb``
repeat values whose one definition is Python: tracking modes and forecast types
(``engine.validation``), task statuses (``engine.store``), quantile levels
(``engine.quantiles``), the default database URL (``engine.store.DEFAULT_URL``).
"""

import re
import subprocess

import pytest
import yaml

from engine import forecast, quantiles, store, validation

from storehelpers import ROOT, run


def check_values(url, table, column):
    """The string literals of the one CHECK constraint of ``table`` that names ``column``."""
    defs = run(url, lambda conn: conn.fetch(
        """SELECT pg_get_constraintdef(c.oid) AS def FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid
           WHERE t.relname = $1 AND c.contype = 'c'""", table))
    named = [d["def"] for d in defs if re.search(rf"\b{column}\b", d["def"])]
    assert len(named) == 1, (table, column, named)
    return tuple(re.findall(r"'([^']*)'::text", named[0]))


@pytest.mark.parametrize("table", ["locations", "location_planes"])
def test_tracking_check_equals_validation_tracking(db_url, table):
    assert check_values(db_url, table, "tracking") == validation.TRACKING


def test_forecast_type_check_equals_the_forecast_types(db_url):
    assert forecast.FORECAST_TYPES is validation.FORECAST_TYPES
    assert check_values(db_url, "forecast_runs", "forecast_type") == validation.FORECAST_TYPES


def test_task_status_check_equals_store_task_statuses(db_url):
    assert check_values(db_url, "forecast_tasks", "status") == store.TASK_STATUSES
    assert set(store.FINAL_STATUSES) < set(store.TASK_STATUSES)


def test_forecasts_table_has_one_column_per_quantile_level(db_url):
    columns = run(db_url, lambda conn: conn.fetch(
        """SELECT column_name FROM information_schema.columns
           WHERE table_name = 'forecasts' AND column_name ~ '^p[0-9]+$' ORDER BY ordinal_position"""))
    assert tuple(c["column_name"] for c in columns) == quantiles.QUANTILE_COLUMNS
    assert quantiles.QUANTILE_COLUMNS == tuple(f"p{round(100 * a)}" for a in quantiles.ALPHAS)


def test_database_url_copies_agree_with_store_defaults():
    """store.DEFAULT_URL / OWNER_URL are the URLs scripts/tsdb prints; serve_config.yaml repeats the first."""
    tsdb = [str(ROOT / "scripts" / "tsdb"), "url"]
    for role, url in (("service", store.DEFAULT_URL), ("owner", store.OWNER_URL)):
        printed = subprocess.run([*tsdb, role], capture_output=True, text=True, check=True).stdout.strip()
        assert printed == url, role
    serve = yaml.safe_load((ROOT / "serve_config.yaml").read_text())
    assert serve["applications"][0]["runtime_env"]["env_vars"]["PVCAST_DATABASE_URL"] == store.DEFAULT_URL

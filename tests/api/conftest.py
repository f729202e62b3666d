"""One real Ray Serve instance (serve_config.yaml) + one fresh TimescaleDB database per session.

The cluster is started with ``ray start --head --block`` on free ports (RAY_AUTH_MODE
disabled) and the app with ``serve run`` of a copy of serve_config.yaml whose only changes
are the HTTP port and PVCAST_DATABASE_URL (the session's database). Both are stopped with
SIGTERM at the end. Plants and weather are real: the SERF East configuration and the
NSRDB PSM3 series from the pvanalytics wheel, ingested through the HTTP API. Every client
sends the API key of the tenant ``tests`` (scopes read, write), created in the session's
database with the store's function (what ``pvcast keys create`` does).
"""

import httpx
import pytest
import yaml

from engine import data
import local_instance as local

from apihelpers import NWP_MAX_UPLOAD_BYTES, ROOT, TENANT, WINDOW, demo_plants, weather_rows


@pytest.fixture(scope="session")
def api_db_url():
    """A fresh migrated database on the project's TimescaleDB, dropped at the end."""
    with local.scratch_database("pvcast_api") as (url, _):
        yield url


#: Locations per Forecaster batch in the test service: small, so that every multi-plant test runs a
#: task of several batches (6 demo plants = 2 batches) through the same code as a 10,000-plant fleet.
BATCH_LOCATIONS = 3
#: Plants a tenant may have in the test service (http.max_locations_per_tenant; shipped: 100,000): reached by
#: tests/api/test_location_limits.py in a few requests, far above the plants of every other test's tenant.
MAX_LOCATIONS_PER_TENANT = 500


@pytest.fixture(scope="session")
def nwp_dirs(tmp_path_factory):
    """Directories of the test service's NWP import: ``import`` (nwp.import_dir), ``spool`` (nwp.spool_dir)."""
    root = tmp_path_factory.mktemp("nwp")
    dirs = {name: root / name for name in ("import", "spool")}
    for path in dirs.values():
        path.mkdir()
    return dirs


@pytest.fixture(scope="session")
def served(api_db_url, tmp_path_factory, nwp_dirs):
    """(base URL, session ids of its processes) of the running service (waits for /readyz).

    NWP import: server-side names under ``nwp_dirs['import']``, uploads spooled in ``nwp_dirs['spool']``,
    forecasts triggered by imports (only tests/api/test_nwp_api.py imports NWP files).
    """
    nwp = {"import_dir": str(nwp_dirs["import"]), "spool_dir": str(nwp_dirs["spool"]),
           "max_upload_bytes": NWP_MAX_UPLOAD_BYTES, "trigger_forecast": True}
    with local.serve_instance(api_db_url, tmp_path_factory.mktemp("serve"),
                              service_settings={"forecast": {"batch_locations": BATCH_LOCATIONS}, "nwp": nwp,
                                                "http": {"max_locations_per_tenant": MAX_LOCATIONS_PER_TENANT},
                                                # only tests/api/test_calibration_api.py's plants have this many
                                                # (and 10+ days: the demo plants' 9 days of 2013 actuals, held
                                                # out, never calibrate anything)
                                                "adaptation": {"refit_after_daylight_hours": 250,
                                                               "refit_first_after_days": 10}}) as out:
        yield out


@pytest.fixture(scope="session")
def service(served):
    """Base URL of the running service."""
    return served[0]


@pytest.fixture(scope="session")
def api_key(api_db_url):
    """An API key of the tenant ``tests`` with scopes read and write (the clients' key)."""
    return local.api_key(api_db_url, TENANT, "read,write", "tests/api session clients")


@pytest.fixture(scope="session")
def auth(api_key):
    """Headers presenting the session's key (for clients other than ``client``)."""
    return local.bearer(api_key)


@pytest.fixture(scope="session")
def client(service, auth):
    with httpx.Client(base_url=service, timeout=600, headers=auth) as c:
        yield c


@pytest.fixture(scope="session")
def training_config():
    return yaml.safe_load((ROOT / "configs/training.yaml").read_text())


@pytest.fixture(scope="session")
def plants(client, training_config):
    """The demo plants created through the API, with real weather and SERF East actuals."""
    saved = client.post("/api/v1/locations", json={"locations": demo_plants()})
    assert saved.status_code == 200, saved.text
    locations = saved.json()["locations"]
    ids = [loc["location_id"] for loc in locations]
    written = client.post("/api/v1/weather", json={"rows": weather_rows(ids, training_config)})
    assert written.status_code == 200, written.text
    power, _ = data.load_power(training_config)
    power = power[WINDOW[0]:WINDOW[1]].dropna()
    actuals = [{"location_id": ids[0], "time": t.isoformat(), "power_kw": float(p)} for t, p in power.items()]
    written = client.post("/api/v1/actuals", json={"rows": actuals})
    assert written.status_code == 200, written.text
    return {loc["location_id"]: loc for loc in locations}



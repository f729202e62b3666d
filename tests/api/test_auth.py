"""API keys and tenants through real HTTP, real Ray and the real database (issue 9).

Every ``/api/v1`` operation of the served OpenAPI document (not a hand list) answers 401 without a
usable key and 403 to a read-only key when it writes; another tenant's plant, weather, actuals,
forecast and task answer 404 exactly like unknown ones and nothing of theirs changes; a revoked key
stops working within ``auth.cache_seconds``; /healthz, /readyz and /openapi.json stay open.
"""

import time
import uuid

import httpx
import pytest

from apihelpers import ISSUE, TENANT, assert_error, count, demo_plants
from engine import keys, store
from nwphelpers import NETCDF, grid_centre, require_samples
import local_instance as local
from serve_app.settings import load_settings
from storehelpers import run

pytestmark = pytest.mark.slow
API = "/api/v1"
OTHER = "intruder"  # a second tenant
CACHE_SECONDS = load_settings()["auth"]["cache_seconds"]
UNKNOWN_KEY = keys.generate_key()[1]  # well formed, never stored


def operations(client):
    """(method, path template) of every /api/v1 operation of the served /openapi.json."""
    doc = client.get("/openapi.json").json()
    return sorted((method.upper(), path) for path, ops in doc["paths"].items() if path.startswith(API)
                  for method in ops)


def concrete(path, location_id, task_id):
    """A path template filled with ids that exist (so an answer other than 401/403 would be the route's)."""
    return path.replace("{location_id}", str(location_id)).replace("{task_id}", str(task_id))


@pytest.fixture(scope="module")
def victim(client, plants):
    """A plant of the tenant ``tests`` with weather, actuals, a stored run and its task."""
    lid = next(iter(plants))
    r = client.post(f"{API}/forecast/generate", json={"location_ids": [lid], "issue_time": ISSUE, "horizon_hours": 24,
                                                     "resolution": "1h", "wait": True})
    assert r.status_code == 200 and r.json()["status"] == "succeeded", r.text
    return {"location_id": lid, "task_id": r.json()["task_id"], "run_id": r.json()["run_ids"][str(lid)],
            "name": plants[lid]["name"]}


def keyed_client(service, db_url, tenant, scopes, description):
    """An HTTP client of the service presenting a new key of ``tenant`` with ``scopes`` (a generator)."""
    key = local.api_key(db_url, tenant, scopes, description)
    with httpx.Client(base_url=service, timeout=600, headers=local.bearer(key)) as c:
        yield c


@pytest.fixture(scope="module")
def other(service, api_db_url):
    """A client of another tenant (scopes read, write)."""
    yield from keyed_client(service, api_db_url, OTHER, "read,write", "tests/api/test_auth.py")


def snapshot(url, location_id):
    """What is stored for a plant: its row, weather, actuals, runs and tasks naming it."""
    return {
        "plant": run(url, lambda conn: conn.fetchrow("SELECT * FROM locations WHERE location_id = $1", location_id)),
        "weather": count(url, "SELECT count(*) FROM weather WHERE location_id = $1", location_id),
        "actuals": count(url, "SELECT count(*) FROM actuals WHERE location_id = $1", location_id),
        "runs": count(url, "SELECT count(*) FROM forecast_runs WHERE location_id = $1", location_id),
        "tasks": count(url, "SELECT count(*) FROM forecast_tasks"),
    }


# --- open doors -----------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/openapi.json"])
def test_health_and_the_document_are_open(service, path):
    assert httpx.get(f"{service}{path}", timeout=60).status_code == 200


def test_the_document_declares_the_bearer_scheme_on_every_api_operation(client):
    doc = client.get("/openapi.json").json()
    assert doc["components"]["securitySchemes"]["ApiKey"]["scheme"] == "bearer"
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            assert (op.get("security") == [{"ApiKey": []}]) == path.startswith(API), (method, path)
            if path.startswith(API):
                assert {"401", "403"} <= set(op["responses"]), (method, path)


# --- 401 ------------------------------------------------------------------------------------

@pytest.mark.parametrize("authorization", [None, "Bearer", f"Basic {UNKNOWN_KEY}", "Bearer not-a-key",
                                           f"Bearer {UNKNOWN_KEY}", f"Bearer {UNKNOWN_KEY}x"],
                         ids=["missing", "empty", "other scheme", "malformed", "unknown", "too long"])
def test_every_api_operation_refuses_a_request_without_a_usable_key(client, victim, authorization):
    ops = operations(client)
    assert len(ops) >= 12
    headers = {} if authorization is None else {"Authorization": authorization}
    with httpx.Client(base_url=client.base_url, timeout=60, headers=headers) as anonymous:
        for method, path in ops:
            r = anonymous.request(method, concrete(path, victim["location_id"], victim["task_id"]),
                                  json={} if method in ("POST", "PUT") else None)
            assert r.headers.get("www-authenticate") == "Bearer", (method, path, r.status_code)
            assert_error(client, r, 401, "authorization")


def test_a_refused_write_stores_nothing(service, plants, api_db_url):
    body = {"locations": [{**demo_plants()[1], "name": "auth: anonymous write"}]}
    assert httpx.post(f"{service}{API}/locations", json=body, timeout=60).status_code == 401
    assert count(api_db_url, "SELECT count(*) FROM locations WHERE name = $1", "auth: anonymous write") == 0


# --- 403 ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def reader(service, api_db_url):
    yield from keyed_client(service, api_db_url, TENANT, "read", "tests/api/test_auth.py read-only")


def test_a_read_key_reads(reader, victim):
    assert reader.get(f"{API}/locations/{victim['location_id']}").status_code == 200
    assert reader.get(f"{API}/forecast/task/{victim['task_id']}").json()["status"] == "succeeded"


def test_a_read_key_cannot_write_any_operation(client, reader, victim, api_db_url):
    writes = [(m, p) for m, p in operations(client) if m != "GET"]
    assert {p for _, p in writes} >= {f"{API}/locations", f"{API}/weather", f"{API}/actuals",
                                      f"{API}/forecast/generate", f"{API}/weather/nwp"}
    before = snapshot(api_db_url, victim["location_id"])
    for method, path in writes:
        assert_error(client, reader.request(method, path, json={}), 403, "authorization")
    plant = {**demo_plants()[1], "name": victim["name"], "capacity_ac_kw": 0.001}
    assert_error(client, reader.put(f"{API}/locations", json={"locations": [plant]}), 403, "authorization")
    assert snapshot(api_db_url, victim["location_id"]) == before


# --- tenants --------------------------------------------------------------------------------

def test_another_tenant_lists_none_of_the_plants(other, victim):
    r = other.get(f"{API}/locations")
    assert r.status_code == 200
    assert victim["location_id"] not in {p["location_id"] for p in r.json()["locations"]}


@pytest.mark.parametrize("path", ["/locations/{lid}", "/forecast/location/{lid}", "/forecast/location/{lid}?format=csv",
                                  "/forecast/location/{lid}?aggregate=daily", "/forecast/location/{lid}/plot.png",
                                  "/forecast/location/{lid}?run_id={run}", "/forecast/accuracy/{lid}"])
def test_another_tenants_plant_reads_like_an_unknown_one(client, other, plants, victim, path):
    unknown = max(plants) + 10**6
    theirs = other.get(API + path.format(lid=victim["location_id"], run=victim["run_id"]))
    none = other.get(API + path.format(lid=unknown, run=victim["run_id"]))
    assert_error(client, theirs, 404, "location_id")
    assert_error(client, none, 404, "location_id")
    assert theirs.json()["error"]["message"].replace(str(victim["location_id"]), "ID") == \
        none.json()["error"]["message"].replace(str(unknown), "ID")
    assert client.get(API + path.format(lid=victim["location_id"], run=victim["run_id"])).status_code == 200


def test_another_tenants_task_reads_like_an_unknown_one(client, other, victim):
    assert_error(client, other.get(f"{API}/forecast/task/{victim['task_id']}"), 404, "task_id")
    assert_error(client, other.get(f"{API}/forecast/task/{uuid.uuid4()}"), 404, "task_id")


def test_an_upsert_by_the_same_name_makes_the_other_tenant_its_own_plant(client, other, victim, api_db_url):
    before = snapshot(api_db_url, victim["location_id"])
    plant = {**demo_plants()[1], "name": victim["name"], "capacity_ac_kw": 0.001, "capacity_dc_kw": 0.001,
             "latitude": 10.0}
    r = other.put(f"{API}/locations", json={"locations": [plant]})
    assert r.status_code == 200, r.text
    assert r.json()["locations"][0]["location_id"] != victim["location_id"]
    assert snapshot(api_db_url, victim["location_id"]) == before
    assert count(api_db_url, "SELECT tenant_id FROM locations WHERE location_id = $1",
                 r.json()["locations"][0]["location_id"]) == OTHER


@pytest.mark.parametrize("kind, row", [
    ("weather", {"valid_time": "2013-07-02T18:00:00Z", "issue_time": "2013-07-02T06:00:00Z", "source": "intruder",
                 "ghi": 800.0, "temp_air": 25.0, "wind_speed": 1.0, "period_minutes": 0}),
    ("actuals", {"time": "2013-07-02T18:00:00Z", "power_kw": 0.5}),
])
def test_writes_for_another_tenants_plant_are_refused_like_unknown_ids(client, other, plants, victim, api_db_url,
                                                                       kind, row):
    before = snapshot(api_db_url, victim["location_id"])
    theirs = other.post(f"{API}/{kind}", json={"rows": [{"location_id": victim["location_id"], **row}]})
    none = other.post(f"{API}/{kind}", json={"rows": [{"location_id": max(plants) + 10**6, **row}]})
    assert_error(client, theirs, 404, "rows[0].location_id")
    assert_error(client, none, 404, "rows[0].location_id")
    assert snapshot(api_db_url, victim["location_id"]) == before


def test_a_forecast_of_another_tenants_plant_is_refused_and_no_task_recorded(client, other, plants, victim,
                                                                             api_db_url):
    before = snapshot(api_db_url, victim["location_id"])
    for lid in (victim["location_id"], max(plants) + 10**6):
        r = other.post(f"{API}/forecast/generate", json={"location_ids": [lid], "issue_time": ISSUE,
                                                         "horizon_hours": 24, "wait": True})
        assert_error(client, r, 404, "location_ids")
    assert snapshot(api_db_url, victim["location_id"]) == before


def test_tasks_are_stored_with_their_tenant(client, victim, api_db_url):
    assert count(api_db_url, "SELECT tenant_id FROM forecast_tasks WHERE task_id = $1::uuid",
                 victim["task_id"]) == TENANT


# --- NWP import: only the tenant's plants get weather and forecasts --------------------------

@pytest.fixture(scope="module")
def gfs_plants(client, other):
    """A plant of each tenant at the centre of the GFS sample grid: (ours, theirs) location ids."""
    require_samples()
    lat, lon = grid_centre(NETCDF["gfs"])
    plant = {**demo_plants()[0], "name": "auth nwp", "latitude": lat, "longitude": lon, "timezone": "America/Phoenix"}
    ours = client.post(f"{API}/locations", json={"locations": [plant]}).json()["locations"][0]["location_id"]
    theirs = other.post(f"{API}/locations", json={"locations": [plant]}).json()["locations"][0]["location_id"]
    return ours, theirs


def upload(client, **fields):
    parts = [("files", (NETCDF["gfs"].name, NETCDF["gfs"].read_bytes(), "application/octet-stream"))]
    return client.post(f"{API}/weather/nwp", files=parts, data=fields)


def test_an_nwp_import_for_another_tenants_plant_is_refused(client, other, gfs_plants, api_db_url):
    ours, _ = gfs_plants
    before = snapshot(api_db_url, ours)
    assert_error(client, upload(other, location_ids=[ours]), 404, "location_ids")
    assert snapshot(api_db_url, ours) == before


def test_an_nwp_import_fills_and_forecasts_only_the_tenants_plants(client, other, gfs_plants, api_db_url):
    ours, theirs = gfs_plants
    before = snapshot(api_db_url, ours)
    r = upload(other)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["location_ids"] == [theirs] and body["rows"] > 0
    assert count(api_db_url, "SELECT count(*) FROM weather WHERE location_id = $1", theirs) == body["rows"]
    assert body["forecast_tasks"], "configured to trigger forecasts"
    for task in body["forecast_tasks"]:
        deadline = time.monotonic() + 300
        while (status := other.get(task["status_url"]).json())["status"] in ("queued", "running"):
            assert time.monotonic() < deadline, status
            time.sleep(1)
        assert status["status"] == "succeeded", status
        assert set(status["run_ids"]) == {str(theirs)}
        assert_error(client, client.get(task["status_url"]), 404, "task_id")
        assert count(api_db_url, "SELECT tenant_id FROM forecast_tasks WHERE task_id = $1::uuid",
                     task["task_id"]) == OTHER
    after = snapshot(api_db_url, ours)
    assert {k: after[k] for k in ("plant", "weather", "actuals", "runs")} == \
        {k: before[k] for k in ("plant", "weather", "actuals", "runs")}


# --- revocation -----------------------------------------------------------------------------

def test_a_revoked_key_stops_working_within_the_cache_time(client, service, api_db_url, victim):
    created = run(api_db_url, lambda conn: store.create_key(conn, TENANT, "read", "tests/api revoked"))
    with httpx.Client(base_url=service, timeout=60, headers=local.bearer(created["key"])) as c:
        assert c.get(f"{API}/locations/{victim['location_id']}").status_code == 200
        run(api_db_url, lambda conn: store.revoke_key(conn, created["key_id"]))
        revoked = time.monotonic()
        while (r := c.get(f"{API}/locations/{victim['location_id']}")).status_code == 200:
            assert time.monotonic() - revoked < CACHE_SECONDS + 2, "the revoked key still works"
            time.sleep(0.2)
        waited = time.monotonic() - revoked
    assert_error(client, r, 401, "authorization")
    print(f"revoked key refused after {waited:.1f} s (auth.cache_seconds = {CACHE_SECONDS})")

"""A tenant's plants are listed a page at a time and bounded in number (docs/api.md "Endpoints", "Errors").

Real service, real database: ``GET /api/v1/locations`` answers at most ``limit`` plants
(``http.page_limit_default`` when not given, at most ``http.page_limit_max``: 422 beyond) in
``location_id`` order, with ``next_after`` and a ``Link: rel="next"`` to the next page; walking the
pages lists every plant of the caller's tenant exactly once and none of another's. A write that
would give a tenant more than ``http.max_locations_per_tenant`` plants is refused whole (409,
``error.code`` ``location_limit``), also when concurrent writes would pass it together; updates of
stored plants are always allowed.
"""

import asyncio
import re

import asyncpg

import httpx
import pytest

from apihelpers import assert_error, count, demo_plants, openapi_validator
from conftest import MAX_LOCATIONS_PER_TENANT as MOST
from engine import store
import local_instance as local
from serve_app import routes_data, schemas
from serve_app.settings import load_settings

pytestmark = pytest.mark.slow
API = "/api/v1"
HTTP = load_settings()["http"]  # the shipped limits: the test service does not override these


def tenant_client(service, db_url, tenant):
    """An HTTP client presenting a new read/write key of ``tenant``."""
    key = local.api_key(db_url, tenant, "read,write", "tests/api/test_location_limits.py")
    return httpx.Client(base_url=service, timeout=600, headers=local.bearer(key))


@pytest.fixture(scope="module")
def pager(service, api_db_url):
    """A client of the tenant ``pages`` and the ids of its page_limit_default + 21 plants."""
    with tenant_client(service, api_db_url, "pages") as c:
        plants = [{**demo_plants()[1], "name": f"page plant {i}"} for i in range(HTTP["page_limit_default"] + 21)]
        saved = c.post(f"{API}/locations", json={"locations": plants})
        assert saved.status_code == 200, saved.text
        yield c, sorted(p["location_id"] for p in saved.json()["locations"])


def test_the_list_is_a_page_of_the_default_limit(client, pager, plants):
    c, ids = pager
    r = c.get(f"{API}/locations")
    assert r.status_code == 200, r.text
    openapi_validator(client, "LocationPage").validate(r.json())
    page = r.json()
    assert [p["location_id"] for p in page["locations"]] == ids[:HTTP["page_limit_default"]]
    assert page["next_after"] == ids[HTTP["page_limit_default"] - 1]


def test_walking_the_pages_lists_every_plant_of_the_tenant_once_in_id_order(client, pager, plants):
    c, ids = pager
    seen, url, sizes = [], f"{API}/locations?limit=40", []
    while url is not None:
        r = c.get(url)
        assert r.status_code == 200, r.text
        page = r.json()
        seen += [p["location_id"] for p in page["locations"]]
        sizes.append(len(page["locations"]))
        link = r.headers.get("link")
        if page["next_after"] is None:
            assert link is None
            url = None
        else:  # the Link header and next_after name the same next page
            url = re.fullmatch(r'<([^>]+)>; rel="next"', link).group(1)
            assert url.startswith(f"{API}/locations?") and f"after={page['next_after']}" in url and "limit=40" in url
    assert seen == ids  # the other tenant's plants (the session's demo plants) never appear
    assert sizes == [40, 40, 40, 1]
    assert not set(plants) & set(seen)
    # another tenant's id as the cursor is only a position in this tenant's order
    r = c.get(f"{API}/locations", params={"after": min(plants), "limit": 1000})
    assert [p["location_id"] for p in r.json()["locations"]] == [i for i in ids if i > min(plants)]


@pytest.mark.parametrize("limit", [0, -1, HTTP["page_limit_max"] + 1])
def test_a_limit_out_of_bounds_is_refused(client, limit):
    assert_error(client, client.get(f"{API}/locations", params={"limit": limit}), 422, "limit")


def test_the_served_document_describes_the_page_limit(client):
    doc = client.get("/openapi.json").json()
    parameter = next(p for p in doc["paths"][f"{API}/locations"]["get"]["parameters"] if p["name"] == "limit")
    assert parameter["schema"] == {"$ref": "#/components/schemas/PageLimit"}
    limit = doc["components"]["schemas"]["PageLimit"]
    assert (limit["minimum"], limit["maximum"], limit["default"]) == (1, HTTP["page_limit_max"],
                                                                       HTTP["page_limit_default"])


def named(prefix, n, **change):
    return [{**demo_plants()[1], "name": f"{prefix} {i}", **change} for i in range(n)]


def stored(db_url, tenant):
    return count(db_url, "SELECT count(*) FROM locations WHERE tenant_id = $1", tenant)


def test_new_plants_beyond_the_tenant_limit_are_refused_whole_and_updates_stay_allowed(client, service, api_db_url):
    with tenant_client(service, api_db_url, "quota") as c:
        assert c.post(f"{API}/locations", json={"locations": named("quota", MOST - 2)}).status_code == 200
        r = c.post(f"{API}/locations", json={"locations": named("extra", 3)})
        assert_error(client, r, 409, "locations")
        assert r.json()["error"]["code"] == "location_limit"
        assert stored(api_db_url, "quota") == MOST - 2  # nothing of the refused write was stored
        # an update of stored plants with new ones up to the limit, then an update of every plant: allowed
        r = c.put(f"{API}/locations", json={"locations": named("quota", 1, capacity_ac_kw=3.0) + named("extra", 2)})
        assert r.status_code == 200, r.text
        r = c.put(f"{API}/locations", json={"locations": named("quota", MOST - 2, capacity_ac_kw=3.5)})
        assert r.status_code == 200, r.text
        assert_error(client, c.post(f"{API}/locations", json={"locations": named("one more", 1)}), 409, "locations",
                     "location_limit")
        assert stored(api_db_url, "quota") == MOST


def plants_of(names):
    """Checked (locations, planes, horizon) frames of demo plants named ``names``, as the upsert route makes them."""
    settings = load_settings()
    body = schemas.adapters(schemas.build(settings))["LocationsUpsert"].validate_python(
        {"locations": [{**demo_plants()[1], "name": n} for n in names]})
    return routes_data.checked_plants(body, settings["model_ids"])


def test_a_write_of_the_same_tenant_waits_for_the_one_in_progress_and_counts_its_plants(api_db_url):
    """Two transactions on the real database: the second is counted after the first committed, never beside it."""
    tenant, most = "quota-race", 3

    async def race():
        first, second = await asyncpg.connect(api_db_url), await asyncpg.connect(api_db_url)
        try:
            await first.execute("INSERT INTO tenants (tenant_id) VALUES ($1)", tenant)
            open_tx = first.transaction()
            await open_tx.start()
            saved, over = await store.write_plants_within(first, *plants_of(["a", "b"]), most, tenant_id=tenant)
            assert over is None and len(saved) == 2  # written, not committed yet
            pending = asyncio.ensure_future(store.write_plants_within(second, *plants_of(["c", "d"]), most,
                                                                      tenant_id=tenant))
            await asyncio.sleep(1.0)
            waited = not pending.done()  # without the tenant's lock it counted 0 stored plants and wrote 2
            await open_tx.commit()
            return waited, await pending
        finally:
            await first.close()
            await second.close()
    waited, (saved, over) = asyncio.run(race())
    assert waited
    assert saved is None and over == (2, 2)
    assert stored(api_db_url, tenant) == 2

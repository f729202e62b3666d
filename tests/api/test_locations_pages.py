"""A tenant's plants are listed a page at a time and bounded in number (docs/api.md "Endpoints", "Errors").

Real service, real database: ``GET /api/v1/locations`` answers at most ``limit`` plants
(``http.page_limit_default`` when not given, at most ``http.page_limit_max``: 422 beyond) in
``location_id`` order, with ``next_after`` and a ``Link: rel="next"`` to the next page; walking the
pages lists every plant of the caller's tenant exactly once and none of another's.
"""

import re

import httpx
import pytest

from apihelpers import assert_error, demo_plants, openapi_validator
import local_instance as local
from serve_app.settings import load_settings

pytestmark = pytest.mark.slow
API = "/api/v1"
HTTP = load_settings()["http"]  # the shipped limits: the test service does not override these


def tenant_client(service, db_url, tenant):
    """An HTTP client presenting a new read/write key of ``tenant``."""
    return httpx.Client(base_url=service, timeout=600,
                        headers=local.bearer(local.api_key(db_url, tenant, "read,write", "tests/api/test_locations_pages.py")))


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

"""Attack and careless-client probes that found defects (session 13), through real HTTP, real Ray, the real database.

Each test states the behaviour it protects; it failed before its fix (docs/ARCHITECTURE.md "Probes"). Probes that
found nothing are listed there, not here, unless no other test covers them.
"""

import asyncio
import gzip
import zlib
import zoneinfo

import asyncpg
import pytest

from apihelpers import ISSUE, assert_error, count, demo_plants, weather_rows

pytestmark = pytest.mark.slow
API = "/api/v1"


def actual(location_id, **change):
    return {"location_id": location_id, "time": "2013-07-01T18:00:00Z", "power_kw": 1.0, **change}


# --- times: an instant is ISO-8601 text with a UTC offset, within 1900..2200, in a body and in a query alike

@pytest.mark.parametrize("text", ["20130701", "2013", "1372701600"])
def test_digits_are_not_read_as_unix_seconds(client, plants, api_db_url, text):
    """A compact date ``20130701`` (ISO-8601 basic format) or a year was stored as seconds after 1970
    (1970-08-22T23:45:01Z, 1970-01-01T00:33:33Z): a time must be ISO-8601 text with an offset (``bad_time``)."""
    lid = next(iter(plants))
    before = count(api_db_url, "SELECT count(*) FROM actuals WHERE time < '1971-01-01'")
    r = client.post(f"{API}/actuals", json={"rows": [actual(lid, time=text)]})
    assert_error(client, r, 422, "rows[0].time", "bad_time")
    assert count(api_db_url, "SELECT count(*) FROM actuals WHERE time < '1971-01-01'") == before
    r = client.post(f"{API}/forecast/generate", json={"location_ids": [lid], "issue_time": text, "wait": True})
    assert_error(client, r, 422, "issue_time", "bad_time")


@pytest.mark.parametrize("path", ["/forecast/location/{lid}", "/forecast/location/{lid}/plot.png",
                                  "/forecast/accuracy/{lid}"])
@pytest.mark.parametrize("name", ["start", "end"])
@pytest.mark.parametrize("text", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00Z",
                                  "9999-12-31T00:00:00Z", "1850-01-01T00:00:00Z", "20130701"])
def test_query_times_are_instants_of_the_accepted_range(client, plants, path, name, text):
    """A query time is checked like a body's: ISO-8601 with an offset in [1900, 2200) (``bad_time`` naming the
    parameter). Year 1 at +01:00 is year 0 in UTC, 9999 at -01:00 year 10000: both were 422 without a field
    (``invalid_value``, Python's "year 0 is out of range"), as was year 1 or 9999 in /accuracy (its 31-day window
    beyond Python's datetime); 1850 read nothing (404), digits were seconds after 1970."""
    lid = next(iter(plants))
    assert_error(client, client.get(API + path.format(lid=lid), params={name: text}), 422, name, "bad_time")


def test_query_issue_times_are_instants_of_the_accepted_range(client, plants):
    lid = next(iter(plants))
    for name in ("issued_start", "issued_end"):
        r = client.get(f"{API}/forecast/accuracy/{lid}", params={name: "0001-01-01T00:00:00+01:00"})
        assert_error(client, r, 422, name, "bad_time")


# --- plants: a plant's time zone is one its local-time queries can use

def database_time_zones(url):
    async def names():
        conn = await asyncpg.connect(url)
        try:
            return {r["name"] for r in await conn.fetch("SELECT name FROM pg_timezone_names")}
        finally:
            await conn.close()
    return asyncio.run(names())


def test_a_time_zone_the_database_does_not_know_is_refused(client, plants, api_db_url, training_config):
    """PostgreSQL on Debian trixie lacks the legacy aliases Python knows (``US/Eastern``, ``Asia/Calcutta``: 113 of
    599): such a plant was stored, then its daily energy read was a 500 and the refit check of every plant checked
    with it failed. It is refused (``not_one_of``, nothing stored); its canonical name is taken and read daily."""
    aliases = sorted(zoneinfo.available_timezones() - database_time_zones(api_db_url))
    if not aliases:
        pytest.skip("this database knows every time zone Python knows")
    zone = "US/Eastern" if "US/Eastern" in aliases else aliases[0]
    plant = {**demo_plants()[1], "name": "probe: a zone alias", "timezone": zone}
    assert_error(client, client.post(f"{API}/locations", json={"locations": [plant]}), 422, "locations[0].timezone",
                 "not_one_of")
    assert count(api_db_url, "SELECT count(*) FROM locations WHERE name = $1", plant["name"]) == 0
    saved = client.post(f"{API}/locations", json={"locations": [{**plant, "timezone": "America/New_York"}]})
    assert saved.status_code == 200, saved.text
    lid = saved.json()["locations"][0]["location_id"]
    assert client.post(f"{API}/weather", json={"rows": weather_rows([lid], training_config)}).status_code == 200
    r = client.post(f"{API}/forecast/generate", json={"location_ids": [lid], "issue_time": ISSUE, "horizon_hours": 24,
                                                      "wait": True})
    assert r.status_code == 200 and r.json()["status"] == "succeeded", r.text
    assert client.get(f"{API}/forecast/location/{lid}", params={"aggregate": "daily"}).status_code == 200


# --- bodies: a compressed body is refused, never read as if it were plain (or decompressed: no zip bomb)

@pytest.mark.parametrize("coding, compress", [("gzip", gzip.compress), ("deflate", zlib.compress),
                                              ("br", lambda b: b), ("gzip", lambda b: b)])
def test_a_body_with_a_content_coding_is_refused_415(client, plants, api_db_url, coding, compress):
    """``Content-Encoding`` is not ignored: a gzip/deflate body was answered 400 ``malformed_json`` and a plain body
    labelled gzip was stored. Either is 415 ``not_json`` naming ``content-encoding`` (RFC 9110 15.5.16, with
    ``Accept-Encoding: identity``), and nothing is stored."""
    lid = next(iter(plants))
    before = count(api_db_url, "SELECT count(*) FROM actuals")
    body = b'{"rows": [{"location_id": %d, "time": "2013-07-01T18:07:00Z", "power_kw": 1.0}]}' % lid
    r = client.post(f"{API}/actuals", content=compress(body),
                    headers={"content-type": "application/json", "content-encoding": coding})
    assert_error(client, r, 415, "content-encoding", "not_json")
    assert r.headers["accept-encoding"] == "identity"
    assert count(api_db_url, "SELECT count(*) FROM actuals") == before


def test_an_identity_content_coding_is_a_plain_body(client, plants):
    lid = next(iter(plants))
    r = client.post(f"{API}/actuals", json={"rows": [actual(lid, time="2013-07-01T18:08:00Z")]},
                    headers={"content-encoding": "identity"})
    assert r.status_code == 200, r.text


# --- answers leak no internals

@pytest.mark.parametrize("how", ["upload", "named"])
def test_an_unreadable_netcdf_file_is_named_without_the_servers_paths(client, plants, nwp_dirs, how):
    """netCDF's own error quoted the file's path on the server (the spool or import directory) in the 422: only
    the file's name is answered."""
    name, content = "hrrr_hourly.nc", b"\x89HDF\r\n\x1a\n" + b"\xff" * 100  # HDF5's signature, then garbage
    if how == "upload":
        r = client.post(f"{API}/weather/nwp", files={"files": (name, content)})
    else:
        (nwp_dirs["import"] / name).write_bytes(content)
        r = client.post(f"{API}/weather/nwp", json={"files": [name]})
    assert_error(client, r, 422, "files[0]", "invalid_value")
    message = r.json()["error"]["message"]
    assert name in message
    assert "/" not in message, message


@pytest.mark.parametrize("version", [2**31, 2**63])
def test_a_calibration_version_beyond_the_stored_integers_is_out_of_bounds(client, plants, version):
    """A version beyond the database's integer reached the query: 422 without a field quoting the driver's
    "invalid input for query argument $2". It is refused by its bound, naming ``version``."""
    r = client.get(f"{API}/locations/{next(iter(plants))}/calibration", params={"version": version})
    assert_error(client, r, 422, "version", "out_of_bounds")
    assert "$" not in r.json()["error"]["message"]


def test_a_trailing_slash_is_an_unknown_path_not_a_redirect_to_the_host_header(client, plants):
    """Starlette answered a path with a trailing slash 307 to the URL without it, built from the request's Host
    header (``Location: http://evil.example/api/v1/locations``: a redirect to wherever the header says, a poisoned
    cache behind a proxy). It is an unknown path like any other: 404 ``unknown_path`` with the error body."""
    r = client.get(f"{API}/locations/", headers={"host": "evil.example"})
    assert_error(client, r, 404, "path", "unknown_path")
    assert "location" not in r.headers


@pytest.mark.parametrize("window", [("2013-07-01T18:07:00Z", "2013-07-01T18:08:00Z"),   # between two steps
                                    ("2013-07-02T18:00:00Z", "2013-07-01T18:00:00Z")])  # start after end
def test_the_plot_of_a_window_without_values_is_an_empty_chart(client, plants, window):
    """A window that holds no value of the run it selects (the JSON read: ``rows: []``) made the fan chart a 500
    (matplotlib on an empty series). It is the run's chart without values: 200, a PNG."""
    lid = next(iter(plants))
    r = client.post(f"{API}/forecast/generate", json={"location_ids": [lid], "issue_time": ISSUE, "wait": True})
    assert r.status_code == 200, r.text
    params = {"start": window[0], "end": window[1], "run_id": r.json()["run_ids"][str(lid)]}
    assert client.get(f"{API}/forecast/location/{lid}", params=params).json()["rows"] == []
    r = client.get(f"{API}/forecast/location/{lid}/plot.png", params=params)
    assert (r.status_code, r.headers["content-type"]) == (200, "image/png"), r.text
    assert r.content.startswith(b"\x89PNG")

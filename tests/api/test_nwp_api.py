"""POST /api/v1/weather/nwp through real HTTP, with the real NWP sample files.

Every sample the engine imports gives, uploaded, the summary and the stored rows that `pvcast weather
import` gives for the same file on a scratch database; re-import is idempotent; a bad file is refused
with 422 naming it and nothing is stored; uploads past the limits are refused while streaming (413);
server-side names cannot leave nwp.import_dir (403, nothing imported); the trigger turns an import into a
stored forecast that holds every invariant. The spool directory is empty after every request.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import pandas as pd
import pytest

from apihelpers import (NWP_MAX_UPLOAD_BYTES, ROOT, assert_error, assert_forecast_invariant, count, demo_plants,
                        openapi_validator)
from engine import store, validation
from nwphelpers import GEFS_2019, NETCDF, RAP_GRIB, RAP_NC, grid_centre, require_samples
import local_instance as local
from storehelpers import run

pytestmark = pytest.mark.slow
ISSUE = pd.Timestamp("2019-05-15T00:00:00Z")  # cycle of every 2019 sample
#: each import case: the files uploaded together and the grid its plant sits in the centre of
CASES = {"gfs": ([NETCDF["gfs"]], "gfs"), "hrrr": ([NETCDF["hrrr"]], "hrrr"),
         "hrrr_subhourly": ([NETCDF["hrrr_subhourly"]], "hrrr_subhourly"), "nam": ([NETCDF["nam"]], "nam"),
         "gefs": (GEFS_2019, "gefs_p01")}
#: plants of their own (never imported to by another test): name -> grid
TARGETS = {**{f"nwp {case}": grid for case, (_, grid) in CASES.items()},
           "nwp bad file": "nam", "nwp escape": "hrrr", "nwp named": "hrrr", "nwp trigger": "hrrr",
           "nwp idempotent": "hrrr"}
WEATHER_QUERY = ("SELECT valid_time, issue_time, source, ghi, dni, dhi, temp_air, wind_speed, cloud_cover, "
                 "period_minutes, ingested_at FROM weather WHERE location_id = $1 ORDER BY source, valid_time")


@pytest.fixture(scope="module")
def tucson(client):
    """Plants with the SERF East configuration at the centre of a sample grid (Tucson, AZ): name -> location."""
    require_samples()
    base = demo_plants()[0]
    body = []
    for name, grid in TARGETS.items():
        lat, lon = grid_centre(NETCDF[grid])
        body.append({**base, "name": name, "latitude": lat, "longitude": lon, "timezone": "America/Phoenix"})
    saved = client.post("/api/v1/locations", json={"locations": body})
    assert saved.status_code == 200, saved.text
    return {loc["name"]: loc for loc in saved.json()["locations"]}


@pytest.fixture(scope="module")
def cli_db(tucson):
    """A scratch database holding the same plants, for `pvcast weather import`: (url, name -> location_id)."""
    with local.scratch_database("pvcast_nwpcli") as (url, _):
        frame = pd.DataFrame(list(tucson.values()))[list(validation.LOCATION_COLUMNS)]
        stored = run(url, lambda conn: store.upsert_locations(conn, frame))
        yield url, dict(zip(stored["name"], stored["location_id"].astype(int)))


@pytest.fixture(scope="module")
def triggered(client):
    """Task ids the imports started; at the end of the module every one has succeeded (none left running)."""
    ids = []
    yield ids
    tasks = [poll(client, task_id) for task_id in ids]
    print("triggered:", [(t["request"]["horizon_hours"], t["status"], t["errors"]) for t in tasks])
    assert [t for t in tasks if t["status"] != "succeeded"] == []


@pytest.fixture(autouse=True)
def spool_is_emptied(nwp_dirs):
    yield
    assert list(nwp_dirs["spool"].iterdir()) == []


def upload(client, files, names=None, **fields):
    """POST the files as multipart/form-data (``names``: file names to send instead of theirs)."""
    names = names or [Path(f).name for f in files]
    parts = [("files", (name, Path(f).read_bytes(), "application/octet-stream")) for name, f in zip(names, files)]
    return client.post("/api/v1/weather/nwp", files=parts, data=fields)


def imported(client, response, triggered):
    assert response.status_code == 200, response.text
    body = response.json()
    openapi_validator(client, "NwpImportResult").validate(body)
    triggered.extend(t["task_id"] for t in body["forecast_tasks"])
    return body


def cli(db_url, *args):
    env = dict(os.environ, PVCAST_DATABASE_URL=db_url)
    proc = subprocess.run([str(Path(sys.executable).parent / "pvcast"), "weather", "import", *map(str, args)],
                          cwd=ROOT, capture_output=True, text=True, env=env, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)


def weather_of(db_url, location_id):
    return pd.DataFrame([dict(r) for r in run(db_url, lambda conn: conn.fetch(WEATHER_QUERY, location_id))])


def poll(client, task_id, timeout=600):
    deadline = time.monotonic() + timeout
    while True:
        task = client.get(f"/api/v1/forecast/task/{task_id}").json()
        if task["status"] in ("succeeded", "partial", "failed") or time.monotonic() > deadline:
            return task
        time.sleep(1)


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_sample_uploads_as_the_cli_imports_it(client, tucson, cli_db, triggered, case, api_db_url):
    files = CASES[case][0]
    plant = tucson[f"nwp {case}"]["location_id"]
    body = imported(client, upload(client, files, location_ids=[plant]), triggered)
    url, cli_ids = cli_db
    expected = cli(url, *files, "--location-ids", cli_ids[f"nwp {case}"])
    assert body["rows"] == expected["rows"] > 0
    assert body["files"] == expected["files"]
    assert {f["issue_time"] for f in body["files"]} == {ISSUE.isoformat()}
    assert body["location_ids"] == [plant] and body["uncovered"] == expected["uncovered"] == {}
    assert body["covered"] == {str(plant): expected["covered"][str(cli_ids[f"nwp {case}"])]}
    got, want = weather_of(api_db_url, plant), weather_of(url, cli_ids[f"nwp {case}"])
    assert len(got) == body["rows"]
    pd.testing.assert_frame_equal(got.drop(columns="ingested_at"), want.drop(columns="ingested_at"))


def test_reimport_is_idempotent(client, tucson, triggered, api_db_url):
    plant = tucson["nwp idempotent"]["location_id"]
    first = imported(client, upload(client, [NETCDF["hrrr"]], location_ids=[plant]), triggered)
    before = weather_of(api_db_url, plant)
    again = imported(client, upload(client, [NETCDF["hrrr"]], location_ids=[plant]), triggered)
    assert first["rows"] == again["rows"] == len(before) > 0
    pd.testing.assert_frame_equal(weather_of(api_db_url, plant), before)  # rows untouched (ingested_at)


@pytest.fixture
def truncated(tmp_path):
    cut = tmp_path / RAP_GRIB[1].name
    cut.write_bytes(RAP_GRIB[1].read_bytes()[:300_000])
    return cut


@pytest.mark.parametrize("bad", ["truncated", "grib without radiation", "netcdf without radiation"])
def test_a_bad_file_is_refused_naming_it_and_nothing_is_stored(client, tucson, truncated, bad, api_db_url):
    path = {"truncated": truncated, "grib without radiation": RAP_GRIB[0], "netcdf without radiation": RAP_NC}[bad]
    plant = tucson["nwp bad file"]["location_id"]
    before = count(api_db_url, "SELECT count(*) FROM weather")
    r = upload(client, [NETCDF["nam"], path], location_ids=[plant])  # a good file first: all or nothing
    assert_error(client, r, 422, "files[1]")
    assert path.name in r.json()["error"]["message"]
    assert count(api_db_url, "SELECT count(*) FROM weather") == before
    assert count(api_db_url, "SELECT count(*) FROM weather WHERE location_id = $1", plant) == 0


def test_no_plant_inside_the_grid_is_refused(client, tucson, plants, api_db_url):
    golden = next(iter(plants))  # the demo plants are in Colorado, outside every sample grid
    assert_error(client, upload(client, [NETCDF["hrrr"]], location_ids=[golden]), 422, "files")
    assert count(api_db_url, "SELECT count(*) FROM weather WHERE source = 'hrrr' AND location_id = $1",
                 golden) == 0


@pytest.mark.parametrize("fields, status, field", [
    ({"location_ids": ["999999999"]}, 404, "location_ids"), ({"location_ids": ["x"]}, 422, "location_ids[0]"),
    ({"source": "gefs_spr"}, 422, "source"), ({"colour": "red"}, 422, "colour")])
def test_bad_form_fields_are_named(client, tucson, fields, status, field):
    assert_error(client, upload(client, [NETCDF["hrrr"]], **fields), status, field)


@pytest.mark.parametrize("headers, content, status, field", [
    ({"content-type": "text/plain"}, b"gfs", 415, "content-type"),
    ({"content-type": "multipart/form-data"}, b"--x--\r\n", 400, "content-type"),
    ({"content-type": "multipart/form-data; boundary=x"}, b"--x\r\nno headers end", 400, "body"),
    ({"content-type": "multipart/form-data; boundary=x"},
     b'--x\r\ncontent-disposition: form-data; name="files"\r\n\r\nno file name\r\n--x--\r\n', 422, "files[0]"),
    ({"content-type": "multipart/form-data; boundary=x"},
     b'--x\r\ncontent-disposition: form-data; name="files"; filename=".."\r\n\r\n\r\n--x--\r\n', 422, "files[0]"),
])
def test_malformed_uploads(client, tucson, headers, content, status, field):
    assert_error(client, client.post("/api/v1/weather/nwp", content=content, headers=headers), status, field)


def test_upload_declared_over_the_limit_is_refused(client, tucson):
    r = client.post("/api/v1/weather/nwp", content=b"-" * (NWP_MAX_UPLOAD_BYTES + 1),
                    headers={"content-type": "multipart/form-data; boundary=x"})
    assert_error(client, r, 413, "body")


def test_an_upload_over_the_limit_is_refused_before_it_ends(client, service, api_key, tucson):
    """A chunked upload (no content-length) that passes the limit gets its 413 while the client has not even
    finished the body: the ingress stops at the limit instead of reading (or storing) the rest."""
    host, port = urlsplit(service).hostname, urlsplit(service).port
    chunk = b"-" * (1024 * 1024)
    with socket.create_connection((host, port), timeout=120) as s:
        s.sendall(b"POST /api/v1/weather/nwp HTTP/1.1\r\nHost: pvcast\r\nTransfer-Encoding: chunked\r\n"
                  b"Content-Type: multipart/form-data; boundary=x\r\nAuthorization: Bearer %s\r\n\r\n"
                  % api_key.encode())
        for _ in range(NWP_MAX_UPLOAD_BYTES // len(chunk) + 1):
            s.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        answer = b""  # the last chunk (0) is never sent
        while b"}}" not in answer and (more := s.recv(65536)):
            answer += more
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
    assert b'"field":"body"' in answer
    assert client.get("/healthz").status_code == 200


def test_more_files_than_max_files_is_413(client, tucson):
    n = 400 + 1  # configs/service.yaml nwp.max_files (the test service keeps it)
    parts = [("files", (f"f{k}.nc", b"x", "application/octet-stream")) for k in range(n)]
    assert_error(client, client.post("/api/v1/weather/nwp", files=parts), 413, "files")


@pytest.fixture(scope="module")
def import_dir(nwp_dirs):
    """nwp.import_dir of the test service with a sample in a subdirectory; beside it, outside, another copy
    and inside a symbolic link to that outside copy."""
    root = nwp_dirs["import"]
    (root / "2019/05").mkdir(parents=True, exist_ok=True)
    shutil.copy(NETCDF["hrrr"], root / "2019/05/hrrr_hourly.nc")
    outside = root.parent / "outside"
    outside.mkdir(exist_ok=True)
    shutil.copy(NETCDF["hrrr"], outside / "hrrr_hourly.nc")
    (root / "escape").mkdir(exist_ok=True)
    link = root / "escape/hrrr_hourly.nc"
    if not link.is_symlink():
        link.symlink_to(outside / "hrrr_hourly.nc")
    return root


def test_a_file_under_the_import_dir_imports_by_name(client, tucson, import_dir, triggered, api_db_url):
    plant = tucson["nwp named"]["location_id"]
    r = client.post("/api/v1/weather/nwp", json={"files": ["2019/05/hrrr_hourly.nc"], "location_ids": [plant]})
    body = imported(client, r, triggered)
    assert body["files"][0]["file"] == "hrrr_hourly.nc" and body["files"][0]["source"] == "hrrr"
    assert body["rows"] == len(weather_of(api_db_url, plant)) > 0


@pytest.mark.parametrize("name", ["../outside/hrrr_hourly.nc", "escape/hrrr_hourly.nc", "ABSOLUTE"])
def test_names_outside_the_import_dir_are_403_and_nothing_is_imported(client, tucson, import_dir, name, api_db_url):
    name = str(import_dir.parent / "outside/hrrr_hourly.nc") if name == "ABSOLUTE" else name
    plant = tucson["nwp escape"]["location_id"]  # inside the file's grid: an import would store its rows
    r = client.post("/api/v1/weather/nwp", json={"files": [name], "location_ids": [plant]})
    assert_error(client, r, 403, "files[0]")
    assert count(api_db_url, "SELECT count(*) FROM weather WHERE location_id = $1", plant) == 0


def test_a_missing_name_is_404(client, tucson, import_dir):
    r = client.post("/api/v1/weather/nwp", json={"files": ["2019/05/hrrr_hourly.nc", "2019/05/gone.nc"]})
    assert_error(client, r, 404, "files[1]")


def test_the_trigger_turns_an_import_into_a_stored_forecast_holding_every_invariant(client, tucson, triggered):
    plant = tucson["nwp trigger"]
    body = imported(client, upload(client, [NETCDF["hrrr"]], location_ids=[plant["location_id"]]), triggered)
    assert len(body["forecast_tasks"]) == 1
    task = poll(client, body["forecast_tasks"][0]["task_id"])
    assert task["status"] == "succeeded", task
    assert task["request"]["location_ids"] == [plant["location_id"]]
    assert pd.Timestamp(task["request"]["issue_time"]) == ISSUE  # issued at the cycle: sees that run only
    run_id = task["run_ids"][str(plant["location_id"])]
    r = client.get(f"/api/v1/forecast/location/{plant['location_id']}", params={"run_id": run_id})
    assert r.status_code == 200, r.text
    stored = r.json()
    last = pd.Timestamp(body["files"][0]["last_valid_time"])
    assert stored["run"]["horizon_hours"] == (last - ISSUE) // pd.Timedelta(hours=1) == 36
    rows = pd.DataFrame(stored["rows"])
    assert len(rows) == 36 * 4
    assert_forecast_invariant(rows["valid_time"], rows, plant, 15)

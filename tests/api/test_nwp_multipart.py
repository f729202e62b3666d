"""The multipart parser of NWP uploads (serve_app/nwpimport.py), on real sample files, without a service."""

import httpx
import pytest
from python_multipart.multipart import parse_options_header

from nwphelpers import NETCDF, require_samples
from serve_app.nwpimport import file_name, form_request, read_upload
from serve_app.settings import load_settings

SETTINGS = load_settings()


def spooled(tmp_path, files, data=None):
    """(body path, boundary, parts dir) of the multipart body httpx sends for ``files`` and ``data``."""
    request = httpx.Request("POST", "http://pvcast/", files=files, data=data)
    body = tmp_path / "body"
    body.write_bytes(request.read())
    parts = tmp_path / "parts"
    parts.mkdir()
    return str(body), parse_options_header(request.headers["content-type"])[1][b"boundary"], str(parts)


def test_file_parts_are_written_byte_for_byte_under_their_own_names(tmp_path):
    require_samples()
    files = [("files", (p.name, p.read_bytes())) for p in (NETCDF["hrrr"], NETCDF["gfs"])]
    form, error = read_upload(*spooled(tmp_path, files, {"location_ids": ["3", "4"], "source": "hrrr"}), 400)
    assert error is None
    assert form["files"] == ["hrrr_hourly.nc", "gfs_0p25.nc"] and form["fields"] == {"location_ids": ["3", "4"],
                                                                                       "source": ["hrrr"]}
    for path, (_, (_, content)) in zip(form["paths"], files):
        with open(path, "rb") as f:
            assert f.read() == content
    value, error = form_request(SETTINGS, form)
    assert error is None and value.location_ids == [3, 4] and value.source == "hrrr"


@pytest.mark.parametrize("raw, name", [("gfs_0p25.nc", "gfs_0p25.nc"), ("C:\\runs\\hrrr_hourly.nc", "hrrr_hourly.nc"),
                                       ("../../etc/passwd", "passwd"), ("..", None), ("dir/", "dir"), ("", None),
                                       ("a\nb.nc", None), ("x" * 256, None)])
def test_only_the_last_component_of_an_uploaded_name_is_kept(raw, name):
    assert file_name(raw) == name


def test_more_file_parts_than_max_files_stop_the_parse(tmp_path):
    files = [("files", (f"f{k}.nc", b"x" * 10)) for k in range(5)]
    body, boundary, parts = spooled(tmp_path, files)
    assert read_upload(body, boundary, parts, 4) == (None, (413, "files", "files: more than nwp.max_files = 4 files",
                                                                "body_too_large"))
    assert len(list((tmp_path / "parts").iterdir())) == 4  # the fifth was never written


@pytest.mark.parametrize("fields, error", [
    ({"source": ["hrrr", "nam"]}, (422, "source", "duplicate")),
    ({"location_ids": ["3", "x"]}, (422, "location_ids[1]", "wrong_type")),
    ({"location_ids": ["3", "3"]}, (422, "location_ids", "duplicate")), ({"colour": ["red"]}, (422, "colour",
                                                                                              "unknown_field")),
])
def test_form_fields_are_validated_by_the_nwp_import_schema(fields, error):
    status, field, _, code = form_request(SETTINGS, {"files": ["hrrr_hourly.nc"], "fields": fields})[1]
    assert (status, field, code) == error


def test_a_body_without_its_closing_boundary_is_malformed(tmp_path):
    body, boundary, parts = spooled(tmp_path, [("files", ("a.nc", b"x" * 100))])
    with open(body, "r+b") as f:
        f.truncate(120)
    status, field, _, code = read_upload(body, boundary, parts, 4)[1]
    assert (status, field, code) == (400, "body", "malformed_multipart")

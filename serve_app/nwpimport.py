"""NWP import as a Ray task on the ingress's node: multipart parsing, decoding, interpolation, storing.

``POST /api/v1/weather/nwp`` (:mod:`serve_app.routes_nwp`) only streams an
upload into a spool file; this task parses the multipart body from that file a
chunk at a time (python-multipart's streaming parser: memory stays at one
chunk whatever the size of the files), writes each file part under its own
file name into a temporary directory beside the spool file, validates the form
fields with the ``NwpImport`` schema and runs
:func:`engine.weatherimport.import_files` with its own database connection.
Decoding GRIB/netCDF and interpolating is CPU work: in this task it holds
neither the ingress's event loop nor its GIL. The task returns its result or
its error as data: ``{"summary": ..., "forecasts": [generate bodies]}`` or
``{"error": (status, field, message, code)}``.
"""

import asyncio
import os
import re
import tempfile
from pathlib import Path, PurePosixPath

import asyncpg
import pydantic
import ray
from python_multipart.multipart import MultipartParseError, MultipartParser, parse_options_header

from engine import store, validation, weatherimport
from serve_app import schemas
from serve_app.api import validation_error
from serve_app.ingest import error_data

CHUNK_BYTES = 1 << 20  # read from the spool file, and written to the part files, this much at a time
FORM_BYTES = 1 << 20  # all non-file parts of an upload together (413 beyond)


def file_name(raw):
    """The last component of an uploaded file's name (``C:\\x\\gfs.nc`` -> ``gfs.nc``), or None.

    The name is kept because it may tell the source (``hrrr_hourly.nc``,
    docs/weather.md); nothing else of the client's path is used. None: no
    name left, control characters, or longer than a file name may be (255 bytes).
    """
    name = PurePosixPath(raw.replace("\\", "/")).name
    if name in ("", ".", "..") or re.search(validation.CONTROL_CHARACTERS, name) or len(name.encode()) > 255:
        return None
    return name


def read_upload(body_path, boundary, parts_dir, max_files):
    """Parse a multipart/form-data body from a file; file parts are written to ``parts_dir/<k>/<name>``.

    Parameters
    ----------
    body_path : str
        The spooled request body.
    boundary : bytes
        The multipart boundary of the request's content type.
    parts_dir : str
        Directory for the file parts (created by the caller, removed by it).
    max_files : int
        More file parts than this: 413.

    Returns
    -------
    form : dict
        ``files`` [file names], ``paths`` [the written files], ``fields``
        {name: [text values]} of the other parts; None on error.
    error : tuple or None
        (status, field, message, code): 400 malformed, 413 too many files or
        form bytes, 422 a file part without a usable name or not named ``files``.
    """
    s = {"headers": {}, "field": b"", "value": b"", "out": None, "text": None, "name": None, "form_bytes": 0,
         "files": [], "paths": [], "fields": {}, "error": None, "ended": False}

    def fail(status, field, message, code):
        if s["error"] is None:
            s["error"] = (status, field, f"{field}: {message}", code)

    def on_part_begin():
        s["headers"] = {}

    def on_header_field(data, start, end):
        s["field"] += data[start:end]

    def on_header_value(data, start, end):
        s["value"] += data[start:end]

    def on_header_end():
        s["headers"][s["field"].lower()] = s["value"]
        s["field"], s["value"] = b"", b""

    def on_headers_finished():
        _, options = parse_options_header(s["headers"].get(b"content-disposition"))
        name, raw = options.get(b"name", b"").decode("utf-8", "replace"), options.get(b"filename")
        k = len(s["files"])
        if raw is None and name != "files":
            s["name"], s["text"] = name, bytearray()
            return
        if name != "files":
            return fail(422, name or "body", "only parts named `files` carry files", "unknown_field")
        if k >= max_files:
            return fail(413, "files", f"more than nwp.max_files = {max_files} files", "body_too_large")
        clean = file_name(raw.decode("utf-8", "replace")) if raw is not None else None
        if clean is None:
            return fail(422, f"files[{k}]", f"a file part needs a file name of at most 255 bytes without control "
                                            f"characters (got {raw!r})", "bad_text")
        os.mkdir(os.path.join(parts_dir, str(k)))
        path = os.path.join(parts_dir, str(k), clean)
        s["out"] = open(path, "xb")
        s["files"].append(clean)
        s["paths"].append(path)

    def on_part_data(data, start, end):
        if s["error"] is not None:
            return
        if s["out"] is not None:
            s["out"].write(data[start:end])
        elif s["text"] is not None:
            s["form_bytes"] += end - start
            if s["form_bytes"] > FORM_BYTES:
                return fail(413, "body", f"form fields larger than {FORM_BYTES} bytes", "body_too_large")
            s["text"] += data[start:end]

    def on_part_end():
        if s["out"] is not None:
            s["out"].close()
            s["out"] = None
        elif s["text"] is not None:
            s["fields"].setdefault(s["name"], []).append(s["text"].decode("utf-8", "replace"))
            s["text"] = None

    def on_end():
        s["ended"] = True

    parser = MultipartParser(boundary, {
        "on_part_begin": on_part_begin, "on_header_field": on_header_field, "on_header_value": on_header_value,
        "on_header_end": on_header_end, "on_headers_finished": on_headers_finished, "on_part_data": on_part_data,
        "on_part_end": on_part_end, "on_end": on_end})
    try:
        with open(body_path, "rb") as body:
            while s["error"] is None and (chunk := body.read(CHUNK_BYTES)):
                parser.write(chunk)
    except MultipartParseError as exc:
        fail(400, "body", f"malformed multipart/form-data: {exc}", "malformed_multipart")
    finally:
        if s["out"] is not None:
            s["out"].close()
    if s["error"] is None and not s["ended"]:
        fail(400, "body", "the multipart/form-data body ends before its closing boundary",
             "malformed_multipart")
    if s["error"] is not None:
        return None, s["error"]
    return {"files": s["files"], "paths": s["paths"], "fields": s["fields"]}, None


def form_request(settings, form):
    """The upload's file names and form fields validated by the ``NwpImport`` schema (text -> numbers).

    Returns
    -------
    value : pydantic model or None
    error : tuple or None
        (status, field, message, code)
    """
    body = {"files": form["files"]}
    for name, values in form["fields"].items():
        if name == "location_ids":
            body[name] = values
        elif len(values) > 1:
            return None, (422, name, f"{name}: given {len(values)} times", "duplicate")
        else:
            body[name] = values[0]
    adapter = pydantic.TypeAdapter(schemas.build(settings)["NwpImport"])
    try:
        return adapter.validate_python(body, strict=False), None  # form fields are text: "3" is the id 3
    except pydantic.ValidationError as exc:
        return None, validation_error(exc.errors(include_url=False))


async def import_with_connection(paths, location_ids, source, tenant_id):
    conn = await asyncpg.connect(store.database_url())
    try:
        return await weatherimport.import_files(conn, paths, location_ids, source, tenant_id=tenant_id)
    finally:
        await conn.close()


def run_import(settings, paths, location_ids, source, tenant_id):
    """:func:`engine.weatherimport.import_files` and the forecasts it calls for, or the error as data."""
    try:
        summary = asyncio.run(import_with_connection(paths, location_ids, source, tenant_id))
    except Exception as exc:  # typed: the one table of serve_app.api maps it to a status
        error = error_data(exc, "files")
        if error is None:
            raise
        return {"error": error}
    return {"summary": summary, "forecasts": weatherimport.forecast_trigger(summary, settings)}


def import_nwp(settings, upload=None, paths=None, location_ids=None, source=None, tenant_id=None):
    """Import an uploaded body, or files already on this node.

    Parameters
    ----------
    settings : dict
        ``configs/service.yaml``.
    upload : (str, bytes), optional
        Spooled multipart body and its boundary; the files and options are in it.
    paths, location_ids, source : optional
        Files confined to ``nwp.import_dir`` and the validated options (JSON body).
    tenant_id : str, optional
        The tenant of the request's key: only its plants get weather (another tenant's
        ids are unknown ones); None: every tenant's (the CLI).

    Returns
    -------
    dict
        ``{"summary", "forecasts"}`` or ``{"error": (status, field, message, code)}``.
    """
    if upload is None:
        return run_import(settings, paths, location_ids, source, tenant_id)
    body_path, boundary = upload
    with tempfile.TemporaryDirectory(dir=Path(body_path).parent, ignore_cleanup_errors=True) as parts_dir:
        form, error = read_upload(body_path, boundary, parts_dir, settings["nwp"]["max_files"])
        if error is None:
            value, error = form_request(settings, form)
        if error is not None:
            return {"error": error}
        return run_import(settings, form["paths"], value.location_ids, value.source, tenant_id)


import_task = ray.remote(import_nwp)

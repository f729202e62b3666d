"""The FastAPI application: body reading, the one table of exception types to statuses, OpenAPI.

Routes live in :mod:`serve_app.routes_forecast`, :mod:`serve_app.routes_data`
and :mod:`serve_app.routes_nwp` as plain functions; the Ray Serve ``Ingress``
deployment wraps :data:`app` with ``@serve.ingress(app)``. A route reaches the
replica's state (database pool, Forecaster handle, settings, schemas) through
the :func:`ingress` dependency.

Bodies are read by :func:`json_body`: the content type must be JSON (415),
the size limit is enforced while streaming (413, never read whole first:
:func:`body_chunks`, which the NWP upload also streams to its spool file), and
the bytes are validated by the route's pydantic schema off the event loop.
Errors are answered ``{"error": {"status", "field", "message", "code"}}`` (unknown paths and
methods too); the field and the code come from the error's data (pydantic's ``loc`` and
``type``, ``engine.validation``'s ``field`` and ``code`` attributes, the exception's type:
:data:`STATUS_OF`), never from parsing its message, and
the message is bounded (:data:`MESSAGE_MAX_CHARS`: a rejected value is quoted
shortened, never echoed whole). A body must keep arriving: after
``http.body_grace_seconds`` at ``http.body_min_bytes_per_second`` on average, else
408; a tenant has at most ``http.max_slow_bodies_per_tenant`` bodies still arriving
after ``http.body_slow_after_seconds``, more are answered 429 (configs/service.yaml):
a client that opens many requests and sends their bodies slowly holds a bounded
number of the Ingress' request slots for a bounded time (docs/ARCHITECTURE.md "Probes").
"""

import asyncio
import datetime
import decimal
import json
import math
import time
import uuid

import asyncpg
import numpy as np
import pandas as pd
import pydantic
from fastapi import FastAPI, HTTPException
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from ray import serve
from ray.serve.exceptions import BackPressureError

from engine import validation
from engine.tuning import REFUSAL_CODES
from serve_app.observability import event

TITLE = "pvcast"
DESCRIPTION = ("Probabilistic PV power forecasts (P10..P90, kW) for many plants. Times are ISO-8601 with an "
               "explicit UTC offset; every forecast value satisfies 0 <= p10 <= ... <= p90 <= "
               "min(capacity_ac_kw, export_limit_kw) and is 0 when the sun is down.")
JSON_TYPES = ("application/json",)
RETRY_AFTER_SECONDS = 5
#: Longest error message answered (a message that quotes a rejected value is cut, never the whole value).
MESSAGE_MAX_CHARS = 2000
#: Longest quote of a rejected value in a validation message (its repr, cut with an ellipsis).
QUOTE_MAX_CHARS = 120
#: Header naming the forecast task of a response (every generate answer once the task exists, errors too).
TASK_HEADER = "X-Task-Id"


#: No usable API key: missing, malformed, unknown or revoked (:mod:`serve_app.auth`) -> 401.
Unauthenticated = type("Unauthenticated", (Exception,), {"__doc__": "No usable API key (401).",
                                                          "__module__": __name__})


#: The service is over capacity: a deployment's queue (Ray Serve ``max_queued_requests``) refused a call the
#: request needed (:func:`overloaded`) -> 503 with the deployment's Retry-After.
Overloaded = type("Overloaded", (Exception,), {"__doc__": "Over capacity, the request was shed (503).",
                                                "__module__": __name__})


#: The request conflicts with one in progress (a second fit of a plant being fit: :mod:`serve_app.admission`) -> 409.
Conflict = type("Conflict", (Exception,), {"__doc__": "Conflicts with work in progress; retry once it ended (409).",
                                          "__module__": __name__})


#: Every ``error.code`` an answer may carry: ``engine.validation.ERRORS`` (the one definition, with each code's
#: meaning) and a refused calibration's reason (``engine.tuning.REFUSALS``). The OpenAPI enum of ``error.code``
#: is this tuple; docs/api.md "Error codes" and "Refusal codes" list it (tests/api/test_error_codes.py).
ERROR_CODES = tuple(validation.ERRORS) + REFUSAL_CODES


#: The one table of exception types crossing the HTTP edge -> (status, code). First match wins (a KeyError
#: is a bug, not an unknown id: it is not listed and answers 500). The code is the exception's own ``code``
#: attribute when it has one (``engine.validation.field_error``), else the type's here.
STATUS_OF = (
    (Unauthenticated, 401, "unauthenticated"),
    (Overloaded, 503, "overloaded"),
    # Ray Serve answers a raw BackPressureError itself (a text body, the same 503 and Retry-After: it
    # registers its handler on the ingress app after ours); routes raise Overloaded, which keeps ours
    (BackPressureError, 503, "overloaded"),
    (PermissionError, 403, "forbidden"),
    (Conflict, 409, "conflict"),
    (KeyError, 500, "internal_error"),
    (LookupError, 404, "not_found"),
    (FileNotFoundError, 404, "not_found"),  # an OSError: before ConnectionError/TimeoutError (also OSErrors)
    (ValueError, 422, "invalid_value"),
    (asyncpg.PostgresConnectionError, 503, "unavailable"),
    (asyncpg.InterfaceError, 503, "unavailable"),
    (asyncpg.exceptions.TooManyConnectionsError, 503, "unavailable"),
    (ConnectionError, 503, "unavailable"),
    (TimeoutError, 503, "unavailable"),
)


def pydantic_code(kind):
    """``error.code`` of a pydantic error type (pydantic_core's ``ErrorType``).

    Our validators raise their code as the type (``serve_app.schemas.refusal``); pydantic's own types
    map by :data:`PYDANTIC_RULES`, first match of a name or a suffix, the rest ``invalid_value``.
    """
    if kind in validation.ERRORS:
        return kind
    for names, code in PYDANTIC_RULES:
        if kind in names or any(kind.endswith(n) for n in names if n.startswith("_")):
            return code
    return "invalid_value"


#: pydantic error types (names, or suffixes starting with ``_``) -> code; order matters (``date_parsing``
#: is a time before ``_parsing`` is a type).
PYDANTIC_RULES = (
    (("missing", "missing_argument", "missing_keyword_only_argument", "missing_positional_only_argument"),
     "missing_field"),
    (("extra_forbidden", "unexpected_keyword_argument", "unexpected_positional_argument", "no_such_attribute"),
     "unknown_field"),
    (("json_invalid",), "malformed_json"),
    (("finite_number",), "not_finite"),
    (("greater_than", "greater_than_equal", "less_than", "less_than_equal", "multiple_of", "int_parsing_size",
      "decimal_max_digits", "decimal_max_places", "decimal_whole_digits"), "out_of_bounds"),
    (("too_long", "too_short", "bytes_too_long", "bytes_too_short"), "bad_length"),
    (("string_too_long", "string_too_short", "string_pattern_mismatch", "string_not_ascii", "string_unicode"),
     "bad_text"),
    (("literal_error", "enum", "union_tag_invalid", "union_tag_not_found"), "not_one_of"),
    (("timezone_aware", "timezone_naive", "timezone_offset", "datetime_parsing", "datetime_type",
      "datetime_from_date_parsing", "datetime_object_invalid", "datetime_future", "datetime_past", "date_parsing",
      "date_type", "date_from_datetime_parsing", "date_from_datetime_inexact", "date_future", "date_past",
      "time_parsing", "time_type", "time_delta_parsing", "time_delta_type"), "bad_time"),
    (("int_from_float", "json_type", "none_required", "_type", "_parsing", "_invalid_encoding"), "wrong_type"),
)

# no redirect of a path with a trailing slash: Starlette's 307 points at the request's Host header (a redirect to
# wherever a client or a proxy says); such a path is unknown like any other (404, the error body)
app = FastAPI(title=TITLE, description=DESCRIPTION, docs_url=None, redoc_url=None, openapi_url=None,
              redirect_slashes=False)


def head_as_get(app):
    """ASGI middleware: a HEAD request is answered as the GET of its path, without the body (RFC 9110 9.3.2).

    FastAPI routes take only the methods they name (Starlette's own add HEAD to GET);
    this is the one place every GET route also answers HEAD, with the GET's status
    and headers (``Content-Length`` included) and its authentication and scope
    (``read``). The OpenAPI document lists the GET operations only.
    """
    async def asgi(scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "HEAD":
            return await app(scope, receive, send)

        async def headers_only(message):
            await send({**message, "body": b""} if message["type"] == "http.response.body" else message)
        await app({**scope, "method": "GET"}, receive, headers_only)
    return asgi


app.add_middleware(head_as_get)


def ingress():
    """The Ingress deployment instance serving this request (FastAPI dependency).

    The same lookup Ray Serve's class-based views use to inject ``self``.
    """
    return serve.get_replica_context().servable_object


# --- JSON responses -------------------------------------------------------------------------

def to_json(value):
    """JSON bytes; times ISO-8601, NaN as null, numpy scalars and decimals as numbers."""
    def default(obj):
        if isinstance(obj, (datetime.datetime, datetime.date)):
            return pd.Timestamp(obj).isoformat()
        if isinstance(obj, np.generic):
            return clean_nan(obj.item())
        if isinstance(obj, decimal.Decimal):
            return float(obj)
        if isinstance(obj, (uuid.UUID, datetime.timedelta)):
            return str(obj)
        raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
    return json.dumps(clean_nan(value), default=default, separators=(",", ":")).encode()


def clean_nan(value):
    """``value`` with float NaN replaced by None (JSON has no NaN)."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {str(k): clean_nan(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):  # floats inline: a forecast's value lists hold thousands
        return [(None if v != v else v) if type(v) is float else clean_nan(v) for v in value]
    return value


def json_response(value, status=200, headers=None):
    return Response(to_json(value), status_code=status, media_type="application/json", headers=headers)


async def json_response_off_loop(value, status=200, headers=None):
    """A JSON response whose body is serialised in the default executor (large payloads)."""
    body = await asyncio.get_running_loop().run_in_executor(None, to_json, value)
    return Response(body, status_code=status, media_type="application/json", headers=headers)


#: Headers an error status must carry (RFC 9110: 401 names the scheme, 503 when to retry).
ERROR_HEADERS = {401: {"WWW-Authenticate": "Bearer"}, 429: {"Retry-After": str(RETRY_AFTER_SECONDS)},
                 503: {"Retry-After": str(RETRY_AFTER_SECONDS)}}


def error_body(status, field, message, code):
    """``{"error": {"status", "field", "message", "code"}}``: every refusal's body (here and the edge proxy's).

    ``message`` is cut to :data:`MESSAGE_MAX_CHARS`.

    Raises
    ------
    ValueError
        ``code`` is not one of :data:`ERROR_CODES` (a bug: the answer would break its schema).
    """
    if code not in ERROR_CODES:
        raise ValueError(f"error code {code!r} is not one of serve_app.api.ERROR_CODES")
    message = str(message)
    if len(message) > MESSAGE_MAX_CHARS:
        message = message[:MESSAGE_MAX_CHARS - 3] + "..."
    return {"error": {"status": status, "field": field, "message": message, "code": code}}


def error_response(status, field, message, code, task_id=None, retry_after_s=None, headers=None):
    """The error body; ``task_id``: the task the request created (body and header); ``retry_after_s``: a 503's wait.

    ``message`` is cut to :data:`MESSAGE_MAX_CHARS`; ``code``: one of :data:`ERROR_CODES` (every error has
    one: a client branches on it); ``headers``: more headers (a 405's ``Allow``).

    Raises
    ------
    ValueError
        ``code`` is not one of :data:`ERROR_CODES` (a bug: the answer would break its schema).
    """
    body = error_body(status, field, message, code)
    headers = {**ERROR_HEADERS.get(status, {}), **(headers or {})}
    if retry_after_s is not None:
        headers["Retry-After"] = str(math.ceil(retry_after_s))
    error = body["error"]
    if task_id is not None:
        error["task_id"] = task_id
        headers[TASK_HEADER] = task_id
    return json_response(body, status, headers or None)


# --- errors -> statuses ---------------------------------------------------------------------

def status_of(exc):
    """HTTP status of an exception type (:data:`STATUS_OF`), 500 when unlisted."""
    return status_and_code(exc)[0]


def status_and_code(exc):
    """(status, code) of an exception: the type's (:data:`STATUS_OF`; unlisted: 500, ``internal_error``), the
    code replaced by the exception's own ``code`` attribute when it has one (a 4xx only: a 5xx is the type's)."""
    for kind, status, code in STATUS_OF:
        if isinstance(exc, kind):
            own = getattr(exc, "code", None)  # another library's ``code`` attribute is not one of ours
            return status, (own if own in ERROR_CODES and status < 500 else code)
    return 500, "internal_error"


def location_of(loc):
    """pydantic error location -> field path: ``('rows', 3, 'ghi')`` -> ``rows[3].ghi``."""
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "body"


def quote(value):
    """``repr(value)``, cut to :data:`QUOTE_MAX_CHARS` (a rejected body or string may be megabytes)."""
    text = repr(value[:QUOTE_MAX_CHARS] if isinstance(value, (str, bytes)) else value)
    return text if len(text) <= QUOTE_MAX_CHARS else text[:QUOTE_MAX_CHARS - 3] + "..."


def validation_error(errors, request_part=False):
    """(status, field, message, code) of pydantic errors: 400 for JSON that does not parse, else 422.

    The code is the first error's (:func:`pydantic_code` of its ``type``).

    ``request_part``: the locations start with the part of the request (FastAPI's
    parameter errors: ``('query', 'start')``, ``('path', 'location_id')``), left out of the field.
    """
    first = errors[0]
    field = location_of(first.get("loc", ())[1 if request_part else 0:])
    status = 400 if first["type"] == "json_invalid" else 422
    got = f" (got {quote(first['input'])})" if "input" in first and not isinstance(first["input"], (dict, list)) else ""
    more = f"; {len(errors)} errors in all" if len(errors) > 1 else ""
    return status, field, f"{field}: {first['msg']}{got}{more}", pydantic_code(first["type"])


async def on_validation_error(request, exc):
    return error_response(*validation_error(exc.errors(), request_part=True))


#: (field, code) of a routing error raised by Starlette itself (its detail is a bare phrase).
ROUTING_ERRORS = {404: ("path", "unknown_path"), 405: ("method", "method_not_allowed")}


async def on_http_exception(request, exc):
    """Our ``HTTPException(status, (field, message, code))`` and Starlette's own (unknown path 404, method 405)."""
    if isinstance(exc.detail, tuple):
        field, message, code = exc.detail
    else:
        field, code = ROUTING_ERRORS.get(exc.status_code, (None, "internal_error"))
        message = f"{field}: {request.method} {request.url.path}: {exc.detail}"
    return error_response(exc.status_code, field, message, code, headers=getattr(exc, "headers", None))


async def on_error(request, exc):
    """Every exception type of :data:`STATUS_OF`; the field and code are the exception's attributes (code: or its
    type's)."""
    status, code = status_and_code(exc)
    if status >= 500:
        event("request_failed", path=request.url.path, error=repr(exc))
    field = getattr(exc, "field", None)
    task_id = getattr(exc, "task_id", None)  # set by generate: the task exists and is resumed
    if status == 500:
        return error_response(500, None, "internal error (logged)", code, task_id)
    if isinstance(exc, (Overloaded, BackPressureError)):
        return error_response(503, "service", f"service over capacity, request shed: {exc}", code, task_id,
                              getattr(exc, "retry_after_s", None))
    if status == 503:
        return error_response(503, "database", f"service unavailable, retry later: {type(exc).__name__}", code,
                              task_id)
    return error_response(status, field, exc.args[0] if exc.args else exc, code, task_id)


app.add_exception_handler(RequestValidationError, on_validation_error)
app.add_exception_handler(StarletteHTTPException, on_http_exception)  # FastAPI's HTTPException is one
for _kind, _status, _code in STATUS_OF:
    app.add_exception_handler(_kind, on_error)
app.add_exception_handler(Exception, on_error)


def overloaded(exc):
    """:data:`Overloaded` of a Ray Serve ``BackPressureError`` (a downstream queue was full), its Retry-After kept."""
    out = Overloaded(getattr(exc, "message", None) or type(exc).__name__)
    out.retry_after_s = exc.retry_after_s if exc.retry_after_s is not None else RETRY_AFTER_SECONDS
    return out


# --- bodies ---------------------------------------------------------------------------------

def media_type(request):
    """The request's media type, lower case, without parameters (``multipart/form-data``)."""
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def is_json(request):
    kind = media_type(request)
    return kind in JSON_TYPES or kind.endswith("+json")


def tenant_of(request):
    """Tenant id of the request's key (``serve_app.auth.principal`` keeps it on ``request.state``), else None."""
    who = getattr(request.state, "principal", None)
    return None if who is None else who.tenant_id


async def body_chunks(request, limit):
    """The request body as it streams in, within the limits of ``http`` (configs/service.yaml).

    A body still arriving after ``body_slow_after_seconds`` counts against its
    tenant's ``max_slow_bodies_per_tenant`` (the replica's ``Ingress.slow_bodies``; a
    body that arrives at once, the usual case, never does: many concurrent small
    clients of one tenant are not limited by it).

    Messages are taken with the request's ASGI ``receive`` under ``asyncio.timeout``: a
    receive cut by a deadline must lose no message (Ray Serve's replica receive is an
    ``asyncio.Queue.get``, uvicorn's an event wait; tests/api/test_abuse.py sends a body
    that pauses past the slow mark).

    Raises
    ------
    HTTPException
        415 for a body with a content coding (``Content-Encoding`` other than identity: RFC 9110 15.5.16, with
        ``Accept-Encoding: identity``); 413 as soon as more than ``limit`` bytes are declared or arrive; 429 when the
        body turns slow while its tenant already has ``max_slow_bodies_per_tenant`` slow ones;
        408 when the body has not arrived after ``body_grace_seconds`` + bytes received /
        ``body_min_bytes_per_second`` (a stalled or trickling body frees the Ingress' request slot it holds).
    """
    coding = request.headers.get("content-encoding", "").strip().lower()
    if coding not in ("", "identity"):  # never decompressed (no zip bomb), never read as if it were plain
        raise HTTPException(415, ("content-encoding", f"content-encoding: {coding[:40]!r} is not taken; send the body "
                                                      "uncompressed (identity)", "not_json"),
                            headers={"Accept-Encoding": "identity"})
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise HTTPException(413, ("body", f"body too large: {declared} bytes > limit {limit} bytes",
                                  "body_too_large"))
    service = ingress()
    http, slow = service.settings["http"], service.slow_bodies
    tenant, most = tenant_of(request), http["max_slow_bodies_per_tenant"]
    grace, rate = float(http["body_grace_seconds"]), float(http["body_min_bytes_per_second"])
    slow_after = float(http["body_slow_after_seconds"])
    start, size, counted = time.monotonic(), 0, False
    try:
        while True:
            elapsed = time.monotonic() - start
            left = grace + size / rate - elapsed
            if left <= 0:
                raise HTTPException(408, ("body", f"body: not received in time: {size} bytes after {elapsed:.0f} s "
                                                  f"(at least {rate:.0f} bytes/s after {grace:.0f} s)",
                                          "body_timeout"))
            if not counted and elapsed >= slow_after:
                if slow[tenant] >= most:
                    raise HTTPException(429, ("body", f"body: {slow[tenant]} bodies of this tenant have been "
                                                      f"arriving for more than {slow_after:.0f} s; at most {most}",
                                              "too_many_slow_bodies"))
                slow[tenant] += 1
                counted = True
            # the ASGI receive itself under a deadline, no task per chunk (Starlette's request.stream() is a
            # generator that a cancelled read ends): a receive cut by the deadline is issued again
            deadline = asyncio.timeout(left if counted else min(left, slow_after - elapsed))
            try:
                async with deadline:
                    message = await request.receive()
            except TimeoutError:
                if deadline.expired():
                    continue
                raise
            if message["type"] == "http.disconnect":
                raise ClientDisconnect()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise HTTPException(413, ("body", f"body too large: more than {limit} bytes", "body_too_large"))
            if chunk:
                yield chunk
            if not message.get("more_body", False):
                return
    finally:
        if counted:
            slow[tenant] -= 1
            if slow[tenant] <= 0:
                del slow[tenant]


async def read_body(request, limit):
    """The request body, bytes; 415 unless JSON, 413 as soon as more than ``limit`` bytes arrive."""
    if not is_json(request):
        raise HTTPException(415, ("content-type",
                                  f"content-type must be application/json, got {media_type(request)!r}",
                                  "not_json"))
    return b"".join([chunk async for chunk in body_chunks(request, limit)])


def validate_json(adapter, body):
    """``adapter.validate_json(body)``; pydantic errors become (status, field, message, code) data."""
    try:
        return adapter.validate_json(body), None
    except pydantic.ValidationError as exc:
        return None, validation_error(exc.errors(include_url=False))


def query_value(service, schema, name, value):
    """The query parameter ``name`` validated by ``service.adapters[schema]`` (bounds from the settings).

    Raises
    ------
    HTTPException
        422 naming ``name``.
    """
    try:
        return service.adapters[schema].validate_python(value)
    except pydantic.ValidationError as exc:
        status, *detail = validation_error([{**e, "loc": (name, *e["loc"])} for e in exc.errors()])
        raise HTTPException(status, tuple(detail)) from None


async def json_body(request, service, schema):
    """The request body validated by ``service.adapters[schema]`` in the default executor.

    Raises
    ------
    HTTPException
        415, 413, 400 (malformed JSON) or 422 (invalid), with the field.
    """
    body = await read_body(request, service.settings["http"]["max_body_bytes"])
    value, error = await asyncio.get_running_loop().run_in_executor(
        None, validate_json, service.adapters[schema], body)
    if error is not None:
        raise HTTPException(error[0], error[1:])
    return value


# --- OpenAPI --------------------------------------------------------------------------------

def ref(name):
    return {"$ref": f"#/components/schemas/{name}"}


def body_doc(name, others=None):
    """``openapi_extra`` of a route whose JSON body is the schema ``name``.

    ``others``: {media type: schema name} of the other bodies the route takes.
    """
    content = {"application/json": {"schema": ref(name)}}
    content.update({kind: {"schema": ref(other)} for kind, other in (others or {}).items()})
    return {"requestBody": {"required": True, "content": content}}


ERRORS_DOC = {400: "Malformed JSON", 404: "Unknown id", 413: "Body too large", 415: "Not JSON", 422: "Invalid field",
              408: "Body not received in time", 429: "Too many requests of this tenant at once (Retry-After)",
              503: "Database unavailable or service over capacity (Retry-After)"}


def responses_doc(ok, status=200, more=None, media_type="application/json", errors=None, text_types=()):
    """``responses`` of a route: ``ok`` schema (or None for non-JSON) and the error statuses.

    ``more``: {status: schema name} of other successful answers; ``errors``:
    {status: description} added to, or replacing, :data:`ERRORS_DOC`; ``text_types``:
    other media types of the ``ok`` answer, as text (``text/csv`` of ``format=csv``).
    """
    content = {media_type: {"schema": ref(ok)}} if ok else {media_type: {}}
    content.update({kind: {"schema": {"type": "string"}} for kind in text_types})
    out = {status: {"description": "OK" if status == 200 else "Accepted", "content": content}}
    for code, name in (more or {}).items():
        out[code] = {"description": name, "content": {"application/json": {"schema": ref(name)}}}
    for code, why in sorted({**ERRORS_DOC, **(errors or {})}.items()):
        out.setdefault(code, {"description": why, "content": {"application/json": {"schema": ref("Error")}}})
    return out


#: Query parameters whose bounds are settings: name -> the schema of :mod:`serve_app.schemas` that validates them
#: (:func:`query_value`), which the OpenAPI document gives as their schema.
QUERY_SCHEMAS = {"limit": "PageLimit"}


def openapi_document(fastapi_app, schemas, version):
    """The OpenAPI document of ``fastapi_app`` with the component schemas of :mod:`serve_app.schemas`.

    Paths and parameters come from the routes, request and response bodies
    from ``schemas`` (the same types that validate them), and so do the
    parameters of :data:`QUERY_SCHEMAS`.
    """
    doc = get_openapi(title=TITLE, version=version, description=DESCRIPTION, routes=fastapi_app.routes)
    for item in doc.get("paths", {}).values():
        for operation in item.values():
            for parameter in operation.get("parameters", ()):
                if parameter["in"] == "query" and parameter["name"] in QUERY_SCHEMAS:
                    parameter["schema"] = ref(QUERY_SCHEMAS[parameter["name"]])
    keyed, top = pydantic.TypeAdapter.json_schemas(
        [(name, "validation", pydantic.TypeAdapter(kind)) for name, kind in schemas.items()],
        ref_template="#/components/schemas/{model}")
    components = doc.setdefault("components", {}).setdefault("schemas", {})
    components.update(top.get("$defs", {}))
    for (name, _), schema in keyed.items():  # every schema under the name the routes refer to
        if schema.get("$ref") != f"#/components/schemas/{name}":
            components[name] = schema
    return doc

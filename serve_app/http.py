"""JSON responses and the mapping of engine errors to HTTP status codes."""

import datetime
import decimal
import functools
import json
import math
import uuid

import asyncpg
import numpy as np
import pandas as pd
from starlette.responses import Response

from engine.requests import error_field
from serve_app.observability import event


def to_json(value):
    """JSON text; times as ISO-8601, NaN as null, numpy scalars and decimals as numbers."""
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
    return json.dumps(clean_nan(value), default=default, separators=(",", ":"))


def clean_nan(value):
    """``value`` with float NaN replaced by None (JSON has no NaN)."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {str(k): clean_nan(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean_nan(v) for v in value]
    return value


def json_response(value, status=200):
    return Response(to_json(value), status_code=status, media_type="application/json")


def error_response(status, message, field=None):
    """``{"error": {"status", "field", "message"}}`` (the field also leads the message)."""
    return json_response({"error": {"status": status, "field": field or error_field(message),
                                    "message": str(message)}}, status)


def handles_errors(handler):
    """ValueError -> 422 (400 malformed, 413 too large), LookupError -> 404, database down -> 503.

    A ``KeyError`` is a bug, not an unknown id: it propagates (500).
    """
    @functools.wraps(handler)
    async def wrapped(request):
        try:
            return await handler(request)
        except ValueError as exc:
            status = 413 if str(exc).startswith("body too large") else 422
            if str(exc).startswith("body is malformed"):
                status = 400
            return error_response(status, exc, "body" if status in (400, 413) else None)
        except LookupError as exc:
            if isinstance(exc, KeyError):
                raise
            return error_response(404, exc.args[0] if exc.args else exc)
        except (RuntimeError, OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError) as exc:
            event("request_failed", path=request.url.path, error=repr(exc))
            return error_response(503, f"service unavailable: {exc}", "database")
    return wrapped

"""Bulk ingestion of weather and actuals rows as a Ray task (never on the ingress event loop).

A body of up to ``http.max_rows`` rows (tens of MB of JSON) is validated by its
pydantic schema, turned into a columnar frame, checked by
:mod:`engine.validation` against the stored plants and written with the
storage layer's COPY, all inside one Ray task: the ingress replica only streams
the body in and awaits the task, so ``/healthz`` and every other request keep
being answered meanwhile. The task returns its result or its error as data
(``{"rows": n}`` or ``{"error": (status, field, message, code)}``, :func:`error_data`).
"""

import asyncio

import asyncpg
import numpy as np
import pandas as pd
import ray

from engine import store, validation
from serve_app import schemas
from serve_app.api import status_and_code, validate_json

#: kind -> (schema of the body, columns of the frame, time columns, integer columns, writer)
KINDS = {
    "weather": ("WeatherIngest", validation.WEATHER_COLUMNS, ("valid_time", "issue_time"),
                ("location_id", "period_minutes"), store.write_weather),
    "actuals": ("ActualsIngest", validation.ACTUALS_COLUMNS, ("time",), ("location_id", "period_minutes"),
                store.write_actuals),
}
#: kind -> value of a column a row may leave out (absent for the other columns: NULL)
DEFAULTS = {"weather": {}, "actuals": validation.ACTUALS_DEFAULTS}


def rows_frame(rows, columns, times, ints, defaults=None):
    """Validated JSON rows (dicts) as a typed, columnar DataFrame.

    Parameters
    ----------
    rows : list of dict
        Rows already validated by their schema (types and bounds hold).
    columns : sequence of str
        Frame columns; a key absent from a row is NULL (NaN).
    times, ints : sequence of str
        Columns of tz-aware datetimes (-> UTC, us) and of integers (-> int64).
    defaults : dict, optional
        Column -> the value of a row that leaves it out (:data:`DEFAULTS`).

    Returns
    -------
    DataFrame
    """
    out = {}
    defaults = defaults or {}
    for column in columns:
        values = [row.get(column, defaults.get(column)) for row in rows]
        if column in times:
            out[column] = pd.DatetimeIndex(values).tz_convert("UTC").as_unit("us")
        elif column in ints:
            out[column] = np.asarray(values, dtype="int64")
        elif column == "source":
            out[column] = np.asarray(values, dtype=object)
        else:
            out[column] = np.asarray([np.nan if v is None else v for v in values], dtype="float64")
    return pd.DataFrame(out)


async def check_and_write(kind, frame, tenant_id):
    """Validate ``frame`` against ``tenant_id``'s plants and write it (one transaction). Returns rows stored.

    Another tenant's plant is refused like an unknown one (here and again by the writer, in its transaction).
    """
    conn = await asyncpg.connect(store.database_url())
    try:
        plants = await store.fetch_locations(conn, tenant_id=tenant_id)
        known = plants["location_id"].tolist()
        if kind == "weather":
            validation.validate_weather(frame, known)
        else:
            validation.validate_actuals(frame, known, plants.set_index("location_id")["capacity_ac_kw"])
        return await KINDS[kind][4](conn, frame, tenant_id=tenant_id)
    finally:
        await conn.close()


def row_field(exc, name):
    """(field, message) of an ``engine.validation`` error in request terms: ``rows[3].ghi``."""
    field, row = getattr(exc, "field", None), getattr(exc, "row", None)
    if field is None or row is None:
        return field, str(exc)
    return f"{name}[{row}].{field}", f"{name}[{row}].{exc}"


def ingest(kind, body, settings, tenant_id):
    """Validate and store one ingestion body; the result or the error as data.

    Parameters
    ----------
    kind : {'weather', 'actuals'}
    body : bytes
        The request body (JSON).
    settings : dict
        ``configs/service.yaml``.
    tenant_id : str
        The tenant of the request's key: rows of other tenants' plants are refused like unknown ids.

    Returns
    -------
    dict
        ``{"rows": int}`` (actuals: and ``location_ids``, the plants they are of) or
        ``{"error": (status, field, message, code)}``.
    """
    schema, columns, times, ints, _ = KINDS[kind]
    adapter = schemas.adapters({schema: schemas.build(settings)[schema]})[schema]
    value, error = validate_json(adapter, body)
    if error is not None:
        return {"error": error}
    frame = rows_frame(value.rows, columns, times, ints, DEFAULTS[kind])
    try:
        stored = {"rows": asyncio.run(check_and_write(kind, frame, tenant_id))}
        if kind == "actuals":  # the plants whose actuals arrived (the refit policy: Forecaster.actuals_arrived)
            stored["location_ids"] = np.unique(frame["location_id"].to_numpy("int64")).tolist()
        return stored
    except Exception as exc:  # typed: the one table of serve_app.api maps it to a status
        error = error_data(exc, "rows")
        if error is None:
            raise
        return {"error": error}


def error_data(exc, name):
    """(status, field, message, code) of an exception crossing a Ray task boundary; None for a bug (500: re-raise).

    The status and code come from the one table (:func:`serve_app.api.status_and_code`), the
    field from the exception's data (:func:`row_field`, rows of ``name``).
    """
    status, code = status_and_code(exc)
    if status == 500:
        return None
    if status == 503:
        return 503, "database", f"database unavailable, retry later: {type(exc).__name__}", code
    return status, *row_field(exc, name), code


ingest_task = ray.remote(ingest)

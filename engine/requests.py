"""HTTP request bodies (parsed JSON) to validated parameters and frames.

Pure functions used by the Ray Serve ingress: every bad input raises
``ValueError`` whose message starts with the offending field
(``horizon_hours must be ...``, ``rows[3].valid_time ...``), so the HTTP layer
can answer 4xx naming field and reason. Plant configuration, weather and
actuals checks are delegated to :mod:`engine.validation` (one place for them).
"""

import json
import re

import numpy as np
import pandas as pd

from engine.quantiles import QUANTILE_COLUMNS

FIELD_PATTERN = re.compile(r"^([A-Za-z_][\w\.\[\]]*)")


def error_field(message):
    """Field named at the start of an error message (``None`` if none)."""
    match = FIELD_PATTERN.match(str(message))
    return match.group(1) if match else None


def parse_json(body, max_bytes):
    """Decode a request body.

    Parameters
    ----------
    body : bytes
    max_bytes : int
        Largest accepted body, bytes.

    Raises
    ------
    ValueError
        ``body`` too large (message starts ``body too large``) or malformed JSON.
    """
    if len(body) > max_bytes:
        raise ValueError(f"body too large: {len(body)} bytes > limit {max_bytes} bytes")
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"body is malformed JSON: {exc}") from None


def utc_timestamp(value, field):
    """ISO-8601 string with an explicit offset to a UTC Timestamp (naive refused)."""
    if not isinstance(value, str):
        raise ValueError(f"{field} must be an ISO-8601 string with a UTC offset, got {value!r}")
    try:
        ts = pd.Timestamp(value)
    except ValueError:
        raise ValueError(f"{field} {value!r} is not an ISO-8601 time") from None
    if ts.tzinfo is None:
        raise ValueError(f"{field} {value!r} has no UTC offset (naive times are refused)")
    return ts.tz_convert("UTC")


def integer(body, field, low, high, default=None):
    """``body[field]`` as an int in ``[low, high]`` (bools refused)."""
    value = body.get(field, default)
    if value is None:
        raise ValueError(f"{field} is required")
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{field} must be an integer, got {value!r}")
    if not low <= value <= high:
        raise ValueError(f"{field} must be in [{low}, {high}], got {value}")
    return value


def choice(body, field, options, default):
    """``body[field]`` (default ``default``) checked against ``options``."""
    value = body.get(field, default)
    if value not in options:
        raise ValueError(f"{field} must be one of {list(options)}, got {value!r}")
    return value


def location_ids(value, max_locations, field="location_ids"):
    """Unique positive location ids as an int64 array of at most ``max_locations``."""
    if not isinstance(value, list) or not value:
        raise ValueError(f"{field} must be a non-empty list of location ids")
    if len(value) > max_locations:
        raise ValueError(f"{field} has too many locations: {len(value)} > limit {max_locations}")
    bad = [i for i, v in enumerate(value) if isinstance(v, bool) or not isinstance(v, int) or v <= 0]
    if bad:
        raise ValueError(f"{field}[{bad[0]}] must be a positive integer, got {value[bad[0]]!r}")
    ids = np.asarray(value, dtype="int64")
    uniq, counts = np.unique(ids, return_counts=True)
    if (counts > 1).any():
        raise ValueError(f"{field} repeats location id {int(uniq[counts > 1][0])}")
    return ids


def generate_params(body, settings, now):
    """Validated parameters of ``POST /api/v1/forecast/generate``.

    Parameters
    ----------
    body : dict
        Parsed JSON: ``location_ids`` (list of int), ``horizon_hours`` (int, h),
        ``resolution`` ('15min' | '1h'), ``forecast_type`` ('ml' | 'physics'),
        ``quantiles`` (subset of p10..p90), ``issue_time`` (ISO-8601 UTC,
        default ``now``), ``wait`` (bool), ``include_forecast`` (bool).
    settings : dict
        ``forecast`` section of ``configs/service.yaml``.
    now : Timestamp
        UTC; default issue time.

    Returns
    -------
    dict
        JSON-serialisable parameters (``issue_time`` as ISO string) and
        ``location_ids`` as a list of int.
    """
    if not isinstance(body, dict):
        raise ValueError("body must be a JSON object")
    known = {"location_ids", "horizon_hours", "resolution", "forecast_type", "quantiles",
             "issue_time", "wait", "include_forecast"}
    extra = sorted(set(body) - known)
    if extra:
        raise ValueError(f"{extra[0]} is not a known field (known: {sorted(known)})")
    ids = location_ids(body.get("location_ids"), settings["max_locations"])
    horizon = integer(body, "horizon_hours", settings["horizon_hours_min"], settings["horizon_hours_max"],
                      settings["default_horizon_hours"])
    resolution = choice(body, "resolution", list(settings["resolutions"]), settings["default_resolution"])
    ftype = choice(body, "forecast_type", ["ml", "physics"], "ml")
    quantiles = body.get("quantiles", list(QUANTILE_COLUMNS))
    if not isinstance(quantiles, list) or not quantiles or any(q not in QUANTILE_COLUMNS for q in quantiles):
        raise ValueError(f"quantiles must be a non-empty list drawn from {list(QUANTILE_COLUMNS)}, got {quantiles!r}")
    issue = utc_timestamp(body["issue_time"], "issue_time") if "issue_time" in body else pd.Timestamp(now)
    for flag in ("wait", "include_forecast"):
        if not isinstance(body.get(flag, False), bool):
            raise ValueError(f"{flag} must be true or false, got {body[flag]!r}")
    return {"location_ids": ids.tolist(), "horizon_hours": horizon,
            "resolution_minutes": int(settings["resolutions"][resolution]), "forecast_type": ftype,
            "quantiles": [q for q in QUANTILE_COLUMNS if q in quantiles], "issue_time": issue.isoformat(),
            "wait": bool(body.get("wait", False)), "include_forecast": bool(body.get("include_forecast", True))}


def rows_frame(body, field, required, optional, time_columns, max_rows):
    """A list of JSON objects ``body[field]`` as a DataFrame.

    Parameters
    ----------
    body : dict
    field : str
        Key of the row list (``rows``, ``locations``).
    required : sequence of str
        Columns every row must have.
    optional : dict
        Column -> default when absent (``None`` -> NaN).
    time_columns : sequence of str
        Columns parsed as UTC times (explicit offset required).
    max_rows : int

    Raises
    ------
    ValueError
        Naming ``field[i].column``.
    """
    rows = body.get(field) if isinstance(body, dict) else None
    if not isinstance(rows, list) or not rows:
        raise ValueError(f"{field} must be a non-empty list of objects")
    if len(rows) > max_rows:
        raise ValueError(f"{field} has too many rows: {len(rows)} > limit {max_rows}")
    known = set(required) | set(optional)
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise ValueError(f"{field}[{i}] must be an object")
        missing = [c for c in required if c not in row]
        if missing:
            raise ValueError(f"{field}[{i}].{missing[0]} is required")
        extra = sorted(set(row) - known)
        if extra:
            raise ValueError(f"{field}[{i}].{extra[0]} is not a known column (known: {sorted(known)})")
    frame = pd.DataFrame.from_records(rows, columns=list(required) + [c for c in optional if c not in required])
    for column, default in optional.items():
        frame[column] = frame[column].where(frame[column].notna(), np.nan if default is None else default)
    for column in time_columns:
        parsed = [utc_timestamp(v, f"{field}[{i}].{column}") for i, v in enumerate(frame[column])]
        frame[column] = pd.DatetimeIndex(parsed).as_unit("us")
    return frame


def numeric(frame, columns, field):
    """Cast ``columns`` to float64, naming the first non-numeric cell."""
    for column in columns:
        values = pd.to_numeric(frame[column], errors="coerce")
        bad = values.isna() & frame[column].notna()
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise ValueError(f"{field}[{i}].{column} must be a number, got {frame[column].iloc[i]!r}")
        frame[column] = values.astype("float64")
    return frame

"""Checks of the input frames (ARCHITECTURE "Frames") before they reach the database.

Every check is vectorised and raises ``ValueError`` whose message starts with the
column and names the first offending row (0-based position in the frame), e.g.
``ghi: row 3 is negative (-5.0)``; when more rows fail, their count follows.
Nothing is ever coerced: a missing temperature is an error, not 0 degC.
Allowed gaps are explicit: ``dni``/``dhi`` NaN (decompose from ``ghi``),
``cloud_cover`` NaN, ``export_limit_kw`` NaN (no limit).

The bounds below are the ONE definition of what a plant, a weather row and an
actual may hold: these checks use them, and the HTTP schemas
(``serve_app/schemas.py``, hence ``/openapi.json``) are generated from them.
Every raised ``ValueError`` carries the offending column as data in its
``field`` attribute and its stable reason in ``code`` (one of :data:`ERRORS`; the
HTTP layer reports both; nobody parses the message). A plant that cannot be
forecast is data, not an exception: :func:`plant_error` (a code of :data:`PLANT_ERRORS`
and its sentence).
"""

import re
import zoneinfo

import numpy as np
import pandas as pd

from engine.quantiles import QUANTILE_COLUMNS

TRACKING = ("FIXED", "SINGLE_AXIS")
FORECAST_TYPES = ("ml", "physics")
LOCATION_COLUMNS = ("name", "latitude", "longitude", "altitude", "timezone", "capacity_ac_kw", "capacity_dc_kw",
                    "export_limit_kw", "tilt", "azimuth", "tracking", "axis_azimuth", "max_angle", "gcr",
                    "losses_pct", "gamma_pdc", "temp_model_u0", "temp_model_u1", "model_id")
WEATHER_COLUMNS = ("location_id", "valid_time", "issue_time", "source", "ghi", "dni", "dhi", "temp_air",
                   "wind_speed", "cloud_cover", "period_minutes")
#: Weather values a source may lack (NaN/null = not given): dni/dhi are decomposed from ghi, a missing
#: wind_speed is replaced by the constant the model was trained with (configs/training.yaml
#: data.wind_speed_ms) and flagged on the run, cloud_cover is not used by the model.
WEATHER_OPTIONAL = ("dni", "dhi", "wind_speed", "cloud_cover")
ACTUALS_COLUMNS = ("location_id", "time", "power_kw", "period_minutes")
#: Actuals columns a client may leave out, with the value they then take: ``period_minutes`` 0 is an
#: instantaneous sample; N > 0 the mean of the N minutes ending at ``time`` (as weather rows).
ACTUALS_DEFAULTS = {"period_minutes": 0}
FORECAST_COLUMNS = ("location_id", "valid_time", *QUANTILE_COLUMNS, "horizon_minutes")
RUN_COLUMNS = ("location_id", "issue_time", "model_id", "model_version", "forecast_type", "resolution_minutes",
               "horizon_hours", "task_id", "timings")
#: Planes frame (ARCHITECTURE "planes"): one row per plane of a location given with explicit planes;
#: keyed by the location's ``name`` on writes and by ``location_id`` on reads.
PLANE_COLUMNS = ("plane", "tilt", "azimuth", "capacity_dc_kw", "tracking", "axis_azimuth", "max_angle", "gcr",
                 "backtrack", "losses_pct", "gamma_pdc", "temp_model_u0", "temp_model_u1")
#: Plane columns that may be NaN: the plane then uses its location's value.
PLANE_INHERITED = ("losses_pct", "gamma_pdc", "temp_model_u0", "temp_model_u1")
#: Horizon frame (ARCHITECTURE "horizon"): one row per profile point, keyed like the planes frame.
HORIZON_COLUMNS = ("azimuth", "elevation")
MAX_PLANES = 8  # planes per location (east/west + carport + ... ; bounds the feature batch memory)
MAX_HORIZON_POINTS = 720  # profile points per location (0.5 deg spacing all around)
MAX_IRRADIANCE = 2000.0  # W/m^2: above ~1.5 x the solar constant no measurement or model is plausible
TEMP_AIR_RANGE = (-90.0, 70.0)  # degC, beyond the recorded extremes on Earth (catches kelvin input)
MAX_CAPACITY_KW = 1.0e7  # 10 GW: above the largest plant on Earth (catches W entered as kW)

#: Database ids (bigint identity columns): 1 .. 2**63 - 1.
ID_BOUNDS = {"ge": 1, "le": 2**63 - 1}
#: Calibration versions (plant_calibrations.version, an integer column): 1 .. 2**31 - 1.
VERSION_BOUNDS = {"ge": 1, "le": 2**31 - 1}

#: Physical bounds of every numeric plant parameter, as pydantic/JSON-schema keywords (ge, gt, le,
#: lt) with the unit. u0 > 0 keeps the Faiman cell temperature finite (u0 = u1 = 0 divides by 0).
LOCATION_BOUNDS = {
    "latitude": {"ge": -90.0, "le": 90.0, "unit": "deg"},
    "longitude": {"ge": -180.0, "le": 180.0, "unit": "deg"},
    "altitude": {"ge": -500.0, "le": 9000.0, "unit": "m"},
    "capacity_ac_kw": {"gt": 0.0, "le": MAX_CAPACITY_KW, "unit": "kW"},
    "capacity_dc_kw": {"gt": 0.0, "le": MAX_CAPACITY_KW, "unit": "kW"},
    "export_limit_kw": {"gt": 0.0, "le": MAX_CAPACITY_KW, "unit": "kW"},
    "tilt": {"ge": 0.0, "le": 90.0, "unit": "deg"},
    "azimuth": {"ge": 0.0, "lt": 360.0, "unit": "deg"},
    "axis_azimuth": {"ge": 0.0, "lt": 360.0, "unit": "deg"},
    "max_angle": {"gt": 0.0, "le": 90.0, "unit": "deg"},
    "gcr": {"gt": 0.0, "lt": 1.0, "unit": ""},
    "losses_pct": {"ge": 0.0, "lt": 100.0, "unit": "%"},
    "gamma_pdc": {"ge": -0.02, "le": 0.0, "unit": "1/degC"},
    "temp_model_u0": {"gt": 0.0, "le": 100.0, "unit": "W/m^2/K"},
    "temp_model_u1": {"ge": 0.0, "le": 50.0, "unit": "W s/m^3/K"},
}

#: Bounds of a plane's numbers (planes frame): the location's bounds of the same parameters, one definition.
PLANE_BOUNDS = {"plane": {"ge": 0, "lt": MAX_PLANES, "unit": ""},
                **{c: LOCATION_BOUNDS[c] for c in ("tilt", "azimuth", "capacity_dc_kw", "axis_azimuth", "max_angle",
                                                   "gcr", *PLANE_INHERITED)}}
#: Bounds of a horizon profile point: azimuth clockwise from north (360 is 0), skyline elevation.
HORIZON_BOUNDS = {"azimuth": {"ge": 0.0, "lt": 360.0, "unit": "deg"},
                  "elevation": {"ge": 0.0, "lt": 90.0, "unit": "deg"}}

#: capacity_dc_kw / capacity_ac_kw of a real plant (DC/AC ratio; outside it a unit mix-up is likelier).
DC_AC_RATIO = (0.5, 3.0)

#: Bounds of the weather values (pvlib names).
WEATHER_BOUNDS = {
    "ghi": {"ge": 0.0, "le": MAX_IRRADIANCE, "unit": "W/m^2"},
    "dni": {"ge": 0.0, "le": MAX_IRRADIANCE, "unit": "W/m^2"},
    "dhi": {"ge": 0.0, "le": MAX_IRRADIANCE, "unit": "W/m^2"},
    "temp_air": {"ge": TEMP_AIR_RANGE[0], "le": TEMP_AIR_RANGE[1], "unit": "degC"},
    "wind_speed": {"ge": 0.0, "le": 100.0, "unit": "m/s"},
    "cloud_cover": {"ge": 0.0, "le": 100.0, "unit": "%"},
    "period_minutes": {"ge": 0, "le": 1440, "unit": "min"},
}

#: Measured AC power as a fraction of the plant's capacity_ac_kw: small negative values are the
#: inverters' night consumption; up to 25 % above nameplate covers meter error and overload ratings.
ACTUALS_FRACTION_OF_AC = (-0.1, 1.25)
#: Absolute bound of power_kw before the plant is known (the largest capacity, both signs).
POWER_BOUNDS = {"ge": -MAX_CAPACITY_KW, "le": MAX_CAPACITY_KW, "unit": "kW"}

#: Accepted instants (UTC), [start, end).
TIME_RANGE = ("1900-01-01T00:00:00+00:00", "2200-01-01T00:00:00+00:00")
TIME_BOUNDS = tuple(np.datetime64(pd.Timestamp(t).tz_convert(None), "us") for t in TIME_RANGE)  # UTC, numpy

#: Longest text of each text column; control characters (C0, DEL) are refused in all of them.
TEXT_LENGTH = {"name": 200, "timezone": 64, "source": 64, "model_id": 64, "tracking": 16}
CONTROL_CHARACTERS = "[\x00-\x1f\x7f]"
CONTROL_PATTERN = re.compile(CONTROL_CHARACTERS)


#: Stable machine-readable ``error.code`` of every refusal the service answers -> its meaning: the ONE
#: definition (a calibration's refusal codes are ``engine.tuning.REFUSALS``). The errors of this module carry
#: theirs as data (:func:`field_error`'s ``code``); ``serve_app.api`` gives the others (an exception type's
#: default, a pydantic error type's code, the body reader's and the router's), ``serve_app.schemas`` makes the
#: OpenAPI enum of ``error.code`` from it and docs/api.md "Error codes" lists it (tests/api/test_error_codes.py).
#: A client branches on the code, never on the message.
ERRORS = {
    # a field's value (422)
    "missing_field": "a required field (JSON) or column (frame) is absent",
    "unknown_field": "a field the schema does not have (a typo, a field of another endpoint)",
    "wrong_type": "a value of another JSON type than the schema's: a string or bool for a number, a fraction "
                  "for an integer, null for a required value, an object for a list",
    "not_finite": "a number that is NaN, infinite or missing where a finite number is required",
    "out_of_bounds": "a number outside its physical bounds (docs/api.md, engine.validation: e.g. W sent as kW for "
                     "a capacity, kelvin for temp_air, a DC/AC ratio outside 0.5..3)",
    "above_capacity": "measured power above 1.25 x the plant's capacity_ac_kw (W sent as kW, another plant's "
                      "actuals, a wrong capacity)",
    "bad_time": "a time that is not an ISO-8601 instant with a UTC offset (naive, unparseable), outside "
                "1900..2200, or in the future where past data is required",
    "bad_text": "a text empty, too long or holding control characters",
    "not_one_of": "a value not among the accepted ones (tracking, forecast_type, resolution, source, an IANA time "
                  "zone, a loaded model id)",
    "duplicate": "a repeated key: rows of the same (location, time), a repeated name, id or horizon azimuth",
    "unsorted": "horizon azimuths not in increasing order",
    "bad_length": "a list with too few or too many items (rows, planes, horizon points, location_ids, files)",
    "window_too_large": "a time window longer than its maximum (http.accuracy_max_days for /accuracy): ask for "
                        "shorter ones",
    "invalid_value": "any other invalid value; the message says which and why",
    # the request itself
    "malformed_json": "the body is not well-formed JSON (400)",
    "malformed_multipart": "the multipart/form-data body does not parse, or its content type has no boundary (400)",
    "not_json": "a content type the route does not take, or a content coding (a gzip or deflate body: send it "
                "uncompressed) (415)",
    "body_too_large": "the body (or upload, or its form fields, or number of files) is over its limit (413)",
    "body_timeout": "the body did not arrive in time (408)",
    "too_many_slow_bodies": "too many bodies of this tenant still arriving at once (429, Retry-After)",
    "too_many_requests": "more than http.max_ongoing_per_tenant requests of this tenant in flight at once in one "
                         "Ingress replica (429, Retry-After)",
    "task_limit": "the tenant has tasks.max_unfinished_per_tenant asynchronous forecast tasks (wait=false) queued "
                  "or running (429, Retry-After)",
    "rate_limited": "more requests of this API key or client address per second than the edge proxy allows "
                    "(configs/service.yaml edge; 429, Retry-After)",
    "too_many_connections": "more requests of this API key or client address in progress at once than the edge "
                            "proxy allows (429, Retry-After)",
    "malformed_request": "the request line or headers are malformed or too large (400, the edge proxy)",
    "unknown_path": "no route has this path (404)",
    "method_not_allowed": "the route does not take this method (405, Allow)",
    # who asks
    "unauthenticated": "no API key, or a malformed, unknown or revoked one (401)",
    "forbidden": "the key lacks the scope, or a path is outside nwp.import_dir (403)",
    # what is asked for
    "unknown_location": "a location id that is not one of the tenant's plants (404)",
    "unknown_task": "a task id that is not one of the tenant's tasks (404)",
    "not_found": "nothing stored matches: no such file, run, calibration version or forecast with actuals (404)",
    "conflict": "conflicts with work in progress (a fit of the plant running): retry once it ended (409)",
    "location_limit": "a write would give the tenant more than http.max_locations_per_tenant plants (409)",
    # the service
    "overloaded": "over capacity, the request was shed: retry after Retry-After (503)",
    "unavailable": "the database is unreachable: retry after Retry-After (503)",
    "service_unavailable": "the service behind the edge proxy does not answer (503, Retry-After)",
    "internal_error": "a bug (500, logged)",
}


#: Stable ``code`` of every reason a plant of a forecast has no run (``errors`` of a generate answer, of a task and
#: its stored errors, key ``task`` of a task's errors too) -> its meaning and whether retrying the same request can
#: help: the ONE definition. The producer that finds a problem gives its code with its sentence
#: (:func:`plant_error`); ``serve_app.schemas`` makes the OpenAPI enum of the per-plant ``code`` from it and
#: docs/api.md "Per-plant error codes" lists it (tests/api/test_error_codes.py). A client branches on the code.
PLANT_ERRORS = {
    # the plant's weather (engine.resample.weather_problems)
    "no_weather": {"meaning": "no weather of the plant issued at or before the issue time for the forecast window",
                   "retry": "after sending the plant's weather (POST /api/v1/weather, an NWP import)"},
    "weather_not_finite": {"meaning": "a required weather value (ghi, temp_air, wind_speed, period_minutes) is not "
                                      "finite at a valid time",
                           "retry": "after sending weather that replaces the rows at fault"},
    "duplicate_weather": {"meaning": "two weather rows of the plant have the same valid time",
                          "retry": "after sending weather that replaces the rows at fault"},
    "weather_short": {"meaning": "the weather starts after the first forecast time or ends before the last",
                      "retry": "after sending weather covering the forecast times (or with a shorter horizon)"},
    "weather_gap": {"meaning": "the weather has a gap longer than engine.resample.MAX_GAP_MINUTES with forecast "
                                "times inside it",
                    "retry": "after sending the missing weather rows"},
    # the plant's model (engine.forecast.forecast_batch)
    "model_not_loaded": {"meaning": "the plant's model_id is not a model the service has loaded (a plant stored "
                                    "while another service's models were loaded)",
                         "retry": "no: give the plant a loaded model_id (or the operator loads the model)"},
    "physics_not_finite": {"meaning": "the physical model gives non-finite power for the plant's parameters",
                           "retry": "no: correct the plant's parameters"},
    # the service (serve_app/tasks.py, serve_app/leases.py, serve_app/ingress.py)
    "batch_failed": {"meaning": "the plant's batch failed whole in every attempt of the task (the writer lost the "
                                "database, a Forecaster replica died)",
                     "retry": "yes"},
    "overloaded": {"meaning": "the plant's batch was shed: the Forecaster's queue was full",
                   "retry": "yes, after the answer's Retry-After"},
    "unavailable": {"meaning": "the database failed the task's pass: every plant left without a run has it",
                    "retry": "yes, once the database answers (a 503 says when)"},
    "interrupted": {"meaning": "the task's owner stopped working on it (key task: its replica ended, an error); a "
                               "live replica resumes it",
                    "retry": "not needed: the task is resumed (poll it)"},
    "gave_up": {"meaning": "the task was resumed more than tasks.max_attempts times and ended (key task)",
                "retry": "yes, as a new request"},
    "no_run_stored": {"meaning": "the task ended without a stored run of the plant and without another reason",
                      "retry": "yes"},
    # stored before codes existed (engine/sql/0015_task_error_codes.sql)
    "legacy": {"meaning": "a reason stored before per-plant codes existed: only its sentence is known",
               "retry": "unknown: read the message"},
}


def plant_error(code, message):
    """A plant's error as data: ``{"code": code, "message": message}``, ``code`` one of :data:`PLANT_ERRORS`.

    Raises
    ------
    ValueError
        ``code`` is not one of :data:`PLANT_ERRORS` (a bug: the answer would break its schema).
    """
    if code not in PLANT_ERRORS:
        raise ValueError(f"code: {code!r} is not one of engine.validation.PLANT_ERRORS")
    return {"code": code, "message": message}


def field_error(field, message, kind=ValueError, row=None, code=None):
    """An exception of type ``kind`` whose message starts with ``field``.

    The field (and the 0-based ``row`` of the frame, when one is at fault) and
    the ``code`` (one of :data:`ERRORS`; None: the type's, ``serve_app.api.STATUS_OF``)
    are also attributes of the exception: data for the caller, no parsing.
    """
    if code is not None and code not in ERRORS:
        raise ValueError(f"code: {code!r} is not one of engine.validation.ERRORS")
    exc = kind(f"{field}: {message}")
    exc.field = field
    exc.row = row
    exc.code = code
    return exc


def reject(column, bad, reason, values, code):
    """Raise ``ValueError`` with ``code`` (:data:`ERRORS`) naming ``column`` and the first row where ``bad`` is true."""
    rows = np.flatnonzero(np.asarray(bad, dtype=bool))
    if rows.size:
        i = int(rows[0])
        value = values.iloc[i] if isinstance(values, pd.Series) else values[i]
        value = value.item() if isinstance(value, np.generic) else value
        more = f"; {rows.size} rows in all" if rows.size > 1 else ""
        exc = field_error(column, f"row {i} {reason} ({value!r}){more}", row=i, code=code)
        exc.reason = f"{reason} ({value!r}){more}"  # without the frame row: for callers naming the field otherwise
        raise exc


def require_columns(df, columns, frame):
    """Every column of ``columns`` is present in ``df``."""
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise field_error(missing[0], f"column is missing from the {frame} frame (required: {list(columns)})",
                          code="missing_field")


def numbers(df, column, allow_nan=False):
    """``df[column]`` as float64, refusing non-numeric dtypes, inf and (unless allowed) NaN."""
    series = df[column]
    if not pd.api.types.is_numeric_dtype(series.dtype) or pd.api.types.is_bool_dtype(series.dtype):
        cells = series.to_numpy(dtype=object)
        bad = np.fromiter((isinstance(v, bool) or not (isinstance(v, (int, float, np.number)) or v is None)
                           for v in cells), bool, len(cells))
        reject(column, bad, "must be a number", cells, "wrong_type")
    values = series.to_numpy(dtype="float64", na_value=np.nan)
    reject(column, np.isinf(values), "is infinite", values, "not_finite")
    if not allow_nan:
        reject(column, np.isnan(values), "is missing (NaN); missing values are refused, never filled", values,
               "not_finite")
    return values


def integers(df, column):
    """``df[column]`` as int64; it must have an integer dtype (no NaN possible)."""
    series = df[column]
    if not pd.api.types.is_integer_dtype(series.dtype) or pd.api.types.is_bool_dtype(series.dtype):
        nan = series.isna().to_numpy()
        reject(column, nan, "is missing", series, "not_finite")
        raise field_error(column, f"must be integers, got dtype {series.dtype}", code="wrong_type")
    return series.to_numpy(dtype="int64")


def bounded(column, values, bounds):
    """Refuse values outside ``bounds`` (keys ``ge``/``gt``/``le``/``lt``, ``unit``); NaN passes."""
    unit = f" {bounds['unit']}" if bounds.get("unit") else ""
    low = ("[", bounds["ge"]) if "ge" in bounds else ("(", bounds.get("gt", -np.inf))
    high = ("]", bounds["le"]) if "le" in bounds else (")", bounds.get("lt", np.inf))
    with np.errstate(invalid="ignore"):
        bad = (values < low[1]) if low[0] == "[" else (values <= low[1])
        bad |= (values > high[1]) if high[0] == "]" else (values >= high[1])
    reject(column, bad, f"is out of range {low[0]}{low[1]:g}, {high[1]:g}{high[0]}{unit}", values, "out_of_bounds")


def utc_micros(df, column):
    """Microseconds since the Unix epoch of a column of tz-aware timestamps.

    Naive timestamps (no UTC offset) and NaT are refused; aware ones of any
    zone are exact instants and are converted to UTC.
    """
    series = df[column]
    if isinstance(series.dtype, pd.DatetimeTZDtype):
        index = pd.DatetimeIndex(series)
    elif pd.api.types.is_datetime64_dtype(series.dtype):
        reject(column, np.ones(len(series), bool), "is naive (no UTC offset); timestamps must be tz-aware UTC",
               series, "bad_time")
        return np.empty(0, "int64")
    else:
        values = series.to_numpy()
        naive = np.fromiter((getattr(v, "tzinfo", None) is None for v in values), bool, len(values))
        reject(column, naive, "is naive or not a timestamp; timestamps must be tz-aware UTC", values, "bad_time")
        index = pd.DatetimeIndex(pd.to_datetime(values, utc=True))
    reject(column, index.isna(), "is missing (NaT)", series, "bad_time")
    instants = index.asi8.view(f"datetime64[{index.unit}]")  # UTC, the index's unit: compared exactly, no Timestamp
    reject(column, (instants < TIME_BOUNDS[0]) | (instants >= TIME_BOUNDS[1]),
           f"is outside [{TIME_RANGE[0]}, {TIME_RANGE[1]})", series, "bad_time")
    return index.as_unit("us").asi8


def labels(df, column, allowed=None):
    """Non-empty strings without control characters, at most ``TEXT_LENGTH`` long (optionally one of ``allowed``).

    Checked on the distinct values (a weather frame has a handful of sources in many rows), each by Python's
    own ``str`` methods (what pandas' ``.str`` accessor runs per value of an object column, without building
    a Series per check: a runs frame of one plant is checked in microseconds).
    """
    values = df[column].to_numpy(dtype=object)
    inverse, distinct = pd.factorize(pd.Series(values, dtype=object), use_na_sentinel=False)
    text = [v if isinstance(v, str) else "" for v in distinct]
    blank = np.array([not isinstance(v, str) or not v.strip() for v in distinct], dtype=bool)
    reject(column, blank[inverse], "must be a non-empty string", values, "bad_text")
    control = np.array([CONTROL_PATTERN.search(t) is not None for t in text], dtype=bool)
    reject(column, control[inverse], "holds a control character", values, "bad_text")
    longest = TEXT_LENGTH.get(column, 200)
    reject(column, np.array([len(t) > longest for t in text], dtype=bool)[inverse],
           f"is longer than {longest} characters", values, "bad_text")
    if allowed is not None:
        names = set(allowed)
        reject(column, np.array([str(v) not in names for v in distinct], dtype=bool)[inverse],
               f"must be one of {list(allowed)}", values, "not_one_of")
    return values


def known(column, ids, known_ids):
    """Refuse location ids that are not in ``known_ids`` (``LookupError``: an unknown id is a 404)."""
    bad = ~np.isin(ids, np.fromiter(known_ids, "int64"))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise field_error(column, f"row {i} is not a known location ({int(ids[i])}); {int(bad.sum())} rows in all",
                          LookupError, row=i, code="unknown_location")


def unique_keys(column, keys, key_names, values):
    """Refuse a repeated key; ``keys`` maps key names to equal-length arrays.

    One key array that is unique (the usual case) is recognised by a hash of it (``Index.is_unique``:
    a fraction of the frame's ``duplicated``); a repeat, or several key arrays, by the frame's rows.
    """
    if len(keys) == 1 and pd.Index(np.asarray(next(iter(keys.values())))).is_unique:
        return
    frame = pd.DataFrame(keys)
    dup = frame.duplicated(keep="first").to_numpy()
    if dup.any():
        i = int(np.flatnonzero(dup)[0])
        first = int(np.flatnonzero((frame == frame.iloc[i]).all(axis=1).to_numpy())[0])
        reject(column, dup, f"repeats the key ({', '.join(key_names)}) of row {first}", values, "duplicate")


def validate_locations(df, model_ids=None, time_zones=None):
    """Check a locations frame (ARCHITECTURE "locations"); ``location_id`` is optional.

    Parameters
    ----------
    df : DataFrame
    model_ids : collection of str, optional
        Model ids the service can forecast with; ``model_id`` must be one of
        them when given.
    time_zones : collection of str, optional
        Time zones the service's database knows (``engine.store.time_zones``);
        ``timezone`` must also be one of them when given: PostgreSQL may lack
        aliases Python knows (Debian's tzdata-legacy: ``US/Eastern``,
        ``Asia/Calcutta``), and a plant stored with one failed every query in
        its local time (its energy read, the refit check of every plant
        checked with it).

    Raises
    ------
    ValueError
        Column and row of the first problem: missing column or value, NaN/inf,
        a value outside :data:`LOCATION_BOUNDS` (export limit NaN = none),
        DC/AC ratio outside :data:`DC_AC_RATIO`, unknown tracking, unknown IANA
        timezone (or one the database does not know), unknown model id,
        repeated name, text too long or holding control characters.
    """
    require_columns(df, LOCATION_COLUMNS, "locations")
    names = labels(df, "name")
    values = {c: numbers(df, c, allow_nan=c == "export_limit_kw") for c in LOCATION_BOUNDS}
    for column, bounds in LOCATION_BOUNDS.items():
        bounded(column, values[column], bounds)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = values["capacity_dc_kw"] / values["capacity_ac_kw"]
    bounded("capacity_dc_kw", ratio, {"ge": DC_AC_RATIO[0], "le": DC_AC_RATIO[1], "unit": "x capacity_ac_kw"})
    labels(df, "tracking", TRACKING)
    zones = labels(df, "timezone")
    bad_zones = {z for z in set(zones) if z not in zoneinfo.available_timezones()}
    reject("timezone", np.isin(zones.astype(str), list(bad_zones)), "is not an IANA time zone", zones, "not_one_of")
    if time_zones is not None:
        alias = {z for z in set(zones) if z not in time_zones}
        reject("timezone", np.isin(zones.astype(str), list(alias)), "is not a time zone of the database (an alias? "
               "give its canonical IANA name: America/New_York for US/Eastern)", zones, "not_one_of")
    labels(df, "model_id", None if model_ids is None else sorted(model_ids))
    unique_keys("name", {"name": names}, ("name",), names)


def validate_weather(df, known_ids):
    """Check a weather frame (ARCHITECTURE "weather").

    Parameters
    ----------
    df : DataFrame
    known_ids : iterable of int or None
        Location ids that exist; None skips that check (the database's
        foreign key still refuses unknown ids).

    Raises
    ------
    ValueError
        NaN/inf (NaN allowed in :data:`WEATHER_OPTIONAL`), a value outside
        :data:`WEATHER_BOUNDS`, naive, missing or out-of-range timestamp, empty
        source, repeated (location_id, valid_time, issue_time, source).
    LookupError
        Unknown location.
    """
    require_columns(df, WEATHER_COLUMNS, "weather")
    ids = integers(df, "location_id")
    if known_ids is not None:
        known("location_id", ids, known_ids)
    valid = utc_micros(df, "valid_time")
    issue = utc_micros(df, "issue_time")
    source = labels(df, "source")
    for column, bounds in WEATHER_BOUNDS.items():
        values = (integers(df, column) if column == "period_minutes"
                  else numbers(df, column, allow_nan=column in WEATHER_OPTIONAL))
        bounded(column, values, bounds)
    keys = {"location_id": ids, "valid_time": valid, "issue_time": issue, "source": source}
    unique_keys("valid_time", keys, tuple(keys), df["valid_time"])


def validate_actuals(df, known_ids, capacity_ac_kw=None):
    """Check an actuals frame: known location, tz-aware ``time``, physical ``power_kw``, unique key.

    Parameters
    ----------
    df : DataFrame
        Columns ``location_id``, ``time`` (UTC, end of the period), ``power_kw`` (kW),
        ``period_minutes`` (int, :data:`WEATHER_BOUNDS`; absent: :data:`ACTUALS_DEFAULTS`).
    known_ids : iterable of int or None
        As in :func:`validate_weather`.
    capacity_ac_kw : Series, optional
        AC capacity (kW) indexed by location_id; when given, ``power_kw`` must
        lie within :data:`ACTUALS_FRACTION_OF_AC` of the row's plant capacity.

    Raises
    ------
    ValueError
        NaN/inf or out-of-range power (code ``above_capacity`` above the plant's bound), naive or
        missing time, repeated key.
    LookupError
        Unknown location.
    """
    require_columns(df, [c for c in ACTUALS_COLUMNS if c not in ACTUALS_DEFAULTS], "actuals")
    if "period_minutes" in df:
        bounded("period_minutes", integers(df, "period_minutes"), WEATHER_BOUNDS["period_minutes"])
    ids = integers(df, "location_id")
    if known_ids is not None:
        known("location_id", ids, known_ids)
    time = utc_micros(df, "time")
    power = numbers(df, "power_kw")
    bounded("power_kw", power, POWER_BOUNDS)
    if capacity_ac_kw is not None:
        cap = capacity_ac_kw.reindex(ids).to_numpy(dtype=float)
        low, high = ACTUALS_FRACTION_OF_AC
        outside = f"is outside [{low:g}, {high:g}] x the plant's capacity_ac_kw"
        with np.errstate(invalid="ignore"):
            reject("power_kw", power > high * cap, outside, power, "above_capacity")  # W as kW, another plant's
            reject("power_kw", power < low * cap, outside, power, "out_of_bounds")
    unique_keys("time", {"location_id": ids, "time": time}, ("location_id", "time"), df["time"])


def validate_forecast(runs, forecast):
    """Check a forecast write: one run row per location, finite non-crossing quantiles.

    Parameters
    ----------
    runs : DataFrame
        ARCHITECTURE "runs", one row per location.
    forecast : DataFrame
        ARCHITECTURE "forecast" (kW).

    Returns
    -------
    valid_us : ndarray of int64
        ``forecast.valid_time`` as microseconds since the epoch (UTC), for the writer.

    Raises
    ------
    ValueError
        Missing column, NaN/inf, negative or crossing quantiles
        (p10 <= p25 <= p50 <= p75 <= p90), naive timestamps, repeated
        (location_id, valid_time), forecast rows without a run row, run rows
        without forecast rows, repeated run location, unknown forecast type,
        non-positive resolution or horizon.
    """
    require_columns(runs, RUN_COLUMNS, "runs")
    require_columns(forecast, FORECAST_COLUMNS, "forecast")
    run_ids = integers(runs, "location_id")
    unique_keys("location_id", {"location_id": run_ids}, ("location_id",), run_ids)
    utc_micros(runs, "issue_time")
    labels(runs, "model_id")
    labels(runs, "model_version")
    labels(runs, "forecast_type", FORECAST_TYPES)
    for column in ("resolution_minutes", "horizon_hours"):
        values = integers(runs, column)
        reject(column, values <= 0, "must be > 0", values, "out_of_bounds")
    ids = integers(forecast, "location_id")
    reject("location_id", ~np.isin(ids, run_ids), "has forecast rows but no run row", ids, "invalid_value")
    reject("location_id", ~np.isin(run_ids, ids), "has a run row but no forecast rows", run_ids, "invalid_value")
    valid = utc_micros(forecast, "valid_time")
    q = np.column_stack([numbers(forecast, c) for c in QUANTILE_COLUMNS])
    reject(QUANTILE_COLUMNS[0], q[:, 0] < 0, "is negative", q[:, 0], "out_of_bounds")
    for k in range(1, len(QUANTILE_COLUMNS)):
        reject(QUANTILE_COLUMNS[k], q[:, k] < q[:, k - 1], f"is below {QUANTILE_COLUMNS[k - 1]} (quantiles cross)",
               q[:, k], "invalid_value")
    horizon = integers(forecast, "horizon_minutes")
    reject("horizon_minutes", horizon < 0, "is negative", horizon, "out_of_bounds")
    # one int64 key per row (location ids < 2**31, whole minutes since 1970 < 2**32) hashes fast
    whole_minutes = (valid % 60_000_000 == 0).all()
    keys = ({"location_id * 2**32 + minute": ids * (1 << 32) + valid // 60_000_000} if whole_minutes
            else {"location_id": ids, "valid_time": valid})
    unique_keys("valid_time", keys, ("location_id", "valid_time"), forecast["valid_time"])
    return valid


def location_keys(df, key, frame):
    """Key column ``<frame>.<key>`` of a prefixed planes/horizon frame: names (str) or location ids (int)."""
    if key not in ("name", "location_id"):
        raise ValueError(f"key must be 'name' or 'location_id', got {key!r}")
    column = f"{frame}.{key}"
    require_columns(df, (column,), frame)
    return labels(df, column) if key == "name" else integers(df, column)


def booleans(df, column):
    """``df[column]`` as bool; every cell must be a bool (no 0/1, no strings, no NaN)."""
    values = df[column].to_numpy(dtype=object)
    bad = np.fromiter((not isinstance(v, (bool, np.bool_)) for v in values), bool, len(values))
    reject(column, bad, "must be true or false", values, "wrong_type")
    return values.astype(bool)


def group_rank(keys):
    """0-based position of every row among the rows of its key, in frame order."""
    return pd.Series(np.zeros(len(keys))).groupby(pd.factorize(keys)[0]).cumcount().to_numpy()


def validate_planes(df, key="name"):
    """Check a planes frame (ARCHITECTURE "planes"); messages name ``planes.<column>`` and the frame row.

    Parameters
    ----------
    df : DataFrame
        :data:`PLANE_COLUMNS` plus the key column.
    key : {'name', 'location_id'}
        Column naming each plane's location.

    Raises
    ------
    ValueError
        Missing column or value, NaN/inf (NaN allowed in :data:`PLANE_INHERITED`),
        more than :data:`MAX_PLANES` planes for one location, a plane index
        repeated for a location, a value outside :data:`PLANE_BOUNDS` (the
        location's bounds of the same parameter), unknown tracking, backtrack
        not a bool.
    """
    require_columns(df, PLANE_COLUMNS, "planes")
    planes = df.rename(columns=lambda c: f"planes.{c}")
    keys = location_keys(planes, key, "planes")
    reject(f"planes.{key}", group_rank(keys) >= MAX_PLANES,
           f"has more than {MAX_PLANES} planes (at most {MAX_PLANES} per location)", keys, "bad_length")
    plane = integers(planes, "planes.plane")
    unique_keys("planes.plane", {key: keys, "plane": plane}, (key, "plane"), plane)
    for column, bounds in PLANE_BOUNDS.items():
        values = plane if column == "plane" else numbers(planes, f"planes.{column}",
                                                         allow_nan=column in PLANE_INHERITED)
        bounded(f"planes.{column}", values, bounds)
    labels(planes, "planes.tracking", TRACKING)
    booleans(planes, "planes.backtrack")


def validate_horizon(df, key="name"):
    """Check a horizon frame (ARCHITECTURE "horizon"): each location's profile is a function of azimuth.

    Parameters
    ----------
    df : DataFrame
        ``azimuth`` (deg, 0 = north, clockwise), ``elevation`` (deg) within
        :data:`HORIZON_BOUNDS`, and the key column; the rows of one location
        in increasing azimuth.
    key : {'name', 'location_id'}

    Raises
    ------
    ValueError
        ``horizon.<column>: row <i> ...``: missing column or value, NaN/inf,
        a value outside :data:`HORIZON_BOUNDS` (azimuth 360 is 0: drop the
        repeated point), an azimuth not above the previous one of the same
        location (unsorted or repeated: the profile would not be a function of
        azimuth), more than :data:`MAX_HORIZON_POINTS` points for one location.
    """
    require_columns(df, HORIZON_COLUMNS, "horizon")
    horizon = df.rename(columns=lambda c: f"horizon.{c}")
    keys = location_keys(horizon, key, "horizon")
    reject(f"horizon.{key}", group_rank(keys) >= MAX_HORIZON_POINTS,
           f"has more than {MAX_HORIZON_POINTS} horizon points (at most {MAX_HORIZON_POINTS} per location)", keys,
           "bad_length")
    values = {c: numbers(horizon, f"horizon.{c}") for c in HORIZON_COLUMNS}
    for column, bounds in HORIZON_BOUNDS.items():
        bounded(f"horizon.{column}", values[column], bounds)
    azimuth = values["azimuth"]
    order = np.argsort(pd.factorize(keys)[0], kind="stable")  # each location's rows together, in frame order
    same = keys[order][1:] == keys[order][:-1]
    step = np.diff(azimuth[order])
    bad = np.zeros(len(keys), dtype=bool)
    bad[order[1:][same & (step == 0)]] = True
    reject("horizon.azimuth", bad, "repeats the previous azimuth of its location (a profile is a function of "
           "azimuth)", azimuth, "duplicate")
    bad[order[1:][same & (step < 0)]] = True
    reject("horizon.azimuth", bad, "is below the previous azimuth of its location (give each profile in increasing "
           "azimuth)", azimuth, "unsorted")

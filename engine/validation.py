"""Checks of the input frames (ARCHITECTURE "Frames") before they reach the database.

Every check is vectorised and raises ``ValueError`` whose message starts with the
column and names the first offending row (0-based position in the frame), e.g.
``ghi: row 3 is negative (-5.0)``; when more rows fail, their count follows.
Nothing is ever coerced: a missing temperature is an error, not 0 degC.
Allowed gaps are explicit: ``dni``/``dhi`` NaN (decompose from ``ghi``),
``cloud_cover`` NaN, ``export_limit_kw`` NaN (no limit).
"""

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
ACTUALS_COLUMNS = ("location_id", "time", "power_kw")
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


def reject(column, bad, reason, values):
    """Raise ``ValueError`` naming ``column`` and the first row where ``bad`` is true."""
    rows = np.flatnonzero(np.asarray(bad, dtype=bool))
    if rows.size:
        i = int(rows[0])
        value = values.iloc[i] if isinstance(values, pd.Series) else values[i]
        value = value.item() if isinstance(value, np.generic) else value
        more = f"; {rows.size} rows in all" if rows.size > 1 else ""
        raise ValueError(f"{column}: row {i} {reason} ({value!r}){more}")


def require_columns(df, columns, frame):
    """Every column of ``columns`` is present in ``df``."""
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{missing[0]}: column is missing from the {frame} frame (required: {list(columns)})")


def numbers(df, column, allow_nan=False):
    """``df[column]`` as float64, refusing non-numeric dtypes, inf and (unless allowed) NaN."""
    series = df[column]
    if not pd.api.types.is_numeric_dtype(series.dtype) or pd.api.types.is_bool_dtype(series.dtype):
        cells = series.to_numpy(dtype=object)
        bad = np.fromiter((isinstance(v, bool) or not (isinstance(v, (int, float, np.number)) or v is None)
                           for v in cells), bool, len(cells))
        reject(column, bad, "must be a number", cells)
    values = series.to_numpy(dtype="float64", na_value=np.nan)
    reject(column, np.isinf(values), "is infinite", values)
    if not allow_nan:
        reject(column, np.isnan(values), "is missing (NaN); missing values are refused, never filled", values)
    return values


def integers(df, column):
    """``df[column]`` as int64; it must have an integer dtype (no NaN possible)."""
    series = df[column]
    if not pd.api.types.is_integer_dtype(series.dtype):
        nan = series.isna().to_numpy()
        reject(column, nan, "is missing", series)
        raise ValueError(f"{column}: must be integers, got dtype {series.dtype}")
    return series.to_numpy(dtype="int64")


def in_range(column, values, low=-np.inf, high=np.inf, high_open=False, unit=""):
    """Refuse values outside ``[low, high]`` (``[low, high)`` when ``high_open``); NaN passes."""
    above = values >= high if high_open else values > high
    bracket = ")" if high_open else "]"
    reject(column, (values < low) | above, f"is out of range [{low:g}, {high:g}{bracket}{unit}", values)


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
               series)
        return np.empty(0, "int64")
    else:
        values = series.to_numpy()
        naive = np.fromiter((getattr(v, "tzinfo", None) is None for v in values), bool, len(values))
        reject(column, naive, "is naive or not a timestamp; timestamps must be tz-aware UTC", values)
        index = pd.DatetimeIndex(pd.to_datetime(values, utc=True))
    reject(column, index.isna(), "is missing (NaT)", series)
    return index.as_unit("us").asi8


def labels(df, column, allowed=None):
    """Non-empty strings (optionally one of ``allowed``)."""
    values = df[column].to_numpy(dtype=object)
    bad = np.fromiter((not isinstance(v, str) or not v.strip() for v in values), bool, len(values))
    reject(column, bad, "must be a non-empty string", values)
    if allowed is not None:
        reject(column, ~np.isin(values.astype(str), list(allowed)), f"must be one of {list(allowed)}", values)
    return values


def known(column, ids, known_ids):
    """Refuse location ids that are not in ``known_ids``."""
    reject(column, ~np.isin(ids, np.fromiter(known_ids, "int64")), "is not a known location", ids)


def unique_keys(column, keys, key_names, values):
    """Refuse a repeated key; ``keys`` maps key names to equal-length arrays."""
    frame = pd.DataFrame(keys)
    dup = frame.duplicated(keep="first").to_numpy()
    if dup.any():
        i = int(np.flatnonzero(dup)[0])
        first = int(np.flatnonzero((frame == frame.iloc[i]).all(axis=1).to_numpy())[0])
        reject(column, dup, f"repeats the key ({', '.join(key_names)}) of row {first}", values)


def validate_locations(df):
    """Check a locations frame (ARCHITECTURE "locations"); ``location_id`` is optional.

    Raises
    ------
    ValueError
        Column and row of the first problem: missing column or value, NaN/inf,
        latitude outside [-90, 90], longitude outside [-180, 180], tilt outside
        [0, 90], azimuth outside [0, 360), capacity <= 0, export limit <= 0,
        unknown tracking, unknown IANA timezone, repeated name.
    """
    require_columns(df, LOCATION_COLUMNS, "locations")
    names = labels(df, "name")
    in_range("latitude", numbers(df, "latitude"), -90, 90, unit=" deg")
    in_range("longitude", numbers(df, "longitude"), -180, 180, unit=" deg")
    numbers(df, "altitude")
    for column in ("capacity_ac_kw", "capacity_dc_kw"):
        values = numbers(df, column)
        reject(column, values <= 0, "must be > 0 kW", values)
    limit = numbers(df, "export_limit_kw", allow_nan=True)
    reject("export_limit_kw", limit <= 0, "must be > 0 kW or empty (no limit)", limit)
    in_range("tilt", numbers(df, "tilt"), 0, 90, unit=" deg")
    in_range("azimuth", numbers(df, "azimuth"), 0, 360, high_open=True, unit=" deg")
    labels(df, "tracking", TRACKING)
    in_range("axis_azimuth", numbers(df, "axis_azimuth"), 0, 360, unit=" deg")
    in_range("max_angle", numbers(df, "max_angle"), 0, 90, unit=" deg")
    in_range("gcr", numbers(df, "gcr"), 0, 1)
    in_range("losses_pct", numbers(df, "losses_pct"), 0, 100, high_open=True, unit=" %")
    numbers(df, "gamma_pdc")
    for column in ("temp_model_u0", "temp_model_u1"):
        values = numbers(df, column)
        reject(column, values < 0, "must be >= 0", values)
    zones = labels(df, "timezone")
    bad_zones = {z for z in set(zones) if z not in zoneinfo.available_timezones()}
    reject("timezone", np.isin(zones.astype(str), list(bad_zones)), "is not an IANA time zone", zones)
    labels(df, "model_id")
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
        NaN/inf (except NaN ``dni``, ``dhi``, ``cloud_cover``), negative or
        implausible (> 2000 W/m^2) irradiance, ``temp_air`` outside
        [-90, 70] degC, negative wind speed, cloud cover outside [0, 100] %,
        unknown location, naive or missing timestamp, empty source, negative
        ``period_minutes``, repeated (location_id, valid_time, issue_time, source).
    """
    require_columns(df, WEATHER_COLUMNS, "weather")
    ids = integers(df, "location_id")
    if known_ids is not None:
        known("location_id", ids, known_ids)
    valid = utc_micros(df, "valid_time")
    issue = utc_micros(df, "issue_time")
    source = labels(df, "source")
    for column in ("ghi", "dni", "dhi"):
        values = numbers(df, column, allow_nan=column != "ghi")
        reject(column, values < 0, "is negative", values)
        reject(column, values > MAX_IRRADIANCE, f"exceeds {MAX_IRRADIANCE:g} W/m^2", values)
    in_range("temp_air", numbers(df, "temp_air"), *TEMP_AIR_RANGE, unit=" degC")
    wind = numbers(df, "wind_speed")
    reject("wind_speed", wind < 0, "is negative", wind)
    in_range("cloud_cover", numbers(df, "cloud_cover", allow_nan=True), 0, 100, unit=" %")
    period = integers(df, "period_minutes")
    reject("period_minutes", period < 0, "is negative", period)
    keys = {"location_id": ids, "valid_time": valid, "issue_time": issue, "source": source}
    unique_keys("valid_time", keys, tuple(keys), df["valid_time"])


def validate_actuals(df, known_ids):
    """Check an actuals frame: known location, tz-aware ``time``, finite ``power_kw``, unique key.

    Parameters
    ----------
    df : DataFrame
        Columns ``location_id``, ``time`` (UTC), ``power_kw`` (kW).
    known_ids : iterable of int or None
        As in :func:`validate_weather`.

    Raises
    ------
    ValueError
    """
    require_columns(df, ACTUALS_COLUMNS, "actuals")
    ids = integers(df, "location_id")
    if known_ids is not None:
        known("location_id", ids, known_ids)
    time = utc_micros(df, "time")
    numbers(df, "power_kw")
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
        reject(column, values <= 0, "must be > 0", values)
    ids = integers(forecast, "location_id")
    reject("location_id", ~np.isin(ids, run_ids), "has forecast rows but no run row", ids)
    reject("location_id", ~np.isin(run_ids, ids), "has a run row but no forecast rows", run_ids)
    valid = utc_micros(forecast, "valid_time")
    q = np.column_stack([numbers(forecast, c) for c in QUANTILE_COLUMNS])
    reject(QUANTILE_COLUMNS[0], q[:, 0] < 0, "is negative", q[:, 0])
    for k in range(1, len(QUANTILE_COLUMNS)):
        reject(QUANTILE_COLUMNS[k], q[:, k] < q[:, k - 1], f"is below {QUANTILE_COLUMNS[k - 1]} (quantiles cross)",
               q[:, k])
    horizon = integers(forecast, "horizon_minutes")
    reject("horizon_minutes", horizon < 0, "is negative", horizon)
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
    reject(column, bad, "must be true or false", values)
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
        more than :data:`MAX_PLANES` planes for one location, plane index outside
        [0, MAX_PLANES) or repeated for a location, tilt outside [0, 90],
        azimuth outside [0, 360), capacity_dc_kw <= 0, unknown tracking,
        axis_azimuth outside [0, 360], max_angle outside [0, 90], gcr outside
        [0, 1], backtrack not a bool, losses_pct outside [0, 100), negative
        temperature-model coefficients.
    """
    require_columns(df, PLANE_COLUMNS, "planes")
    planes = df.rename(columns=lambda c: f"planes.{c}")
    keys = location_keys(planes, key, "planes")
    reject(f"planes.{key}", group_rank(keys) >= MAX_PLANES,
           f"has more than {MAX_PLANES} planes (at most {MAX_PLANES} per location)", keys)
    plane = integers(planes, "planes.plane")
    in_range("planes.plane", plane, 0, MAX_PLANES, high_open=True)
    unique_keys("planes.plane", {key: keys, "plane": plane}, (key, "plane"), plane)
    in_range("planes.tilt", numbers(planes, "planes.tilt"), 0, 90, unit=" deg")
    in_range("planes.azimuth", numbers(planes, "planes.azimuth"), 0, 360, high_open=True, unit=" deg")
    dc = numbers(planes, "planes.capacity_dc_kw")
    reject("planes.capacity_dc_kw", dc <= 0, "must be > 0 kW", dc)
    labels(planes, "planes.tracking", TRACKING)
    in_range("planes.axis_azimuth", numbers(planes, "planes.axis_azimuth"), 0, 360, unit=" deg")
    in_range("planes.max_angle", numbers(planes, "planes.max_angle"), 0, 90, unit=" deg")
    in_range("planes.gcr", numbers(planes, "planes.gcr"), 0, 1)
    booleans(planes, "planes.backtrack")
    in_range("planes.losses_pct", numbers(planes, "planes.losses_pct", allow_nan=True), 0, 100, high_open=True,
             unit=" %")
    numbers(planes, "planes.gamma_pdc", allow_nan=True)
    for column in ("planes.temp_model_u0", "planes.temp_model_u1"):
        values = numbers(planes, column, allow_nan=True)
        reject(column, values < 0, "must be >= 0", values)


def validate_horizon(df, key="name"):
    """Check a horizon frame (ARCHITECTURE "horizon"): each location's profile is a function of azimuth.

    Parameters
    ----------
    df : DataFrame
        ``azimuth`` (deg, [0, 360), 0 = north, clockwise), ``elevation`` (deg,
        [0, 90)) and the key column; the rows of one location in increasing
        azimuth.
    key : {'name', 'location_id'}

    Raises
    ------
    ValueError
        ``horizon.<column>: row <i> ...``: missing column or value, NaN/inf,
        azimuth outside [0, 360) (360 is 0: drop the repeated point), elevation
        outside [0, 90), an azimuth not above the previous one of the same
        location (unsorted or repeated: the profile would not be a function of
        azimuth), more than :data:`MAX_HORIZON_POINTS` points for one location.
    """
    require_columns(df, HORIZON_COLUMNS, "horizon")
    horizon = df.rename(columns=lambda c: f"horizon.{c}")
    keys = location_keys(horizon, key, "horizon")
    reject(f"horizon.{key}", group_rank(keys) >= MAX_HORIZON_POINTS,
           f"has more than {MAX_HORIZON_POINTS} horizon points (at most {MAX_HORIZON_POINTS} per location)", keys)
    azimuth = numbers(horizon, "horizon.azimuth")
    in_range("horizon.azimuth", azimuth, 0, 360, high_open=True, unit=" deg (360 is 0: drop the repeated point)")
    in_range("horizon.elevation", numbers(horizon, "horizon.elevation"), 0, 90, high_open=True, unit=" deg")
    order = np.argsort(pd.factorize(keys)[0], kind="stable")  # each location's rows together, in frame order
    same = keys[order][1:] == keys[order][:-1]
    step = np.diff(azimuth[order])
    bad = np.zeros(len(keys), dtype=bool)
    bad[order[1:][same & (step == 0)]] = True
    reject("horizon.azimuth", bad, "repeats the previous azimuth of its location (a profile is a function of "
           "azimuth)", azimuth)
    bad[order[1:][same & (step < 0)]] = True
    reject("horizon.azimuth", bad, "is below the previous azimuth of its location (give each profile in increasing "
           "azimuth)", azimuth)

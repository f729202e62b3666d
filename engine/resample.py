"""Weather from its native time grid to the forecast grid, for many locations at once.

Weather rows are labelled at the END of their averaging period
(``period_minutes``; 60 for hourly NWP, 0 for instantaneous values such as the
NSRDB PSM3 series). A period average is represented by the instant in the
middle of its period (``valid_time - period_minutes / 2``), and irradiance is
interpolated as the clear-sky index (GHI / clear-sky GHI) between those
instants, then multiplied by the clear-sky GHI at the target time: the diurnal
shape comes from the clear-sky model, not from a straight line between hourly
values [1]_.

All locations are interpolated in one ``numpy.interp`` call: each location's
times are shifted into its own disjoint band of the time axis, so no Python
loop over locations is needed.

References
----------
.. [1] J. Antonanzas et al., Review of photovoltaic power forecasting. Solar
   Energy 136, 78-111, 2016 (clear-sky index as the quantity to interpolate).
"""

import numpy as np
import pandas as pd

from engine.validation import plant_error

MAX_GAP_MINUTES = 180  # longest gap between weather instants bridged by interpolation
CSI_MAX = 2.0  # clear-sky index cap: period averages at sunrise over a near-zero clear-sky midpoint
MIN_CLEAR_GHI = 1.0  # W/m^2; instants with less clear-sky GHI carry no clear-sky index


def band_axis(location_index, seconds, band):
    """Time axis of disjoint per-location bands: ``seconds + location_index * band``."""
    return seconds + location_index.astype("float64") * band


def period_instants(end_times, period_minutes):
    """Effective instant of values labelled at the END of their averaging period: its middle.

    Weather rows and actuals share this rule (``period_minutes`` 0: an
    instantaneous value, at its label).

    Parameters
    ----------
    end_times : array_like of datetime
        tz-aware, end of each period.
    period_minutes : array_like of int
        min, >= 0.

    Returns
    -------
    DatetimeIndex
        UTC.
    """
    half = pd.to_timedelta(np.asarray(period_minutes, dtype="int64") * 30, unit="s")
    return pd.DatetimeIndex(end_times).tz_convert("UTC") - half


def weather_instants(weather):
    """Effective instant of every weather row (:func:`period_instants` of ``valid_time``).

    Parameters
    ----------
    weather : DataFrame or dict of arrays
        ``valid_time`` (UTC, end of period), ``period_minutes`` (whole minutes).

    Returns
    -------
    DatetimeIndex
        UTC.
    """
    return period_instants(weather["valid_time"], weather["period_minutes"])


def coverage_problems(location_ids, starts, ends, seconds_support, support_location, times_seconds,
                      max_gap_minutes=MAX_GAP_MINUTES):
    """Every location whose weather does not cover every target time, and why (one pass).

    Parameters
    ----------
    location_ids : ndarray
        Location id per location index.
    starts, ends : ndarray
        s since epoch; covered span of each location (first period start,
        last label); NaN for a location without weather.
    seconds_support : ndarray
        s since epoch of every weather instant, sorted by (location, time).
    support_location : ndarray of int
        Location index of every weather instant.
    times_seconds : ndarray
        s since epoch of the target times (same for every location).
    max_gap_minutes : float

    Returns
    -------
    dict
        location_id -> error (``engine.validation.plant_error``: code
        ``weather_short`` or ``weather_gap`` and the sentence), for the
        locations whose weather starts after the first target time, ends
        before the last one, or has a gap longer than ``max_gap_minutes`` with
        a target time inside it.
    """
    def fmt(seconds):
        return pd.Timestamp(seconds, unit="s", tz="UTC").isoformat()

    t0, t1 = times_seconds.min(), times_seconds.max()
    problems = {}
    short = (starts > t0) | (ends < t1)
    for i in np.flatnonzero(short):  # only the failing locations
        problems[int(location_ids[i])] = plant_error("weather_short", f"weather covers {fmt(starts[i])} .. "
                                                     f"{fmt(ends[i])}, not the forecast times {fmt(t0)} .. {fmt(t1)}")
    same = support_location[1:] == support_location[:-1]
    wide = same & (np.diff(seconds_support) > max_gap_minutes * 60.0)
    # a wide gap matters only when a target time falls inside it
    left, right = seconds_support[:-1][wide], seconds_support[1:][wide]
    inside = np.searchsorted(times_seconds, right) - np.searchsorted(times_seconds, left, side="right") > 0
    for k in np.flatnonzero(inside):
        problems.setdefault(int(location_ids[support_location[:-1][wide][k]]), plant_error(
            "weather_gap", f"weather has a gap of {(right[k] - left[k]) / 3600:.1f} h from {fmt(left[k])} "
                           "inside the forecast times"))
    return problems


def check_coverage(location_ids, starts, ends, seconds_support, support_location, times_seconds,
                   max_gap_minutes=MAX_GAP_MINUTES):
    """Raise ``ValueError`` naming the first location of :func:`coverage_problems`, if any."""
    problems = coverage_problems(location_ids, starts, ends, seconds_support, support_location, times_seconds,
                                 max_gap_minutes)
    if problems:
        location_id, problem = next(iter(problems.items()))
        raise ValueError(f"location_id {location_id}: {problem['message']}")


def fill_wind_speed(weather, wind_speed_ms):
    """Weather whose missing ``wind_speed`` is ``wind_speed_ms``, and the plants that had one missing.

    Parameters
    ----------
    weather : DataFrame
        Weather frame (``location_id``, ``wind_speed`` m/s, NaN = not given).
    wind_speed_ms : float
        The replacement, m/s: the constant the model was trained with
        (``configs/training.yaml`` ``data.wind_speed_ms``).

    Returns
    -------
    weather : DataFrame
    location_ids : ndarray of int
        Plants with at least one replaced value (their runs are flagged).
    """
    missing = weather["wind_speed"].isna().to_numpy()
    flagged = np.unique(weather["location_id"].to_numpy("int64")[missing])
    if not missing.any():
        return weather, flagged
    return weather.assign(wind_speed=weather["wind_speed"].fillna(float(wind_speed_ms))), flagged


def weather_problems(location_ids, weather, times, required=("ghi", "temp_air", "wind_speed", "period_minutes")):
    """Every location whose weather cannot drive a forecast at ``times``, and why (one vectorised pass).

    The per-location checks of the feature path, as data: no weather, a
    repeated valid time, a required value that is not finite, or weather that
    does not cover the forecast times (:func:`coverage_problems`).

    Parameters
    ----------
    location_ids : sequence of int
    weather : DataFrame
        Weather frame (``location_id``, ``valid_time`` UTC, ``period_minutes``
        and the ``required`` columns); rows of other locations are ignored.
    times : DatetimeIndex
        Forecast times, tz-aware.
    required : sequence of str
        Columns that must be finite.

    Returns
    -------
    dict
        location_id -> error (``engine.validation.plant_error``: the code of the
        first failing check of each location, ``no_weather``,
        ``weather_not_finite``, ``duplicate_weather``, ``weather_short`` or
        ``weather_gap``, and its sentence).
    """
    ids = np.asarray(location_ids, dtype="int64")
    site = pd.Index(ids).get_indexer(weather["location_id"].to_numpy("int64"))
    rows = np.flatnonzero(site >= 0)  # weather rows of these locations, sorted below by (location, valid time)
    stamps = pd.DatetimeIndex(weather["valid_time"])
    native = stamps.asi8[rows]
    rows = rows[np.lexsort((native, site[rows]))]  # stable, as a sort of both columns
    w_site, native = site[rows], stamps.asi8[rows]

    def at(row):  # the valid time of a sorted row, as stored (messages only)
        return weather["valid_time"].iloc[rows[row]]

    problems = {}
    present = np.zeros(len(ids), dtype=bool)
    present[w_site] = True
    for i in np.flatnonzero(~present):
        problems[int(ids[i])] = plant_error("no_weather",
                                            "no weather issued at or before issue_time for the forecast window")
    values = np.column_stack([weather[c].to_numpy(dtype="float64")[rows] for c in required])  # no frame of columns
    bad = ~np.isfinite(values)
    for row in np.flatnonzero(bad.any(axis=1)):
        column = required[int(np.argmax(bad[row]))]
        problems.setdefault(int(ids[w_site[row]]),
                            plant_error("weather_not_finite", f"weather {column} is not finite at {at(row)}"))
    dup = np.zeros(len(rows), dtype=bool)  # a later row of the same (location, valid time): adjacent once sorted
    dup[1:] = (w_site[1:] == w_site[:-1]) & (native[1:] == native[:-1])
    for row in np.flatnonzero(dup):
        problems.setdefault(int(ids[w_site[row]]),
                            plant_error("duplicate_weather", f"duplicate weather valid_time {at(row)}"))
    if problems:
        failed = np.zeros(len(ids), dtype=bool)
        failed[pd.Index(ids).get_indexer(list(problems))] = True
        ok = ~failed[w_site]
        rows, w_site = rows[ok], w_site[ok]
    if not len(rows):
        return problems
    label = stamps[rows].as_unit("us").asi8 / 1e6
    period = weather["period_minutes"].to_numpy(dtype="float64")[rows] * 60.0
    first = np.flatnonzero(np.r_[True, w_site[1:] != w_site[:-1]])  # each location's first sorted row
    starts = np.full(len(ids), np.nan)
    ends = np.full(len(ids), np.nan)
    starts[w_site[first]] = np.minimum.reduceat(label - period, first)
    ends[w_site[first]] = np.maximum.reduceat(label, first)
    instants = label - period / 2.0
    t_sec = pd.DatetimeIndex(times).tz_convert("UTC").as_unit("us").asi8 / 1e6
    has = np.isfinite(starts)
    coverage = coverage_problems(ids, np.where(has, starts, -np.inf), np.where(has, ends, np.inf), instants, w_site,
                                 t_sec)
    for location_id, problem in coverage.items():
        problems.setdefault(location_id, problem)
    return problems


def band_interpolator(support_axis, support_location, values, target_location, n_locations):
    """Per-location linear interpolation of ``values``, all locations in one ``numpy.interp``.

    NaN support values are skipped. Outside a location's first/last finite
    support instant the nearest finite value of the SAME location is held
    (never a value of the neighbouring band). A location without any finite
    value gives NaN. The support is prepared once, so evaluating the same
    values at several shifted target axes (temporal context) is cheap.

    Parameters
    ----------
    support_axis : ndarray
        Band axis (:func:`band_axis`) of the support, sorted ascending.
    support_location : ndarray of int
        Location index of each support element (sorted).
    values : ndarray
        One value per support element.
    target_location : ndarray of int
        Location index of each target element.
    n_locations : int

    Returns
    -------
    callable
        ``f(target_axis) -> ndarray``, one value per target element.
    """
    ok = np.isfinite(values)
    x, y, loc = support_axis[ok], values[ok], support_location[ok]
    first = np.searchsorted(loc, np.arange(n_locations), side="left")  # support is sorted by location
    last = np.searchsorted(loc, np.arange(n_locations), side="right") - 1
    has = last >= first
    if not has.any():
        return lambda target_axis: np.full(target_axis.shape, np.nan)
    lo_x = np.where(has, x[np.minimum(first, len(x) - 1)], np.inf)[target_location]
    hi_x = np.where(has, x[np.maximum(last, 0)], -np.inf)[target_location]
    lo_y = np.where(has, y[np.minimum(first, len(x) - 1)], np.nan)[target_location]
    hi_y = np.where(has, y[np.maximum(last, 0)], np.nan)[target_location]
    missing = ~has[target_location]

    def evaluate(target_axis):
        out = np.interp(target_axis, x, y)
        out = np.where(target_axis < lo_x, lo_y, np.where(target_axis > hi_x, hi_y, out))
        out[missing] = np.nan
        return out

    return evaluate


def clear_sky_index(ghi, ghi_clear):
    """GHI / clear-sky GHI, NaN where the clear-sky GHI is below ``MIN_CLEAR_GHI``, capped at ``CSI_MAX``."""
    with np.errstate(invalid="ignore", divide="ignore"):
        csi = np.where(ghi_clear >= MIN_CLEAR_GHI, ghi / ghi_clear, np.nan)
    return np.minimum(csi, CSI_MAX)

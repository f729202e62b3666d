"""Real training data: NREL PVDAQ system 50 (SERF East) + NSRDB PSM3, from the pvanalytics wheel.

Nothing is downloaded: both parquet files ship inside the ``pvanalytics`` wheel
(``pvanalytics/data``). This module is the I/O edge for them: loading, the
daylight-saving fix of the power index, cleaning of the target with
``pvanalytics.quality`` and the derivation of the plant's AC capacity.
"""

from pathlib import Path

import numpy as np
import pandas as pd
import pvanalytics
import pvlib
from pvanalytics.features import clipping
from pvanalytics.quality import gaps

WEATHER_SOURCE = "nsrdb_psm3"


def data_file(name):
    """Path of a data file shipped in the pvanalytics wheel.

    Parameters
    ----------
    name : str
        File name inside ``pvanalytics/data``.

    Returns
    -------
    pathlib.Path

    Raises
    ------
    LookupError
        If the installed pvanalytics does not ship the file.
    """
    path = Path(pvanalytics.__file__).parent / "data" / name
    if not path.is_file():
        raise LookupError(f"data file {name!r} not found in pvanalytics wheel at {path}")
    return path


def fix_dst(index, wall_clock_tz):
    """Re-localise a fixed-offset index that really holds local wall-clock time.

    The PVDAQ system 50 power index is labelled UTC-07:00 but follows the
    America/Denver wall clock, so during US daylight-saving months it runs
    60 min late. The offset label is dropped and the naive times are localised
    to ``wall_clock_tz``; times that do not exist (spring forward) or are
    ambiguous (fall back) become NaT.

    Parameters
    ----------
    index : DatetimeIndex
        tz-aware index with a fixed offset.
    wall_clock_tz : str
        IANA zone of the logger's wall clock, e.g. ``'America/Denver'``.

    Returns
    -------
    DatetimeIndex
        UTC index, NaT where the wall-clock time is nonexistent or ambiguous.
    """
    naive = index.tz_localize(None)
    local = naive.tz_localize(wall_clock_tz, nonexistent="NaT", ambiguous="NaT")
    return local.tz_convert("UTC")


def load_power(config):
    """Measured AC power of SERF East ``ac_power_2``, DST-fixed, in kW, UTC.

    Parameters
    ----------
    config : dict
        ``configs/training.yaml`` contents (``data`` section used).

    Returns
    -------
    power : Series
        AC power, kW, indexed by UTC time (instantaneous 15-min samples).
        NaN where the logger recorded nothing.
    dropped : int
        Rows removed because their wall-clock time was nonexistent/ambiguous.
    """
    raw = pd.read_parquet(data_file(config["data"]["power_file"]))
    index = fix_dst(pd.DatetimeIndex(raw["measured_on"]), config["data"]["power_wall_clock_tz"])
    keep = ~index.isna()
    power = pd.Series(raw["ac_power_2"].to_numpy(dtype=float)[keep] / 1000.0,
                      index=index[keep], name="power_kw")
    power.index.name = "time"
    return power.sort_index(), int((~keep).sum())


def load_weather(config, location_id):
    """NSRDB PSM3 weather of SERF East as a weather frame (ARCHITECTURE format).

    The PSM3 values are instantaneous at their label (checked: the file's
    ``ghi_clear`` matches pvlib's Ineichen clear sky best at offset 0 min), so
    ``period_minutes`` is 0. The file has no DNI/DHI (left NaN: decompose) and
    no wind speed: the constant ``data.wind_speed_ms`` from the config is used
    and stated in the model card.

    Parameters
    ----------
    config : dict
        ``configs/training.yaml`` contents.
    location_id : int
        Location id to put in the frame.

    Returns
    -------
    DataFrame
        Columns location_id, valid_time (UTC), issue_time (UTC, = valid_time:
        these are analyses, not forecasts), source, ghi, dni, dhi (W/m^2),
        temp_air (degC), wind_speed (m/s), cloud_cover (%, NaN), period_minutes,
        ghi_clear (W/m^2, PSM3 clear sky, kept for diagnostics).
    """
    raw = pd.read_parquet(data_file(config["data"]["weather_file"]))
    valid_time = pd.DatetimeIndex(raw["index"]).tz_convert("UTC")
    n = len(raw)
    return pd.DataFrame({
        "location_id": np.full(n, location_id, dtype="int64"),
        "valid_time": valid_time,
        "issue_time": valid_time,
        "source": WEATHER_SOURCE,
        "ghi": raw["ghi"].to_numpy(dtype=float),
        "dni": np.full(n, np.nan),
        "dhi": np.full(n, np.nan),
        "temp_air": raw["temp_air"].to_numpy(dtype=float),
        "wind_speed": np.full(n, float(config["data"]["wind_speed_ms"])),
        "cloud_cover": np.full(n, np.nan),
        "period_minutes": np.full(n, int(config["data"]["weather_period_minutes"]), dtype="int64"),
        "ghi_clear": raw["ghi_clear"].to_numpy(dtype=float),
    })


def solar_elevation(times, latitude, longitude, altitude):
    """Apparent solar elevation, deg, at one site (pvlib NREL SPA).

    Parameters
    ----------
    times : DatetimeIndex
        UTC times.
    latitude, longitude : float
        deg.
    altitude : float
        m.

    Returns
    -------
    ndarray
        Apparent elevation, deg.
    """
    sp = pvlib.solarposition.get_solarposition(times, latitude, longitude, altitude)
    return sp["apparent_elevation"].to_numpy()


def weather_at(weather, times, column):
    """Weather column linearly interpolated in time onto ``times``.

    Parameters
    ----------
    weather : DataFrame
        Weather frame of one location.
    times : DatetimeIndex
        UTC times.
    column : str
        Column name, e.g. ``'ghi'``.

    Returns
    -------
    ndarray
    """
    x = pd.DatetimeIndex(weather["valid_time"]).as_unit("ns").asi8
    t = pd.DatetimeIndex(times).as_unit("ns").asi8
    return np.interp(t, x, weather[column].to_numpy(dtype=float), left=np.nan, right=np.nan)


def clean_power(power, elevation, ghi, ghi_clear, cleaning):
    """Quality-control the measured power the way pvanalytics does.

    Steps (each sets values to NaN and is counted):
    ``night_offset`` night values above ``night_max_kw``;
    ``stale`` daytime runs of ``stale_window`` identical non-zero values
    (``pvanalytics.quality.gaps.stale_values_diff``);
    ``interpolated`` daytime linear ramps (``gaps.interpolation_diff``);
    ``outage`` ~zero power with the sun above ``outage_min_elevation`` and
    PSM3 GHI above ``outage_min_ghi``. Remaining night values are set to
    exactly 0. Clipping is counted (``pvanalytics.features.clipping.geometric``)
    but kept: inverter clipping is real plant behaviour the forecast must show.

    Parameters
    ----------
    power : Series
        AC power, kW, UTC index.
    elevation : ndarray
        Apparent solar elevation, deg, aligned with ``power``.
    ghi, ghi_clear : ndarray
        PSM3 GHI and clear-sky GHI at the power times, W/m^2.
    cleaning : dict
        ``cleaning`` section of the training config.

    Returns
    -------
    clean : Series
        Cleaned power, kW.
    counts : dict
        Number of values removed (or flagged) per step, plus ``missing_raw``.
    """
    p = power.copy()
    day = elevation > 0
    counts = {"missing_raw": int(p.isna().sum())}
    night_offset = ~day & (p > cleaning["night_max_kw"])
    counts["night_offset"] = int(night_offset.sum())
    p[night_offset] = np.nan
    live = day & (p > cleaning["min_power_kw"])
    stale = gaps.stale_values_diff(p.fillna(-1.0), window=cleaning["stale_window"]) & live
    counts["stale"] = int(stale.sum())
    interp = gaps.interpolation_diff(p.fillna(-1.0), window=cleaning["stale_window"]) & live & ~stale
    counts["interpolated"] = int(interp.sum())
    p[stale | interp] = np.nan
    outage = ((p <= cleaning["min_power_kw"]) & (elevation > cleaning["outage_min_elevation"])
              & (ghi > cleaning["outage_min_ghi"]))
    counts["outage"] = int(outage.sum())
    p[outage] = np.nan
    counts["night_set_zero"] = int((~day & (p != 0) & p.notna()).sum())
    p[~day & p.notna()] = 0.0
    clipped = clipping.geometric(p.dropna().asfreq("15min"))
    counts["clipping_flagged_kept"] = int(clipped.sum())
    counts["valid_after_cleaning"] = int(p.notna().sum())
    return p, counts


def derive_capacity_ac(power, elevation, ghi, ghi_clear, capacity):
    """AC capacity used for normalisation, derived from the measured data.

    The metadata (6 kW) does not describe channel ``ac_power_2``, which peaks
    near 3.3 kW. The capacity is the ``quantile`` of cleaned power over
    clear-sky samples (PSM3 GHI / clear-sky GHI >= ``clear_sky_index_min``,
    sun above ``min_elevation``) of the period given.

    Parameters
    ----------
    power : Series
        Cleaned AC power, kW.
    elevation : ndarray
        deg.
    ghi, ghi_clear : ndarray
        W/m^2.
    capacity : dict
        ``capacity`` section of the config.

    Returns
    -------
    float
        kW.
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        csi = ghi / ghi_clear
    mask = (csi >= capacity["clear_sky_index_min"]) & (elevation > capacity["min_elevation"])
    values = power.to_numpy()[mask]
    values = values[np.isfinite(values)]
    if values.size < 100:
        raise ValueError(f"capacity: only {values.size} clear-sky power samples to derive capacity_ac_kw")
    return float(np.quantile(values, capacity["quantile"]))


def site_location(site, location_id, capacity_ac_kw, capacity_dc_kw):
    """The SERF East plant as a one-row locations frame.

    Parameters
    ----------
    site : dict
        ``site`` section of the config.
    location_id : int
    capacity_ac_kw, capacity_dc_kw : float
        kW, derived from data.

    Returns
    -------
    DataFrame
    """
    return pd.DataFrame([{
        "location_id": int(location_id), "name": site["name"],
        "latitude": site["latitude"], "longitude": site["longitude"],
        "altitude": site["altitude"], "timezone": site["timezone"],
        "capacity_ac_kw": float(capacity_ac_kw), "capacity_dc_kw": float(capacity_dc_kw),
        "export_limit_kw": np.nan, "tilt": site["tilt"], "azimuth": site["azimuth"],
        "tracking": site["tracking"], "axis_azimuth": 0.0, "max_angle": 0.0, "gcr": 0.0,
        "losses_pct": site["losses_pct"], "gamma_pdc": site["gamma_pdc"],
        "temp_model_u0": site["temp_model_u0"], "temp_model_u1": site["temp_model_u1"],
        "model_id": "global",
    }])


def load_serf_east(config, location_id=50):
    """Everything training needs from the wheel: cleaned power, weather, plant row.

    Capacity is derived on the TRAINING period only. ``capacity_dc_kw`` is
    provisional (= AC); training refits it against the physical model.

    Parameters
    ----------
    config : dict
        ``configs/training.yaml`` contents.
    location_id : int, default 50

    Returns
    -------
    dict
        ``power`` (Series kW, cleaned, UTC), ``weather`` (weather frame),
        ``location`` (locations frame, one row), ``counts`` (cleaning counts
        incl. ``dst_dropped``), ``capacity_ac_kw`` (float).
    """
    power, dropped = load_power(config)
    weather = load_weather(config, location_id)
    site = config["site"]
    elev = solar_elevation(power.index, site["latitude"], site["longitude"], site["altitude"])
    ghi = weather_at(weather, power.index, "ghi")
    ghi_clear = weather_at(weather, power.index, "ghi_clear")
    clean, counts = clean_power(power, elev, ghi, ghi_clear, config["cleaning"])
    counts["dst_dropped"] = dropped
    periods = config["periods"]
    train = (clean.index >= pd.Timestamp(periods["train_start"], tz="UTC")) & (
        clean.index < pd.Timestamp(periods["train_end"], tz="UTC"))
    cap = derive_capacity_ac(clean[train], elev[train], ghi[train], ghi_clear[train], config["capacity"])
    return {"power": clean, "weather": weather, "counts": counts, "capacity_ac_kw": cap,
            "location": site_location(site, location_id, cap, cap)}


SERF_EAST_2016_POWER = "serf_east_15min_ac_power.csv"
SERF_EAST_2016_WEATHER = "serf_east_psm3_data.csv"


def load_serf_east_2016(location_id, wind_speed_ms):
    """SERF East 2016-07-01..2016-10-13 (15 min): measured AC power and PSM3 weather, from the wheel.

    A plant-period outside the training data (2011-04..2012-12) and the 2013
    hold-out, used by ``bench/bench_adaptive.py``. Both files are labelled
    UTC-07:00 and, unlike system 50's logger, ARE UTC-07:00: the correlation of
    the power with pvlib clear-sky POA (tilt 45, azimuth 158) over the period
    peaks at 0..+15 min with the labels as given (-0.60 at -60 min), and the
    file's ``ghi_clear`` matches pvlib's Ineichen best at offset 0 (15 W/m^2).
    Power is the whole channel ``ac_power`` (W; peaks at 5.43 kW), night
    offsets (negative values) set to 0.

    Parameters
    ----------
    location_id : int
    wind_speed_ms : float
        Stated constant wind speed (the file has none), m/s.

    Returns
    -------
    power : Series
        kW, UTC index (instantaneous 15-min samples).
    weather : DataFrame
        Weather frame (``issue_time`` = ``valid_time``; callers that imitate a
        forecast set it), ``period_minutes`` 0, plus ``ghi_clear``.
    """
    raw = pd.read_csv(data_file(SERF_EAST_2016_POWER), index_col=0)
    index = pd.DatetimeIndex(pd.to_datetime(raw.index, utc=True), name="time")
    power = pd.Series(np.maximum(raw["ac_power"].to_numpy(dtype=float), 0.0) / 1000.0, index=index, name="power_kw")
    w = pd.read_csv(data_file(SERF_EAST_2016_WEATHER), index_col=0)
    valid = pd.DatetimeIndex(pd.to_datetime(w.index, utc=True))
    n = len(w)
    weather = pd.DataFrame({
        "location_id": np.full(n, location_id, dtype="int64"), "valid_time": valid, "issue_time": valid,
        "source": WEATHER_SOURCE, "ghi": w["ghi"].to_numpy(dtype=float), "dni": np.full(n, np.nan),
        "dhi": np.full(n, np.nan), "temp_air": w["temp_air"].to_numpy(dtype=float),
        "wind_speed": np.full(n, float(wind_speed_ms)), "cloud_cover": np.full(n, np.nan),
        "period_minutes": np.zeros(n, dtype="int64"), "ghi_clear": w["ghi_clear"].to_numpy(dtype=float)})
    return power.sort_index(), weather

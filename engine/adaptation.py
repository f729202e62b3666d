"""Fitting a plant's calibration from its own history: tuning, then per-plant bands (pure).

:func:`fit_calibration` is what ``POST /api/v1/locations/{id}/calibrate``,
the refit policy and ``bench/bench_adaptive.py`` run: from one plant's actuals
strictly before a cutoff and the weather stored for those times (as issued
before the cutoff),

1. :func:`engine.tuning.fit_orientation` on the clear samples under the
   ENTERED description (tilt/azimuth where the data support it, else the
   stated ones and the reason), then :func:`engine.tuning.fit_tuning` on the
   physical estimate of the entered description with that orientation
   (effective DC scale, observed clipping level), every sample with equal
   weight by default (``tuning_half_life_days`` weighs them by age, the band
   residuals' :func:`engine.conformal.recency_weights`; measured worse on
   SERF East 2016, docs/model.md "Recency-weighted tuning");
2. the band residuals: the history is cut into contiguous day blocks and
   each block after the first is re-forecast by the global model with the
   tuning fitted on the days before it (:func:`forward_quantiles`: the
   errors a tuning makes on days it has not seen, as the served one does
   after the cutoff; the model never saw this plant), and
   :func:`engine.conformal.fit_band_offsets` turns those residuals into
   shrunk offsets per lead bucket (lead = valid time - the weather's issue
   time) and clear-sky regime, each residual weighted by its age at the
   cutoff (:func:`engine.conformal.recency_weights`, half-life
   :data:`engine.conformal.HALF_LIFE_DAYS`: the effective description
   drifts with the season, so the last weeks' errors say more about the
   next days'); a period mean (``period_minutes`` > 0) is scored at the
   instants it averages (:func:`period_sample_instants`: the forecast is of
   instants and varies within the period), spread along the plant's
   clear-sky shape and convolved with the model's within-period deviations
   of instants (:func:`within_period_term`); the served tuning is the one
   of step 1;
3. the intraday blend (:func:`fit_intraday_blend`): per-lead weights of the
   candidates of ``engine.intraday.BLEND_CANDIDATES`` fitted on simulated
   hourly issues of the same history (the prior ``exp(-lead / tau)`` on the
   power index where there are too few, said in the blend's ``fallback``, or
   the whole prior with ``ok = False`` and the reason).

The result is JSON-ready data; a plant with too little history gets
``ok = False`` and the reason (errors as data).
"""

import numpy as np
import pandas as pd

from engine import conformal, forecast, intraday, resample, shading, tuning
from engine.features import feature_frame
from engine.metrics import coverage
from engine.quantiles import QUANTILE_COLUMNS


def weather_lead_hours(weather, times):
    """Lead of the weather behind each time, h: time - issue time of the nearest weather row (>= 0).

    Parameters
    ----------
    weather : DataFrame
        One plant's weather frame (``valid_time``, ``issue_time``).
    times : DatetimeIndex
        UTC.

    Returns
    -------
    ndarray
        h.
    """
    valid = pd.DatetimeIndex(weather["valid_time"]).tz_convert("UTC").as_unit("ns")
    order = np.argsort(valid.asi8)
    valid_ns = valid.asi8[order]
    issue_ns = pd.DatetimeIndex(weather["issue_time"]).tz_convert("UTC").as_unit("ns").asi8[order]
    t = pd.DatetimeIndex(times).tz_convert("UTC").as_unit("ns").asi8
    right = np.clip(np.searchsorted(valid_ns, t), 0, len(valid_ns) - 1)
    left = np.clip(right - 1, 0, len(valid_ns) - 1)
    nearest = np.where(np.abs(valid_ns[left] - t) <= np.abs(valid_ns[right] - t), left, right)
    return np.maximum((t - issue_ns[nearest]) / 3.6e12, 0.0)


BAND_FOLDS = 5
"""Contiguous day blocks of the forward band residuals (:func:`forward_quantiles`): the 5 of K-fold
validation (Hastie, Tibshirani & Friedman, ESL 7.10), not tuned on any plant. Blocks 1..4 are scored
(block 0 only teaches), so a calibration costs at most ``BAND_FOLDS`` tunings; with the
``max_history_days`` cap of the service (90) a block is at most 18 days."""
#: Local days with usable daylight actuals before a plant's bands are fitted while its tuning still lacks
#: data (:func:`untuned_description`): the shrinkage toward the global bands
#: (:func:`engine.conformal.fit_band_offsets`, ``n0``) weighs the first days' residuals little, but two
#: days already move a plant from the global bands' ~45-60 % coverage: over 6 starts of SERF East 2016 x
#: both descriptions, 2 rather than 3 days covered the runs of days 0-2 better in all 12 (docs/model.md
#: "Bands before the tuning"). One day is the whole of one weather spell: not enough to say the plant's.
MIN_BAND_DAYS = 2
#: Refusal codes of :func:`engine.tuning.fit_tuning` (``engine.tuning.REFUSAL_CODES``) that say the tuning lacks
#: history, not sense: the plant's bands may be served on the entered description (:func:`untuned_description`).
SHORT_HISTORY = ("too_few_days", "too_few_clear_samples")


def band_folds(times, timezone, k=BAND_FOLDS):
    """Block of each time: ``k`` contiguous blocks of the plant's local days, as equal as the days allow.

    Whole local days stay in one block (blocks meet at local midnight, in
    the night), contiguous blocks keep weather spells inside a block
    (blocked validation for dependent data: Roberts et al. 2017, Ecography
    40:913). Fewer days than ``k``: one block per day.

    Parameters
    ----------
    times : DatetimeIndex
        UTC, the rows of the calibration.
    timezone : str
        IANA zone of the plant.
    k : int, default :data:`BAND_FOLDS`

    Returns
    -------
    ndarray of int
        Shape (n,): 0..min(k, days) - 1, non-decreasing in time.
    """
    day = pd.DatetimeIndex(times).tz_convert(timezone).tz_localize(None).normalize()
    codes, days = pd.factorize(day, sort=True)
    n_days = max(len(days), 1)
    folds = min(int(k), n_days)
    return (codes * folds) // n_days


def tune_description(loc, power, entered, weather, times, cutoff, planes=None, horizon=None, min_days=tuning.MIN_DAYS,
                     orientation=True, half_life_days=None):
    """Step 1 of :func:`fit_calibration`: orientation, then DC scale and clipping level, from ``power``.

    A measured/modelled level outside the DC scales a plant can have is refused (code ``scale``,
    :func:`engine.tuning.fit_tuning`) under the ENTERED description as well as under the fitted orientation:
    a fitted orientation can absorb part of a unit error (a steeper tilt makes less summer power), which then
    passes the bounds.

    Parameters
    ----------
    loc : DataFrame
        One-row locations frame, the description as ENTERED.
    power : Series
        Measured AC power, kW, at ``times`` (UTC, before ``cutoff``).
    entered : DataFrame
        ``engine.features.feature_frame`` of ``loc`` at ``times``.
    weather, cutoff, planes, horizon
        As :func:`fit_calibration`.
    min_days : int
        Minimum days (:data:`engine.tuning.MIN_DAYS`).
    orientation : bool
        Fit tilt/azimuth.
    half_life_days : float or None
        Samples of the orientation and DC-scale fits weighted by their age at
        ``cutoff`` (``engine.conformal.recency_weights``); None: equal weights.

    Returns
    -------
    dict
        ``orientation`` (None when not fitted), ``fit``
        (:func:`engine.tuning.fit_tuning`), ``location`` and ``planes`` (the
        tuned description; None when the fit is refused).
    """
    cap = float(loc.loc[0, "capacity_ac_kw"])
    oriented = fit_orientation(loc, power, entered, cutoff, planes, half_life_days) if orientation else None
    if oriented is not None and oriented["ok"]:  # the physical estimate with the fitted orientation
        as_entered = tuning.fit_tuning(power, entered["physical_ac_kw"], entered["solar_elevation"], entered["csi"],
                                       cap, float(loc.loc[0, "capacity_dc_kw"]), cutoff, str(loc.loc[0, "timezone"]),
                                       min_days=min_days, half_life_days=half_life_days)
        if as_entered["code"] == "scale":  # a unit error bends the orientation toward less power (energy per
            # 15 min sent as power on a plant entered with DC = AC: tilt 73, scale 0.40, just inside both bounds)
            return {"orientation": oriented, "fit": as_entered, "location": None, "planes": None}
        loc = loc.assign(tilt=oriented["tilt"], azimuth=oriented["azimuth"])
        entered = feature_frame(loc, weather, times, planes, horizon)
    fit = tuning.fit_tuning(power, entered["physical_ac_kw"], entered["solar_elevation"], entered["csi"], cap,
                            float(loc.loc[0, "capacity_dc_kw"]), cutoff, str(loc.loc[0, "timezone"]),
                            min_days=min_days, half_life_days=half_life_days)
    if not fit["ok"]:
        return {"orientation": oriented, "fit": fit, "location": None, "planes": None}
    table = pd.DataFrame({"location_id": loc["location_id"], "dc_scale": [fit["dc_scale"]],
                          "clip_kw": [np.nan if fit["clip_kw"] is None else fit["clip_kw"]]})
    tuned, tuned_planes = tuning.tuned_locations(loc, planes, table)
    return {"orientation": oriented, "fit": fit, "location": tuned, "planes": tuned_planes}


def forward_quantiles(loc, power, entered, weather, times, model, planes=None, horizon=None, folds=BAND_FOLDS,
                      min_days=tuning.MIN_DAYS, orientation=True, half_life_days=None, instants=None, first_row=0):
    """Forward quantiles, kW: each day block forecast with the tuning fitted on the actuals before it.

    The served tuning is fitted on the rows before the cutoff and used on
    the days AFTER it. The band residuals must be errors of that kind: a
    tuning's residuals on its own rows are too small (in-sample), and a
    plant's effective description drifts with the season (a wrongly
    entered orientation absorbed by the DC scale in July is not absorbed in
    September), so a tuning applied to later days errs more than on the
    days it was fitted on. Here the rows are cut into :func:`band_folds`
    contiguous day blocks; block k (k >= 1) is forecast by the global model
    with the whole tuning (orientation, DC scale, clipping level) fitted by
    :func:`tune_description` on the rows before the block's first day,
    with the served fit's minimum data: each residual is the error the
    service would have made on that row had the plant been calibrated at the
    start of its block (a walk forward over the history, as in rolling-origin
    forecast evaluation, Tashman 2000, Int. J. Forecasting 16:437). Block 0,
    and a block whose past is too short for a tuning, give no residuals
    (NaN) and say why.

    Forward rather than cross-fitted blocks (a tuning without the block,
    fitted on the days on both sides): an inner block is then an
    interpolation, the served forecast an extrapolation; cross-fitting
    removes the in-sample optimism but not the drift. The price: the
    first block never gets a residual and the early blocks are scored with
    tunings fitted on fewer days than the served one (wider, the safe side),
    so with little history the bands stay nearer the global prior
    (:func:`engine.conformal.fit_band_offsets` shrinks by the residuals'
    effective count). The early blocks' residuals are also the oldest:
    :func:`fit_calibration` weights them down by age
    (:func:`engine.conformal.recency_weights`).

    Parameters
    ----------
    loc, power, entered, weather, times, model, planes, horizon
        As :func:`tune_description` and :func:`fit_calibration` (``power``
        at ``times``, UTC, sorted).
    folds : int, default :data:`BAND_FOLDS`
    min_days : int
        The served fit's minimum days (:data:`engine.tuning.MIN_DAYS`).
    orientation : bool
    half_life_days : float or None
        The served tuning's recency weighting, each block's tuning weighted
        at its own cutoff (the block's first row).
    instants : tuple (row, time), optional
        Forecast at these instants instead of at ``times``: ``row`` (int
        array) the row of ``times`` each instant belongs to (its block),
        ``time`` (DatetimeIndex) the instant (:func:`period_sample_instants`:
        the instants a period mean averages). None: ``times`` themselves.
    first_row : int, default 0
        The first row of the plant's present state (after its last level
        change, ``engine.tuning.present_state``): the blocks are cut from it
        on and each block's tuning learns from the rows between it and the
        block only, so a residual is the error of a tuning of the state it
        scores; rows before it get none (NaN).

    Returns
    -------
    q : ndarray
        Shape (n, 5) (with ``instants``: one row per instant), kW, NaN on
        rows without a forward residual.
    diagnostics : dict
        ``method``, ``folds`` (blocks), ``rows`` (rows with forward
        quantiles), ``unscored_rows``, ``fold``: per block its first and
        last local day, rows, ``ok`` (scored), ``reason``, ``dc_scale``,
        ``tilt``, ``azimuth`` (None: stated) of its tuning.
    """
    tz = str(loc.loc[0, "timezone"])
    fold = np.full(len(times), -1)  # rows before first_row: in no block
    fold[first_row:] = band_folds(times[first_row:], tz, folds)
    n_folds = int(fold.max()) + 1 if len(fold) else 0
    q = np.full((len(times), len(QUANTILE_COLUMNS)), np.nan)
    local = pd.DatetimeIndex(times).tz_convert(tz)
    at_row, at_time = (np.arange(len(times)), pd.DatetimeIndex(times)) if instants is None else instants
    if instants is not None:
        q = np.full((len(at_row), len(QUANTILE_COLUMNS)), np.nan)
    per_fold = []
    for k in range(n_folds):  # at most BAND_FOLDS - 1 tunings, each vectorised over its rows
        block = fold == k
        start = int(np.argmax(block))  # rows are sorted: the block's past is the rows from first_row before it
        info = {"first_day": local[block].min().date().isoformat(), "last_day": local[block].max().date().isoformat(),
                "rows": int(block.sum()), "ok": False, "reason": "the first block has no past", "dc_scale": None,
                "tilt": None, "azimuth": None}
        per_fold.append(info)
        if k == 0:
            continue
        past = slice(first_row, start)
        t = tune_description(loc, power.iloc[past], entered.iloc[past], weather, times[past], times[start],
                             planes, horizon, min_days, orientation, half_life_days)
        o = t["orientation"] if t["orientation"] is not None and t["orientation"]["ok"] else None
        info.update(ok=bool(t["fit"]["ok"]), reason=t["fit"]["reason"], dc_scale=float(t["fit"]["dc_scale"]),
                    tilt=None if o is None else o["tilt"], azimuth=None if o is None else o["azimuth"])
        if not t["fit"]["ok"]:
            continue
        at = block[at_row]
        q[at] = quantiles_at(t["location"], weather, at_time[at], model, t["planes"], horizon, times[0])
    got = np.isfinite(q).all(axis=1)
    return q, {"method": "forward day blocks (each block forecast with the tuning fitted on the days before it)",
               "folds": n_folds, "rows": int(got.sum()), "unscored_rows": int((~got).sum()), "fold": per_fold}


def quantiles_at(location, weather, times, model, planes, horizon, issue_time):
    """The global model's quantiles of one plant at ``times`` (any order, repeats allowed), kW, shape (n, 5)."""
    times = pd.DatetimeIndex(times).tz_convert("UTC")
    at = times.unique().sort_values()
    q = forecast.forecast_quantiles(feature_frame(location, weather, at, planes, horizon), location, model, "ml",
                                    issue_time)[list(QUANTILE_COLUMNS)].to_numpy()
    return q[at.get_indexer(times)]


def period_sample_instants(times, period_minutes, table):
    """The instants each actual stands for in the band residuals: a period mean's instants, else itself.

    The forecast is of instants, and it varies within a period (the sun's
    path, the weather's own interpolated changes): the residual of a mean
    against the forecast at the period's middle mixes that variation into
    the plant's errors. A mean of period ``p`` (with a within-period table,
    :func:`engine.conformal.within_period_entry`) is scored at the instants
    the table's deviations are of: ``p / s`` instants spaced ``s`` (the
    table's sample interval, 15 min) ending at the period's end, i.e. the
    samples in (end - p, end] whose mean the table's periods are (60 min:
    end - 45, -30, -15, end). Rows of instants, and means without a table
    entry (periods shorter than the shortest tabulated), are their own one
    instant.

    Parameters
    ----------
    times : DatetimeIndex
        Effective instants of the rows (a mean's middle, :func:`actual_instants`).
    period_minutes : array_like of int
        Shape (n,).
    table : dict or None
        The model's ``within_period``.

    Returns
    -------
    row : ndarray of int
        The row of each instant (sorted; a row's instants consecutive).
    instants : DatetimeIndex
        UTC.
    """
    period = np.asarray(period_minutes, dtype="int64")
    step = np.zeros(len(period))  # minutes between a row's instants; 0: the row itself
    count = np.ones(len(period), dtype="int64")
    for p in np.unique(period[period > 0]).tolist():  # one per period sent (usually one)
        entry, _ = conformal.within_period_entry(table, p)
        if entry is not None:
            m = conformal.period_sample_count(p, entry)
            step[period == p], count[period == p] = p / m, m
    row = np.repeat(np.arange(len(period)), count)
    j = np.arange(len(row)) - np.repeat(np.cumsum(count) - count, count)  # 0 .. count - 1 within a row
    end_offset = period[row] / 2.0 * (step[row] > 0)  # from the middle to the end of a period with instants
    minutes = end_offset - (count[row] - 1 - j) * step[row]
    return row, pd.DatetimeIndex(times).tz_convert("UTC")[row] + pd.to_timedelta(minutes * 60.0, unit="s")


def actual_instants(actuals, cutoff):
    """A plant's actuals before ``cutoff`` at their effective instants, sorted, and their longest period.

    A value labelled at the end of its averaging period (``period_minutes``
    > 0, e.g. hourly means from an inverter portal) is compared with the
    model at the middle of the period (``engine.resample.period_instants``,
    the rule of the weather rows); without that an hourly mean is read as
    the instant 30 min later and the tuning learns a wrong azimuth and DC
    scale. Only periods that END before ``cutoff`` are used.

    Parameters
    ----------
    actuals : DataFrame
        ``time`` (UTC, end of period), ``power_kw``; optional ``period_minutes``
        (absent: 0, instantaneous) and ``location_id`` (several plants).
    cutoff : Timestamp
        tz-aware.

    Returns
    -------
    act : DataFrame
        ``time`` (effective instant, UTC), ``power_kw``, ``period_minutes``, sorted
        by (``location_id``,) time.
    period : int
        Longest ``period_minutes`` among them, min (0 without rows).
    """
    period = actuals["period_minutes"] if "period_minutes" in actuals else np.zeros(len(actuals), dtype="int64")
    act = actuals.assign(time=pd.DatetimeIndex(actuals["time"]).tz_convert("UTC"),
                         period_minutes=np.asarray(period, dtype="int64"))
    act = act[act["time"] < cutoff]
    act = act.assign(time=resample.period_instants(act["time"], act["period_minutes"]))
    keys = ["location_id", "time"] if "location_id" in act else ["time"]
    act = act.drop_duplicates(keys).sort_values(keys)
    return act, int(act["period_minutes"].max()) if len(act) else 0


def clear_sky_period_means_kw(location, weather, times, period_minutes, table, planes=None, horizon=None):
    """The plant's clear-sky physical AC power averaged over each actual's own period, kW (the instant for instants).

    What the sun alone makes of the plant (:func:`clear_sky_physical_kw`), so
    that a time shift of the weather source does not pass for one of the
    actuals (``engine.tuning.clock_offset``). A period mean of measured power
    is compared with the mean over the instants that mean stands for
    (:func:`period_sample_instants`, the same instants the bands score it at:
    one definition), not with the value at the period's middle: around
    sunrise and sunset the two differ by more than a clock error would.

    Parameters
    ----------
    location : DataFrame
        One-row locations frame.
    weather : DataFrame
        The plant's weather frame (air temperature and wind of the clear-sky
        estimate; its irradiance is not used).
    times : DatetimeIndex
        Effective instants of the actuals (the middle of their periods,
        :func:`actual_instants`), UTC.
    period_minutes : ndarray of int
        Each actual's period, min (0: instantaneous).
    table : dict or None
        The model's ``within_period`` (its sample interval and periods; a
        period without an entry is its own instant).
    planes, horizon : DataFrame, optional
        ``features.feature_frame``.

    Returns
    -------
    ndarray
        kW, one per time.
    """
    period = np.asarray(period_minutes, dtype="int64")
    row, t = period_sample_instants(times, period, table)
    grid = t.unique().sort_values()
    kw = clear_sky_physical_kw(location, feature_frame(location, weather, grid, planes, horizon), planes, horizon)
    return np.bincount(row, weights=kw[grid.get_indexer(t)], minlength=len(period)) / np.bincount(
        row, minlength=len(period))


def clear_sky_physical_kw(location, feats, planes=None, horizon=None):
    """The plant's physical AC power under clear sky at a feature frame's times, kW.

    The feature frame's Ineichen clear-sky GHI taken as the weather (DNI/DHI
    decomposed, Erbs; its air and wind temperature kept): the clear-sky
    reference of the within-period deviations
    (:func:`engine.conformal.instant_deviations`). The training samples'
    (``engine.training.build_dataset`` ``clear_physical_kw``) is the same
    chain under PSM3's clear-sky GHI, which matches Ineichen's within
    ~15 W/m^2 (``engine.data.load_serf_east_2016``).

    Parameters
    ----------
    location : DataFrame
        One-row locations frame (the tuned description).
    feats : DataFrame
        ``engine.features.feature_frame`` of it (``ghi_clear``, ``temp_air``,
        ``wind_speed``), indexed by (location_id, valid_time).
    planes, horizon : DataFrame, optional

    Returns
    -------
    ndarray
        kW, in [0, capacity_ac_kw], 0 at night.
    """
    times = pd.DatetimeIndex(feats.index.get_level_values("valid_time"))
    n = len(times)
    clear = pd.DataFrame({"location_id": np.full(n, int(location["location_id"].iloc[0]), dtype="int64"),
                          "valid_time": times, "issue_time": times, "source": "clear_sky",
                          "ghi": feats["ghi_clear"].to_numpy(dtype=float), "dni": np.full(n, np.nan),
                          "dhi": np.full(n, np.nan), "temp_air": feats["temp_air"].to_numpy(dtype=float),
                          "wind_speed": feats["wind_speed"].to_numpy(dtype=float), "cloud_cover": np.full(n, np.nan),
                          "period_minutes": np.zeros(n, dtype="int64")})
    return feature_frame(location, clear, times, planes, horizon)["physical_ac_kw"].to_numpy(dtype=float)


def within_period_term(period_minutes, y, clear, table):
    """The within-period deviations of each band residual row (:func:`engine.conformal.instant_deviations`).

    Rows of instants (``period_minutes`` 0) get none; rows of means get the
    model's tabulated deviations of their period
    (:func:`engine.conformal.within_period_entry`); :func:`fit_calibration`
    adds them to the mean spread along the clear-sky shape at each instant
    the mean averages (:func:`period_sample_instants`).

    Parameters
    ----------
    period_minutes : ndarray of int
        Shape (n,): each row's averaging period, min.
    y : ndarray
        Shape (n,): measured / capacity_ac_kw.
    clear : ndarray or None
        Shape (n,): the plant's clear-sky physical power averaged over the
        instants of each row's period (:func:`clear_sky_physical_kw`) /
        capacity_ac_kw, the unit the table's deviations are in (None when no
        row is a mean).
    table : dict or None
        The model's ``within_period`` (``engine.modelio.load_model``).

    Returns
    -------
    within : ndarray or None
        Shape (n, levels), fraction of capacity_ac_kw; None when no row gets a
        deviation (the band offsets are then bit for bit those of the rows).
    diagnostics : dict
        ``applied``, ``period_minutes`` (the longest), ``source`` (the
        table's, with its training period), ``table_period_minutes``,
        ``deviations`` (training deviations behind the table used),
        ``levels``, ``rows`` (rows with the term), ``instants_per_row`` (the
        instants the longest period's rows are scored at), ``reason`` (None,
        or why none / which stands in).
    """
    period_minutes = np.asarray(period_minutes, dtype="int64")
    longest = int(period_minutes.max()) if len(period_minutes) else 0
    how = {"applied": False, "period_minutes": longest, "source": None, "table_period_minutes": None,
           "deviations": 0, "levels": 0, "rows": 0, "instants_per_row": None, "reason": None}
    if longest == 0:
        return None, {**how, "reason": "instantaneous actuals: their residuals are those of instants"}
    within, reasons = None, []
    for p in np.unique(period_minutes[period_minutes > 0]).tolist():  # one entry per period sent (usually one)
        entry, reason = conformal.within_period_entry(table, p)
        if reason:
            reasons.append(reason)
        if entry is None:
            continue
        sel = period_minutes == p
        if within is None:
            within = np.zeros((len(y), len(entry["levels"])))
        within[sel] = conformal.instant_deviations(y[sel], clear[sel], entry)
        how.update(applied=True, source=f"{table['source']} {table['train_period'][0]}..{table['train_period'][1]}",
                   table_period_minutes=int(entry["period_minutes"]),
                   deviations=int(sum(entry["count"])), levels=len(entry["levels"]),
                   rows=how["rows"] + int(sel.sum()),
                   instants_per_row=float(conformal.period_sample_count(p, entry)))
    return within, {**how, "reason": "; ".join(reasons) or None}


def fit_calibration(location, weather, actuals, model, cutoff, planes=None, horizon=None, tau_hours=0.0,
                    window_minutes=60, min_days=tuning.MIN_DAYS, n0=conformal.N0, orientation=True,
                    folds=BAND_FOLDS, half_life_days=conformal.HALF_LIFE_DAYS, tuning_half_life_days=None,
                    min_band_days=MIN_BAND_DAYS, prior_evidence=True, day_inflation=True, relative_untuned=True):
    """A plant's calibration from its actuals before ``cutoff``.

    Parameters
    ----------
    location : DataFrame
        One-row locations frame, the description as ENTERED.
    weather : DataFrame
        The plant's weather frame as stored; rows issued after ``cutoff`` are ignored.
    actuals : DataFrame
        ``time`` (UTC, end of period), ``power_kw`` (kW), optional ``period_minutes``
        (0: instantaneous; means are placed at their middle, :func:`actual_instants`);
        rows at or after ``cutoff`` are ignored.
    model : dict
        ``modelio.load_model`` (the plant's model id).
    cutoff : Timestamp
        tz-aware.
    planes, horizon : DataFrame, optional
        Keyed by ``location_id`` (``features.feature_frame``).
    tau_hours : float
        Intraday decay constant recorded with the calibration, h.
    window_minutes : int
        Intraday power-index window, min.
    min_days : int
        Minimum days of usable actuals (:data:`engine.tuning.MIN_DAYS`).
    n0 : float
        Shrinkage constant of the band offsets (:data:`engine.conformal.N0`).
    orientation : bool, default True
        Fit tilt/azimuth (False: the stated ones, as before orientation tuning;
        ``bench/bench_adaptive.py`` compares both).
    folds : int, default :data:`BAND_FOLDS`
        Day blocks of the forward band residuals (:func:`forward_quantiles`);
        1: in-sample residuals of the served tuning (the former method, kept
        to measure the difference).
    half_life_days : float or None, default :data:`engine.conformal.HALF_LIFE_DAYS`
        Band residuals weighted by their age at the cutoff
        (:func:`engine.conformal.recency_weights`); None: equal weights (the
        former method). Forward residuals are used when their effective
        sample size reaches ``n0``.
    tuning_half_life_days : float or None, default None
        The orientation and DC-scale fits (served and forward) weighted by
        each sample's age at their cutoff, the same recency weights
        (:func:`engine.conformal.recency_weights`; ``engine.tuning``); None:
        equal weights. None is the default: with the bands' half-life
        (:data:`engine.conformal.HALF_LIFE_DAYS`) the weighted tuning follows
        weather spells more than the season and the P50 got worse on SERF
        East 2016 for both descriptions (docs/model.md "Recency-weighted tuning").
    min_band_days : int or None, default :data:`MIN_BAND_DAYS`
        While the tuning lacks history (fewer than ``min_days`` days or too
        few clear samples, :func:`untuned_description`), bands are fitted on
        the entered description once this many local days have usable
        daylight actuals; None: the calibration is refused until the tuning
        can be fitted (the former rule).
    prior_evidence : bool, default True
        The global bands' weight in the plant's pooled offsets is scaled by
        the evidence against them on the plant's own scores, counted in local
        days (:func:`engine.conformal.prior_strength`); False: ``n0`` whatever
        the scores say (the former rule, kept to measure the difference).
    day_inflation : bool, default True
        Each band widened away from the median by ``sqrt(1 + 1 / D)``, ``D``
        the effective number of local days of its scores
        (:func:`engine.conformal.predictive_inflation`): the offsets of a few
        days are one weather spell's; False: the offsets as fitted (the former
        rule, kept to measure the difference).
    relative_untuned : bool, default True
        An untuned calibration's (:func:`untuned_description`) offsets are
        fractions of the forecast level (``level_floor``
        :data:`engine.conformal.LEVEL_FLOOR`,
        :func:`engine.conformal.fit_band_offsets`): the entered description
        may be wrong by a factor (DC entered as AC), an error that grows with
        the power; a tuned calibration's stay fractions of capacity_ac_kw
        (its DC scale removes the factor). False: absolute offsets for every
        calibration (the former rule, kept to measure the difference;
        ``configs/service.yaml`` ``adaptation.relative_untuned``).

    Returns
    -------
    dict
        ``ok``, ``reason`` (a sentence, None when ok), ``code`` (the reason's stable code,
        :data:`engine.tuning.REFUSAL_CODES`; None when ok), ``cutoff``, ``dc_scale``, ``capacity_dc_kw``
        (tuned), ``clip_kw``, ``orientation``
        (:func:`engine.tuning.fit_orientation`: ``ok``, ``reason``, ``tilt``,
        ``azimuth``, ``stated_tilt``, ``stated_azimuth``, ``diagnostics``;
        the tilt/azimuth forecasts use when ``ok``), ``shading``
        (:func:`engine.shading.fit_shading` on the tuned description: the
        fitted skyline forecasts add to the entered one,
        :func:`engine.shading.served_horizon`; when it shades a bin, the DC
        scale and clipping level are refitted behind it and the band
        residuals are forecast with it), ``window_start``, ``window_end``,
        ``n_samples``, ``bands`` (:func:`engine.conformal.fit_band_offsets`),
        ``intraday`` (``tau_hours``, ``window_minutes``, ``blend``:
        :func:`fit_intraday_blend`), ``diagnostics``
        (tuning rejections and fit; ``band_residuals``: how the band
        residuals were obtained, :func:`forward_quantiles`, and
        ``weighting``: ``half_life_days``, ``rows``, ``n_effective`` of the
        residuals used; ``present_state``: ``first_day`` and ``factor`` of the
        plant's last level change (``engine.tuning.level_changes``; None
        without one) and ``rows_left_out``, the rows before it, which give no
        band residual (another state of the plant: the bands are fitted in
        the DC scale's state, ``engine.tuning.present_state``, the shrinkage
        toward the global bands standing in for them); ``within_period``: :func:`within_period_term`, the
        spread of instants within their period added to the scores of period
        means, each scored at the instants it averages, since the forecast is
        of instants (``instants``: how many); ``band_rows``:
        the daylight actuals rows the offsets are fitted on; ``band_prior``: the
        bands' ``prior`` (:func:`engine.conformal.fit_band_offsets`: the global
        bands' strength per level left by the evidence against them; None with
        ``prior_evidence`` False); ``band_predictive``: the bands' ``predictive``
        (``factor``, ``days_effective``, ``widening``; None with ``day_inflation``
        False); ``band_level_floor``: the bands' ``level_floor`` (None: offsets in
        fractions of capacity_ac_kw; a float: of the forecast level, an untuned
        calibration with ``relative_untuned``); daylight P10-P90/P25-P75 coverage of their scores
        before/after the band offsets
        (of period means: of the means spread along the clear-sky shape at
        their instants, so "after" is above nominal, the bands being of
        instants), None without rows); ``tuned`` (False: the tuning lacked
        history and the entered description is served with the plant's bands,
        ``untuned_code`` (:data:`SHORT_HISTORY`) and ``untuned_reason`` say why;
        :func:`untuned_description`).
    """
    cutoff = pd.Timestamp(cutoff).tz_convert("UTC")
    loc = location.iloc[[0]].reset_index(drop=True)
    act, period = actual_instants(actuals, cutoff)
    fail = {"ok": False, "cutoff": cutoff, "n_samples": 0, "diagnostics": {"actuals": int(len(act))}}
    if weather is not None and len(weather):
        weather = weather[pd.DatetimeIndex(weather["issue_time"]) <= cutoff]
    if weather is None or not len(weather) or not len(act):
        return {**fail, "code": "no_actuals", "reason": f"no actuals with weather before {cutoff.isoformat()}"}
    wt = pd.DatetimeIndex(weather["valid_time"])
    inside = (act["time"] >= wt.min()) & (act["time"] <= wt.max())
    act = act[inside.to_numpy()]
    if len(act) < tuning.samples_for(tuning.MIN_CLEAR_HOURS, tuning.sample_minutes(act["time"])):
        return {**fail, "code": "no_actuals",
                "reason": f"{len(act)} actuals covered by stored weather before {cutoff.isoformat()}"}
    times = pd.DatetimeIndex(act["time"])
    power = pd.Series(act["power_kw"].to_numpy(dtype=float), index=times)
    cap = float(loc.loc[0, "capacity_ac_kw"])
    try:
        entered = feature_frame(loc, weather, times, planes, horizon)
    except ValueError as exc:
        return {**fail, "code": "weather", "reason": f"weather: {exc}"}
    periods = act["period_minutes"].to_numpy()
    clear_kw = (clear_sky_period_means_kw(loc, weather, times, periods, model.get("within_period"), planes, horizon)
                if (periods > 0).any()
                else clear_sky_physical_kw(loc, entered, planes, horizon))  # instants: the frame at hand
    stuck = tuning.stuck_values(power.to_numpy(), cap)  # a stuck meter's nights are not a clock
    clock = {**tuning.clock_offset(power.where(~stuck), clear_kw, float(loc.loc[0, "longitude"]), cap),
             "stuck_samples_left_out": int(stuck.sum())}
    if clock["shifted"]:  # a clock, not a plant: learning from it would turn the plane and widen the bands
        return {**fail, "code": "clock", "reason": clock["reason"],
                "diagnostics": {**fail["diagnostics"], "clock": clock}}
    minutes = tuning.sample_minutes(times)
    timing = (f"orientation: actuals {minutes:.0f} min apart sent as instants (period_minutes 0); hour-ending "
              f"means read as instants look like a plant turned west: send their period_minutes to fit it"
              if orientation and period == 0 and minutes > tuning.MAX_INSTANT_MINUTES else None)
    orientation = orientation and timing is None
    served = tune_description(loc, power, entered, weather, times, cutoff, planes, horizon, min_days=min_days,
                              orientation=orientation, half_life_days=tuning_half_life_days)
    shade = None
    if served["fit"]["ok"]:  # fitted skyline on the tuned description's residual; refit the DC scale behind it
        shade = shading.fit_plant_shading(served["location"], power, feature_frame(
            served["location"], weather, times, served["planes"], horizon), cutoff)
        if shade["shaded"]:
            horizon = shading.served_horizon(horizon, {int(loc.loc[0, "location_id"]): shade})
            entered = feature_frame(loc, weather, times, planes, horizon)
            served = tune_description(loc, power, entered, weather, times, cutoff, planes, horizon,
                                      min_days=min_days, orientation=orientation,
                                      half_life_days=tuning_half_life_days)
    oriented, fit = served["orientation"], served["fit"]
    stated = loc.loc[0, ["tilt", "azimuth"]].to_numpy(dtype=float)
    if timing is not None and np.isfinite(stated).all():  # (a plant of planes states no single tilt/azimuth)
        oriented = tuning.refused_orientation(*stated, timing, {"sample_minutes": minutes})
    untuned = None if fit["ok"] else untuned_description(loc, planes, fit, oriented, min_band_days)
    if untuned is None and not fit["ok"]:
        return {**fail, "code": fit["code"], "reason": fit["reason"], "n_samples": fit["n_samples"],
                "diagnostics": fit["diagnostics"], "orientation": oriented}
    if tuning.orientation_at_edge(oriented):  # the plant seen is not the plant described (after a scale
        # refusal: a unit error also pushes the tilt to its edge): nothing to learn
        return {**fail, "code": "orientation", "n_samples": fit["n_samples"], "orientation": oriented,
                "diagnostics": {**fit["diagnostics"], "clock": clock},
                "reason": (f"orientation: the actuals fit best at tilt {oriented['tilt']:.0f}, azimuth "
                           f"{oriented['azimuth']:.0f}, the edge of the window searched (stated azimuth "
                           f"{oriented['stated_azimuth']:.0f} +- {tuning.AZIMUTH_WINDOW:.0f}, tilt up to "
                           f"{tuning.TILT_BOUNDS[1]:.0f}): they are not this plant as described (another "
                           f"plant's actuals, the other side of the roof); not learnt from")}
    if untuned is not None:  # the tuning lacks history, not sense: the entered description with the plant's bands
        served, fit, oriented = untuned, untuned["fit"], untuned["orientation"]
        folds = 1  # nothing fitted: the entered description's own residuals are out of sample
    flags = tuning.usable_samples(power, entered["physical_ac_kw"], entered["solar_elevation"], cap,
                                  min_elevation=0.0)
    usable = (~(flags["night"] | flags["missing"] | flags["outage"] | flags["stale"])).to_numpy()
    # the served tuning's forecast of the history: in-sample band residuals and the intraday blend's base
    feats = entered if untuned is not None else feature_frame(served["location"], weather, times, served["planes"],
                                                              horizon)  # untuned: the entered description's frame
    fx = forecast.forecast_quantiles(feats, served["location"], model, "ml", times[0])
    # bands: residuals of forward tunings (folds > 1) or of the served tuning itself (1, in-sample); a period
    # mean is scored at the instants it averages (period_sample_instants), a row of an instant at itself
    table = model.get("within_period")
    row_period = act["period_minutes"].to_numpy(dtype="int64")
    at_row, at_time = period_sample_instants(times, row_period, table)
    spread = len(at_row) > len(times)  # some mean is scored at its period's instants
    if spread:  # a period reaching past the stored weather gives no band residual
        outside = np.zeros(len(times), dtype=bool)
        np.logical_or.at(outside, at_row, (at_time < wt.min()) | (at_time > wt.max()))
        usable, keep = usable & ~outside, ~outside[at_row]
        at_row, at_time = at_row[keep], at_time[keep]
    per_row = np.bincount(at_row, minlength=len(times)).astype(float) if spread else None  # instants of each row
    # the bands are fitted in the served fit's state: residuals from before the plant's last level change (strings
    # off or back on) are errors of another plant; the shrinkage toward the global bands stands in for them
    present = tuning.present_state(times, str(loc.loc[0, "timezone"]), fit["diagnostics"].get("level_changes"))
    usable = usable & present
    first_row = int(np.argmax(present)) if present.any() else len(times)
    q_kw, how = None, None
    age_weight = conformal.recency_weights(times, cutoff, half_life_days)  # older residuals count less

    def weighting(rows):  # a mean counts as the instants it is scored at (N0 is stated in 15-min samples)
        return {"half_life_days": None if half_life_days is None else float(half_life_days), "rows": int(rows.sum()),
                "n_effective": conformal.effective_n(age_weight[rows], None if per_row is None else per_row[rows])}

    def scored_rows(q_at):  # rows whose every instant has quantiles
        bad = np.zeros(len(times), dtype=bool)
        np.logical_or.at(bad, at_row, ~np.isfinite(q_at).all(axis=1))
        return ~bad

    if folds > 1:
        q_kw, how = forward_quantiles(loc, power, entered, weather, times, model, planes, horizon, folds, min_days,
                                      orientation, tuning_half_life_days, (at_row, at_time) if spread else None,
                                      first_row)
        scored = weighting(usable & scored_rows(q_kw))
        if scored["n_effective"] < n0:  # too short a history for forward residuals: the served tuning's own (stated)
            how = {**how, "used": False, "weighting": scored,
                   "reason": f"{scored['n_effective']:.0f} effective forward residuals ({scored['rows']} rows) "
                             f"< n0 = {n0:g}: in-sample used"}
            q_kw = None
        else:
            how = {**how, "used": True, "reason": None}
    if q_kw is None:
        q_kw = (quantiles_at(served["location"], weather, at_time, model, served["planes"], horizon, times[0])
                if spread else fx[list(QUANTILE_COLUMNS)].to_numpy())
        how = {"method": "in-sample (the served tuning's own rows)", "folds": 1, "rows": int(len(times)),
               "unscored_rows": 0, "forward": how}
    rows = usable & scored_rows(q_kw)
    changes = fit["diagnostics"].get("level_changes") or []
    how = {**how, "weighting": weighting(rows),
           "present_state": {"first_day": changes[-1]["first_day"] if changes else None,
                             "factor": changes[-1]["factor"] if changes else None,
                             "rows_left_out": int(first_row)}}
    y = power.to_numpy() / cap
    if spread:  # the plant's clear-sky power at each instant spreads its period's mean along the sun's path
        at_feats = feature_frame(served["location"], weather, at_time, served["planes"], horizon)
        clear_at = clear_sky_physical_kw(served["location"], at_feats, served["planes"], horizon) / cap
        clear = np.bincount(at_row, weights=clear_at, minlength=len(times)) / np.maximum(per_row, 1.0)  # its mean
        with np.errstate(invalid="ignore", divide="ignore"):
            shape = np.where((per_row[at_row] > 1) & (clear[at_row] > 0), clear_at / clear[at_row], 1.0)
        lead = weather_lead_hours(weather, at_time)
        csi = at_feats["csi"].to_numpy()
    else:
        clear = (clear_sky_physical_kw(served["location"], feats, served["planes"], horizon) / cap
                 if (row_period > 0).any() else None)  # means without a tabulated period: no within-period term
        shape, lead, csi = 1.0, weather_lead_hours(weather, times), entered["csi"].to_numpy()
    within, how["within_period"] = within_period_term(row_period[rows], y[rows], None if clear is None else clear[rows],
                                                      table)
    inst = rows[at_row]  # the instants of the rows used, in row order
    if within is not None:  # each instant gets its period's deviations
        within = within[(np.cumsum(rows) - 1)[at_row[inst]]]  # (a row with a term is always spread)
        how["within_period"]["instants"] = int(inst.sum())
    y = (y[at_row] * shape)[inst]  # a mean along its clear-sky shape at each instant; an instant itself
    q = q_kw[inst] / cap
    lead, csi = lead[inst], csi[inst]  # csi: the weather's clear-sky index, the same under every description
    local_day = pd.factorize(times.tz_convert(str(loc.loc[0, "timezone"])).tz_localize(None).normalize())[0]
    bands = conformal.fit_band_offsets(y, q, lead, csi, n0=n0, weights=age_weight[at_row][inst], within=within,
                                       days=local_day[at_row][inst] if prior_evidence else None,
                                       predictive_days=local_day[at_row][inst] if day_inflation else None,
                                       level_floor=conformal.LEVEL_FLOOR if untuned is not None and relative_untuned
                                       else None)  # untuned: the entered description's error grows with the level
    bands["actuals_period_minutes"] = period  # > 0: residuals of means, widened by the within-period deviations
    plant = np.zeros(len(y), dtype=int)
    q_after = np.sort(conformal.apply_band_offsets(q, plant, lead, csi, np.asarray(bands["offsets"])[None],
                                                   conformal.level_floors([bands])), axis=1)
    diagnostics = {**fit["diagnostics"], "clock": clock, "band_rows": int(rows.sum()), "band_residuals": how,
                   "band_prior": bands.get("prior"),  # the evidence against the global bands (None: not weighed)
                   "band_predictive": bands.get("predictive"),  # the widening for the next days (None: not widened)
                   "band_level_floor": bands["level_floor"],  # None: offsets of capacity; a float: of the P50
                   "tuned": untuned is None, "untuned_code": None if untuned is None else fit["code"],
                   "untuned_reason": None if untuned is None else fit["reason"]}
    for name, q_ in (("before", q), ("after", q_after)):  # None: no residual rows (the global bands)
        diagnostics[f"coverage_p10_p90_{name}"] = coverage(y, q_[:, 0], q_[:, 4], (0.1, 0.9)) if len(y) else None
        diagnostics[f"coverage_p25_p75_{name}"] = coverage(y, q_[:, 1], q_[:, 3], (0.25, 0.75)) if len(y) else None
    return {"ok": True, "reason": None, "code": None, "cutoff": cutoff, "dc_scale": fit["dc_scale"],
            "capacity_dc_kw": fit["capacity_dc_kw"], "clip_kw": fit["clip_kw"], "orientation": oriented, "shading": shade,
            "window_start": times[usable].min() if untuned is not None else fit["window_start"],
            "window_end": times[usable].max() if untuned is not None else fit["window_end"],
            "n_samples": fit["n_samples"],
            "bands": bands, "intraday": {"tau_hours": float(tau_hours), "window_minutes": int(window_minutes),
                                         "blend": fit_intraday_blend(times, power, fx["p50"], feats, served["location"], model,
                                                                     bands, tau_hours, window_minutes)},
            "diagnostics": diagnostics}


def untuned_description(loc, planes, fit, oriented, min_band_days=MIN_BAND_DAYS):
    """The entered description, served untuned with the plant's bands, when the tuning lacks only history.

    :func:`engine.tuning.fit_tuning` refuses a fit with fewer than its
    ``min_days`` days of usable daylight actuals or too few clear unclipped
    samples (codes :data:`SHORT_HISTORY`): a plant's first days, or weeks of
    cloud. Its bands need no clear sky: the residuals of the
    entered description, on which nothing is fitted, are out-of-sample
    errors of what is served, and :func:`engine.conformal.fit_band_offsets`
    shrinks them toward the global bands by their number. Refusals for any
    other cause (a wrong clock, a DC scale out of its bounds, a level change
    too recent, an orientation at the edge of its window) keep the
    calibration refused: data that mislead the tuning mislead the bands.

    Parameters
    ----------
    loc : DataFrame
        One-row locations frame, the description as entered.
    planes : DataFrame or None
        Its planes.
    fit : dict
        The refused :func:`engine.tuning.fit_tuning` result.
    oriented : dict or None
        :func:`fit_orientation` (an orientation it fitted is not served
        without a DC scale fitted with it: stated as refused).
    min_band_days : int or None
        Local days with usable daylight actuals needed (None: never).

    Returns
    -------
    dict or None
        The served description as :func:`tune_description` gives it
        (``location``, ``planes``, ``orientation``, ``fit``: the fit with
        ``dc_scale`` 1 and no clipping level), or None when the calibration
        stays refused.
    """
    if fit["ok"] or fit.get("code") not in SHORT_HISTORY or min_band_days is None \
            or fit["diagnostics"]["days"] < int(min_band_days):
        return None
    if oriented is not None and oriented["ok"]:
        oriented = tuning.refused_orientation(oriented["stated_tilt"], oriented["stated_azimuth"],
                                              f"orientation: not served before the DC scale ({fit['reason']})",
                                              oriented["diagnostics"])
    return {"location": loc, "planes": planes, "orientation": oriented, "fit": {**fit, "dc_scale": 1.0, "clip_kw": None}}


def fit_orientation(location, power, entered, cutoff, planes=None, half_life_days=None):
    """:func:`engine.tuning.fit_orientation` of one plant from its feature frame under the entered description.

    Parameters
    ----------
    location : DataFrame
        One-row locations frame (entered description).
    power : Series
        Measured AC power, kW, at the feature frame's times.
    entered : DataFrame
        ``engine.features.feature_frame`` of ``location`` at those times.
    cutoff : Timestamp
    planes : DataFrame, optional
        Its plane rows (more than one: refused).
    half_life_days : float or None
        Recency weighting (:func:`engine.tuning.fit_orientation`); None: equal weights.

    Returns
    -------
    dict
        JSON-ready (:func:`engine.tuning.fit_orientation`).
    """
    row = location.iloc[0]
    cap = float(row["capacity_ac_kw"])
    n_planes = 0 if planes is None else int((planes["location_id"] == row["location_id"]).sum())
    flags = tuning.usable_samples(power, entered["physical_ac_kw"], entered["solar_elevation"], cap)
    return tuning.fit_orientation(power, tuning.sky_arrays(entered, power.index), flags["usable"], entered["csi"],
                                  row.to_dict(), cutoff, str(row["timezone"]), n_planes=n_planes,
                                  half_life_days=half_life_days)


def tuning_table(calibrations):
    """``location_id``, ``dc_scale``, ``clip_kw`` (NaN: none), ``tilt``, ``azimuth`` (NaN: stated), ``version``.

    Parameters
    ----------
    calibrations : dict
        location_id -> calibration dict (``engine.store.read_calibrations``);
        its ``orientation`` (None: fitted before orientation tuning) applies
        only when ``ok``.
    """
    ids = list(calibrations)

    def fitted(i, key):
        o = calibrations[i].get("orientation")
        return float(o[key]) if o and o.get("ok") else np.nan

    return pd.DataFrame({"location_id": np.asarray(ids, dtype="int64"),
                         "tilt": [fitted(i, "tilt") for i in ids], "azimuth": [fitted(i, "azimuth") for i in ids],
                         "dc_scale": [float(calibrations[i]["dc_scale"]) for i in ids],
                         "clip_kw": [np.nan if calibrations[i]["clip_kw"] is None else float(calibrations[i]["clip_kw"])
                                     for i in ids],
                         "version": [int(calibrations[i]["version"]) for i in ids]})


def refit_policy(conf):
    """(threshold, first days, counted column) of :func:`refits_due` from the ``adaptation`` settings.

    ``refit_after_daylight_hours`` (h) counts the hours the new daylight
    actuals stand for, so 1-min, 15-min and hourly actuals refit after the
    same days; 0 or null turns the policy off.
    """
    return conf["refit_after_daylight_hours"] or 0, conf.get("refit_first_after_days"), "new_daylight_hours"


def refits_due(counts, threshold, first_days=MIN_BAND_DAYS, refused=None, column="new_daylight"):
    """The plants the refit policy refits now (``adaptation`` of ``configs/service.yaml``).

    A plant is due when ``threshold`` daylight actuals arrived since its
    latest calibration, or, without a calibration yet, as soon as its
    daylight actuals cover ``first_days`` local days (at least
    :data:`MIN_BAND_DAYS`, the fewest :func:`fit_calibration` accepts:
    bands before the tuning, :func:`untuned_description`; the first fit does not wait for the threshold),
    or, while its latest calibration is untuned, on each new local day of
    daylight actuals (the day the tuning has its days is not left to the
    threshold's cadence; an untuned fit costs no tuning). A plant whose
    last refit was refused (too little usable data) is due again only after
    ``threshold`` more daylight actuals or, for a first or untuned fit, one
    more local day: never on every ingest.

    Parameters
    ----------
    counts : DataFrame
        ``engine.store.refit_counts``: ``location_id``, ``new_daylight``
        (values) or ``new_daylight_hours`` (h), ``calibrated``, ``daylight_days``,
        optionally ``tuned`` (absent: every calibration counts as tuned).
    threshold : float
        New daylight actuals of ``column`` (values, or h); 0 turns the policy off.
    first_days : int or None
        Local days of a first fit; 0 or None: a first fit (and an untuned plant's refit) waits for ``threshold`` too.
    refused : dict, optional
        location_id -> (``column``, ``daylight_days``) when its last refit was refused.
    column : {'new_daylight', 'new_daylight_hours'}
        What ``threshold`` counts: values, or the hours they stand for (the
        same threshold for 1-min, 15-min and hourly actuals).

    Returns
    -------
    ndarray of int64
        The due plants' ``location_id``.
    """
    ids = counts["location_id"].to_numpy("int64")
    if not threshold or not len(ids):
        return ids[:0]
    refused = refused or {}
    before = np.array([refused.get(i, (0, -1)) for i in ids.tolist()], dtype="float64").reshape(len(ids), 2)
    new = counts[column].to_numpy("float64")
    days = counts["daylight_days"].to_numpy("int64")
    due = new - before[:, 0] >= threshold
    if first_days:
        calibrated = counts["calibrated"].to_numpy(bool)
        tuned = counts["tuned"].to_numpy(bool) if "tuned" in counts else calibrated
        first = ~calibrated & (days >= max(int(first_days), MIN_BAND_DAYS))
        untuned = calibrated & ~tuned & (days >= 1)  # days: those after the untuned fit's last actual
        due |= (first | untuned) & (days > before[:, 1])
    return ids[due]


def fit_intraday_blend(times, power, p50_kw, feats, location, model, bands, tau_hours, window_minutes):
    """The intraday blend of one plant, fitted on simulated hourly issues of its history (JSON-ready).

    Every full hour with the sun up in the history is an issue T
    (:func:`engine.intraday.past_issues`): its candidates
    (:func:`engine.intraday.candidates`) come from the actuals in
    ``[T - window, T)`` exactly as at serving time (the power index against
    the model P50 without plant offsets, the clear-sky indices against
    :func:`engine.intraday.clear_sky_power`), its base is the model P50 with
    the plant's band offsets at lead ``valid - T``, its targets the actuals in
    ``(T, T + 6 h]``. Every sample is before the calibration's cutoff (the
    caller's selection), so no weight sees data at or after it.

    Parameters
    ----------
    times : DatetimeIndex
        The history's sample times (sorted, UTC, < cutoff).
    power : Series
        Measured AC power at ``times``, kW.
    p50_kw : array_like
        Model P50 at ``times`` (tuned description, no plant offsets), kW.
    feats : DataFrame
        ``engine.features.feature_frame`` of the tuned plant at ``times``.
    location : DataFrame
        The tuned one-row locations frame.
    model : dict
    bands : dict
        :func:`engine.conformal.fit_band_offsets` of the plant.
    tau_hours, window_minutes
        The prior's decay, h; the window of the indices, min.

    Returns
    -------
    dict
        ``ok`` (False: no lead bin had enough rows; the prior serves),
        ``reason``, ``candidates`` (:data:`engine.intraday.BLEND_CANDIDATES`),
        ``window_minutes`` (of each candidate), ``issues``, ``rows``, and
        :func:`engine.intraday.fit_blend`'s ``lead_edges_hours``, ``tau_hours``,
        ``fitted``, ``shrink``, ``n``, ``mae_fitted``, ``mae_prior``
        (fraction of capacity, in sample), ``fallback``; NaN as None.
    """
    cap = float(location["capacity_ac_kw"].iloc[0])
    elev = feats["solar_elevation"].to_numpy(dtype=float)
    issues, (wi, wj), (li, lj) = intraday.past_issues(times, elev, window_minutes)
    y = power.to_numpy(dtype=float)
    clear = intraday.clear_sky_power(feats["physical_ac_kw"].to_numpy(), feats["csi"].to_numpy())
    index = intraday.window_indices(wi, times[wj], y[wj], np.asarray(p50_kw, dtype=float)[wj], clear[wj],
                                    np.full(len(wj), cap), issues[wi], window_minutes)
    index = index.reindex(np.arange(len(issues))).to_numpy(dtype=float)
    lead = np.asarray((times[lj] - issues[li]).total_seconds(), dtype=float) / 3600.0
    q = forecast.ml_quantiles(feats.iloc[lj], np.full(len(lj), cap), model)
    q = conformal.apply_band_offsets(q, np.zeros(len(lj), dtype=int), lead, feats["csi"].to_numpy()[lj],
                                     np.asarray(bands["offsets"], dtype=float)[None], conformal.level_floors([bands]))
    base = q[:, 2]
    fit = intraday.fit_blend(lead, y[lj] / cap, base, intraday.candidates(base, clear[lj] / cap, index[li]),
                             tau_hours)
    ok = bool((fit["shrink"] > 0).any())
    reason = None if ok else (f"{len(lj)} past (issue, lead) rows from {len(issues)} simulated hourly issues: no lead "
                              f"bin with {intraday.BLEND_MIN_ROWS} rows: prior weights exp(-lead / {tau_hours:g} h) "
                              f"on the power index")

    def listed(a):
        return [None if not np.isfinite(v) else float(v) for v in np.ravel(a)] if np.ndim(a) == 1 else \
            [listed(r) for r in a]

    return {"ok": ok, "reason": reason, "candidates": list(intraday.BLEND_CANDIDATES),
            "window_minutes": [int(window_minutes), int(window_minutes), intraday.LAST_MINUTES],
            "issues": int(len(issues)), "rows": int(len(lj)),
            "lead_edges_hours": [float(e) for e in fit["lead_edges_hours"]], "tau_hours": float(tau_hours), "fitted": listed(fit["fitted"]), "shrink": listed(fit["shrink"]),
            "n": [int(v) for v in fit["n"]], "mae_fitted": listed(fit["mae_fitted"]),
            "mae_prior": listed(fit["mae_prior"]), "fallback": list(fit["fallback"])}


def stacked_blends(calibrations, ids):
    """The plants' blends stacked for :func:`engine.intraday.blend_weights` (``plant`` = position in ``ids``).

    A calibration stored before fitted blends (no ``intraday.blend``) or
    whose blend was refused has NaN ``fitted`` and 0 ``shrink``: the prior,
    i.e. :func:`engine.intraday.intraday_shift` with its ``tau_hours``.

    Raises
    ------
    ValueError
        A stored blend whose candidates or lead bins are not this code's.
    """
    stacked = intraday.prior_blend([float(calibrations[i]["intraday"]["tau_hours"]) for i in ids])
    edges = stacked["lead_edges_hours"]
    for p, i in enumerate(ids):  # a few keys per plant: the arithmetic on them is vectorised
        blend = calibrations[i]["intraday"].get("blend")
        if blend is None:
            continue
        if list(blend["candidates"]) != list(intraday.BLEND_CANDIDATES) or list(blend["lead_edges_hours"]) != edges:
            raise ValueError(f"location_id {i}: stored intraday blend has candidates {blend['candidates']} and lead "
                             f"bins {blend['lead_edges_hours']}, not {list(intraday.BLEND_CANDIDATES)} / {edges}")
        stacked["fitted"][p] = np.asarray(blend["fitted"], dtype=float)
        stacked["shrink"][p] = np.asarray(blend["shrink"], dtype=float)
    return stacked


def serving_adaptation(calibrations, locations, issue_time, actuals=None, lookback=None, lookback_features=None):
    """The ``adaptation`` argument of ``engine.forecast.forecast_quantiles`` for a batch of plants.

    Parameters
    ----------
    calibrations : dict
        location_id -> stored calibration (latest version).
    locations : DataFrame
        The batch's (tuned) plants: ``location_id``, ``capacity_ac_kw``.
    issue_time : Timestamp
        tz-aware.
    actuals : DataFrame, optional
        ``location_id``, ``time``, ``power_kw``: measured up to the issue time
        (a sample at or after the issue raises ``ValueError``, :func:`engine.intraday.power_indices`).
    lookback : DataFrame, optional
        The plants' forecast frame (``p50``, kW; tuned description, no plant
        offsets) at the actuals' times (``location_id``, ``valid_time``); None:
        no intraday update.
    lookback_features : DataFrame, optional
        The serving feature frame at the actuals' times (``physical_ac_kw``,
        ``csi``; indexed by ``location_id``, ``valid_time``): the clear-sky
        power of the clear-sky-index candidates; None: those candidates are
        missing (no update from them).

    Returns
    -------
    dict
        ``location_ids``, ``offsets`` (plants, lead buckets, regimes, 5),
        ``level_floor`` (plants: :func:`engine.conformal.level_floors`, NaN: absolute offsets),
        ``indices`` (plants, candidates: :func:`engine.intraday.window_indices`,
        NaN: none), ``k_meas`` (its power index column), ``tau_hours``,
        ``blend`` (:func:`stacked_blends`).
    """
    ids = [i for i in locations["location_id"].tolist() if i in calibrations]
    n_lead, n_regime = len(conformal.LEAD_EDGES_HOURS) - 1, len(conformal.CSI_EDGES) - 1
    offsets = np.stack([np.asarray(calibrations[i]["bands"]["offsets"], dtype=float) for i in ids]) if ids else \
        np.zeros((0, n_lead, n_regime, 5))
    indices = pd.DataFrame(np.nan, index=pd.Index(ids, dtype="int64"), columns=list(intraday.BLEND_CANDIDATES))
    if ids and actuals is not None and lookback is not None and len(actuals) and len(lookback):
        ref = lookback[["location_id", "valid_time", "p50"]].rename(columns={"valid_time": "time"})
        joined = actuals.merge(ref, on=["location_id", "time"], how="inner")
        joined = joined[joined["location_id"].isin(ids)]
        lid = joined["location_id"].to_numpy("int64")
        times = pd.DatetimeIndex(joined["time"])
        clear = np.full(len(joined), np.nan)
        if lookback_features is not None and len(lookback_features):
            at = lookback_features.reindex(pd.MultiIndex.from_arrays([lid, times]))
            clear = intraday.clear_sky_power(at["physical_ac_kw"].to_numpy(dtype=float),
                                             at["csi"].to_numpy(dtype=float))
        cap = locations.set_index("location_id")["capacity_ac_kw"].reindex(lid).to_numpy(dtype=float)
        window = pd.Series({i: calibrations[i]["intraday"]["window_minutes"] for i in ids}).reindex(lid).to_numpy()
        measured = intraday.window_indices(lid, times, joined["power_kw"].to_numpy(dtype=float),
                                           joined["p50"].to_numpy(dtype=float), clear, cap, issue_time, window)
        indices.loc[measured.index.intersection(indices.index)] = measured
    values = indices.to_numpy(dtype=float)
    blend = stacked_blends(calibrations, ids)
    return {"location_ids": np.asarray(ids, dtype="int64"), "offsets": offsets,
            "level_floor": conformal.level_floors([calibrations[i]["bands"] for i in ids]), "indices": values,
            "k_meas": values[:, 0], "tau_hours": blend["tau_hours"], "blend": blend}


def forecast_with_calibrations(features, locations, models, forecast_type, issue_time, thread_count, calibrations,
                               actuals=None, lookback=None):
    """What the service forecasts for a batch: ``engine.forecast.forecast_batch`` with the plants' calibrations.

    The model P50 at the actuals' times (no plant offsets) is the power
    index's reference; the lookback features give the clear-sky power
    (:func:`serving_adaptation`). ``serve_app.forecaster.Forecaster.predict``
    and ``bench/bench_intraday.py --served`` call this.

    Parameters
    ----------
    features : DataFrame
        Serving feature frame at the forecast times.
    locations : DataFrame
        The batch's (tuned) plants.
    models : dict
        model_id -> ``modelio.load_model``.
    forecast_type, issue_time, thread_count
        As in ``engine.forecast.forecast_batch``.
    calibrations : dict
        location_id -> latest stored calibration ({}: the global forecast).
    actuals : DataFrame, optional
        ``location_id``, ``time``, ``power_kw``, all before ``issue_time``.
    lookback : DataFrame, optional
        Serving feature frame at the actuals' times (None: no intraday update).

    Returns
    -------
    frame : DataFrame
    errors : dict
        ``engine.forecast.forecast_batch``.
    """
    adapt = None
    if calibrations:
        reference = None
        if lookback is not None:
            past = locations[locations["location_id"].isin(lookback.index.get_level_values("location_id"))]
            reference = forecast.forecast_batch(lookback, past, models, "ml", issue_time, thread_count)[0]
        adapt = serving_adaptation(calibrations, locations, issue_time, actuals, reference, lookback)
    return forecast.forecast_batch(features, locations, models, forecast_type, issue_time, thread_count, adapt)

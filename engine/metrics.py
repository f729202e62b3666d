"""Forecast metrics as pure functions in a registry (Solar Forecast Arbiter style).

Every metric is ``metric(obs, q)`` -> float, where ``obs`` is observed power
and ``q`` the quantile forecast, shape (n, 5) for P10..P90, both already
normalised by AC capacity (so MAE/RMSE/bias come out as fractions of
capacity; multiply by 100 for %). Point metrics use the median (P50).
A deterministic reference (physical baseline, persistence) is passed as a
degenerate quantile forecast (all five columns equal), for which CRPS = MAE.
"""

import numpy as np
import pandas as pd

from engine.calibration import bin_index
from engine.quantiles import ALPHAS, QUANTILE_COLUMNS


def mae(obs, fx):
    """Mean absolute error (units of the inputs)."""
    return float(np.mean(np.abs(np.asarray(fx) - np.asarray(obs))))


def rmse(obs, fx):
    """Root mean square error (units of the inputs)."""
    return float(np.sqrt(np.mean((np.asarray(fx) - np.asarray(obs)) ** 2)))


def bias(obs, fx):
    """Mean error fx - obs (positive = over-forecast)."""
    return float(np.mean(np.asarray(fx) - np.asarray(obs)))


def pinball(obs, fx, alpha):
    """Pinball (quantile) loss of quantile ``alpha`` forecast ``fx``.

    ``mean(max(alpha * (obs - fx), (alpha - 1) * (obs - fx)))``.
    """
    d = np.asarray(obs) - np.asarray(fx)
    return float(np.mean(np.maximum(alpha * d, (alpha - 1.0) * d)))


def crps_from_quantiles(obs, q, alphas=ALPHAS):
    """CRPS approximated from a few quantiles.

    CRPS = 2 * integral over alpha of the pinball loss (Laio & Tamea 2007;
    Gneiting & Raftery 2007); approximated by 2 x the mean pinball loss over
    the given levels (equal weights).

    Parameters
    ----------
    obs : ndarray, shape (n,)
    q : ndarray, shape (n, k)
    alphas : sequence of float, length k

    Returns
    -------
    float
    """
    q = np.asarray(q)
    return float(2.0 * np.mean([pinball(obs, q[:, j], a) for j, a in enumerate(alphas)]))


def below(obs, q, alpha):
    """Whether each observation lies below the ``alpha``-quantile forecast ``q``.

    The one definition of "observation below a quantile", shared by
    :func:`coverage` and the reliability diagram (:func:`observed_frequencies`).
    Ties (``obs == q``) are frequent in PV: at dawn, dusk and under snow the
    measured power is exactly 0 where the forecast's lower quantiles are
    clipped to 0 (:func:`engine.quantiles.apply_limits`). A tie is resolved
    toward the median: it counts as not below a lower quantile
    (``alpha < 0.5``), as below an upper quantile (``alpha > 0.5``) and as
    half below the median. So a central interval ``[q_alpha, q_(1-alpha)]``
    contains its end points, and the reliability points of its two levels
    differ by exactly its coverage.

    Parameters
    ----------
    obs : ndarray, shape (n,)
    q : ndarray, shape (n,)
        Forecast of quantile level ``alpha``, same units as ``obs``.
    alpha : float
        Quantile level in (0, 1).

    Returns
    -------
    ndarray, shape (n,)
        1.0 below, 0.0 above, ties 0.0 / 0.5 / 1.0 as above.
    """
    obs, q = np.asarray(obs, dtype=float), np.asarray(q, dtype=float)
    tie = 0.0 if alpha < 0.5 else 1.0 if alpha > 0.5 else 0.5
    return np.where(obs == q, tie, (obs < q).astype(float))


def coverage(obs, lower, upper, levels=(0.1, 0.9)):
    """Fraction of observations within the central interval ``[lower, upper]``.

    Counted with :func:`below` as ``below(upper) - below(lower)``: an
    observation equal to an end point is inside.

    Parameters
    ----------
    obs, lower, upper : ndarray, shape (n,)
        ``lower <= upper`` row by row (sorted quantiles).
    levels : (float, float)
        Quantile levels of ``lower`` (< 0.5) and ``upper`` (> 0.5).
    """
    return float(np.mean(below(obs, upper, levels[1]) - below(obs, lower, levels[0])))


def observed_frequencies(obs, q, alphas=ALPHAS):
    """Fraction of observations below each quantile column (reliability diagram).

    Uses :func:`below`, so ``freq[j] - freq[i]`` is the :func:`coverage` of the
    central interval between columns ``i`` and ``j``.

    Parameters
    ----------
    obs : ndarray, shape (n,)
    q : ndarray, shape (n, k)
    alphas : sequence of float, length k

    Returns
    -------
    ndarray, shape (k,)
    """
    q = np.asarray(q, dtype=float)
    return np.array([np.mean(below(obs, q[:, j], a)) for j, a in enumerate(alphas)])


def skill(score, reference_score):
    """Skill score ``1 - score / reference_score`` (positive = better than reference)."""
    return float(1.0 - score / reference_score)


METRICS = {
    "mae": lambda obs, q: mae(obs, q[:, 2]),
    "rmse": lambda obs, q: rmse(obs, q[:, 2]),
    "bias": lambda obs, q: bias(obs, q[:, 2]),
    "crps": lambda obs, q: crps_from_quantiles(obs, q),
    **{f"pinball_{name}": (lambda obs, q, j=j, a=a: pinball(obs, q[:, j], a))
       for j, (name, a) in enumerate(zip(QUANTILE_COLUMNS, ALPHAS))},
    "coverage_p10_p90": lambda obs, q: coverage(obs, q[:, 0], q[:, 4], (ALPHAS[0], ALPHAS[4])),
    "coverage_p25_p75": lambda obs, q: coverage(obs, q[:, 1], q[:, 3], (ALPHAS[1], ALPHAS[3])),
}
"""Registry: name -> ``metric(obs, q)``; obs, q normalised by AC capacity."""

DAYLIGHT_ONLY = ("coverage_p10_p90", "coverage_p25_p75")
"""Metrics reported for daylight only (at night every quantile is exactly 0)."""


def evaluate(obs_kw, q_kw, capacity_ac_kw, daylight):
    """All registry metrics, all-hours and daylight-only, normalised by capacity.

    Parameters
    ----------
    obs_kw : ndarray, shape (n,)
        Observed power, kW (no NaN).
    q_kw : ndarray, shape (n, 5)
        Quantile forecast, kW.
    capacity_ac_kw : float or ndarray
        kW.
    daylight : ndarray of bool, shape (n,)
        Sun above the horizon.

    Returns
    -------
    dict
        ``{name}_all`` and ``{name}_day`` floats (fractions of capacity,
        coverages as fractions), coverages only ``_day``.
    """
    cap = np.asarray(capacity_ac_kw, dtype=float)
    obs = np.asarray(obs_kw, dtype=float) / cap
    q = np.asarray(q_kw, dtype=float) / np.reshape(cap, (-1, 1)) if cap.ndim else np.asarray(q_kw) / cap
    daylight = np.asarray(daylight, dtype=bool)
    if not np.isfinite(obs).all() or not np.isfinite(q).all():
        raise ValueError("evaluate: obs_kw and q_kw must be finite (drop missing actuals first)")
    out = {}
    for name, fn in METRICS.items():
        if name not in DAYLIGHT_ONLY:
            out[f"{name}_all"] = fn(obs, q)
        out[f"{name}_day"] = fn(obs[daylight], q[daylight])
    return out


LEAD_EDGES_HOURS = (0.0, 1.0, 6.0, 24.0, 48.0, np.inf)
"""Lead-time buckets, h: 0-1, 1-6, 6-24, 24-48, >= 48 (a bucket holds leads in [lower, upper)).

The one definition: accuracy reports (:func:`evaluate_by_lead`) and the
per-plant band offsets (:mod:`engine.conformal`) use the same buckets.
"""


def lead_labels(edges=LEAD_EDGES_HOURS):
    """Names of the lead buckets: ``0-1h``, ``1-6h``, ..., ``48h+``."""
    return [f"{lo:g}-{hi:g}h" if np.isfinite(hi) else f"{lo:g}h+" for lo, hi in zip(edges[:-1], edges[1:])]


def lead_bucket(lead_hours, edges=LEAD_EDGES_HOURS):
    """Index of the lead bucket of each lead time, h (``engine.calibration.bin_index``, as the band offsets)."""
    return bin_index(lead_hours, edges)


def evaluate_by_lead(obs_kw, q_kw, capacity_ac_kw, daylight, lead_hours, edges=LEAD_EDGES_HOURS):
    """:func:`evaluate` per lead bucket that has daylight rows.

    Returns
    -------
    dict
        bucket label -> ``{"n": rows, "metrics": evaluate(...)}``.
    """
    bucket = lead_bucket(lead_hours, edges)
    daylight = np.asarray(daylight, dtype=bool)
    out = {}
    for k, label in enumerate(lead_labels(edges)):
        rows = bucket == k
        if (rows & daylight).any():
            out[label] = {"n": int(rows.sum()), "metrics": evaluate(np.asarray(obs_kw)[rows], np.asarray(q_kw)[rows],
                                                                     capacity_ac_kw, daylight[rows])}
    return out


def day_ahead(valid_time, issue_time, timezone):
    """Rows forecast for the local day after the issue's local day (the day-ahead view), bool.

    Parameters
    ----------
    valid_time, issue_time : DatetimeIndex or Series
        tz-aware (UTC).
    timezone : str
        IANA zone of the plant (its local days).
    """
    valid = pd.DatetimeIndex(valid_time).tz_convert(timezone)
    issue = pd.DatetimeIndex(issue_time).tz_convert(timezone)
    # a value is labelled at the END of its step: the step ending at local midnight belongs to the day before
    valid_day = (valid - pd.Timedelta(microseconds=1)).normalize().tz_localize(None)
    return np.asarray(valid_day == issue.normalize().tz_localize(None) + pd.Timedelta(days=1))


def latest_per_valid_time(frame):
    """The row of the latest-issued run (then the highest run id) for every valid time.

    What a user would have acted on when several stored runs cover the same
    valid time. ``frame`` has ``valid_time``, ``issue_time``, ``run_id``.
    """
    order = frame.sort_values(["valid_time", "issue_time", "run_id"], kind="stable")
    return order.drop_duplicates("valid_time", keep="last").reset_index(drop=True)


def clear_sky_persistence(obs_kw, clear_kw, day_key):
    """Day-ahead clear-sky persistence forecast.

    Today's forecast = yesterday's daily clear-sky index (sum of measured
    power / sum of clear-sky physical power over yesterday's daylight) x
    today's clear-sky physical power. Days whose previous day has no data
    give NaN.

    Parameters
    ----------
    obs_kw : Series
        Measured power, kW (NaN allowed), UTC index.
    clear_kw : ndarray
        Clear-sky physical power at the same times, kW.
    day_key : ndarray
        Calendar day of each time (e.g. local date as datetime64[D]).

    Returns
    -------
    ndarray
        Forecast, kW.
    """
    frame = pd.DataFrame({"obs": np.asarray(obs_kw, dtype=float), "clear": np.asarray(clear_kw, dtype=float),
                          "day": pd.to_datetime(day_key)})
    ok = frame["obs"].notna() & (frame["clear"] > 0)
    sums = frame[ok].groupby("day")[["obs", "clear"]].sum()
    index = sums["obs"] / sums["clear"]
    prev = index.rename(lambda d: d + pd.Timedelta(days=1))
    k = frame["day"].map(prev).to_numpy(dtype=float)
    return k * frame["clear"].to_numpy()

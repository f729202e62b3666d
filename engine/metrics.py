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

from engine.quantiles import ALPHAS


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


def coverage(obs, lower, upper):
    """Fraction of observations within ``[lower, upper]``."""
    obs = np.asarray(obs)
    return float(np.mean((obs >= np.asarray(lower)) & (obs <= np.asarray(upper))))


def skill(score, reference_score):
    """Skill score ``1 - score / reference_score`` (positive = better than reference)."""
    return float(1.0 - score / reference_score)


METRICS = {
    "mae": lambda obs, q: mae(obs, q[:, 2]),
    "rmse": lambda obs, q: rmse(obs, q[:, 2]),
    "bias": lambda obs, q: bias(obs, q[:, 2]),
    "crps": lambda obs, q: crps_from_quantiles(obs, q),
    "pinball_p10": lambda obs, q: pinball(obs, q[:, 0], 0.1),
    "pinball_p25": lambda obs, q: pinball(obs, q[:, 1], 0.25),
    "pinball_p50": lambda obs, q: pinball(obs, q[:, 2], 0.5),
    "pinball_p75": lambda obs, q: pinball(obs, q[:, 3], 0.75),
    "pinball_p90": lambda obs, q: pinball(obs, q[:, 4], 0.9),
    "coverage_p10_p90": lambda obs, q: coverage(obs, q[:, 0], q[:, 4]),
    "coverage_p25_p75": lambda obs, q: coverage(obs, q[:, 1], q[:, 3]),
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

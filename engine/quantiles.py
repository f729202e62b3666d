"""Quantile prediction and post-processing: the ONE place for the forecast limits.

Every forecast value leaving pvcast goes through :func:`apply_limits`:
quantiles sorted (no crossing), scaled by AC capacity, clipped to
``[0, min(capacity_ac_kw, export_limit_kw)]`` and exactly 0 when the sun is
at or below the horizon.
"""

import numpy as np

ALPHAS = (0.1, 0.25, 0.5, 0.75, 0.9)
"""The quantile levels pvcast forecasts: the one definition (training, metrics, storage, API)."""
QUANTILE_COLUMNS = tuple(f"p{round(100 * a)}" for a in ALPHAS)
"""Column names of the levels: ``('p10', 'p25', 'p50', 'p75', 'p90')``."""


def predict_normalised(model, features, thread_count=-1):
    """Raw MultiQuantile prediction, power / capacity_ac, for a whole batch.

    One CatBoost call: a ``MultiQuantile`` model returns all quantile columns.

    Parameters
    ----------
    model : catboost.CatBoost
        Fitted MultiQuantile model.
    features : DataFrame or ndarray
        Model features in the model's feature order, shape (n, n_features).
    thread_count : int
        CatBoost threads for this call (-1: all cores; a serving replica
        passes its CPU share).

    Returns
    -------
    ndarray
        Shape (n, 5): normalised P10..P90 (unitless, fraction of capacity_ac),
        not yet sorted or clipped.
    """
    raw = np.asarray(model.predict(features, thread_count=thread_count), dtype=float)
    if raw.ndim != 2 or raw.shape[1] != len(ALPHAS):
        raise ValueError(f"model.predict returned shape {raw.shape}, expected (n, {len(ALPHAS)}) quantiles")
    return raw


def power_limit_kw(capacity_ac_kw, export_limit_kw):
    """Upper bound of the forecast, kW: ``min(capacity_ac_kw, export_limit_kw)``.

    Parameters
    ----------
    capacity_ac_kw : array_like
        kW, > 0.
    export_limit_kw : array_like
        kW; NaN = no export limit.

    Returns
    -------
    ndarray
        kW.
    """
    return np.fmin(np.asarray(capacity_ac_kw, dtype=float), np.asarray(export_limit_kw, dtype=float))


def plant_limits_kw(locations, location_ids):
    """AC capacity and :func:`power_limit_kw` of the plant of each of ``location_ids``, kW.

    Parameters
    ----------
    locations : DataFrame
        Locations frame (``location_id``, ``capacity_ac_kw``, ``export_limit_kw``) holding every id.
    location_ids : array_like of int
        Any order, repeats allowed (one per forecast row, or one per plant).

    Returns
    -------
    capacity_ac_kw, limit_kw : ndarray
        Shape of ``location_ids``.
    """
    known = locations["location_id"].to_numpy("int64")
    order = np.argsort(known, kind="stable")
    at = order[np.searchsorted(known, np.asarray(location_ids, dtype="int64"), sorter=order)]
    capacity = locations["capacity_ac_kw"].to_numpy(float)[at]
    return capacity, power_limit_kw(capacity, locations["export_limit_kw"].to_numpy(float)[at])


def apply_limits(q_norm, capacity_ac_kw, export_limit_kw, solar_elevation):
    """Sort, scale, clip and zero the quantiles.

    Sorting along the quantile axis removes crossing (the rearrangement of
    Chernozhukov et al. 2010, which never increases pinball loss); clipping is
    monotone, so the order survives it. As in pvlib's ``inverter.pvwatts``
    the result is floored at 0 and capped with ``np.minimum``.

    Parameters
    ----------
    q_norm : ndarray
        Shape (n, k): quantiles as fraction of capacity_ac, any order.
    capacity_ac_kw, export_limit_kw : array_like
        Shape (n,), kW (export NaN = none).
    solar_elevation : array_like
        Shape (n,), apparent solar elevation, deg.

    Returns
    -------
    ndarray
        Shape (n, k): quantiles, kW, non-decreasing along axis 1, within
        ``[0, min(capacity_ac_kw, export_limit_kw)]``, exactly 0 where
        ``solar_elevation <= 0``.
    """
    q = np.asarray(q_norm, dtype=float)
    if not np.isfinite(q).all():
        raise ValueError("quantiles contain NaN/inf before limits (check features)")
    cap = np.asarray(capacity_ac_kw, dtype=float)[:, None]
    limit = power_limit_kw(capacity_ac_kw, export_limit_kw)[:, None]
    kw = np.sort(q, axis=1) * cap
    kw = np.minimum(np.maximum(kw, 0.0), limit)
    kw[np.asarray(solar_elevation) <= 0.0, :] = 0.0
    return kw

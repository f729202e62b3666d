"""Intraday update: the latest measured power index blended into the first hours of a forecast.

When actuals up to the issue time exist, the ratio of measured to physical
power over the last ``window`` before the issue (the plant's "power index",
which carries the weather source's current error: a cloud deck the forecast
missed, snow, soiling) is a better estimate of the next hour than the weather
forecast alone. It decays with lead time: the P50 moves toward
``k_meas * physical`` by ``w(h) = exp(-h / tau)`` (smart persistence of the
power index, blended with the model), and every quantile moves by the same
amount, so the band keeps its width and :func:`engine.quantiles.apply_limits`
keeps the invariants. ``tau`` is measured (``bench/bench_adaptive.py``,
docs/model.md "Plant adaptation"); ``tau = 0`` is no update.

Only actuals at or before the issue time may enter :func:`power_index`; the
caller selects them and :func:`power_index` refuses any later sample.
"""

import numpy as np
import pandas as pd


def power_index(times, measured_kw, physical_ac_kw, capacity_ac_kw, issue_time, window_minutes=60,
                min_fraction=0.05):
    """Measured / physical power over the window ending at the issue time (one plant).

    Parameters
    ----------
    times : DatetimeIndex
        UTC times of the samples.
    measured_kw, physical_ac_kw : array_like
        kW at ``times`` (physical: tuned description, weather as of the issue).
    capacity_ac_kw : float
        kW.
    issue_time : Timestamp
        tz-aware.
    window_minutes : int, default 60
    min_fraction : float, default 0.05
        Samples whose physical power is below this fraction of capacity are
        left out (dawn, dusk: the ratio is noise).

    Returns
    -------
    float
        ``sum(measured) / sum(physical)`` over usable samples in
        ``(issue - window, issue]``; NaN when there are none.

    Raises
    ------
    ValueError
        If a sample is later than ``issue_time`` (a forecast issued at T never
        sees data after T).
    """
    times = pd.DatetimeIndex(times)
    issue = pd.Timestamp(issue_time)
    if len(times) and times.max() > issue:
        raise ValueError(f"actuals: sample at {times.max()} is after the issue time {issue}")
    y = np.asarray(measured_kw, dtype=float)
    phys = np.asarray(physical_ac_kw, dtype=float)
    sel = (times > issue - pd.Timedelta(minutes=window_minutes)) & np.isfinite(y) & (
        phys > min_fraction * capacity_ac_kw)
    if not sel.any():
        return float("nan")
    return float(y[sel].sum() / phys[sel].sum())


def intraday_shift(p50, physical, lead_hours, k_meas, tau_hours):
    """Additive shift of every quantile: ``w(h) * (k_meas * physical - p50)``, ``w = exp(-h / tau)``.

    Parameters
    ----------
    p50, physical : ndarray
        Shape (n,): model P50 and physical estimate, same units (e.g.
        fraction of capacity_ac_kw).
    lead_hours : ndarray
        Shape (n,), h after the issue.
    k_meas : ndarray
        Shape (n,): the row's plant power index (NaN: no update).
    tau_hours : float or ndarray
        Decay constant, h (scalar or shape (n,)); 0 = no update.

    Returns
    -------
    ndarray
        Shape (n,), same units; 0 where there is no update.
    """
    tau = np.broadcast_to(np.asarray(tau_hours, dtype=float), np.shape(p50))
    lead = np.maximum(np.asarray(lead_hours, dtype=float), 0.0)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        w = np.where(tau > 0, np.exp(-lead / np.where(tau > 0, tau, 1.0)), 0.0)
        shift = w * (np.asarray(k_meas, dtype=float) * np.asarray(physical, dtype=float) - np.asarray(p50, dtype=float))
    return np.where(np.isfinite(shift), shift, 0.0)


def fit_decay(y, p50, physical, lead_hours, k_meas, taus=(0.0, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0)):
    """Decay constant minimising the P50 mean absolute error over the given rows.

    Parameters
    ----------
    y, p50, physical, lead_hours, k_meas : ndarray
        Shape (n,): measured, model P50, physical (same units), lead (h),
        power index of the row's issue.
    taus : sequence of float
        Candidates, h (0 = no update).

    Returns
    -------
    tau : float
        h.
    table : dict
        tau -> mean absolute error of the updated P50.
    """
    y = np.asarray(y, dtype=float)
    table = {float(t): float(np.mean(np.abs(y - p50 - intraday_shift(p50, physical, lead_hours, k_meas, t))))
             for t in taus}
    return min(table, key=table.get), table

"""Intraday update: the latest measured power index blended into the first hours of a forecast.

When actuals before the issue time exist, the ratio of measured power to the
model's own P50 over the last ``window`` before the issue (the plant's power
index ``k``: the current error of the weather source and the model together,
e.g. a cloud deck the forecast missed, snow, soiling) is persisted into the
next hours with a decaying weight: the P50 becomes
``p50 * (1 + w(h) * (k - 1))`` with ``w(h) = exp(-h / tau)``, and every
quantile moves by the same amount, so the band keeps its width and
:func:`engine.quantiles.apply_limits` keeps the invariants. The form and
``tau`` were chosen by measurement on out-of-fold forecasts of the TRAINING
period (docs/model.md "Plant adaptation": ratio to the model P50 beat the
ratio to the physical estimate and an additive residual); ``tau = 0`` is no
update.

Only actuals strictly before the issue time may enter :func:`power_indices`
(issue 10: a forecast issued at T uses actuals with time < T); the caller
selects them and :func:`power_indices` refuses a sample at or after T.
"""

import numpy as np
import pandas as pd


K_BOUNDS = (0.0, 3.0)
"""The power index is clipped to this range (a sensor glitch cannot triple a forecast more)."""


def power_indices(location_ids, times, measured_kw, reference_kw, capacity_ac_kw, issue_time, window_minutes=60,
                  min_fraction=0.05):
    """Measured / reference power of each plant over the window ending at the issue time (vectorised).

    Parameters
    ----------
    location_ids : array_like of int
        Plant of each sample.
    times : DatetimeIndex
        UTC times of the samples.
    measured_kw, reference_kw : array_like
        kW at ``times``; the reference is the model P50 (tuned description,
        weather as of the issue).
    capacity_ac_kw : array_like
        kW of each sample's plant.
    issue_time : Timestamp or DatetimeIndex
        tz-aware; one issue, or the issue of each sample (then
        ``location_ids`` may key (plant, issue) pairs).
    window_minutes : int, default 60
    min_fraction : float, default 0.05
        Samples whose reference power is below this fraction of capacity are
        left out (dawn, dusk: the ratio is noise).

    Returns
    -------
    Series
        location_id -> ``sum(measured) / sum(reference)`` over usable samples
        in ``[issue - window, issue)``; plants without one are absent.

    Raises
    ------
    ValueError
        If a sample is at or after ``issue_time`` (a forecast issued at T uses
        actuals with time < T only).
    """
    times = pd.DatetimeIndex(times)
    issue = pd.Timestamp(issue_time) if np.ndim(issue_time) == 0 else pd.DatetimeIndex(issue_time)
    late = np.asarray(times >= issue)
    if late.any():
        own = issue if np.ndim(issue_time) == 0 else issue[late][0]
        raise ValueError(f"actuals: sample at {times[late][0]} is at or after the issue time {own}")
    y = np.asarray(measured_kw, dtype=float)
    phys = np.asarray(reference_kw, dtype=float)
    sel = np.asarray(times >= issue - pd.Timedelta(minutes=window_minutes)) & np.isfinite(y) & np.isfinite(phys) & (
        phys > min_fraction * np.asarray(capacity_ac_kw, dtype=float))
    sums = pd.DataFrame({"location_id": np.asarray(location_ids)[sel], "y": y[sel], "phys": phys[sel]}).groupby(
        "location_id")[["y", "phys"]].sum()
    return sums["y"] / sums["phys"]


def power_index(times, measured_kw, reference_kw, capacity_ac_kw, issue_time, window_minutes=60,
                min_fraction=0.05):
    """:func:`power_indices` of one plant; NaN when it has no usable sample in the window."""
    k = power_indices(np.zeros(len(times), dtype="int64"), times, measured_kw, reference_kw,
                      np.full(len(times), float(capacity_ac_kw)), issue_time, window_minutes, min_fraction)
    return float(k.iloc[0]) if len(k) else float("nan")


def intraday_shift(p50, lead_hours, k_meas, tau_hours):
    """Additive shift of every quantile: ``w(h) * (k - 1) * p50``, ``w = exp(-h / tau)``.

    Parameters
    ----------
    p50 : ndarray
        Shape (n,): model P50 (any unit, e.g. fraction of capacity_ac_kw).
    lead_hours : ndarray
        Shape (n,), h after the issue.
    k_meas : ndarray
        Shape (n,): the row's plant power index (:func:`power_indices`; NaN:
        no update), clipped to :data:`K_BOUNDS`.
    tau_hours : float or ndarray
        Decay constant, h (scalar or shape (n,)); 0 = no update.

    Returns
    -------
    ndarray
        Shape (n,), the unit of ``p50``; 0 where there is no update.
    """
    p50 = np.asarray(p50, dtype=float)
    tau = np.broadcast_to(np.asarray(tau_hours, dtype=float), p50.shape)
    lead = np.maximum(np.asarray(lead_hours, dtype=float), 0.0)
    k = np.clip(np.asarray(k_meas, dtype=float), *K_BOUNDS)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        w = np.where(tau > 0, np.exp(-lead / np.where(tau > 0, tau, 1.0)), 0.0)
        shift = w * (k - 1.0) * p50
    return np.where(np.isfinite(shift), shift, 0.0)


def fit_decay(y, p50, lead_hours, k_meas, taus=(0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0)):
    """Decay constant minimising the P50 mean absolute error over the given rows.

    Parameters
    ----------
    y, p50, lead_hours, k_meas : ndarray
        Shape (n,): measured, model P50 (same units), lead (h), power index
        of the row's issue.
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
    p50 = np.asarray(p50, dtype=float)
    table = {float(t): float(np.mean(np.abs(y - p50 - intraday_shift(p50, lead_hours, k_meas, t)))) for t in taus}
    return min(table, key=table.get), table

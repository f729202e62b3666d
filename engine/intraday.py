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

:func:`fit_blend` generalises the decay to per-lead weights fitted on one
plant's own past: a convex blend of the model and candidates that use the
actuals (the power index persisted, smart persistence = the clear-sky index
of measured power x clear-sky power), shrunk toward the ``exp(-h / tau)``
prior; :func:`blend_shift` applies it. Measured in ``bench/bench_intraday.py``
(docs/model.md "Intraday walked forward"); the service still runs
:func:`intraday_shift`.

Only actuals strictly before the issue time may enter :func:`power_indices`
(issue 10: a forecast issued at T uses actuals with time < T); the caller
selects them and :func:`power_indices` refuses a sample at or after T.
"""

import numpy as np
import pandas as pd


K_BOUNDS = (0.0, 3.0)
"""The power index is clipped to this range (a sensor glitch cannot triple a forecast more)."""


def actuals_window(times, issue_time, window_minutes=60):
    """Which samples a forecast issued at ``issue_time`` may use for its power index: ``[T - window, T)``.

    Parameters
    ----------
    times : array_like of datetime
        UTC times of the actuals.
    issue_time : Timestamp
        tz-aware.
    window_minutes : int

    Returns
    -------
    ndarray of bool
    """
    t = pd.DatetimeIndex(times)
    issue = pd.Timestamp(issue_time)
    return np.asarray((t >= issue - pd.Timedelta(minutes=window_minutes)) & (t < issue))


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


BLEND_LEAD_EDGES_HOURS = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0)
"""Lead bins of the fitted blend weights, h, each holding leads in (lower, upper]; after the last: no update."""

BLEND_MIN_ROWS = 50
"""A lead bin with fewer past (issue, lead) rows keeps the prior weights (said in the fit's ``fallback``)."""

BLEND_N0 = 200
"""Shrinkage of a bin's fitted weights toward the prior: weight ``n / (n + BLEND_N0)`` (~ 2 weeks of hourly issues)."""

BLEND_STEP = 0.05
"""Grid step of the convex weights."""


def blend_bins(lead_hours, edges=BLEND_LEAD_EDGES_HOURS):
    """Lead bin of each row (``(lower, upper]``); -1 at or before 0 h and after the last edge."""
    lead = np.asarray(lead_hours, dtype=float)
    idx = np.searchsorted(np.asarray(edges, dtype=float), lead, side="left") - 1
    return np.where((lead > edges[0]) & (lead <= edges[-1]), idx, -1)


def weight_grid(n_candidates, step=BLEND_STEP):
    """Every convex weight vector on a grid: shape (g, c), ``w >= 0``, ``sum(w) <= 1`` (the rest on the model)."""
    m = int(round(1.0 / step))
    axes = np.meshgrid(*[np.arange(m + 1)] * n_candidates, indexing="ij")
    grid = np.stack([a.ravel() for a in axes], axis=1)
    return grid[grid.sum(axis=1) <= m] * step


def prior_weights(lead_hours, tau_hours, n_candidates):
    """The prior of every row: the power-index candidate (column 0) weighted ``exp(-lead / tau)``, the rest 0.

    With these weights :func:`blend_shift` is :func:`intraday_shift` (the
    update as it was before fitted weights).
    """
    lead = np.maximum(np.asarray(lead_hours, dtype=float), 0.0)
    w = np.zeros((len(lead), n_candidates))
    if tau_hours > 0:
        w[:, 0] = np.exp(-lead / tau_hours)
    return w


def fit_blend(lead_hours, y, base, candidates, tau_hours, n0=BLEND_N0, min_rows=BLEND_MIN_ROWS, step=BLEND_STEP,
              edges=BLEND_LEAD_EDGES_HOURS):
    """Per-lead convex weights of the intraday candidates, fitted on one plant's past issues (vectorised).

    The updated P50 is ``base + sum_j w_j(lead) * (c_j - base)``: a convex
    blend of the model (``base``, the run without actuals) and candidates
    that use the actuals before the issue, e.g. the power index persisted
    (``k * base``) and smart persistence (clear-sky index of measured power x
    clear-sky power). Per lead bin the grid weights (:func:`weight_grid`) with
    the least mean absolute error are kept, then shrunk toward the prior
    (:func:`prior_weights`) with weight ``n / (n + n0)``; a bin with fewer
    than ``min_rows`` rows keeps the prior and says so in ``fallback``.

    Only rows whose valid time is before the issue of the forecast the weights
    serve may be given (the caller's selection; the bench asserts it).

    Parameters
    ----------
    lead_hours, y, base : ndarray
        Shape (n,): lead, h; measured and model P50 (same unit, e.g. fraction
        of capacity_ac_kw).
    candidates : ndarray
        Shape (n, c) or (n,); NaN (a candidate without data at that issue)
        counts as ``base``. Rows without a finite ``y`` or ``base`` are left out.
    tau_hours : float
        Prior decay of candidate 0, h.
    n0, min_rows, step, edges
        :data:`BLEND_N0`, :data:`BLEND_MIN_ROWS`, :data:`BLEND_STEP`,
        :data:`BLEND_LEAD_EDGES_HOURS`.

    Returns
    -------
    dict
        ``fitted`` (bins x c, the grid optimum; NaN where too few rows),
        ``shrink`` (bins,: n / (n + n0), 0 where too few rows), ``n``
        (bins,), ``tau_hours``, ``lead_edges_hours``, ``mae_fitted`` and
        ``mae_prior`` (bins,: in-sample MAE of the grid optimum and of the
        prior), ``fallback`` (list of str: the bins that kept the prior, why).
    """
    cand = np.asarray(candidates, dtype=float)
    cand = cand[:, None] if cand.ndim == 1 else cand
    ok = np.isfinite(np.asarray(y, dtype=float)) & np.isfinite(np.asarray(base, dtype=float))
    y, base, cand = np.asarray(y, dtype=float)[ok], np.asarray(base, dtype=float)[ok], cand[ok]
    lead_hours = np.asarray(lead_hours, dtype=float)[ok]
    cand = np.where(np.isfinite(cand), cand, base[:, None])
    c = cand.shape[1]
    grid = weight_grid(c, step)
    bins = blend_bins(lead_hours, edges)
    nb = len(edges) - 1
    fitted = np.full((nb, c), np.nan)
    n = np.bincount(bins[bins >= 0], minlength=nb)
    mae_fitted, mae_prior = np.full(nb, np.nan), np.full(nb, np.nan)
    prior = prior_weights(lead_hours, tau_hours, c)
    fallback = []
    for b in range(nb):  # at most 9 bins; the grid search is one matrix product each
        sel = bins == b
        if n[b] < min_rows:
            fallback.append(f"lead {edges[b]:g}-{edges[b + 1]:g} h: {n[b]} past rows < {min_rows}: "
                            f"prior weights (tau {tau_hours:g} h)")
            continue
        delta = cand[sel] - base[sel, None]
        err = np.abs(y[sel, None] - base[sel, None] - delta @ grid.T).mean(axis=0)
        fitted[b] = grid[np.argmin(err)]
        mae_fitted[b] = err.min()
        mae_prior[b] = np.abs(y[sel] - base[sel] - (prior[sel] * delta).sum(axis=1)).mean()
    shrink = np.where(n >= min_rows, n / (n + float(n0)), 0.0)
    return {"fitted": fitted, "shrink": shrink, "n": n, "tau_hours": float(tau_hours),
            "lead_edges_hours": list(edges), "mae_fitted": mae_fitted, "mae_prior": mae_prior,
            "fallback": fallback}


def blend_weights(lead_hours, fit):
    """Weights of each row, shape (n, c): the bin's fitted weights shrunk toward the row's prior (0 outside the bins)."""
    edges = fit["lead_edges_hours"]
    fitted = np.asarray(fit["fitted"], dtype=float)
    bins = blend_bins(lead_hours, edges)
    inside = bins >= 0
    b = np.maximum(bins, 0)
    lam = np.where(inside, np.asarray(fit["shrink"], dtype=float)[b], 0.0)[:, None]
    own = np.where(np.isfinite(fitted[b]), fitted[b], 0.0)
    prior = prior_weights(lead_hours, fit["tau_hours"], fitted.shape[1])
    return np.where(inside[:, None], lam * own + (1.0 - lam) * prior, 0.0)


def blend_shift(base, lead_hours, candidates, fit):
    """Additive shift of every quantile: ``sum_j w_j(lead) * (c_j - base)`` (:func:`fit_blend`'s weights).

    Parameters
    ----------
    base : ndarray
        Shape (n,): model P50 (the run without actuals).
    lead_hours : ndarray
        Shape (n,), h.
    candidates : ndarray
        Shape (n, c), the unit of ``base``; NaN: no update from that candidate.
    fit : dict
        :func:`fit_blend`.

    Returns
    -------
    ndarray
        Shape (n,); 0 where no candidate has data.
    """
    base = np.asarray(base, dtype=float)
    cand = np.asarray(candidates, dtype=float)
    cand = cand[:, None] if cand.ndim == 1 else cand
    delta = np.where(np.isfinite(cand), cand - base[:, None], 0.0)
    return (blend_weights(lead_hours, fit) * delta).sum(axis=1)

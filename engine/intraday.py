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
prior; :func:`blend_shift` applies it. The service serves it: the candidates
of :data:`BLEND_CANDIDATES` (:func:`candidates`, the clear-sky power from the
serving feature frame, :func:`clear_sky_power`) are fitted per plant at
calibration time on simulated past issues (:func:`past_issues`,
:func:`fit_served_blend`, stored in the calibration's ``intraday.blend``) and
applied at every forecast issued with actuals before it
(``engine.forecast.adapt_quantiles``). With the prior weights (no fit, or a
calibration stored before fitted weights) the blend is :func:`intraday_shift`.
Measured in ``bench/bench_intraday.py`` (docs/model.md "Intraday walked forward").

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
    update as it was before fitted weights). ``tau_hours``: scalar or one per
    row; 0 = no update.
    """
    lead = np.maximum(np.asarray(lead_hours, dtype=float), 0.0)
    tau = np.broadcast_to(np.asarray(tau_hours, dtype=float), lead.shape)
    w = np.zeros((len(lead), n_candidates))
    w[:, 0] = np.where(tau > 0, np.exp(-lead / np.where(tau > 0, tau, 1.0)), 0.0)
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


def blend_weights(lead_hours, fit, plant=None):
    """Weights of each row, shape (n, c): the bin's fitted weights shrunk toward the row's prior (0 outside the bins).

    Parameters
    ----------
    lead_hours : ndarray
        Shape (n,), h.
    fit : dict
        One plant's :func:`fit_blend` (``plant`` None), or plants stacked
        (:func:`stack_blends`: ``fitted`` (p, bins, c), ``shrink`` (p, bins),
        ``tau_hours`` (p,)); NaN/None in ``fitted``: that bin keeps the prior.
    plant : ndarray of int, optional
        Shape (n,): row -> plant of the stacked ``fit``.
    """
    edges = fit["lead_edges_hours"]
    fitted = np.asarray(fit["fitted"], dtype=float)
    shrink = np.asarray(fit["shrink"], dtype=float)
    tau = np.asarray(fit["tau_hours"], dtype=float)
    if plant is None:
        fitted, shrink, tau = fitted[None], shrink[None], tau.reshape(1)
        plant = np.zeros(len(np.asarray(lead_hours)), dtype=int)
    bins = blend_bins(lead_hours, edges)
    inside = bins >= 0
    b = np.maximum(bins, 0)
    lam = np.where(inside, shrink[plant, b], 0.0)[:, None]
    own = fitted[plant, b]
    own = np.where(np.isfinite(own), own, 0.0)
    prior = prior_weights(lead_hours, tau[plant], fitted.shape[2])
    return np.where(inside[:, None], lam * own + (1.0 - lam) * prior, 0.0)


def blend_shift(base, lead_hours, candidates, fit, plant=None):
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
        :func:`fit_blend`, or plants stacked (:func:`blend_weights`).
    plant : ndarray of int, optional
        Shape (n,): row -> plant of a stacked ``fit``.

    Returns
    -------
    ndarray
        Shape (n,); 0 where no candidate has data.
    """
    base = np.asarray(base, dtype=float)
    cand = np.asarray(candidates, dtype=float)
    cand = cand[:, None] if cand.ndim == 1 else cand
    delta = np.where(np.isfinite(cand), cand - base[:, None], 0.0)
    return (blend_weights(lead_hours, fit, plant) * delta).sum(axis=1)


# --- the served blend (issue 10 item 3): candidates from the serving feature frame ----------------------

LAST_MINUTES = 15
"""Window of the last-sample clear-sky index, min (one sample of 15-min actuals)."""

BLEND_CANDIDATES = ("power_index", "clear_sky_index", "clear_sky_index_last")
"""The served blend's candidates, in column order (chosen in ``bench/bench_intraday.py`` on issues before
2016-08-16): the power index over the calibration's window persisted (``k * base``); smart persistence, the
clear-sky index of measured power over that window x the clear-sky power (:func:`clear_sky_power`); the same
over the last :data:`LAST_MINUTES`."""

CSI_FLOOR = 0.1
"""Weather clear-sky index below which :func:`clear_sky_power` is undefined (NaN): the ratio is noise."""


def clear_sky_power(physical_ac_kw, csi, floor=CSI_FLOOR):
    """The plant's physical AC power at the weather's clear-sky index 1: ``physical_ac_kw / csi``.

    Both are columns of the serving feature frame (``engine.features.SERVING_COLUMNS``): the physical
    estimate under the weather and the weather's clear-sky index (GHI / Ineichen clear-sky GHI). The
    smart-persistence reference of the served blend; with it, smart persistence is the persistence of the
    measured / physical ratio with the weather's cloudiness held at its value before the issue.

    Parameters
    ----------
    physical_ac_kw : array_like
        kW.
    csi : array_like
        Weather clear-sky index (NaN at night).
    floor : float
        :data:`CSI_FLOOR`.

    Returns
    -------
    ndarray
        kW; NaN where ``csi`` is NaN or below ``floor``.
    """
    csi = np.asarray(csi, dtype=float)
    ok = np.isfinite(csi) & (csi >= floor)
    return np.where(ok, np.asarray(physical_ac_kw, dtype=float) / np.where(ok, csi, 1.0), np.nan)


def window_indices(keys, times, measured_kw, reference_kw, clear_kw, capacity_ac_kw, issue_time, window_minutes):
    """The indices of :data:`BLEND_CANDIDATES` of each plant (or (plant, issue) key), vectorised.

    Parameters
    ----------
    keys : array_like of int
        Plant (or issue) of each sample.
    times : DatetimeIndex
        UTC times of the samples, all before their issue.
    measured_kw, reference_kw, clear_kw, capacity_ac_kw : array_like
        kW of each sample: measured, model P50 (the power index's reference),
        :func:`clear_sky_power`, the plant's AC capacity.
    issue_time : Timestamp or DatetimeIndex
        One issue, or the issue of each sample.
    window_minutes : int or array_like
        The window of each sample's plant (its calibration's ``window_minutes``).

    Returns
    -------
    DataFrame
        Indexed by key, columns :data:`BLEND_CANDIDATES`; NaN where a window
        has no usable sample (:func:`power_indices`, which refuses a sample at
        or after its issue).
    """
    times = pd.DatetimeIndex(times)
    keys = np.asarray(keys)
    issue = pd.Timestamp(issue_time) if np.ndim(issue_time) == 0 else pd.DatetimeIndex(issue_time)
    age = np.asarray((issue - times).total_seconds(), dtype=float) / 60.0  # min before the issue (> 0)
    window = np.broadcast_to(np.asarray(window_minutes, dtype=float), age.shape)
    longest = int(window.max()) if len(window) else LAST_MINUTES
    own = age <= window
    last = age <= LAST_MINUTES

    def ratio(sel, reference, minutes):
        return power_indices(keys[sel], times[sel], np.asarray(measured_kw, dtype=float)[sel],
                             np.asarray(reference, dtype=float)[sel], np.asarray(capacity_ac_kw, dtype=float)[sel],
                             issue if np.ndim(issue_time) == 0 else issue[sel], minutes)

    parts = [ratio(own, reference_kw, longest), ratio(own, clear_kw, longest), ratio(last, clear_kw, LAST_MINUTES)]
    return pd.concat(parts, axis=1, keys=list(BLEND_CANDIDATES)).reindex(columns=list(BLEND_CANDIDATES))


def candidates(base, clear, indices):
    """The candidates of :data:`BLEND_CANDIDATES` of each row, shape (n, 3), fraction of capacity_ac_kw.

    Parameters
    ----------
    base : ndarray
        Shape (n,): model P50 (the run without actuals), fraction of capacity.
    clear : ndarray
        Shape (n,): :func:`clear_sky_power` / capacity at the row's valid time.
    indices : ndarray
        Shape (n, 3): the row's plant's :func:`window_indices` at the issue.

    Returns
    -------
    ndarray
        ``k * base``, ``kc * clear``, ``kc_last * clear``; indices clipped to
        :data:`K_BOUNDS`, smart persistence capped at capacity (1); NaN where
        an index or the clear-sky power is missing (no update from it).
    """
    k = np.clip(np.asarray(indices, dtype=float), *K_BOUNDS)
    base = np.asarray(base, dtype=float)
    clear = np.asarray(clear, dtype=float)
    return np.column_stack([k[:, 0] * base, np.minimum(k[:, 1] * clear, 1.0), np.minimum(k[:, 2] * clear, 1.0)])


def prior_blend(tau_hours):
    """Plants' blends stacked for :func:`blend_weights` with no fitted weight: the prior of each plant.

    Parameters
    ----------
    tau_hours : array_like
        Shape (plants,), h.

    Returns
    -------
    dict
        ``fitted`` (plants, bins, candidates) NaN, ``shrink`` (plants, bins) 0,
        ``tau_hours``, ``lead_edges_hours`` (:data:`BLEND_LEAD_EDGES_HOURS`).
    """
    tau = np.atleast_1d(np.asarray(tau_hours, dtype=float))
    bins = len(BLEND_LEAD_EDGES_HOURS) - 1
    return {"fitted": np.full((len(tau), bins, len(BLEND_CANDIDATES)), np.nan), "shrink": np.zeros((len(tau), bins)),
            "tau_hours": tau, "lead_edges_hours": list(BLEND_LEAD_EDGES_HOURS)}


def index_pairs(starts, ends):
    """(group, position) of every position in ``[starts[g], ends[g])``, vectorised."""
    counts = np.maximum(np.asarray(ends) - np.asarray(starts), 0)
    group = np.repeat(np.arange(len(counts)), counts)
    offset = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    return group, np.repeat(np.asarray(starts), counts) + offset


def past_issues(times, solar_elevation, window_minutes, horizon_hours=BLEND_LEAD_EDGES_HOURS[-1]):
    """Simulated hourly issues over a plant's history: which samples each would have used and forecast.

    An issue is every sample time on the full hour with the sun up; its
    window rows are the samples in ``[T - window, T)``, its lead rows the
    samples in ``(T, T + horizon]`` with the sun up.

    Parameters
    ----------
    times : DatetimeIndex
        Sorted UTC times of the history (all before the calibration's cutoff).
    solar_elevation : ndarray
        deg, at ``times``.
    window_minutes : int
    horizon_hours : float
        The last lead the blend updates (:data:`BLEND_LEAD_EDGES_HOURS`).

    Returns
    -------
    issues : DatetimeIndex
    window : tuple of ndarray
        (issue index, sample index) pairs of the windows.
    leads : tuple of ndarray
        (issue index, sample index) pairs of the leads.
    """
    times = pd.DatetimeIndex(times)
    elev = np.asarray(solar_elevation, dtype=float)
    at = np.flatnonzero((times.minute == 0) & (times.second == 0) & (elev > 0))
    issues = times[at]
    ns = times.asi8
    start = np.searchsorted(ns, (issues - pd.Timedelta(minutes=window_minutes)).asi8, side="left")
    window = index_pairs(start, at)
    end = np.searchsorted(ns, (issues + pd.Timedelta(hours=horizon_hours)).asi8, side="right")
    i, j = index_pairs(at + 1, end)
    day = elev[j] > 0
    return issues, window, (i[day], j[day])

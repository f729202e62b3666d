"""Per-plant band calibration: conformal offsets from a plant's own residuals, shrunk to the global prior.

The global model's bands are calibrated once (``engine.calibration``) on one
site and one weather source. A plant fed another weather source, or described
imperfectly, sees other errors. Following split-conformal quantile regression
(CQR, Romano, Patterson & Candes 2019), each quantile level ``a`` of a plant
is shifted by the empirical ``a``-quantile of that plant's own scores
``y - q_a`` (normalised by ``capacity_ac_kw``), separately per lead-time
bucket and clear-sky regime (a Mondrian split, Vovk et al. 2005). Shrinkage
has two levels (a hierarchical prior): the plant's pooled offset (all its
``N`` scores) is shrunk toward the global calibration (offset 0: the global
offsets are already inside ``q``) with weight ``N / (N + n0)``, and each
group's offset (``n`` scores) toward that plant prior with weight
``n / (n + n0)``. A plant with little history is forecast as before; a plant
with much history but few scores in one group uses its own pooled offset there.

Scores can carry weights (:func:`recency_weights`: older scores count less,
for a plant whose errors drift with the season). The offsets are then
weighted quantiles of the scores (weighted conformal prediction under
distribution drift, Barber, Candes, Ramdas & Tibshirani 2023, "Conformal
prediction beyond exchangeability", Ann. Statist. 51:816) and every ``n``
above becomes the effective sample size of the weights (Kish 1965,
``(sum w)^2 / sum w^2``): down-weighting old scores cannot make a group look
better measured than its recent scores are. Equal weights give the unweighted
offsets.

Between refits, :func:`aci_update` moves an additional per-plant offset of
each quantile level online from the residuals of runs issued before T
(adaptive conformal inference, Gibbs & Candes 2021, in the quantile-tracking
form of Angelopoulos, Candes & Tibshirani 2023): per scored row the offset of
level ``a`` moves by ``gamma * (miss_above - (1 - a))``, so it stands still
when the level is met.

Invariants are not enforced here: the shifted quantiles go through
:func:`engine.quantiles.apply_limits` (sort, 0 <= q <= limit, zero at night).
"""

import numpy as np
import pandas as pd

from engine.calibration import bin_index
from engine.metrics import LEAD_EDGES_HOURS, below  # the lead buckets and the tie rule of the reports: one definition
from engine.quantiles import ALPHAS


CSI_EDGES = (0.0, 0.5, 0.9, np.inf)
"""Clear-sky regimes of the offsets (weather clear-sky index): cloudy < 0.5 <= broken < 0.9 <= clear."""

N0 = 200
"""Shrinkage constant: a group with n scores gets weight n / (n + N0) (200 ~ 2 days of 15-min daylight)."""

MIN_GROUP = 30
"""Groups with fewer scores keep the global calibration (weight 0)."""

HALF_LIFE_DAYS = 14.0
"""Half-life of the band scores' weights, days (:func:`recency_weights`). Chosen a priori, not fitted: a
plant's effective description drifts with the sun's path (a wrongly entered tilt absorbed by the DC scale in
July is not absorbed in September), and the sun's declination moves by up to 0.4 deg/day, ~6 deg in two
weeks, so scores older than a few weeks describe another geometry; a two-week half-life keeps an effective
sample of ``2 x 14 / ln 2`` ~ 40 days of scores in a long history (Kish), 4-5x the weather spells a day-block
holds, enough for the 10 % tails, and in the service's 90-day history the oldest day counts ~1/85 of the
newest. 30 days was measured beside it (docs/model.md "Plant adaptation")."""


def recency_weights(times, cutoff, half_life_days=HALF_LIFE_DAYS):
    """Weight of each score by its age at the cutoff: ``0.5 ** ((cutoff - time) / half_life)``.

    Exponential forgetting, the fixed (data-independent) weights of weighted
    conformal prediction under drift (Barber et al. 2023, section 4.4:
    ``w_i = rho^(n + 1 - i)``), with ``rho`` per day = ``0.5 ** (1 / half_life_days)``.

    Parameters
    ----------
    times : DatetimeIndex
        UTC, the scores' valid times (before ``cutoff``).
    cutoff : Timestamp
        tz-aware: where the served forecasts start (age 0).
    half_life_days : float or None
        days; None: equal weights (1).

    Returns
    -------
    ndarray
        Shape (n,), in (0, 1].
    """
    if half_life_days is None:
        return np.ones(len(times))
    age = (pd.Timestamp(cutoff).tz_convert("UTC") - pd.DatetimeIndex(times).tz_convert("UTC")).total_seconds()
    return 0.5 ** (np.maximum(np.asarray(age, dtype=float), 0.0) / (86400.0 * float(half_life_days)))


def effective_n(weights):
    """Kish's effective sample size of weights: ``(sum w)^2 / sum w^2`` (= n for equal weights; 0 for none)."""
    w = np.asarray(weights, dtype=float)
    return float(w.sum() ** 2 / np.sum(w * w)) if w.size and np.sum(w * w) > 0 else 0.0


def weighted_quantiles(scores, weights, alphas):
    """Quantile ``alphas[c]`` of column ``c`` of ``scores`` under ``weights`` (linear interpolation).

    Each sorted score sits at the cumulative weight of the scores below it
    plus half its own, rescaled so the smallest is at 0 and the largest at
    1: with equal weights that is ``(i - 1) / (n - 1)``, numpy's default
    (``linear``) quantile. The step-function quantile of Barber et al. (2023)
    differs from it by less than one score's weight share; like the
    unweighted offsets, the test point's mass (``1 / (1 + sum w)``) is left out.

    Parameters
    ----------
    scores : ndarray
        Shape (n, k).
    weights : ndarray
        Shape (n,), >= 0.
    alphas : sequence of float
        k levels.

    Returns
    -------
    ndarray
        Shape (k,).
    """
    scores = np.asarray(scores, dtype=float)
    order = np.argsort(scores, axis=0, kind="stable")
    s = np.take_along_axis(scores, order, axis=0)
    w = np.asarray(weights, dtype=float)[order]
    if len(s) == 1:
        return s[0].copy()
    cum = np.cumsum(w, axis=0) - 0.5 * w - 0.5 * w[:1]
    pos = cum / cum[-1:]
    return np.array([np.interp(a, pos[:, c], s[:, c]) for c, a in enumerate(alphas)])


def group_index(lead_hours, csi):
    """(lead bucket, clear-sky regime) of each row; NaN clear-sky index (night) -> regime 0.

    Parameters
    ----------
    lead_hours : array_like
        h since the issue (or since the weather's issue for re-forecasts).
    csi : array_like
        Clear-sky index of the weather, unitless.

    Returns
    -------
    lead : ndarray of int
    regime : ndarray of int
    """
    return (bin_index(lead_hours, LEAD_EDGES_HOURS),
            bin_index(np.nan_to_num(np.asarray(csi, dtype=float), nan=0.0), CSI_EDGES))


def fit_band_offsets(y, q, lead_hours, csi, n0=N0, min_group=MIN_GROUP, alphas=ALPHAS, weights=None):
    """Shrunk conformal offsets of one plant per (lead bucket, regime) and quantile level.

    Parameters
    ----------
    y : ndarray
        Shape (n,): measured power / capacity_ac_kw (daylight rows only).
    q : ndarray
        Shape (n, k): the plant's forecast quantiles for the same rows, same
        units (already globally calibrated).
    lead_hours, csi : ndarray
        Shape (n,): lead time, h; weather clear-sky index.
    n0 : float, default :data:`N0`
    min_group : int, default :data:`MIN_GROUP`
        Compared with a group's effective sample size.
    alphas : sequence of float
    weights : ndarray, optional
        Shape (n,), > 0: weight of each score (:func:`recency_weights`); None:
        equal. Offsets are :func:`weighted_quantiles`; shrinkage and
        ``min_group`` use the effective sample size (:func:`effective_n`).

    Returns
    -------
    dict
        ``offsets`` (list, shape (n_lead, n_regime, k), fraction of
        capacity_ac_kw, shrunk), ``n`` (list, shape (n_lead, n_regime), scores
        per group), ``n_effective`` (same shape, their effective sample size:
        ``n`` for equal weights), ``weight`` (same shape, the group weights
        ``n_effective / (n_effective + n0)``), ``raw`` (the unshrunk group
        offsets), ``pooled`` (the plant's unshrunk pooled offsets, shape (k,)),
        ``pooled_n_effective``, ``pooled_weight``, ``n0``,
        ``lead_edges_hours``, ``csi_edges`` (JSON-ready: inf as None).
    """
    scores = np.asarray(y, dtype=float)[:, None] - np.asarray(q, dtype=float)
    w = np.ones(len(scores)) if weights is None else np.asarray(weights, dtype=float)
    lead, regime = group_index(lead_hours, csi)
    n_lead, n_regime, k = len(LEAD_EDGES_HOURS) - 1, len(CSI_EDGES) - 1, len(alphas)
    raw = np.zeros((n_lead, n_regime, k))
    n = np.zeros((n_lead, n_regime), dtype=int)
    n_eff = np.zeros((n_lead, n_regime))
    flat = lead * n_regime + regime
    for g in np.unique(flat):  # at most 15 groups
        sel = flat == g
        i, j = divmod(int(g), n_regime)
        n[i, j], n_eff[i, j] = int(sel.sum()), effective_n(w[sel])
        if n_eff[i, j] >= min_group:
            raw[i, j] = weighted_quantiles(scores[sel], w[sel], alphas)
    total = effective_n(w)
    pooled = weighted_quantiles(scores, w, alphas) if len(scores) else np.zeros(k)
    pooled_weight = total / (total + float(n0)) if total >= min_group else 0.0
    prior = pooled_weight * pooled
    weight = np.where(n_eff >= min_group, n_eff / (n_eff + float(n0)), 0.0)
    offsets = weight[:, :, None] * raw + (1.0 - weight[:, :, None]) * prior[None, None, :]
    return {"offsets": offsets.tolist(), "raw": raw.tolist(), "n": n.tolist(), "n_effective": n_eff.tolist(),
            "weight": weight.tolist(), "pooled": pooled.tolist(), "pooled_n_effective": total,
            "pooled_weight": float(pooled_weight), "n0": float(n0),
            "lead_edges_hours": [None if np.isinf(e) else e for e in LEAD_EDGES_HOURS],
            "csi_edges": [None if np.isinf(e) else e for e in CSI_EDGES]}


def apply_band_offsets(q, plant, lead_hours, csi, offsets):
    """Shift each row's quantiles by its plant's offsets of its (lead bucket, regime).

    Parameters
    ----------
    q : ndarray
        Shape (n, k), fraction of capacity_ac_kw.
    plant : ndarray of int
        Shape (n,): row -> index into ``offsets`` (-1: no calibration, unchanged).
    lead_hours, csi : ndarray
        Shape (n,).
    offsets : ndarray
        Shape (n_plants, n_lead, n_regime, k) (:func:`fit_band_offsets` ``offsets``).

    Returns
    -------
    ndarray
        Shape (n, k): shifted quantiles, not yet sorted or clipped
        (:func:`engine.quantiles.apply_limits` does that).
    """
    q = np.asarray(q, dtype=float)
    plant = np.asarray(plant)
    has = plant >= 0
    if not has.any():
        return q
    lead, regime = group_index(lead_hours, csi)
    shift = np.zeros_like(q)
    shift[has] = np.asarray(offsets, dtype=float)[plant[has], lead[has], regime[has]]
    return q + shift


ACI_GAMMA = 0.0005
"""Step of the online offsets per scored row, fraction of capacity_ac_kw: of 0.0005..0.005 the steadiest weekly
coverage on SERF East 2016 day-ahead runs issued before 08-16 (``bench/bench_intraday.py``; scored after)."""

ACI_BOUND = 0.2
"""The online offsets stay within +-this fraction of capacity_ac_kw (a sensor fault cannot run them away)."""


def aci_update(theta, y, q_issued, plant=None, alphas=ALPHAS, gamma=ACI_GAMMA, bound=ACI_BOUND):
    """One adaptive-conformal step of the online offsets from a batch of scored rows (vectorised).

    For quantile level ``a`` the offset moves by ``gamma * (e - (1 - a))``
    per row, ``e = 1`` when the measurement is above the quantile AS ISSUED
    (offset included; ties by :func:`engine.metrics.below`): more misses
    above than ``1 - a`` raise it, fewer lower it (Gibbs & Candes 2021,
    "Adaptive conformal inference under distribution shift"; the quantile
    tracker of Angelopoulos, Candes & Tibshirani 2023).

    Parameters
    ----------
    theta : ndarray
        Shape (p, k) (plants x levels) or (k,): current offsets, fraction of
        capacity_ac_kw.
    y : ndarray
        Shape (n,): measured / capacity_ac_kw of rows whose valid time is
        before the next issue (the caller selects them).
    q_issued : ndarray
        Shape (n, k): the quantiles as issued for those rows, same unit.
    plant : ndarray of int, optional
        Shape (n,): row -> row of ``theta`` (required when ``theta`` is 2-D).
    alphas : sequence of float
    gamma : float
        :data:`ACI_GAMMA`.
    bound : float
        :data:`ACI_BOUND`.

    Returns
    -------
    ndarray
        The updated offsets, the shape of ``theta``, clipped to ``+-bound``.
    """
    theta = np.asarray(theta, dtype=float)
    y = np.asarray(y, dtype=float)
    alphas = np.asarray(alphas, dtype=float)
    q = np.asarray(q_issued, dtype=float).reshape(len(y), len(alphas))
    above = np.column_stack([1.0 - below(y, q[:, j], a) for j, a in enumerate(alphas)]) if len(y) else \
        np.zeros((0, len(alphas)))
    step = gamma * (above - (1.0 - alphas)[None, :])
    if theta.ndim == 1:
        return np.clip(theta + step.sum(axis=0), -bound, bound)
    plant = np.asarray(plant, dtype=int)
    total = np.zeros_like(theta)
    np.add.at(total, plant, step)
    return np.clip(theta + total, -bound, bound)

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
Given the days of the scores, the global calibration's weight ``n0`` is scaled
per level by its :func:`prior_strength`: the share of its observed miss on the
plant's own scores that day-to-day noise explains (a prior the plant's scores
clearly reject weighs less; one they do not reject weighs ``n0``). Given the
days again (``predictive_days``), each band is widened away from the median by
:func:`predictive_inflation`, ``sqrt(1 + 1 / D)`` for ``D`` effective days: the
offsets of a few days are one weather spell's, and the next day's scores vary
by their own spread plus the error of the spell's location.

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

A plant that sends period means (hourly from an inverter portal) gives
residuals of means, which vary less than the instants the service forecasts:
:func:`within_period_deviations` tabulates, on instantaneous training samples,
how instants deviate from their period's mean (per clear-sky regime, in units
of clear-sky power), and :func:`fit_band_offsets` convolves each residual of a
mean with those deviations (``within``, :func:`instant_deviations`) and counts
it as the instants of its period (``counts``).

A plant served on its entered description before the tuning has its days
(``engine.adaptation.untuned_description``) may be wrong by a factor (DC entered
as AC: ~17 % low), an error that grows with the power. Its offsets can be
relative to the forecast level (``level_floor``): the scores are divided by
:func:`forecast_level` (the P50 before the offsets, at least ``level_floor`` x
capacity) and the offsets multiplied back by it where they are served
(:func:`apply_band_offsets`), a locally weighted (normalised) conformal score
(Lei, G'Sell, Rinaldo, Tibshirani & Wasserman 2018, JASA 113:1094, section 5.2:
the residual divided by a spread estimate of its row).

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

N0 = 100
"""Shrinkage constant: a group with n scores gets weight n / (n + N0) (100 ~ 2 days of 15-min daylight).

The prior it weighs, the global calibration, is fitted on the training plant fed its satellite weather; on
a plant outside it the global bands covered P10-P90 55-57 % (SERF East 2016), so a plant's own residuals
should outweigh it after a couple of days. Was 200 until session 7; 100 and 50 were compared on SERF East
2016 (a development period, never the hold-out): with >= 30 days of history unchanged (the weights are
near 1 either way), in a plant's first two weeks better coverage for both descriptions at 100 and 50,
and 50 a point lower at 14-29 days; 100 was taken (docs/model.md "Bands before the tuning"). It also sets
how many forward residuals the bands need before they replace the served tuning's own (``adaptation``).
Given the scores' days, :func:`fit_band_offsets` weighs the global prior as ``strength x N0`` per level
(:func:`prior_strength`: less where the plant's own scores reject it beyond day-to-day noise)."""

LEVEL_FLOOR = 0.05
"""Floor of :func:`forecast_level`, fraction of capacity_ac_kw: relative offsets (``level_floor``) are of the
forecast's P50 but never of less than this, so the bands at dawn, dusk and under dark clouds (P50 near 0) keep
the width of a 5 % level instead of collapsing onto the P50, and a score is never divided by ~0. 0.05 is the
threshold under which the within-period deviations are not normalised either (:data:`WITHIN_MIN_CLEAR`) and
the clearest summer days of the plant run at 0.9-1.0: the floor spans one order of magnitude below them. Chosen
a priori, not fitted."""

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


def effective_n(weights, counts=None):
    """Kish's effective sample size of weights: ``(sum w)^2 / sum w^2`` (= n for equal weights; 0 for none).

    ``counts`` (shape (n,), optional): row ``i`` stands for ``counts[i]``
    samples of weight ``w[i]`` each (a period mean for the instants of its
    period): ``(sum c w)^2 / sum c w^2``, ``c`` times Kish's for constant ``c``.
    """
    w = np.asarray(weights, dtype=float)
    if counts is None:
        return float(w.sum() ** 2 / np.sum(w * w)) if w.size and np.sum(w * w) > 0 else 0.0
    c = np.asarray(counts, dtype=float)
    return float(np.sum(c * w) ** 2 / np.sum(c * w * w)) if w.size and np.sum(c * w * w) > 0 else 0.0


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


def forecast_level(q, level_floor=LEVEL_FLOOR, alphas=ALPHAS):
    """The level relative offsets are of: each row's median quantile, at least ``level_floor``.

    Parameters
    ----------
    q : ndarray
        Shape (n, k): forecast quantiles before any plant offset, fraction of capacity_ac_kw.
    level_floor : float or ndarray
        Fraction of capacity_ac_kw (a scalar, or shape (n,)).
    alphas : sequence of float
        The k levels of ``q``, 0.5 among them.

    Returns
    -------
    ndarray
        Shape (n,), >= ``level_floor`` (the floor where the median is not finite).
    """
    mid = list(np.round(alphas, 6)).index(0.5)
    median = np.asarray(q, dtype=float)[:, mid]
    return np.fmax(median, level_floor)


def level_floors(bands):
    """Per plant, the ``level_floor`` of its stored bands (NaN: absolute offsets, stored so or before the key).

    Parameters
    ----------
    bands : sequence of dict
        :func:`fit_band_offsets` results, one per plant.

    Returns
    -------
    ndarray
        Shape (plants,).
    """
    return np.array([np.nan if b.get("level_floor") is None else float(b["level_floor"]) for b in bands],
                    dtype=float)


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


def effective_days(days, weights):
    """Kish's effective number of local days of weighted scores: :func:`effective_n` of the days' total weights.

    Parameters
    ----------
    days : ndarray
        Shape (n,): a label of each score's local day.
    weights : ndarray
        Shape (n,), >= 0.

    Returns
    -------
    float
        Equal days of equal weight: their number; 0 without scores.
    """
    _, day = np.unique(np.asarray(days), return_inverse=True)
    return effective_n(np.bincount(day.ravel(), weights=np.asarray(weights, dtype=float)))


def prior_strength(scores, weights, days, alphas=ALPHAS):
    """How much of the global bands' miss on a plant's scores day-to-day noise explains, per level, in (0, 1].

    Under the global calibration (the prior: offset 0) a fraction ``a`` of
    a plant's scores ``y - q_a`` would fall below 0. The observed fraction
    ``e_a`` (weighted, ties by :func:`engine.metrics.below`) departs from
    ``a`` by noise and by the plant being another plant. Samples of one day
    share its weather, so the independent units are days: the variance of
    ``e_a`` under the prior is at most ``a (1 - a) / D`` (whole days in or
    out: the upper bound of any within-day correlation; ``D`` the days'
    effective number, Kish over their total weights). The strength is the
    positive-part James-Stein share of the squared departure that this
    noise accounts for (Efron & Morris 1973, JASA 68:117: the estimated
    prior variance is the observed squared departure less the noise's):
    ``min(1, a (1 - a) / (D (e_a - a)^2))``. 1: the scores are compatible
    with the global bands; small: the global bands are rejected and
    :func:`fit_band_offsets` weighs them as ``strength x n0`` scores. No
    constant is fitted: the noise is its bound.

    Parameters
    ----------
    scores : ndarray
        Shape (n, k): ``y - q`` per level, fraction of capacity_ac_kw.
    weights : ndarray
        Shape (n,), >= 0.
    days : ndarray
        Shape (n,): a label of each score's local day.
    alphas : sequence of float
        k levels.

    Returns
    -------
    strength : ndarray
        Shape (k,), in (0, 1].
    exceedance : ndarray
        Shape (k,): ``e_a``, the weighted fraction of scores below 0.
    days_effective : float
        ``D``.
    """
    scores = np.asarray(scores, dtype=float)
    w = np.asarray(weights, dtype=float)
    alphas = np.asarray(alphas, dtype=float)
    if not len(scores) or w.sum() <= 0:
        return np.ones(len(alphas)), np.full(len(alphas), np.nan), 0.0
    inside = np.column_stack([below(scores[:, j], np.zeros(len(scores)), a) for j, a in enumerate(alphas)])
    exceed = (w[:, None] * inside).sum(axis=0) / w.sum()
    d_eff = effective_days(days, w)
    gap = (exceed - alphas) ** 2
    noise = alphas * (1.0 - alphas) / d_eff
    strength = np.where(gap > noise, noise / np.where(gap > 0, gap, 1.0), 1.0)
    return strength, exceed, float(d_eff)


def predictive_inflation(days_effective):
    """How much wider than its scores' quantiles a plant's band must be for its next day: ``sqrt(1 + 1 / D)``.

    A plant's offsets are quantiles of its scores over ``D`` (effective)
    local days. Samples of one day share its weather, so its scores sit
    around a location of their day that the next day does not share: the
    offsets carry the error of that location, at most ``1 / D`` of the
    scores' variance (whole days in or out, the upper bound of any
    within-day correlation, as in :func:`prior_strength`). A new day's score
    varies by the scores' own variance plus that error, so its predictive
    spread is ``sqrt(1 + 1 / D)`` times the scores' (the prediction interval
    of a new observation, ``x_bar +- z s sqrt(1 + 1 / n)``, with ``n`` counted
    in days). Nothing is fitted: the error is its bound. 2 days: 1.22; 4: 1.12;
    14 equal days: 1.035; the effective days of a long history under
    :data:`HALF_LIFE_DAYS` (~40): 1.012.

    Parameters
    ----------
    days_effective : float
        ``D``, Kish's effective number of the days' total weights (> 0).

    Returns
    -------
    float
        >= 1; 1 without days.
    """
    return float(np.sqrt(1.0 + 1.0 / days_effective)) if days_effective > 0 else 1.0


def fit_band_offsets(y, q, lead_hours, csi, n0=N0, min_group=MIN_GROUP, alphas=ALPHAS, weights=None, within=None,
                     counts=None, days=None, predictive_days=None, level_floor=None):
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
    within : ndarray, optional
        Shape (n, m), fraction of capacity_ac_kw: ``m`` equally likely
        within-period deviations of an instant from each row's ``y`` when
        ``y`` is a period mean (:func:`instant_deviations`). Each row then
        stands for ``m`` instant scores ``y + within[:, j] - q``, each with
        ``1 / m`` of its weight (the distribution of the sum: the row's
        score convolved with the deviations). None: the scores of ``y``
        itself (bit for bit the offsets without this argument).
    counts : ndarray, optional
        Shape (n,): the instants each row stands for (a 60-min mean: 4, in
        the 15-min samples :data:`N0` and :data:`MIN_GROUP` are stated in):
        its scores weigh ``counts`` times its weight against other rows', and
        effective sample sizes count it as that many samples
        (:func:`effective_n`). None: 1 each (bit for bit).
    days : ndarray, optional
        Shape (n,): a label of each row's local day. Given, the global
        prior's weight in the plant's pooled offsets is ``n0`` times its
        :func:`prior_strength` per level (the evidence against it on the
        plant's own scores, counted in days); None: ``n0`` (bit for bit).
    predictive_days : ndarray, optional
        Shape (n,): a label of each row's local day (as ``days``). Given, each
        level's band is widened away from the median by
        :func:`predictive_inflation` of the scores' effective days
        (:func:`effective_days`), added to
        its offsets as ``(factor - 1)`` times the band's mean distance from the
        median over the group's scores (the plant's scores for a group without
        any): the offsets of a few days are those of one weather spell, not of
        the next days. None: bit for bit without it.
    level_floor : float, optional
        Relative offsets: every score (``y - q``, the within-period
        deviations, the band widths the widening is of) divided by its row's
        :func:`forecast_level` (``q``'s median, at least ``level_floor``), so
        the offsets are fractions of the forecast level, multiplied back by
        it where served (:func:`apply_band_offsets` with this floor). None:
        fractions of capacity_ac_kw (bit for bit without it).

    Returns
    -------
    dict
        ``offsets`` (list, shape (n_lead, n_regime, k), fraction of
        capacity_ac_kw, shrunk), ``n`` (list, shape (n_lead, n_regime), scores
        per group), ``n_effective`` (same shape, their effective sample size:
        ``n`` for equal weights), ``weight`` (same shape, the group weights
        ``n_effective / (n_effective + n0)``), ``raw`` (the unshrunk group
        offsets), ``pooled`` (the plant's unshrunk pooled offsets, shape (k,)),
        ``pooled_n_effective``, ``pooled_weight`` (``N / (N + n0)``), ``n0``,
        ``lead_edges_hours``, ``csi_edges`` (JSON-ready: inf as None); with
        ``days``, ``prior``: ``strength``, ``exceedance``, ``days_effective``
        (:func:`prior_strength`) and ``pooled_weight`` per level
        (``N / (N + strength x n0)``, the weight used); with ``predictive_days``,
        ``predictive``: ``factor``, ``days_effective`` and ``widening`` (shape
        (n_lead, n_regime, k), fraction of capacity_ac_kw, already in
        ``offsets``); ``level_floor`` (None: the offsets and everything above
        are fractions of capacity_ac_kw; a float: of the forecast level,
        :func:`forecast_level`).
    """
    y = np.asarray(y, dtype=float)
    q = np.asarray(q, dtype=float)
    if level_floor is not None:  # the scores in units of each row's forecast level
        level = forecast_level(q, float(level_floor), alphas)
        y, q = y / level, q / level[:, None]
        if within is not None:
            within = np.asarray(within, dtype=float).reshape(len(level), -1) / level[:, None]
    w = np.ones(len(y)) if weights is None else np.asarray(weights, dtype=float)
    c = None if counts is None else np.asarray(counts, dtype=float)
    w_rows = w if c is None else w * c  # the weight of a row's scores among all scores
    if within is None:  # one score per row
        scores, w_scores, row = y[:, None] - q, w_rows, np.arange(len(y))
    else:  # m instant scores per row, each 1/m of its weight (row-major: row i's scores are i*m .. i*m + m - 1)
        within = np.asarray(within, dtype=float).reshape(len(y), -1)
        m = within.shape[1]
        scores = ((y[:, None] + within)[:, :, None] - q[:, None, :]).reshape(len(y) * m, q.shape[1])
        w_scores, row = np.repeat(w_rows / m, m), np.repeat(np.arange(len(y)), m)
    lead, regime = group_index(lead_hours, csi)
    n_lead, n_regime, k = len(LEAD_EDGES_HOURS) - 1, len(CSI_EDGES) - 1, len(alphas)
    raw = np.zeros((n_lead, n_regime, k))
    n = np.zeros((n_lead, n_regime), dtype=int)
    n_eff = np.zeros((n_lead, n_regime))
    flat = lead * n_regime + regime
    flat_scores = flat[row]
    for g in np.unique(flat):  # at most 15 groups
        sel = flat == g
        i, j = divmod(int(g), n_regime)
        n[i, j], n_eff[i, j] = int(sel.sum()), effective_n(w[sel], None if c is None else c[sel])
        if n_eff[i, j] >= min_group:
            sel_scores = flat_scores == g
            raw[i, j] = weighted_quantiles(scores[sel_scores], w_scores[sel_scores], alphas)
    total = effective_n(w, c)
    pooled = weighted_quantiles(scores, w_scores, alphas) if len(scores) else np.zeros(k)
    pooled_weight = total / (total + float(n0)) if total >= min_group else 0.0
    prior_info = None
    if days is None:
        prior = pooled_weight * pooled
    else:  # the global prior weighs less where the plant's own scores reject it
        strength, exceed, d_eff = prior_strength(scores, w_scores, np.asarray(days)[row], alphas)
        level_weight = total / (total + float(n0) * strength) if total >= min_group else np.zeros(k)
        prior = level_weight * pooled
        prior_info = {"strength": strength.tolist(), "days_effective": d_eff,  # no scores: exceedance None
                      "exceedance": [float(e) if np.isfinite(e) else None for e in exceed],
                      "pooled_weight": level_weight.tolist()}
    weight = np.where(n_eff >= min_group, n_eff / (n_eff + float(n0)), 0.0)
    offsets = weight[:, :, None] * raw + (1.0 - weight[:, :, None]) * prior[None, None, :]
    predictive_info = None
    if predictive_days is not None and len(scores):
        offsets, predictive_info = widen_offsets(offsets, q[row], flat_scores, w_scores, effective_days(
            np.asarray(predictive_days)[row], w_scores), alphas)
    return {"offsets": offsets.tolist(), "raw": raw.tolist(), "n": n.tolist(), "n_effective": n_eff.tolist(),
            "weight": weight.tolist(), "pooled": pooled.tolist(), "pooled_n_effective": total,
            "pooled_weight": float(pooled_weight), "n0": float(n0), **({} if prior_info is None else
                                                                          {"prior": prior_info}),
            **({} if predictive_info is None else {"predictive": predictive_info}),
            "level_floor": None if level_floor is None else float(level_floor),
            "lead_edges_hours": [None if np.isinf(e) else e for e in LEAD_EDGES_HOURS],
            "csi_edges": [None if np.isinf(e) else e for e in CSI_EDGES]}


def widen_offsets(offsets, q, group, weights, days_effective, alphas=ALPHAS):
    """Offsets whose bands are :func:`predictive_inflation` times as far from the median, in the mean of a group.

    Row ``i`` of group ``g`` has the band ``q[i] + offsets[g]``; its distance
    from the median level is ``h[i, a] = (q[i, a] + o[g, a]) - (q[i, m] +
    o[g, m])``. Each group's offsets get ``(factor - 1)`` times the weighted
    mean of ``h`` over its rows (over all rows, each with its own group's
    offsets, for a group without rows): the band is widened in the mean of
    the group, additively like the offsets themselves; the median is not
    moved.

    Parameters
    ----------
    offsets : ndarray
        Shape (n_lead, n_regime, k), fraction of capacity_ac_kw.
    q : ndarray
        Shape (n, k): the scores' quantiles, same unit.
    group : ndarray of int
        Shape (n,): flat group ``lead * n_regime + regime`` of each row.
    weights : ndarray
        Shape (n,), >= 0.
    days_effective : float
        :func:`predictive_inflation`'s ``D``.
    alphas : sequence of float
        k levels, 0.5 among them.

    Returns
    -------
    offsets : ndarray
        Shape of ``offsets``.
    info : dict
        ``factor``, ``days_effective``, ``widening`` (list, shape of ``offsets``).
    """
    offsets = np.asarray(offsets, dtype=float)
    n_lead, n_regime, k = offsets.shape
    mid = list(np.round(alphas, 6)).index(0.5)
    band = q + offsets.reshape(n_lead * n_regime, k)[group]
    h = band - band[:, [mid]]
    w = np.asarray(weights, dtype=float)
    total = np.zeros((n_lead * n_regime, k))
    np.add.at(total, group, w[:, None] * h)
    mass = np.bincount(group, weights=w, minlength=n_lead * n_regime)
    pooled = (w[:, None] * h).sum(axis=0) / w.sum()
    mean_h = np.where(mass[:, None] > 0, total / np.where(mass > 0, mass, 1.0)[:, None], pooled[None, :])
    factor = predictive_inflation(days_effective)
    widening = ((factor - 1.0) * mean_h).reshape(n_lead, n_regime, k)
    return offsets + widening, {"factor": factor, "days_effective": float(days_effective),
                                "widening": widening.tolist()}


def apply_band_offsets(q, plant, lead_hours, csi, offsets, level_floor=None):
    """Shift each row's quantiles by its plant's offsets of its (lead bucket, regime).

    A plant with a ``level_floor`` has relative offsets (:func:`fit_band_offsets`):
    its rows' shift is the offset times the row's :func:`forecast_level` (of
    ``q`` as given: before any offset).

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
    level_floor : ndarray, optional
        Shape (n_plants,): each plant's ``level_floor`` (:func:`level_floors`;
        NaN: absolute offsets). None: every plant's offsets absolute.

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
    if level_floor is not None:
        floor = np.full(len(q), np.nan)
        floor[has] = np.asarray(level_floor, dtype=float)[plant[has]]
        relative = np.isfinite(floor)
        if relative.any():
            shift[relative] *= forecast_level(q[relative], floor[relative])[:, None]
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


WITHIN_K_EDGES = (0.0, 0.2, 0.4, 0.6, 0.8, 0.9, np.inf)
"""Bins of a period's clear-sky index of power (period-mean power / clear-sky physical power): the spread of
instants around their period's mean is small under overcast (< 0.2) and clear (>= 0.9) skies and largest under
broken clouds (on the training data, 60-min periods: within-period standard deviation 0.04 of the clear-sky power
below 0.2, 0.19-0.22 at 0.4-0.8, 0.09-0.12 above 0.9)."""

WITHIN_LEVELS = 32
"""Deviations kept per bin: the quantiles at ``(j + 0.5) / WITHIN_LEVELS`` (a deterministic stratified sample of
the bin's distribution; each plant residual of a period mean becomes this many equally weighted instant scores)."""

WITHIN_MIN_CLEAR = 0.05
"""Periods whose clear-sky physical power falls below this fraction of capacity_ac_kw at any sample (sunrise,
sunset) give no deviations: normalised by a near-zero clear-sky power they would be noise."""

WITHIN_PERIODS_MINUTES = (30, 60)
"""Averaging periods tabulated from the 15-min training samples (a period must hold at least 2 samples)."""


def within_period_deviations(times, power_kw, clear_kw, capacity_ac_kw, period_minutes, sample_minutes=15,
                             edges=WITHIN_K_EDGES, levels=WITHIN_LEVELS, min_clear=WITHIN_MIN_CLEAR):
    """How instants deviate from the mean of their averaging period, per clear-sky regime, from measured samples.

    The forecast value is the instantaneous power; a plant that sends period
    means (``period_minutes`` > 0) gives residuals of means, which vary less.
    The residual of an instant is the residual of its period's mean plus the
    instant's deviation from that mean; this tabulates the second term on
    instantaneous samples (the training data), for :func:`instant_deviations`
    to add to a plant's residuals of means. The deviation of sample ``i`` of
    a period with mean power ``P`` and clear-sky physical power ``c_i``
    (mean ``C``) is ``d_i = (p_i - P c_i / C) / C``: the part the clear-sky
    shape of the period does not explain (a forecast follows that shape
    within the period), in units of the period's clear-sky power, so it
    transfers to plants of another size, orientation and sun height. The
    deviations sum to 0 over each period. Binned by the period's clear-sky
    index of power ``K = P / C`` (:data:`WITHIN_K_EDGES`).

    Parameters
    ----------
    times : DatetimeIndex
        UTC, regular at ``sample_minutes``, the samples' instants.
    power_kw : array_like
        Measured instantaneous AC power, kW (NaN: missing).
    clear_kw : array_like
        The plant's physical AC power under clear sky at ``times``, kW.
    capacity_ac_kw : float
        kW (the :data:`WITHIN_MIN_CLEAR` threshold).
    period_minutes : int
        Averaging period, min; a multiple of ``sample_minutes``, >= 2 samples.
        Periods end on multiples of it (hour-ending for 60) and hold the
        samples in (end - period, end].
    sample_minutes : int
        Interval of the samples, min.
    edges : sequence of float
        :data:`WITHIN_K_EDGES`.
    levels : int
        :data:`WITHIN_LEVELS`.
    min_clear : float
        :data:`WITHIN_MIN_CLEAR`.

    Returns
    -------
    dict
        JSON-ready: ``period_minutes``, ``sample_minutes``, ``k_edges`` (inf as
        None), ``levels`` (the probability levels), ``deviations`` (list,
        shape (n_bins, levels), fraction of the period's clear-sky power;
        zeros in a bin without samples), ``count`` (samples per bin),
        ``periods`` (full periods used).
    """
    per = int(period_minutes) // int(sample_minutes)
    if per < 2 or int(period_minutes) % int(sample_minutes):
        raise ValueError(f"period_minutes {period_minutes} must be a multiple >= 2 of sample_minutes "
                         f"{sample_minutes}")
    frame = pd.DataFrame({"p": np.asarray(power_kw, dtype=float), "c": np.asarray(clear_kw, dtype=float)},
                         index=pd.DatetimeIndex(times))
    end = frame.index.ceil(f"{int(period_minutes)}min")
    g = frame.groupby(end)
    count = g["p"].transform("count").to_numpy()
    lowest = g["c"].transform("min").to_numpy()
    mean_p, mean_c = g["p"].transform("mean").to_numpy(), g["c"].transform("mean").to_numpy()
    full = (count == per) & (lowest >= min_clear * float(capacity_ac_kw))
    d = (frame["p"].to_numpy()[full] - mean_p[full] * frame["c"].to_numpy()[full] / mean_c[full]) / mean_c[full]
    k_bin = bin_index(mean_p[full] / mean_c[full], edges)
    probs = (np.arange(levels) + 0.5) / levels
    n_bins = len(edges) - 1
    counts = np.bincount(k_bin, minlength=n_bins)
    table = np.zeros((n_bins, levels))
    for b in np.flatnonzero(counts):  # at most len(edges) - 1 bins
        table[b] = np.quantile(d[k_bin == b], probs)
    return {"period_minutes": int(period_minutes), "sample_minutes": int(sample_minutes),
            "k_edges": [None if np.isinf(e) else float(e) for e in edges], "levels": probs.tolist(),
            "deviations": table.tolist(), "count": counts.astype(int).tolist(), "periods": int(full.sum() // per)}


def within_period_entry(table, period_minutes):
    """The tabulated deviations that stand for ``period_minutes``, and what was chosen or why none.

    The longest tabulated period not longer than ``period_minutes`` (a longer
    period's instants deviate at least as much: a shorter table understates
    them, never overstates); none for a period shorter than every tabulated
    one (e.g. 5-min means: not resolved by 15-min samples, and close to
    instants) or without a table.

    Parameters
    ----------
    table : dict or None
        A model's ``within_period`` (``modelio.load_model``): ``periods``,
        list of :func:`within_period_deviations` dicts.
    period_minutes : int

    Returns
    -------
    entry : dict or None
    reason : str or None
        Why there is no entry, or that a shorter period stands in.
    """
    if not table or not table.get("periods"):
        return None, "the model has no within-period deviations (model card within_period)"
    entries = [e for e in table["periods"] if e["period_minutes"] <= int(period_minutes)]
    if not entries:
        shortest = min(e["period_minutes"] for e in table["periods"])
        return None, (f"period {int(period_minutes)} min is shorter than the shortest tabulated "
                      f"({shortest} min): no within-period term")
    entry = max(entries, key=lambda e: e["period_minutes"])
    reason = None if entry["period_minutes"] == int(period_minutes) else (
        f"period {int(period_minutes)} min: the {entry['period_minutes']}-min deviations stand in (no longer "
        f"period tabulated; an understatement)")
    return entry, reason


def period_sample_count(period_minutes, entry):
    """How many instants, spaced equally and ending at the period's end, a mean of ``period_minutes`` stands for.

    The table's periods are means of their ``sample_minutes`` samples in
    (end - period, end]; a mean of another period (a longer one that a
    shorter table stands in for) gets as many as that interval gives, at
    least 1.
    """
    return max(1, int(round(int(period_minutes) / entry["sample_minutes"])))


def instant_deviations(y, clear, entry):
    """Equally likely deviations of an instant from each period mean, fraction of capacity_ac_kw (vectorised).

    Row ``i`` gets its bin's deviations (:func:`within_period_deviations`,
    bin of its clear-sky index of power ``y / clear``) times its clear-sky
    power: ``d_j * clear_i``.

    Parameters
    ----------
    y : array_like
        Shape (n,): period-mean power / capacity_ac_kw.
    clear : array_like
        Shape (n,): the plant's clear-sky physical AC power at the period's
        effective instant (its middle) / capacity_ac_kw.
    entry : dict
        One :func:`within_period_deviations` table.

    Returns
    -------
    ndarray
        Shape (n, levels); zero rows where ``clear`` is below
        :data:`WITHIN_MIN_CLEAR` or not finite (night, sunrise).
    """
    y = np.asarray(y, dtype=float)
    clear = np.asarray(clear, dtype=float)
    ok = np.isfinite(clear) & (clear >= WITHIN_MIN_CLEAR) & np.isfinite(y)
    edges = [np.inf if e is None else e for e in entry["k_edges"]]
    k = np.where(ok, y / np.where(ok, clear, 1.0), 0.0)
    table = np.asarray(entry["deviations"], dtype=float)
    return np.where(ok[:, None], table[bin_index(k, edges)] * np.where(ok, clear, 0.0)[:, None], 0.0)

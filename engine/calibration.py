"""Conformal calibration of quantile forecasts (CQR-style, Mondrian by solar elevation).

Plain gradient-boosted quantiles are too narrow out of sample. Following
conformalized quantile regression (Romano, Patterson & Candes 2019), each
quantile level ``a`` is shifted by the empirical ``a``-quantile of the
out-of-fold scores ``y - q_a``, so that on held-out data of the TRAINING period
a fraction ``a`` of observations lies below the shifted quantile. Offsets are
fitted separately per solar-elevation bin (a Mondrian split) because error
size grows with the sun's height. They are never fitted on the hold-out year.
"""

import numpy as np


def bin_index(values, edges):
    """Bin number of each value (0 .. len(edges) - 2), out-of-range values clamped.

    Parameters
    ----------
    values : array_like
    edges : sequence of float
        Increasing bin edges.

    Returns
    -------
    ndarray of int
    """
    idx = np.searchsorted(np.asarray(edges, dtype=float), np.asarray(values, dtype=float), side="right") - 1
    return np.clip(idx, 0, len(edges) - 2)


def fit_offsets(y, q, alphas, groups, n_groups, min_count=50):
    """Conformal offsets per group and quantile level.

    Parameters
    ----------
    y : ndarray
        Shape (n,): observed normalised power (fraction of capacity_ac).
    q : ndarray
        Shape (n, k): out-of-fold predicted quantiles, same units.
    alphas : sequence of float
        Quantile levels, length k.
    groups : ndarray of int
        Shape (n,): group (bin) of each row, 0 .. n_groups - 1.
    n_groups : int
    min_count : int, default 50
        Groups with fewer rows use the offsets pooled over all rows.

    Returns
    -------
    ndarray
        Shape (n_groups, k): additive offsets, fraction of capacity_ac.
    """
    scores = np.asarray(y, dtype=float)[:, None] - np.asarray(q, dtype=float)
    alphas = np.asarray(alphas, dtype=float)
    pooled = np.array([np.quantile(scores[:, j], a) for j, a in enumerate(alphas)])
    offsets = np.tile(pooled, (n_groups, 1))
    for g in range(n_groups):  # a handful of bins, not a hot path
        sel = groups == g
        if sel.sum() >= min_count:
            offsets[g] = [np.quantile(scores[sel, j], a) for j, a in enumerate(alphas)]
    return offsets


def apply_offsets(q, groups, offsets):
    """Shift quantiles by their group's conformal offsets.

    Parameters
    ----------
    q : ndarray
        Shape (n, k), fraction of capacity_ac.
    groups : ndarray of int
        Shape (n,).
    offsets : ndarray
        Shape (n_groups, k).

    Returns
    -------
    ndarray
        Shape (n, k): calibrated quantiles (not yet sorted or clipped:
        :func:`engine.quantiles.apply_limits` does that).
    """
    return np.asarray(q, dtype=float) + np.asarray(offsets, dtype=float)[np.asarray(groups)]

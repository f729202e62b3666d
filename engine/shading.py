"""Fitted shading: a skyline learnt from a plant's own clear-sky actuals (issue 10 item 1).

Users can enter a horizon profile (:mod:`engine.horizon`); real rooftops often
have morning or evening shade from trees or buildings nobody entered. This
module estimates, from one plant's actuals strictly BEFORE a cutoff, where the
measured power is persistently far below the (tuned) physical estimate as a
function of solar position, and expresses it as a horizon profile: a skyline
elevation per azimuth bin of :data:`BIN_DEG`. Forecasts use it exactly like an
entered skyline (:func:`served_horizon`: the element-wise maximum of the
entered and the fitted profile), i.e. the beam is blocked while the sun is
below it and the sky view is reduced (``engine.horizon``).

Method. On clear (weather clear-sky index >= ``engine.tuning.CLEAR_CSI``),
usable (``engine.tuning.usable_samples``: no night, outage, stale or clipped
sample), beam-dominated samples (beam share of the plane-of-array irradiance
>= :data:`MIN_BEAM_SHARE`) of the TUNED description (orientation, DC scale and
clipping level already fitted), the beam-loss index

    b = (physical - measured) / (physical x beam share)

is ~0 where the plant sees the sun and ~1 where an obstacle blocks the beam
(:func:`beam_loss`). A skyline is a step in elevation at each azimuth: in a
bin, the samples below the skyline are blocked, those above are not. The
fitted elevation of a bin is the threshold that best separates blocked
(b >= :data:`BLOCKED`) from open samples (fewest misclassified), and it is
kept only when the evidence is that of a skyline (else the bin is 0, open):

- minimum data: :data:`MIN_BIN_DAYS` clear days with the sun in the bin;
- consistent across days: the blocked samples below the threshold come from
  at least :data:`MIN_SHADED_DAYS` local days, and at least
  :data:`CONSISTENT` of all samples below it are blocked (not one cloudy
  afternoon the weather missed);
- near-total beam loss: median b below the threshold >= :data:`BEAM_LIKE`;
  a wrong orientation or a model error at low sun gives a partial, gradual
  loss, not a beam cut;
- an observed, sharp edge: samples less than :data:`EDGE_DEG` above the
  threshold on at least :data:`MIN_EDGE_DAYS` days, with median b <=
  :data:`OPEN_ABOVE` (the sun is back at once, not gradually). A bin whose
  sun was never seen above the loss is not shaded: a beam lost at every
  elevation the sun took there is what a plane that cannot see that part of
  the sky (a wrong orientation: the sun behind the true plane) gives too;
- bounded: the elevation is at most :data:`MAX_ELEVATION`.

Orientation errors and shading can be confused (a wrong azimuth looks like a
morning or evening loss). They are kept apart by fitting after the
orientation (on the residual of the tuned description), on beam-dominated
samples only, and by the near-total, sharp-edged, multi-day rules above: a
plane turned the wrong way loses a share of the beam that grows smoothly as
the sun goes round, never the whole beam below one elevation and none above.
"""

import numpy as np
import pandas as pd

from engine import horizon as skyline
from engine import tuning

BIN_DEG = 10.0
"""Azimuth bin of the fitted profile, deg (at low sun the sun crosses 10 deg in ~40 min: ~3 samples a day at 15 min)."""

MIN_BIN_DAYS = 5
"""Clear local days with a beam-dominated sample in a bin needed before the bin is judged."""

MIN_SHADED_DAYS = 5
"""Distinct local days with blocked samples below the fitted elevation needed for a shaded bin."""

BLOCKED = 0.5
"""Beam-loss index from which a sample counts as blocked (more than half the beam missing)."""

CONSISTENT = 0.8
"""Share of a bin's samples below the fitted elevation that must be blocked."""

BEAM_LIKE = 0.8
"""Median beam-loss index below the fitted elevation needed: a near-total loss of the beam."""

OPEN_ABOVE = 0.3
"""Median beam-loss index of the bin's samples just above the fitted elevation allowed: the sun is back."""

MIN_EDGE_DAYS = 3
"""Local days with samples less than :data:`EDGE_DEG` above the fitted elevation needed (an observed edge)."""

EDGE_DEG = 5.0
"""Elevation band above the fitted elevation where the sun must be back at once, deg. A wrong plane
orientation loses the beam gradually as the sun nears the true plane's edge (the true angle of incidence
goes smoothly through 90 deg): just above the best split its loss is still partial."""

MIN_BEAM_SHARE = 0.6
"""Beam share of the plane-of-array irradiance (``poa_direct / poa_global``) of a usable sample."""

MIN_PHYSICAL = 0.05
"""Physical estimate of a usable sample, fraction of ``capacity_ac_kw``."""

MAX_ELEVATION = 40.0
"""Upper bound of a fitted skyline elevation, deg."""


def bin_centres(bin_deg=BIN_DEG):
    """Centres of the azimuth bins, deg (azimuth 0 = north, clockwise)."""
    return bin_deg * (np.arange(int(round(360.0 / bin_deg))) + 0.5)


def beam_loss(power_kw, physical_ac_kw, poa_direct, poa_global):
    """Beam-loss index: the share of the beam's power that the measurement misses.

    ``(physical - measured) / (physical x poa_direct / poa_global)``: 0 when
    the plant sees the sun as the physical model says, 1 when the beam (and
    only the beam) is missing. PVWatts DC is linear in the effective
    irradiance and the inverter nearly so between 10 % and 90 % of its
    rating, so the beam's share of the power is its share of the POA
    irradiance (up to the IAM and cell temperature).

    Parameters
    ----------
    power_kw, physical_ac_kw : array_like
        Measured and physical AC power, kW.
    poa_direct, poa_global : array_like
        Beam and global plane-of-array irradiance of the physical estimate, W/m^2.

    Returns
    -------
    ndarray
        Unitless; NaN where there is no beam.
    """
    phys = np.asarray(physical_ac_kw, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        beam_kw = phys * np.asarray(poa_direct, dtype=float) / np.asarray(poa_global, dtype=float)
        return np.where(beam_kw > 0, (phys - np.asarray(power_kw, dtype=float)) / beam_kw, np.nan)


def fit_profile(loss, elevation, azimuth, day, bin_deg=BIN_DEG, min_bin_days=MIN_BIN_DAYS,
                min_shaded_days=MIN_SHADED_DAYS, max_elevation=MAX_ELEVATION):
    """Skyline elevation per azimuth bin from the beam-loss index of selected samples (vectorised over bins).

    In each bin the samples are sorted by elevation; the threshold after
    sample k misclassifies the open samples up to k and the blocked ones
    after it (cumulative counts), the threshold 0 every blocked one. The
    best threshold (midpoint between the last sample below and the first
    above it) is kept when it passes the rules of the module docstring.

    Parameters
    ----------
    loss : ndarray
        :func:`beam_loss` of the selected samples.
    elevation, azimuth : ndarray
        Apparent solar elevation and solar azimuth, deg.
    day : ndarray of int
        Local day of each sample (any integer code).
    bin_deg : float
    min_bin_days, min_shaded_days : int
    max_elevation : float
        deg.

    Returns
    -------
    elevation : ndarray
        (n_bins,) fitted skyline elevation, deg (0: open or not judged).
    table : DataFrame
        Per bin: ``azimuth`` (centre), ``samples``, ``days``, ``judged``
        (enough days), ``threshold`` (best split, deg), ``blocked_share``,
        ``loss_below``, ``loss_above`` (medians below the threshold and less
        than :data:`EDGE_DEG` above it), ``shaded_days``, ``edge_days``,
        ``shaded`` (bool), ``at_bound``.
    """
    centres = bin_centres(bin_deg)
    n_bins = len(centres)
    b = np.asarray(loss, dtype=float)
    el = np.asarray(elevation, dtype=float)
    k = np.floor(np.asarray(azimuth, dtype=float) % 360.0 / bin_deg).astype(int) % n_bins
    d = np.asarray(day)
    order = np.lexsort((el, k))
    b, el, k, d = b[order], el[order], k[order], d[order]
    blocked = b >= BLOCKED
    samples = np.bincount(k, minlength=n_bins)
    days = pd.Series(d).groupby(k).nunique().reindex(range(n_bins), fill_value=0).to_numpy()
    first = np.cumsum(samples) - samples  # first sample of each bin in the sorted order
    # errors of the threshold just above each sample: open ones at or below + blocked ones above (within the bin)
    cum_open = pd.Series((~blocked).astype(int)).groupby(k).cumsum().to_numpy()
    cum_blk = pd.Series(blocked.astype(int)).groupby(k).cumsum().to_numpy()
    total_blk = np.bincount(k, weights=blocked, minlength=n_bins)
    errors = cum_open + (total_blk[k] - cum_blk)
    best = pd.Series(errors).groupby(k).idxmin().reindex(range(n_bins)).to_numpy()  # sorted position, NaN: no data
    has = np.isfinite(best)
    best = np.where(has, best, 0).astype(int)
    split_better = has & (errors[best] < total_blk)  # the threshold beats "no skyline"
    last_in_bin = first + samples - 1
    nxt = np.minimum(best + 1, len(el) - 1)
    above_exists = has & (best < last_in_bin)
    threshold = np.where(above_exists, (el[best] + el[nxt]) / 2.0, el[best] + 0.5)
    threshold = np.where(split_better, threshold, 0.0)
    at_bound = threshold > max_elevation
    threshold = np.minimum(threshold, max_elevation)
    below = el < threshold[k]
    frame = pd.DataFrame({"k": k, "below": below, "blocked": blocked, "b": b, "d": d})
    lower = frame[frame["below"]]
    upper = frame[~frame["below"] & (el < threshold[k] + EDGE_DEG)]
    n_below = np.bincount(lower["k"], minlength=n_bins)
    blocked_share = np.where(n_below > 0, np.bincount(lower["k"], weights=lower["blocked"], minlength=n_bins)
                             / np.maximum(n_below, 1), np.nan)
    loss_below = lower.groupby("k")["b"].median().reindex(range(n_bins)).to_numpy()
    loss_above = upper.groupby("k")["b"].median().reindex(range(n_bins)).to_numpy()
    edge_days = upper.groupby("k")["d"].nunique().reindex(range(n_bins), fill_value=0).to_numpy()
    shaded_days = lower[lower["blocked"]].groupby("k")["d"].nunique().reindex(range(n_bins), fill_value=0).to_numpy()
    judged = days >= min_bin_days
    shaded = (judged & split_better & (n_below > 0) & (blocked_share >= CONSISTENT) & (loss_below >= BEAM_LIKE)
              & (shaded_days >= min_shaded_days) & (edge_days >= MIN_EDGE_DAYS) & (loss_above <= OPEN_ABOVE))
    fitted = np.where(shaded, threshold, 0.0)
    table = pd.DataFrame({"azimuth": centres, "samples": samples, "days": days, "judged": judged,
                          "threshold": threshold, "blocked_share": blocked_share, "loss_below": loss_below,
                          "loss_above": loss_above, "shaded_days": shaded_days, "edge_days": edge_days,
                          "shaded": shaded,
                          "at_bound": at_bound & shaded})
    return fitted, table


def fit_shading(power_kw, feats, usable, capacity_ac_kw, cutoff, timezone="UTC", bin_deg=BIN_DEG,
                min_bin_days=MIN_BIN_DAYS, min_shaded_days=MIN_SHADED_DAYS, max_elevation=MAX_ELEVATION):
    """A plant's fitted skyline from its clear-sky actuals before ``cutoff`` (JSON-ready).

    Parameters
    ----------
    power_kw : Series
        Measured AC power, kW, UTC index.
    feats : DataFrame
        ``engine.features.feature_frame`` of the TUNED description (with any
        entered horizon) at the same times: ``physical_ac_kw``,
        ``poa_direct``, ``poa_global``, ``csi``, ``solar_elevation``,
        ``solar_azimuth``.
    usable : array_like of bool
        ``engine.tuning.usable_samples`` of the tuned estimate.
    capacity_ac_kw : float
        kW.
    cutoff : Timestamp
        tz-aware; only samples with time < cutoff are used.
    timezone : str
        IANA zone (local days).
    bin_deg, min_bin_days, min_shaded_days, max_elevation
        Module constants.

    Returns
    -------
    dict
        ``ok`` (a profile was judged: at least one bin had enough data),
        ``reason``, ``bin_deg``, ``azimuth`` (bin centres, deg),
        ``elevation`` (fitted skyline per bin, deg; all 0: no shading
        found), ``shaded`` (any bin above 0), ``window_start``,
        ``window_end`` (first and last sample used, UTC ISO), ``diagnostics``
        (the thresholds and bounds, samples, clear days, and per bin:
        ``days``, ``samples``, ``threshold``, ``blocked_share``,
        ``loss_below``, ``loss_above``, ``shaded_days``, ``edge_days``).
    """
    cutoff = pd.Timestamp(cutoff).tz_convert("UTC")
    before = np.asarray(power_kw.index < cutoff)
    y = power_kw.to_numpy(dtype=float)
    phys = feats["physical_ac_kw"].to_numpy(dtype=float)
    direct, glob = feats["poa_direct"].to_numpy(dtype=float), feats["poa_global"].to_numpy(dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(glob > 0, direct / glob, 0.0)
    loss = beam_loss(y, phys, direct, glob)
    sel = (before & np.asarray(usable, dtype=bool) & (feats["csi"].to_numpy(dtype=float) >= tuning.CLEAR_CSI)
           & (share >= MIN_BEAM_SHARE) & (phys >= MIN_PHYSICAL * capacity_ac_kw) & np.isfinite(loss) & np.isfinite(y))
    times = pd.DatetimeIndex(power_kw.index[sel])
    day = pd.factorize(times.tz_convert(timezone).tz_localize(None).normalize())[0]  # local day codes
    diagnostics = {"bin_deg": float(bin_deg), "min_bin_days": int(min_bin_days),
                   "min_shaded_days": int(min_shaded_days),
                   "max_elevation": float(max_elevation), "blocked": BLOCKED, "consistent": CONSISTENT,
                   "beam_like": BEAM_LIKE, "open_above": OPEN_ABOVE, "edge_deg": EDGE_DEG,
                   "min_edge_days": MIN_EDGE_DAYS,
                   "min_beam_share": MIN_BEAM_SHARE,
                   "clear_csi": tuning.CLEAR_CSI, "samples": int(sel.sum()),
                   "clear_days": int(len(np.unique(day)))}
    centres = bin_centres(bin_deg)
    result = {"ok": False, "reason": None, "bin_deg": float(bin_deg), "azimuth": centres.tolist(),
              "elevation": [0.0] * len(centres), "shaded": False, "window_start": None, "window_end": None,
              "diagnostics": diagnostics}
    elevation, table = fit_profile(loss[sel], feats["solar_elevation"].to_numpy(dtype=float)[sel],
                                   feats["solar_azimuth"].to_numpy(dtype=float)[sel], day, bin_deg, min_bin_days,
                                   min_shaded_days, max_elevation)
    diagnostics["bins"] = {c: [None if isinstance(v, float) and not np.isfinite(v) else v for v in table[c].tolist()]
                           for c in ("days", "samples", "threshold", "blocked_share", "loss_below", "loss_above",
                                     "shaded_days", "edge_days")}
    diagnostics["judged_bins"] = int(table["judged"].sum())
    if not table["judged"].any():
        result["reason"] = (f"shading: no azimuth bin has {min_bin_days} clear days of beam-dominated samples before "
                            f"{cutoff.isoformat()}")
        return result
    result.update(ok=True, elevation=[float(e) for e in elevation], shaded=bool((elevation > 0).any()),
                  window_start=times.min().isoformat(), window_end=times.max().isoformat())
    diagnostics["at_bound"] = int(table["at_bound"].sum())
    return result


def fit_plant_shading(location, power, feats, cutoff):
    """:func:`fit_shading` of one plant from its tuned feature frame (usable samples of the tuned estimate).

    Parameters
    ----------
    location : DataFrame
        One-row, the TUNED description (``capacity_ac_kw``, ``timezone``, ``tracking``).
    power : Series
        Measured AC power, kW, at the feature frame's times.
    feats : DataFrame
        ``engine.features.feature_frame`` of ``location`` at those times.
    cutoff : Timestamp

    Returns
    -------
    dict
        :func:`fit_shading`.
    """
    row = location.iloc[0]
    cap = float(row["capacity_ac_kw"])
    flags = tuning.usable_samples(power, feats["physical_ac_kw"], feats["solar_elevation"], cap)
    return fit_shading(power, feats, flags["usable"], cap, cutoff, str(row["timezone"]))


def served_horizon(horizon, shading):
    """The horizon frame forecasts use: entered skylines raised to the fitted ones (vectorised over plants).

    For a plant whose fitted profile shades some bin, the profile points are
    the entered ones and the centres of ``engine.horizon``'s 1-deg grid,
    each at the maximum of the entered skyline (linear between its points,
    as ``engine.horizon``) and the fitted one (constant in each bin). Plants
    without a shaded bin keep their entered rows untouched (the same
    forecast as without fitted shading).

    Parameters
    ----------
    horizon : DataFrame or None
        Entered horizon frame (``location_id``, ``azimuth``, ``elevation``).
    shading : dict
        location_id -> :func:`fit_shading` result (or None: not fitted).

    Returns
    -------
    DataFrame or None
        Same columns; None when neither exists.
    """
    fitted = {int(i): s for i, s in shading.items() if s and s.get("ok") and s.get("shaded")}
    if not fitted:
        return horizon
    ids = np.asarray(sorted(fitted), dtype="int64")
    grid_az = skyline.grid_azimuths()
    bins = np.stack([np.asarray(fitted[i]["elevation"], dtype=float) for i in ids])  # (n, n_bins)
    widths = np.array([float(fitted[i]["bin_deg"]) for i in ids])
    if len(set(bins.shape[1:])) > 1 or np.ptp(widths) > 0:
        raise ValueError(f"shading: fitted profiles of locations {ids.tolist()} have different bins")
    on_grid = bins[:, (grid_az // widths[0]).astype(int) % bins.shape[1]]  # (n, 360)
    entered = None if horizon is None else horizon[horizon["location_id"].isin(ids)]
    rows = [pd.DataFrame({"location_id": np.repeat(ids, len(grid_az)), "azimuth": np.tile(grid_az, len(ids)),
                          "fitted": on_grid.ravel()})]
    has_entered = np.zeros(len(ids), dtype=bool)
    if entered is not None and len(entered):
        site = pd.Index(ids).get_indexer(entered["location_id"].to_numpy(dtype="int64"))
        rows.append(pd.DataFrame({"location_id": ids[site], "azimuth": entered["azimuth"].to_numpy(dtype=float),
                                  "fitted": bins[site, (entered["azimuth"].to_numpy(dtype=float) // widths[0])
                                                 .astype(int) % bins.shape[1]]}))
        has_entered[np.unique(site)] = True
    points = pd.concat(rows, ignore_index=True).sort_values(["location_id", "azimuth"], kind="stable")
    points = points.drop_duplicates(["location_id", "azimuth"]).reset_index(drop=True)
    sky = np.zeros(len(points))
    if has_entered.any():
        prof = skyline.profiles(entered, ids)
        site = pd.Index(ids).get_indexer(points["location_id"].to_numpy(dtype="int64"))
        with_entered = has_entered[site]
        sky[with_entered] = skyline.elevation_at(prof["support"], prof["site"][site[with_entered]],
                                                 points["azimuth"].to_numpy()[with_entered])
    out = pd.DataFrame({"location_id": points["location_id"].to_numpy(dtype="int64"),
                        "azimuth": points["azimuth"].to_numpy(dtype=float),
                        "elevation": np.maximum(sky, points["fitted"].to_numpy(dtype=float))})
    others = None if horizon is None else horizon[~horizon["location_id"].isin(ids)]
    if others is None or not len(others):
        return out
    return pd.concat([others[["location_id", "azimuth", "elevation"]], out], ignore_index=True)

"""Plant tuning from a plant's own actuals: effective DC scale and observed AC clipping level.

A user describes a plant with what they know (often the inverter's AC rating
for both ``capacity_ac_kw`` and ``capacity_dc_kw``), and the physical model
(``engine.physics``, PVWatts) turns the weather into power with that
description. Measured power tells how far off the description is. This module
fits, from one plant's actuals strictly BEFORE a cutoff and the physical
estimate of the weather used for those times, a small bounded correction:

- ``dc_scale``: effective DC capacity / entered DC capacity. It absorbs a
  wrong DC/AC ratio, soiling, degradation and a systematic bias of the
  weather source. Bounds :data:`DC_SCALE_BOUNDS`; the tuned DC/AC ratio also
  stays inside ``engine.validation.DC_AC_RATIO``.
- ``clip_kw``: the observed AC clipping level (flat tops found by
  ``pvanalytics.features.clipping.geometric``) when it is clearly below the
  entered AC capacity (an inverter limited below its rating, an undeclared
  export limit); None otherwise.

Orientation and shading are not fitted: with one weather source and a few
weeks of 15-min power they are not separable from the DC scale (see
docs/model.md "Plant adaptation").

Samples that must not teach the model are rejected first
(:func:`usable_samples`): night and low sun, outages (zero power in
daylight), stale/flat runs (``pvanalytics.quality.gaps.stale_values_diff``),
clipped or curtailed flat tops (``pvanalytics.features.clipping.geometric``).
"""

import numpy as np
import pandas as pd
from pvanalytics.features import clipping
from pvanalytics.quality import gaps

from engine.validation import DC_AC_RATIO

DC_SCALE_BOUNDS = (0.5, 2.0)
"""Allowed effective-DC scale (unitless): 0.5 = half the entered DC (heavy soiling or a
unit mix-up), 2.0 = twice (DC entered = AC on a plant with DC/AC 2)."""

MIN_DAYS = 7
"""Distinct local days with usable daylight samples needed for a fit."""

MIN_CLEAR_SAMPLES = 100
"""Clear, unclipped, daylight samples (15 min: ~25 h of clear sky) needed for ``dc_scale``."""

MIN_CLIPPED_SAMPLES = 8
"""Clipped samples needed before an observed clipping level is believed (~2 h at 15 min)."""

CLIP_BELOW = 0.97
"""An observed clipping level counts only when below this fraction of ``capacity_ac_kw``."""


def usable_samples(power_kw, physical_ac_kw, solar_elevation, capacity_ac_kw, min_elevation=5.0,
                   outage_fraction=0.01, outage_physical_fraction=0.2, stale_window=4):
    """Which samples may teach the tuning, and why the others may not.

    Parameters
    ----------
    power_kw : Series
        Measured AC power, kW, one plant, indexed by UTC time on a regular
        grid (NaN = missing).
    physical_ac_kw : array_like
        Physical AC estimate at the same times, kW (entered description).
    solar_elevation : array_like
        Apparent solar elevation, deg.
    capacity_ac_kw : float
        kW.
    min_elevation : float, default 5
        deg; below it a sample counts as night/twilight.
    outage_fraction : float, default 0.01
        Measured power at or below this fraction of ``capacity_ac_kw`` ...
    outage_physical_fraction : float, default 0.2
        ... while the physical estimate is above this fraction is an outage.
    stale_window : int, default 4
        Identical consecutive daylight values (samples) flagged as stale.

    Returns
    -------
    DataFrame
        Boolean columns ``night``, ``missing``, ``outage``, ``stale``,
        ``clipped`` (flat tops: clipping or curtailment) and ``usable`` (none
        of them), indexed like ``power_kw``.
    """
    p = pd.Series(np.asarray(power_kw, dtype=float), index=power_kw.index)
    phys = np.asarray(physical_ac_kw, dtype=float)
    night = np.asarray(solar_elevation, dtype=float) <= min_elevation
    missing = p.isna().to_numpy()
    outage = ~night & ~missing & (p.to_numpy() <= outage_fraction * capacity_ac_kw) & (
        phys > outage_physical_fraction * capacity_ac_kw)
    live = ~night & ~missing & (p.to_numpy() > outage_fraction * capacity_ac_kw)
    filled = p.fillna(-1.0)
    stale = np.asarray(gaps.stale_values_diff(filled, window=stale_window)) & live
    clipped = np.zeros(len(p), dtype=bool)
    if live.sum() > 2 * stale_window:
        flags = clipping.geometric(p.where(~night, 0.0).fillna(0.0))
        clipped = np.asarray(flags, dtype=bool) & live
    return pd.DataFrame({"night": night, "missing": missing, "outage": outage, "stale": stale,
                         "clipped": clipped, "usable": ~(night | missing | outage | stale | clipped)},
                        index=p.index)


def clip_level(power_kw, clipped, capacity_ac_kw, min_clipped=MIN_CLIPPED_SAMPLES, below=CLIP_BELOW):
    """Observed AC clipping level, kW, or None.

    The median of the samples flagged as clipped flat tops, kept only when
    there are at least ``min_clipped`` of them, the level is a ceiling (fewer
    samples more than 2 % above it than a tenth of the flagged ones: flat tops
    of a passing cloud are not a limit) and it is below
    ``below * capacity_ac_kw`` (at the rating the entered capacity already
    clips).

    Parameters
    ----------
    power_kw : array_like
        Measured AC power, kW.
    clipped : array_like of bool
        Flat-top flags (:func:`usable_samples` ``clipped``).
    capacity_ac_kw : float
        kW.

    Returns
    -------
    level : float or None
        kW.
    n : int
        Flagged samples.
    """
    power = np.asarray(power_kw, dtype=float)
    values = power[np.asarray(clipped, dtype=bool)]
    values = values[np.isfinite(values)]
    if values.size < min_clipped:
        return None, int(values.size)
    level = float(np.median(values))
    ceiling = np.sum(power > 1.02 * level) < max(2, 0.1 * values.size)
    return (level if ceiling and level < below * capacity_ac_kw else None), int(values.size)


def fit_tuning(power_kw, physical_ac_kw, solar_elevation, csi, capacity_ac_kw, capacity_dc_kw, cutoff,
               timezone="UTC", min_days=MIN_DAYS, min_clear_samples=MIN_CLEAR_SAMPLES, clear_csi=0.8):
    """Fit a plant's effective DC scale and observed clipping level from actuals before ``cutoff``.

    ``dc_scale`` is the median of measured / physical AC power over clear
    (weather clear-sky index >= ``clear_csi``), usable samples with the sun
    above 15 deg whose physical power, after scaling, stays between 10 % and
    85 % of ``capacity_ac_kw`` (PVWatts' inverter efficiency is nearly flat
    there, so an AC ratio is a DC ratio; the clipped range says nothing about
    DC). Two passes: the second keeps the samples the first scale leaves
    unclipped. The median resists the clouds a weather source misses.

    Parameters
    ----------
    power_kw : Series
        Measured AC power, kW, one plant, UTC index on a regular grid.
    physical_ac_kw : array_like
        Physical AC estimate with the ENTERED description at the same times, kW.
    solar_elevation : array_like
        Apparent solar elevation, deg.
    csi : array_like
        Clear-sky index of the weather at those times (``ghi / ghi_clear``), unitless.
    capacity_ac_kw, capacity_dc_kw : float
        Entered capacities, kW.
    cutoff : Timestamp
        tz-aware; only samples with time < cutoff are used.
    timezone : str
        IANA zone of the plant (for counting local days).
    min_days, min_clear_samples : int
        Minimum data (:data:`MIN_DAYS`, :data:`MIN_CLEAR_SAMPLES`).
    clear_csi : float, default 0.8

    Returns
    -------
    dict
        ``ok`` (bool), ``reason`` (str, when not ok), ``dc_scale`` (unitless,
        within :data:`DC_SCALE_BOUNDS`), ``capacity_dc_kw`` (tuned, kW),
        ``clip_kw`` (kW or None), ``window_start``, ``window_end`` (first and
        last sample used, UTC), ``n_samples`` (usable daylight samples),
        ``diagnostics`` (counts of every rejection, clear samples, days,
        the unbounded scale and the interquartile range of the ratios).
    """
    cutoff = pd.Timestamp(cutoff).tz_convert("UTC")
    before = np.asarray(power_kw.index < cutoff)
    p = power_kw[before]
    phys = np.asarray(physical_ac_kw, dtype=float)[before]
    elev = np.asarray(solar_elevation, dtype=float)[before]
    csi = np.asarray(csi, dtype=float)[before]
    flags = usable_samples(p, phys, elev, capacity_ac_kw)
    usable = flags["usable"].to_numpy()
    days = int(pd.DatetimeIndex(p.index[usable]).tz_convert(timezone).normalize().nunique()) if usable.any() else 0
    diagnostics = {name: int(flags[name].sum()) for name in ("night", "missing", "outage", "stale", "clipped")}
    diagnostics.update(samples=int(len(p)), usable=int(usable.sum()), days=days,
                       min_days=int(min_days), min_clear_samples=int(min_clear_samples),
                       dc_scale_bounds=list(DC_SCALE_BOUNDS))
    result = {"ok": False, "reason": None, "dc_scale": 1.0, "capacity_dc_kw": float(capacity_dc_kw),
              "clip_kw": None, "window_start": None, "window_end": None, "n_samples": int(usable.sum()),
              "diagnostics": diagnostics}
    if days < min_days:
        result["reason"] = f"actuals: {days} days with usable daylight samples before {cutoff.isoformat()}, " \
                           f"at least {min_days} needed"
        return result
    y = p.to_numpy(dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = y / phys
    base = usable & (csi >= clear_csi) & (elev > 15.0) & (phys > 0.1 * capacity_ac_kw)
    scale = 1.0
    for _ in range(2):  # keep the samples the current scale leaves unclipped
        sel = base & (scale * phys < 0.85 * capacity_ac_kw) & np.isfinite(ratio)
        if sel.sum() < min_clear_samples:
            result["reason"] = (f"actuals: {int(sel.sum())} clear unclipped daylight samples before "
                                f"{cutoff.isoformat()}, at least {min_clear_samples} needed")
            diagnostics["clear_samples"] = int(sel.sum())
            return result
        scale = float(np.median(ratio[sel]))
    q25, q75 = np.quantile(ratio[sel], [0.25, 0.75])
    ratio_bounds = (DC_AC_RATIO[0] * capacity_ac_kw / capacity_dc_kw, DC_AC_RATIO[1] * capacity_ac_kw / capacity_dc_kw)
    lo, hi = max(DC_SCALE_BOUNDS[0], ratio_bounds[0]), min(DC_SCALE_BOUNDS[1], ratio_bounds[1])
    bounded = float(np.clip(scale, lo, hi))
    level, n_clipped = clip_level(y, flags["clipped"].to_numpy(), capacity_ac_kw)
    times = p.index[usable]
    diagnostics.update(clear_samples=int(sel.sum()), dc_scale_unbounded=scale, ratio_q25=float(q25),
                       ratio_q75=float(q75), at_bound=bool(bounded != scale), clipped_level_samples=n_clipped)
    result.update(ok=True, dc_scale=bounded, capacity_dc_kw=float(capacity_dc_kw * bounded), clip_kw=level,
                  window_start=times.min(), window_end=times.max())
    return result


def tuned_locations(locations, planes, tuning):
    """The physical description with each plant's tuning applied (vectorised over plants).

    Parameters
    ----------
    locations : DataFrame
        Locations frame (``location_id``, ``capacity_dc_kw``, ``capacity_ac_kw``,
        ``export_limit_kw``).
    planes : DataFrame or None
        Planes frame keyed by ``location_id`` (each plane's ``capacity_dc_kw``
        is scaled by its plant's ``dc_scale``).
    tuning : DataFrame
        ``location_id``, ``dc_scale`` (unitless), ``clip_kw`` (kW, NaN = none);
        plants without a row are unchanged.

    Returns
    -------
    locations : DataFrame
        ``capacity_dc_kw`` scaled; ``export_limit_kw`` = min(export limit,
        ``clip_kw``) where a clipping level was observed (the forecast limit
        of ``engine.quantiles``).
    planes : DataFrame or None
    """
    t = tuning.set_index("location_id")
    scale = t["dc_scale"].reindex(locations["location_id"]).fillna(1.0).to_numpy(dtype=float)
    clip = t["clip_kw"].reindex(locations["location_id"]).to_numpy(dtype=float)
    out = locations.copy()
    out["capacity_dc_kw"] = locations["capacity_dc_kw"].to_numpy(dtype=float) * scale
    out["export_limit_kw"] = np.fmin(locations["export_limit_kw"].to_numpy(dtype=float), clip)
    if planes is None or not len(planes):
        return out, planes
    plane_scale = t["dc_scale"].reindex(planes["location_id"]).fillna(1.0).to_numpy(dtype=float)
    return out, planes.assign(capacity_dc_kw=planes["capacity_dc_kw"].to_numpy(dtype=float) * plane_scale)

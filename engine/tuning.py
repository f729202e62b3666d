"""Plant tuning from a plant's own actuals: effective DC scale and observed AC clipping level.

A user describes a plant with what they know (often the inverter's AC rating
for both ``capacity_ac_kw`` and ``capacity_dc_kw``), and the physical model
(``engine.physics``, PVWatts) turns the weather into power with that
description. Measured power tells how far off the description is. This module
fits, from one plant's actuals strictly BEFORE a cutoff and the physical
estimate of the weather used for those times, a small bounded correction:

- ``dc_scale``: effective DC capacity / entered DC capacity. It absorbs a
  wrong DC/AC ratio, soiling, degradation and a systematic bias of the
  weather source. Bounds :data:`DC_SCALE_BOUNDS`, and the tuned DC/AC ratio
  at most ``engine.validation.DC_AC_RATIO`` [1] (:func:`scale_bounds`); a
  measured scale outside them is refused (code ``scale``), never clamped.
  Fitted on the days after the last change of the plant's clear-sky level
  (:func:`level_changes`), if any; so are the plant's bands (:func:`present_state`).
- ``clip_kw``: the observed AC clipping level (flat tops found by
  ``pvanalytics.features.clipping.geometric``) when it is clearly below the
  entered AC capacity (an inverter limited below its rating, an undeclared
  export limit); None otherwise.

- ``tilt``/``azimuth`` (:func:`fit_orientation`): where the data support it
  (enough clear days, morning and afternoon sun), the fixed plane's
  orientation that makes the physical model's shape match the measured power
  on clear samples, jointly with a DC scale per candidate; refused (the
  stated orientation kept, the reason in the diagnostics) otherwise, and for
  trackers and multi-plane plants.

Recency weighting (``half_life_days``): the DC scale and the orientation are
fitted with every sample weighted by its age at the cutoff,
``engine.conformal.recency_weights`` (the weights of the band residuals, same
half-life, ``engine.conformal.HALF_LIFE_DAYS``), the median becoming a weighted
median (``engine.conformal.weighted_quantiles``) and the orientation's mean
absolute error a weighted mean. What the tuning fits is an EFFECTIVE
description (a wrongly entered or model-mismatched plane absorbed by a DC scale
and an effective tilt), and it drifts with the sun's path over the season;
equal weights fit the season's average, which lags the days being forecast.
Minimum data (days, clear samples, clear days) still count samples: the
weights change what the data say, not whether there are enough of them.
The clipping level and the fitted skyline (fixed hardware and obstacles) are not weighted.
A known step (a string lost, a plant re-oriented) is then followed within
weeks; a seasonal drift is followed too, but so are the weather source's
spells: with the bands' 14-day half-life the service's P50 got worse on
SERF East 2016, so ``engine.adaptation.fit_calibration`` weighs equally by
default (docs/model.md "Recency-weighted tuning").

A solar-position shading profile is fitted after this tuning, on its
residual (:mod:`engine.shading`).

Samples that must not teach the model are rejected first
(:func:`usable_samples`): night and low sun, outages (zero power in
daylight), stale/flat runs (the rule of ``pvanalytics.quality.gaps.stale_values_diff``,
vectorised: :func:`stale_values`),
clipped or curtailed flat tops (``pvanalytics.features.clipping.geometric``).
"""

import numpy as np
import pandas as pd
from pvanalytics.features import clipping

from pvlib import irradiance

from engine import physics
from engine.conformal import effective_n, recency_weights, weighted_quantiles  # the bands' weights: one definition
from engine.validation import DC_AC_RATIO, LOCATION_BOUNDS

DC_SCALE_BOUNDS = (0.4, 2.0)
"""Allowed effective-DC scale (unitless): 0.4 = 40 % of the entered DC (more than half the strings off on a
rightly described plant: 0.46 measured on SERF East 2016, bench/bench_careless.py; it was 0.5, which refused
that plant), 2.0 = twice (DC entered = AC on a plant with DC/AC 2). 0.4 stays well above the commonest unit
error, energy per 15 min sent as power (0.25 x the plant's scale: 0.23 rightly described, 0.28 with DC
entered = AC); energy per 30 min (0.5 x) is not told from half the strings off by the level alone.
A measured scale outside them (or above the largest DC/AC ratio of ``engine.validation.DC_AC_RATIO``,
:func:`scale_bounds`) is not clamped: the fit is refused with the code ``scale`` (:func:`fit_tuning`),
since no physical plant explains it and a unit error does (W sent as kW, energy per 15 min sent as
power, a capacity entered in W)."""

REFUSALS = {
    "no_actuals": "no actuals (or too few) covered by weather stored before the cutoff",
    "weather": "the stored weather cannot drive the physical model at the actuals' times",
    "clock": "the actuals' time labels are off the sun (engine.tuning.clock_offset): time zone, DST, "
             "period labels",
    "too_few_days": "fewer local days with usable daylight actuals than engine.tuning.MIN_DAYS",
    "too_few_clear_samples": "too few clear, unclipped daylight actuals (engine.tuning.MIN_CLEAR_HOURS)",
    "scale": "measured power is not a plant's power at the entered capacity: its ratio to the modelled "
             "power is outside engine.tuning.DC_SCALE_BOUNDS (a unit error, energy sent as power, a "
             "capacity entered in another unit, another plant's actuals)",
    "level_change": "the plant's clear-sky level changed (engine.tuning.LEVEL_CHANGE) too recently: too few "
                    "clear samples since to fit its present state",
    "orientation": "the best orientation lies on the edge of the searched window (azimuth stated +- "
                   "engine.tuning.AZIMUTH_WINDOW, tilt up to TILT_BOUNDS[1]): the actuals are not this plant "
                   "as described (another plant's actuals, the other side of the roof)",
}
"""Why a calibration was refused: stable machine-readable code -> meaning. The one definition of
the codes: ``engine.adaptation.fit_calibration``'s ``code``, the stored refusal
(``engine.store.write_refusal``), the HTTP schemas (``serve_app.schemas``) and docs/api.md use it.
A client branches on the code, never on the sentence (``reason``) beside it."""

REFUSAL_CODES = tuple(REFUSALS)
"""The codes of :data:`REFUSALS`, in order."""

MIN_DAYS = 7
"""Distinct local days with usable daylight samples needed for a fit."""

MIN_CLEAR_HOURS = 25.0
"""Clear, unclipped, daylight data needed for ``dc_scale``, h (100 samples at 15 min, 25 at 1 h):
minimum data are durations, turned into sample counts by :func:`samples_for` at the actuals'
own interval, so 5-min and hourly actuals need the same hours of sky as 15-min ones."""

MIN_CLIPPED_HOURS = 2.0
"""Clipped data needed before an observed clipping level is believed, h (8 samples at 15 min)."""

CLIP_BELOW = 0.97
"""An observed clipping level counts only when below this fraction of ``capacity_ac_kw``."""

CLEAR_CSI = 0.8
"""Weather clear-sky index from which a sample counts as clear (DC scale and orientation fits)."""

TILT_BOUNDS = (0.0, 75.0)
"""Tilt searched by :func:`fit_orientation`, deg (inside ``validation.LOCATION_BOUNDS['tilt']``)."""

AZIMUTH_WINDOW = 90.0
"""Azimuth searched: the stated azimuth +- this, deg (a user knows which side of the roof)."""

COARSE_STEP = (5.0, 10.0)
"""(tilt, azimuth) step of the coarse grid, deg; then a 1-deg grid +- one coarse step around its best."""

MIN_CLEAR_DAYS = 5
"""Local days with at least :data:`MIN_CLEAR_HOURS_PER_DAY` of clear samples needed for an orientation fit."""

MIN_CLEAR_HOURS_PER_DAY = 3.0
"""Clear, unclipped data that make a day a clear day, h (12 samples at 15 min)."""

MIN_AZIMUTH_SPAN = 100.0
"""Solar azimuth span (10th..90th percentile) of the clear samples needed, deg: morning AND afternoon sun."""

NEAR_BEST = 0.1
"""Candidates whose error is within this fraction of the best one's are not told apart by the data: the
stated orientation is kept when it is one of them (its error <= (1 + NEAR_BEST) x the best's)."""

MAX_ORIENTATION_SAMPLES = 3000
"""Clear samples used by :func:`fit_orientation` at most (evenly thinned), bounding its cost."""


LEVEL_CHANGE = 1.3
"""A plant's clear-sky level (measured / modelled power on clear, usable, unclipped samples; the median of
its daily medians) that differs by at least this factor between two spans of :data:`LEVEL_CHANGE_DAYS` days
or more is a change of the plant (strings off or back, a capacity change), not weather: the DC scale is
fitted on the days after the change only (:func:`level_changes`). Measured on SERF East 2016 over every
history of ``bench/bench_adaptive.py``'s walk (up to 90 days, spans of >= 5 days): at most x1.11 with the
right description and x1.19 with DC = AC, tilt 30, azimuth 180 (an effective description drifts with the
season); half the strings off is x2, one string of three x1.5. Smaller changes need the sharper test of
:data:`SHARP_CHANGE`. A week of snow at the end of a history can read as a change (x0.3-0.65)."""

LEVEL_CHANGE_DAYS = 5
"""Days (with :data:`LEVEL_DAY_HOURS` of clear samples each) on both sides of a level change, at least."""

LEVEL_DAY_HOURS = 1.0
"""Clear samples that make a day's level, h (4 at 15 min)."""

SHARP_CHANGE = 1.15
"""A smaller change (one inverter of four off, a soiling step, part of a string lost: x0.75..x0.87) is a
change of the plant when the medians of :data:`SHARP_CHANGE_DAYS` days or more each side differ by at least
this factor AND it is sharp: the medians of the :data:`SHARP_CHANGE_DAYS` days either side of the split
differ by this factor too and :data:`SHARP_AGREE` of those days lie on their own side of the midpoint
between them. A season's drift (an effective description drifting with the sun's path: up to x1.3 over 90
days on the training plant with DC = AC, tilt 30, azimuth 180) moves little across 20 days, and a spell of
snow or of bad days is shorter than 10 days. Measured (``bench/bench_level_steps.py``: every 3rd daily
history, up to 90 days, of SERF East 2016-07..10 and the training plant's 2012, never the 2013 hold-out;
right and wrong description, 115 histories each): no change found on unchanged data; with
:data:`LEVEL_CHANGE` beside it, changes imposed on the real power in a history's middle third are found (last
change within 3 days, factor within 10 %) in 84 / 65 % (right / wrong) of the histories at x0.75, 60 / 44 % at
x0.8, 23 / 22 % at x0.85, 48 / 15 % at x1.2 (:data:`LEVEL_CHANGE` alone: 55 / 52, 9 / 17, 0 / 1, 1 / 2 %). The
others are averaged as before (docs/model.md "After a plant change")."""

SHARP_CHANGE_DAYS = 10
"""Days on both sides of a change found by the sharper test (:data:`SHARP_CHANGE`), at least, and the window
either side of the split it is judged on."""

SHARP_AGREE = 0.85
"""Share of the :data:`SHARP_CHANGE_DAYS` days either side of a split that must lie on their own side of the
midpoint of the two windows' medians (:data:`SHARP_CHANGE`)."""


def best_split(levels, min_days):
    """The split of a daily level series with the largest difference of the medians before and after it.

    Parameters
    ----------
    levels : ndarray
        Daily log levels, in day order.
    min_days : int
        Days each side, at least.

    Returns
    -------
    (int, float) or None
        The first index after the split and the difference (after - before,
        log); None with fewer than ``2 * min_days`` days.
    """
    if len(levels) < 2 * min_days:
        return None
    cuts = np.arange(min_days, len(levels) - min_days + 1)
    diff = np.array([np.median(levels[k:]) - np.median(levels[:k]) for k in cuts])  # <= 90 days: a few thousand
    best = int(np.argmax(np.abs(diff)))
    return int(cuts[best]), float(diff[best])


def sharp_step(levels, cut, window, factor, agree):
    """Whether the levels change sharply at ``cut``: the ``window`` days either side differ and agree.

    Parameters
    ----------
    levels : ndarray
        Daily log levels, in day order.
    cut : int
        First index after the split.
    window : int
        Days either side judged.
    factor : float
        The two windows' medians differ by at least this factor.
    agree : float
        Share of the windows' days on their own side of the midpoint of the two medians, at least.

    Returns
    -------
    bool
    """
    before, after = levels[max(cut - window, 0):cut], levels[cut:cut + window]
    diff = np.median(after) - np.median(before)
    mid = (np.median(after) + np.median(before)) / 2.0
    sign = np.sign(diff)
    share = (np.sum(sign * (mid - before) > 0) + np.sum(sign * (after - mid) > 0)) / (len(before) + len(after))
    return bool(abs(diff) >= np.log(factor) and share >= agree)


def level_changes(day, ratio, min_days=LEVEL_CHANGE_DAYS, factor=LEVEL_CHANGE, sharp_factor=SHARP_CHANGE,
                  sharp_days=SHARP_CHANGE_DAYS, sharp_agree=SHARP_AGREE):
    """Steps of a plant's daily clear-sky level, oldest first (binary segmentation towards the present).

    The daily level is the median of the day's ``ratio``; the best split of
    the days (:func:`best_split`: the largest difference of the medians of
    the daily levels before and after it, with ``min_days`` days each side)
    is a step when the two medians differ by ``factor`` or more; otherwise
    the best split with ``sharp_days`` days each side is a step when they
    differ by ``sharp_factor`` or more and the change is sharp there
    (:func:`sharp_step`: the ``sharp_days`` days either side differ by
    ``sharp_factor`` and ``sharp_agree`` of them lie on their own side). The
    search repeats on the days after a step, so the last step found starts
    the plant's present state.

    Parameters
    ----------
    day : array_like
        Local day of each sample (any sortable labels).
    ratio : array_like
        Measured / modelled power of each sample (> 0), unitless.
    min_days : int, default :data:`LEVEL_CHANGE_DAYS`
    factor : float, default :data:`LEVEL_CHANGE`
    sharp_factor : float or None, default :data:`SHARP_CHANGE`
        None: no sharper test (``factor`` alone).
    sharp_days : int, default :data:`SHARP_CHANGE_DAYS`
    sharp_agree : float, default :data:`SHARP_AGREE`

    Returns
    -------
    list of dict
        ``first_day`` (the label of the first day after the step), ``factor`` (level after / before).
    """
    levels = pd.Series(np.log(np.maximum(np.asarray(ratio, dtype=float), 1e-6))).groupby(np.asarray(day)).median()
    values, labels = levels.to_numpy(), levels.index
    steps, start = [], 0
    while True:
        v = values[start:]
        split = best_split(v, min_days)
        if split is not None and abs(split[1]) < np.log(factor):
            split = best_split(v, sharp_days) if sharp_factor is not None else None
            if split is not None and (abs(split[1]) < np.log(sharp_factor)
                                      or not sharp_step(v, split[0], sharp_days, sharp_factor, sharp_agree)):
                split = None
        if split is None:
            return steps
        start += split[0]
        steps.append({"first_day": labels[start], "factor": float(np.exp(split[1]))})


def clear_samples(ratio, physical_ac_kw, solar_elevation, csi, capacity_ac_kw, clear_csi=CLEAR_CSI):
    """Clear daylight samples whose measured / modelled ratio says something about the DC scale.

    Weather clear-sky index at least ``clear_csi``, sun above 15 deg, physical power above 10 % of the
    AC capacity and a finite ratio (:func:`fit_tuning`, :func:`level_samples`).

    Parameters
    ----------
    ratio : ndarray
        Measured / physical AC power, unitless.
    physical_ac_kw : ndarray
        kW.
    solar_elevation : ndarray
        deg.
    csi : ndarray
        Unitless.
    capacity_ac_kw : float
        kW.
    clear_csi : float, default :data:`CLEAR_CSI`

    Returns
    -------
    ndarray of bool
    """
    return ((np.asarray(csi) >= clear_csi) & (np.asarray(solar_elevation) > 15.0)
            & (np.asarray(physical_ac_kw) > 0.1 * capacity_ac_kw) & np.isfinite(ratio))


def level_samples(base, physical_ac_kw, limit_kw, local_day, minutes):
    """The samples a plant's daily clear-sky level is judged on (:func:`level_changes`).

    ``base`` (usable and clear, :func:`clear_samples`) with the physical
    power under 85 % of the limit (the DC scale's first pass: the
    inverter's efficiency flat, no clipping), on local days with
    :data:`LEVEL_DAY_HOURS` of them.

    Parameters
    ----------
    base : ndarray of bool
    physical_ac_kw : ndarray
        kW.
    limit_kw : float
        The AC capacity or an observed clipping level, kW.
    local_day : ndarray
        Local day of each sample.
    minutes : float
        Sampling interval, min (:func:`sample_minutes`).

    Returns
    -------
    ndarray of bool
    """
    first = base & (np.asarray(physical_ac_kw) < 0.85 * limit_kw)
    per_day = pd.Series(first[first], index=local_day[first]).groupby(level=0).size()
    return first & np.isin(local_day, per_day.index[per_day >= samples_for(LEVEL_DAY_HOURS, minutes)])


def present_state(times, timezone, changes):
    """Which times are in the plant's present state: on or after the first local day of its last level change.

    The one definition of the window the DC scale (:func:`fit_tuning`) and
    the band residuals (``engine.adaptation.fit_calibration``) are fitted
    on after a change of the plant (:func:`level_changes`).

    Parameters
    ----------
    times : DatetimeIndex
        UTC.
    timezone : str
        IANA zone of the plant (its local days).
    changes : list of dict
        :func:`level_changes` (``first_day``: a local day, Timestamp or
        ISO date string as in ``diagnostics.level_changes``), oldest first.

    Returns
    -------
    ndarray of bool
        Every time when there is no change.
    """
    if not changes:
        return np.ones(len(times), dtype=bool)
    day = pd.DatetimeIndex(times).tz_convert(timezone).tz_localize(None).normalize()
    return np.asarray(day >= pd.Timestamp(changes[-1]["first_day"]))


def sample_minutes(times):
    """Sampling interval of a plant's actuals, min: the median spacing of consecutive times.

    Parameters
    ----------
    times : DatetimeIndex
        Sorted sample times (gaps, e.g. nights not sent, do not move the median).

    Returns
    -------
    float
        min; 15 for fewer than two samples.
    """
    t = pd.DatetimeIndex(times).as_unit("s").asi8
    step = np.diff(t)
    step = step[step > 0]
    return float(np.median(step)) / 60.0 if len(step) else 15.0


def samples_for(hours, minutes):
    """Samples of ``minutes`` spacing that make ``hours`` of data (at least 1).

    Parameters
    ----------
    hours : float
        h.
    minutes : float
        Sampling interval, min (:func:`sample_minutes`).

    Returns
    -------
    int
    """
    return max(int(np.ceil(hours * 60.0 / max(float(minutes), 1e-9) - 1e-9)), 1)


def stale_values(power_kw, window):
    """``pvanalytics.quality.gaps.stale_values_diff(power_kw, window)`` in one vectorised pass.

    The same rule and defaults (mark ``'tail'``, ``rtol=1e-5``,
    ``atol=1e-8``): a value ends a stale run when all ``window`` values up to
    it are ``numpy.allclose`` to the run's first one (a NaN breaks a run),
    and the run's last ``window - 1`` values are flagged. pvanalytics
    evaluates the rule with a Python call per sample (``Series.rolling.apply``),
    the largest cost of a calibration that tunes a plant several times
    (``engine.adaptation.cross_fitted_quantiles``); this gives the same flags
    (``tests/engine/test_tuning.py`` compares both on SERF East).

    Parameters
    ----------
    power_kw : array_like
        Shape (n,), kW.
    window : int
        >= 2 samples.

    Returns
    -------
    ndarray of bool
        Shape (n,).
    """
    v = np.asarray(power_kw, dtype=float)
    end = np.zeros(len(v), dtype=bool)
    if len(v) >= window:
        w = np.lib.stride_tricks.sliding_window_view(v, window)
        end[window - 1:] = (np.abs(w - w[:, :1]) <= 1e-8 + 1e-5 * np.abs(w[:, :1])).all(axis=1)
    flags = end.copy()
    for back in range(1, window - 1):  # window - 2 shifts: the run's last window - 1 values
        flags[:-back] |= end[back:]
    return flags


def stuck_values(power_kw, capacity_ac_kw, window=4, on_fraction=0.01):
    """A stuck meter: runs of ``window`` or more equal values above ``on_fraction`` of the capacity, day or night.

    The rule of :func:`stale_values` (pvanalytics' ``stale_values_diff``) on
    the values that are not (near) zero: a meter that repeats its last
    reading through the night shows power at modelled night, which the clock
    check (:func:`clock_offset`) would read as time labels hours off; its
    zeros at night are the plant's own.

    Parameters
    ----------
    power_kw : array_like
        kW, in time order.
    capacity_ac_kw : float
        kW.
    window : int, default 4
        Samples (:func:`usable_samples`' ``stale_window``).
    on_fraction : float, default 0.01
        :func:`usable_samples`' ``outage_fraction``.

    Returns
    -------
    ndarray of bool
    """
    v = np.asarray(power_kw, dtype=float)
    return stale_values(np.where(np.isfinite(v), v, -1.0), window) & (v > on_fraction * float(capacity_ac_kw))


CLOCK_ON_FRACTION = 0.01
"""Power above this fraction of ``capacity_ac_kw`` counts as "on" when the clock of the actuals is checked
(:func:`clock_offset`): low enough that diffuse light after sunrise and before sunset passes it."""

CLOCK_TOLERANCE_HOURS = 0.6
"""A median daylight-midpoint offset of at least this, h, means the actuals' time labels are off
(:func:`clock_offset`). Measured on SERF East 2016 (docs/api.md "What a value means"): right clocks
-0.09..-0.34 h (hour-ending means the most; -0.47 h with an azimuth entered 92 deg off), an hour's error
+0.64..+0.91 h and -1.09..-1.35 h."""

CLOCK_NIGHT_SHARE = 0.1
"""A share of the measured samples above :data:`CLOCK_NIGHT_FRACTION` at least this large with no modelled
power at all (the sun below the horizon over the whole period) means the time labels are off by hours
(:func:`clock_offset`)."""

CLOCK_NIGHT_FRACTION = 0.05
"""Measured power above this fraction of ``capacity_ac_kw`` counts for the night share (:func:`clock_offset`):
higher than the edges' threshold, so that a meter's noise at night is not read as a clock."""

MIN_CLOCK_DAYS = 5
"""Days with a whole measured and modelled daylight span needed before the clock is judged."""

CLOCK_RECENT_DAYS = 14
"""The clock is also judged on the median of the last this many days compared (a clock changed lately)."""


def daylight_edges(t_hours, day, values, limit):
    """Per day, when a series first rises above ``limit`` and last falls below it, h.

    Each edge is interpolated linearly between the first (last) sample above
    the limit and its neighbour below it on the same day, if that neighbour is
    at most two sampling intervals away; otherwise it is the sample's time.
    Hourly samples thus give edges finer than their hour.

    Parameters
    ----------
    t_hours : ndarray
        Sorted sample times, h since the epoch.
    day : ndarray of int
        Day of each sample.
    values : ndarray
        Finite values at those times.
    limit : float
        Same unit as ``values``.

    Returns
    -------
    DataFrame
        ``first``, ``last`` (h since the epoch), indexed by day (days with a
        value above the limit only).
    """
    on = np.flatnonzero(values > limit)
    if not len(on):
        return pd.DataFrame({"first": [], "last": []})
    step = np.median(np.diff(t_hours)) if len(t_hours) > 1 else 1.0
    groups = pd.Series(on).groupby(day[on])
    edges = {}
    for name, i, j in (("first", groups.min().to_numpy(), groups.min().to_numpy() - 1),
                       ("last", groups.max().to_numpy(), groups.max().to_numpy() + 1)):
        jj = np.clip(j, 0, len(values) - 1)
        near = (j == jj) & (day[jj] == day[i]) & (values[jj] <= limit) & (np.abs(t_hours[jj] - t_hours[i]) <= 2 * step)
        frac = (values[i] - limit) / np.where(near, values[i] - values[jj], 1.0)
        edges[name] = np.where(near, t_hours[i] + (t_hours[jj] - t_hours[i]) * frac, t_hours[i])
    return pd.DataFrame(edges, index=groups.min().index)


def clock_offset(power_kw, physical_ac_kw, longitude, capacity_ac_kw, on_fraction=CLOCK_ON_FRACTION,
                 tolerance_hours=CLOCK_TOLERANCE_HOURS, night_share=CLOCK_NIGHT_SHARE, min_days=MIN_CLOCK_DAYS,
                 recent_days=CLOCK_RECENT_DAYS):
    """How far the actuals' time labels are from the sun: the median daily offset of the daylight midpoint.

    The commonest mistake with measured power is a clock, not a plant: local
    time labelled as UTC, a logger that ignores daylight saving time, hourly
    means labelled at the start of their hour. The tuning would read a shift
    of one hour as a plant turned ~15 deg (and fit a wrong azimuth, DC scale
    and bands from it), so the shift is measured first. Per solar day (UTC
    shifted by the longitude, so that no daylight span crosses a day's edge),
    the midpoint between the first and the last sample with power above
    ``on_fraction`` of the AC capacity is compared with the same midpoint of
    the plant's clear-sky physical power at the same times (the sun's
    geometry only: a time shift of the weather source is not the actuals'
    clock, and clouds delay both edges alike): orientation,
    DC scale and a horizon change when a plant turns on and off
    symmetrically or both ways alike, a clock moves both edges the same way.
    Days whose measured "on" span is not 0.8-1.25 times the modelled one
    (a gap, actuals ending mid-day, snow) are left out. A clock off by
    several hours puts the measured daylight partly into the modelled night,
    which is counted directly (``night_share``). The median of the last
    ``recent_days`` days is judged too: a logger that ignores daylight saving
    time is an hour off for part of the history only.

    Parameters
    ----------
    power_kw : Series
        Measured AC power, kW, one plant, indexed by UTC time (effective
        instants, ``engine.adaptation.actual_instants``; NaN = missing).
    physical_ac_kw : array_like
        Clear-sky physical AC power of the plant for the same times, kW; for
        period means the mean over each period
        (``engine.adaptation.clear_sky_period_means_kw``).
    longitude : float
        deg east.
    capacity_ac_kw : float
        kW.
    on_fraction : float, default :data:`CLOCK_ON_FRACTION`
    tolerance_hours : float, default :data:`CLOCK_TOLERANCE_HOURS`
        h.
    night_share : float, default :data:`CLOCK_NIGHT_SHARE`
    min_days : int, default :data:`MIN_CLOCK_DAYS`
    recent_days : int, default :data:`CLOCK_RECENT_DAYS`

    Returns
    -------
    dict
        ``offset_hours`` (median over the days, h, measured minus modelled:
        positive = the actuals are labelled later than the sun says; None
        with fewer than ``min_days`` days), ``recent_offset_hours`` (the same
        over the last ``recent_days`` of them), ``days`` (days compared),
        ``night_share`` (share of the measured samples above
        :data:`CLOCK_NIGHT_FRACTION` of the capacity with no modelled power), ``shifted`` (bool) and ``reason`` (a sentence when shifted,
        else None).
    """
    t = pd.DatetimeIndex(power_kw.index).tz_convert("UTC").as_unit("ns").asi8
    y = np.asarray(power_kw, dtype=float)
    phys = np.asarray(physical_ac_kw, dtype=float)
    hour = 3_600_000_000_000
    day = (t + np.int64(round(float(longitude) / 15.0 * hour))) // (24 * hour)
    known = np.isfinite(y) & np.isfinite(phys)
    limit = on_fraction * float(capacity_ac_kw)
    th, dk = t[known] / hour, day[known]
    both = pd.merge(daylight_edges(th, dk, y[known], limit), daylight_edges(th, dk, phys[known], limit),
                    left_index=True, right_index=True, suffixes=("_y", "_m"))
    span = (both["last_y"] - both["first_y"]) / (both["last_m"] - both["first_m"]).where(both["last_m"] > both["first_m"])
    whole = both[(span >= 0.8) & (span <= 1.25)]
    offsets = ((whole["first_y"] + whole["last_y"]) - (whole["first_m"] + whole["last_m"])).to_numpy() / 2.0
    producing = known & (y > CLOCK_NIGHT_FRACTION * float(capacity_ac_kw))
    dark = float(np.mean(phys[producing] <= 0.0)) if producing.any() else 0.0
    offset = float(np.median(offsets)) if len(offsets) >= min_days else None
    recent = float(np.median(offsets[-recent_days:])) if len(offsets) >= min_days else None
    out = {"offset_hours": offset, "recent_offset_hours": recent, "days": int(len(offsets)), "night_share": dark,
           "shifted": False, "reason": None}
    labels = "time labels must be UTC (period-ending, with period_minutes, for means); not learnt from"
    if dark >= night_share:
        out.update(shifted=True, reason=f"clock: {100 * dark:.0f} % of the measured power is at modelled night: {labels}")
    elif offset is not None and max(abs(offset), abs(recent)) >= tolerance_hours:
        which, value = (("", offset) if abs(offset) >= tolerance_hours else
                        (f"the last {min(recent_days, len(offsets))} of ", recent))
        out.update(shifted=True, reason=f"clock: the actuals' daylight is {value:+.2f} h from the sun's (median of "
                                        f"{which}{len(offsets)} days): {labels}")
    return out


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
    low = ~night & ~missing & (p.to_numpy() <= outage_fraction * capacity_ac_kw)
    # an outage is the whole daylight run of (near) zero power around a sample the model says should produce:
    # its morning and evening ends (the model under 20 %) are the same outage, not a plant's low power
    run = np.cumsum(~low)  # consecutive low samples share a number
    hit = np.zeros(run[-1] + 1 if len(run) else 0, dtype=bool)
    hit[run[low & (phys > outage_physical_fraction * capacity_ac_kw)]] = True
    outage = low & hit[run] if len(run) else low
    live = ~night & ~missing & (p.to_numpy() > outage_fraction * capacity_ac_kw)
    filled = p.fillna(-1.0)
    stale = stale_values(filled, stale_window) & live
    clipped = np.zeros(len(p), dtype=bool)
    if live.sum() > 2 * stale_window:
        flags = clipping.geometric(p.where(~night, 0.0).fillna(0.0))
        clipped = np.asarray(flags, dtype=bool) & live
    return pd.DataFrame({"night": night, "missing": missing, "outage": outage, "stale": stale,
                         "clipped": clipped, "usable": ~(night | missing | outage | stale | clipped)},
                        index=p.index)


def clip_level(power_kw, clipped, capacity_ac_kw, min_clipped=8, below=CLIP_BELOW):
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
    min_clipped : int, default 8
        Flagged samples needed (:func:`fit_tuning` passes :data:`MIN_CLIPPED_HOURS` at the
        actuals' interval).
    below : float, default :data:`CLIP_BELOW`

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
               timezone="UTC", min_days=MIN_DAYS, min_clear_samples=None, clear_csi=CLEAR_CSI, half_life_days=None):
    """Fit a plant's effective DC scale and observed clipping level from actuals before ``cutoff``.

    ``dc_scale`` is the median of measured / physical AC power over clear
    (weather clear-sky index >= ``clear_csi``), usable samples with the sun
    above 15 deg whose physical power, after scaling, stays between 10 % and
    85 % of ``capacity_ac_kw`` (PVWatts' inverter efficiency is nearly flat
    there, so an AC ratio is a DC ratio; the clipped range says nothing about
    DC; below an observed clipping level, ``clip_kw``, when there is one). Two
    passes: the second keeps the samples the first scale leaves
    unclipped. The median resists the clouds a weather source misses. With
    ``half_life_days`` it is the weighted median under each sample's recency
    weight (``engine.conformal.recency_weights``): the plant's recent state.

    Refused rather than learnt (``ok`` False, ``code`` of :data:`REFUSALS`):
    a measured/modelled level outside :func:`scale_bounds` (code ``scale``;
    checked first on every producing clear sample, since power a thousand
    times too small is all "outage" to :func:`usable_samples`, then on the
    fitted scale: never clamped); too few days or clear samples. A change
    of the plant's daily clear-sky level (:func:`level_changes`: strings off
    or back on) restricts the fit to the days after the last change (code
    ``level_change`` when they hold too few clear samples).

    Parameters
    ----------
    power_kw : Series
        Measured AC power, kW, one plant, UTC index (instants; period means at their
        middle, ``engine.resample.period_instants``) at the actuals' interval.
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
    min_days : int
        Minimum days (:data:`MIN_DAYS`).
    min_clear_samples : int, optional
        Minimum clear samples; None: :data:`MIN_CLEAR_HOURS` at the actuals' interval
        (:func:`sample_minutes`); the clipping level likewise needs :data:`MIN_CLIPPED_HOURS`.
    clear_csi : float, default :data:`CLEAR_CSI`
    half_life_days : float or None
        days; samples weighted by their age at ``cutoff`` (``engine.conformal.recency_weights``);
        None: equal weights.

    Returns
    -------
    dict
        ``ok`` (bool), ``reason`` (str, when not ok), ``code`` (:data:`REFUSAL_CODES`,
        None when ok), ``dc_scale`` (unitless, within :func:`scale_bounds`; 1 when
        refused), ``capacity_dc_kw`` (tuned, kW),
        ``clip_kw`` (kW or None), ``window_start``, ``window_end`` (first and
        last sample used, UTC), ``n_samples`` (usable daylight samples),
        ``diagnostics`` (counts of every rejection, clear samples, days,
        the unbounded scale, ``dc_scale_allowed``, ``level_ratio`` (the
        producing samples' median ratio), ``level_changes`` (``first_day``,
        ``factor``), the (weighted) interquartile range of the ratios,
        ``half_life_days`` and ``clear_n_effective``: Kish's effective number
        of the clear samples under the weights).
    """
    cutoff = pd.Timestamp(cutoff).tz_convert("UTC")
    before = np.asarray(power_kw.index < cutoff)
    p = power_kw[before]
    minutes = sample_minutes(p.index)
    if min_clear_samples is None:
        min_clear_samples = samples_for(MIN_CLEAR_HOURS, minutes)
    phys = np.asarray(physical_ac_kw, dtype=float)[before]
    elev = np.asarray(solar_elevation, dtype=float)[before]
    csi = np.asarray(csi, dtype=float)[before]
    weight = recency_weights(p.index, cutoff, half_life_days)
    flags = usable_samples(p, phys, elev, capacity_ac_kw)
    usable = flags["usable"].to_numpy()
    days = int(pd.DatetimeIndex(p.index[usable]).tz_convert(timezone).normalize().nunique()) if usable.any() else 0
    diagnostics = {name: int(flags[name].sum()) for name in ("night", "missing", "outage", "stale", "clipped")}
    diagnostics.update(samples=int(len(p)), usable=int(usable.sum()), days=days,
                       sample_minutes=minutes, min_days=int(min_days), min_clear_samples=int(min_clear_samples),
                       dc_scale_bounds=list(DC_SCALE_BOUNDS),
                       half_life_days=None if half_life_days is None else float(half_life_days))
    result = {"ok": False, "reason": None, "code": None, "dc_scale": 1.0, "capacity_dc_kw": float(capacity_dc_kw),
              "clip_kw": None, "window_start": None, "window_end": None, "n_samples": int(usable.sum()),
              "diagnostics": diagnostics}
    y = p.to_numpy(dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = y / phys
    lo, hi = scale_bounds(capacity_ac_kw, capacity_dc_kw)
    diagnostics["dc_scale_allowed"] = [lo, hi]
    clear_sky = clear_samples(ratio, phys, elev, csi, capacity_ac_kw, clear_csi)
    # the level of every producing clear sample, before the rejections: power a thousand times too small is
    # all "outage" to usable_samples, so a unit error would otherwise read as too few days
    producing = clear_sky & ~flags["night"].to_numpy() & (y > 0) & (phys < 0.85 * capacity_ac_kw)
    if producing.sum() >= min_clear_samples:
        level_ratio = float(np.median(ratio[producing]))
        diagnostics.update(producing_clear_samples=int(producing.sum()), level_ratio=level_ratio)
        if not lo <= level_ratio <= hi:
            return {**result, **scale_refusal(level_ratio, int(producing.sum()), lo, hi, "producing")}
    if days < min_days:
        result["reason"] = f"actuals: {days} days with usable daylight samples before {cutoff.isoformat()}, " \
                           f"at least {min_days} needed"
        result["code"] = "too_few_days"
        return result
    # an observed clipping level (an undeclared export limit) caps the unclipped range like the rating does
    level, n_clipped = clip_level(y, flags["clipped"].to_numpy(), capacity_ac_kw,
                                  samples_for(MIN_CLIPPED_HOURS, minutes))
    limit = capacity_ac_kw if level is None else level
    base = usable & clear_sky
    local_day = np.asarray(pd.DatetimeIndex(p.index).tz_convert(timezone).tz_localize(None).normalize())
    counted = level_samples(base, phys, limit, local_day, minutes)
    steps = level_changes(local_day[counted], ratio[counted])
    diagnostics["level_changes"] = [{"first_day": str(pd.Timestamp(s["first_day"]).date()), "factor": s["factor"]}
                                    for s in steps]
    base &= present_state(p.index, timezone, steps)  # the plant changed: its present state is after the last change
    scale = 1.0
    for _ in range(2):  # keep the samples the current scale leaves unclipped
        sel = base & (scale * phys < 0.85 * limit)
        if sel.sum() < min_clear_samples and steps:
            result["reason"] = (f"level_change: the plant's clear-sky level changed x{steps[-1]['factor']:.2f} "
                                f"from {diagnostics['level_changes'][-1]['first_day']}; {int(sel.sum())} clear "
                                f"unclipped daylight samples since, at least {min_clear_samples} needed: not "
                                f"learnt from a mix of the two states")
            result["code"] = "level_change"
            diagnostics["clear_samples"] = int(sel.sum())
            return result
        if sel.sum() < min_clear_samples:
            result["reason"] = (f"actuals: {int(sel.sum())} clear unclipped daylight samples before "
                                f"{cutoff.isoformat()}, at least {min_clear_samples} needed")
            result["code"] = "too_few_clear_samples"
            diagnostics["clear_samples"] = int(sel.sum())
            return result
        scale = float(np.median(ratio[sel])) if half_life_days is None else \
            float(weighted_quantiles(ratio[sel][:, None], weight[sel], [0.5])[0])
    q25, q75 = np.quantile(ratio[sel], [0.25, 0.75]) if half_life_days is None else \
        weighted_quantiles(np.repeat(ratio[sel][:, None], 2, axis=1), weight[sel], [0.25, 0.75])
    times = p.index[usable]
    diagnostics.update(clear_samples=int(sel.sum()), clear_n_effective=effective_n(weight[sel]),
                       dc_scale_unbounded=scale, ratio_q25=float(q25),
                       ratio_q75=float(q75), clipped_level_samples=n_clipped)
    if not lo <= scale <= hi:  # refused, not clamped: a clamped scale is a wrong plant learnt silently
        return {**result, **scale_refusal(scale, int(sel.sum()), lo, hi, "clear usable")}
    result.update(ok=True, dc_scale=scale, capacity_dc_kw=float(capacity_dc_kw * scale), clip_kw=level,
                  window_start=times.min(), window_end=times.max())
    return result


def scale_bounds(capacity_ac_kw, capacity_dc_kw):
    """The DC scales a plant may have: :data:`DC_SCALE_BOUNDS`, at most the largest DC/AC ratio of ``DC_AC_RATIO``.

    The smallest ratio (0.5) bounds what a user may enter, not what a plant
    may be: half the strings off on a plant entered with DC = AC is an
    effective DC/AC of 0.5 or less, the state a level change follows
    (:func:`level_changes`), so only :data:`DC_SCALE_BOUNDS` [0] bounds from below.

    Parameters
    ----------
    capacity_ac_kw, capacity_dc_kw : float
        Entered, kW.

    Returns
    -------
    (float, float)
        Unitless.
    """
    return DC_SCALE_BOUNDS[0], min(DC_SCALE_BOUNDS[1], DC_AC_RATIO[1] * capacity_ac_kw / capacity_dc_kw)


def scale_refusal(ratio, samples, lo, hi, which):
    """``ok`` False, code ``scale``, and the sentence of a measured/modelled power ratio outside [lo, hi]."""
    return {"ok": False, "code": "scale", "dc_scale": 1.0,
            "reason": (f"scale: measured power is {ratio:.3g} x the modelled power of the entered description "
                       f"(median over {samples} {which} clear daylight samples), outside the DC scales "
                       f"[{lo:.2f}, {hi:.2f}] a plant can have: a unit error (W sent as kW, energy per period "
                       f"sent as power), a capacity entered in another unit, or another plant's actuals; "
                       f"not learnt from")}


def sky_arrays(features, times):
    """What :func:`candidate_dc_power` needs of the sky, from a feature frame (``engine.features.feature_frame``).

    Parameters
    ----------
    features : DataFrame
        One plant's feature frame at ``times``.
    times : DatetimeIndex
        UTC.

    Returns
    -------
    dict of ndarray
        ``apparent_zenith``, ``solar_azimuth`` (deg), ``ghi``, ``dni``,
        ``dhi``, ``dni_extra`` (W/m^2), ``airmass_relative``, ``temp_air``
        (degC), ``wind_speed`` (m/s).
    """
    f = features
    return {"apparent_zenith": f["solar_zenith"].to_numpy(dtype=float),
            "solar_azimuth": f["solar_azimuth"].to_numpy(dtype=float),
            "ghi": f["ghi"].to_numpy(dtype=float), "dni": f["dni"].to_numpy(dtype=float),
            "dhi": f["dhi"].to_numpy(dtype=float),
            "dni_extra": np.asarray(irradiance.get_extra_radiation(pd.DatetimeIndex(times)), dtype=float),
            "airmass_relative": f["airmass"].to_numpy(dtype=float),
            "temp_air": f["temp_air"].to_numpy(dtype=float), "wind_speed": f["wind_speed"].to_numpy(dtype=float)}


def candidate_dc_power(tilt, azimuth, sky, plant):
    """PVWatts DC power of every candidate orientation at every sample, kW (one vectorised chain).

    The chain of ``engine.features.plant_physics`` for one fixed plane
    (Perez POA, physical IAM, Faiman cell temperature, PVWatts DC after
    losses, ``engine.physics``) on flat (candidate, sample) arrays: no loop
    over candidates or samples.

    Parameters
    ----------
    tilt, azimuth : ndarray
        Shape (c,), deg.
    sky : dict of ndarray
        :func:`sky_arrays` at the n samples.
    plant : dict
        ``capacity_dc_kw`` (kW), ``gamma_pdc`` (1/degC), ``losses_pct`` (%),
        ``temp_model_u0``, ``temp_model_u1``.

    Returns
    -------
    ndarray
        Shape (c, n), kW.
    """
    c, n = len(tilt), len(sky["ghi"])
    cand = np.repeat(np.arange(c), n)
    sample = np.tile(np.arange(n), c)
    s = {k: v[sample] for k, v in sky.items()}
    poa = physics.plane_of_array(np.asarray(tilt, dtype=float)[cand], np.asarray(azimuth, dtype=float)[cand],
                                 s["apparent_zenith"], s["solar_azimuth"], s["ghi"], s["dni"], s["dhi"],
                                 s["dni_extra"], s["airmass_relative"])
    temp_cell = physics.cell_temperature(poa["poa_global"], s["temp_air"], s["wind_speed"], plant["temp_model_u0"],
                                         plant["temp_model_u1"])
    pdc = physics.dc_power(poa["effective_irradiance"], temp_cell, plant["capacity_dc_kw"], plant["gamma_pdc"],
                           plant["losses_pct"])
    return pdc.reshape(c, n)


def orientation_errors(y, pdc, weights=None):
    """DC scale and error of each candidate on the same samples.

    Parameters
    ----------
    y : ndarray
        Shape (n,): measured AC power / capacity_ac_kw.
    pdc : ndarray
        Shape (c, n): candidate AC estimates without clipping (DC x nominal
        inverter efficiency) / capacity_ac_kw.
    weights : ndarray, optional
        Shape (n,), > 0 (``engine.conformal.recency_weights``); None: equal.

    Returns
    -------
    scale : ndarray
        Shape (c,): the (weighted) median of y / estimate (robust to clouds the
        weather missed), within :data:`DC_SCALE_BOUNDS`.
    error : ndarray
        Shape (c,): (weighted) mean absolute error of ``scale * estimate``, fraction of capacity_ac_kw.
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(pdc > 0, y[None, :] / pdc, np.inf)
    if weights is None:
        median = np.median(ratio, axis=1)
    else:
        median = weighted_quantiles(ratio.T, weights, np.full(len(ratio), 0.5))
    scale = np.clip(median, *DC_SCALE_BOUNDS)
    return scale, np.average(np.abs(y[None, :] - scale[:, None] * pdc), axis=1, weights=weights)


MAX_INSTANT_MINUTES = 15.0
"""Longest spacing of actuals sent as instants (``period_minutes`` 0) from which an orientation is
fitted, min. Hourly values are mostly hour-ENDING means; read as instants at their label they lag
their middle by 30 min, which the fit reads as a plant turned ~10 deg west (docs/model.md "Actuals at
other intervals"), so coarser instants keep the stated orientation, and say so."""


def refused_orientation(tilt, azimuth, reason, diagnostics=None):
    """:func:`fit_orientation`'s answer when no orientation is fitted: the stated one, and why.

    Parameters
    ----------
    tilt, azimuth : float
        Stated, deg.
    reason : str or None
    diagnostics : dict, optional

    Returns
    -------
    dict
        ``ok`` False, ``reason``, ``tilt``/``azimuth`` = ``stated_tilt``/``stated_azimuth``, ``diagnostics``.
    """
    return {"ok": False, "reason": reason, "tilt": float(tilt), "azimuth": float(azimuth), "stated_tilt": float(tilt),
            "stated_azimuth": float(azimuth), "diagnostics": diagnostics or {}}


def fit_orientation(power_kw, sky, usable, csi, plant, cutoff, timezone="UTC", n_planes=1,
                    min_clear_days=MIN_CLEAR_DAYS, min_azimuth_span=MIN_AZIMUTH_SPAN, near_best=NEAR_BEST,
                    half_life_days=None):
    """Fit a fixed plant's tilt and azimuth from clear samples before ``cutoff``, or say why not.

    Every candidate of a bounded grid (tilt in :data:`TILT_BOUNDS`, azimuth
    within :data:`AZIMUTH_WINDOW` of the stated one; coarse steps
    :data:`COARSE_STEP`, then 1 deg around the coarse best) gets the
    physical model's unclipped AC estimate under the weather at the clear,
    usable samples (weather clear-sky index >= :data:`CLEAR_CSI`, sun above
    10 deg, measured power between 10 % and 90 % of AC capacity), its own
    DC scale (median ratio) and its mean absolute error
    (:func:`orientation_errors`). Tilt and azimuth change the shape of the
    day (azimuth: morning vs afternoon; tilt: how peaked the day is and how it
    changes with the season), the DC scale only its height, so the two are
    separable when the clear samples span morning and afternoon. With
    ``half_life_days`` each sample's DC-scale ratio and error are weighted by
    its age at ``cutoff`` (``engine.conformal.recency_weights``): the
    effective orientation of the recent days (the minimum data still count
    days and samples).

    Refused (``ok`` False, the stated orientation kept, ``reason`` says why):
    a tracker or a multi-plane plant (one plane's geometry cannot be fitted
    from the plant's summed power without more structure than clear days
    give), fewer than ``min_clear_days`` local days with
    :data:`MIN_CLEAR_HOURS_PER_DAY` of clear samples (at the actuals' interval), a solar-azimuth span
    (10th..90th percentile) of the clear samples under ``min_azimuth_span``,
    or a stated orientation whose error is within ``near_best`` of the best
    candidate's (the data do not say the stated one is wrong; on clear
    summer days the tilt is weakly determined, docs/model.md).

    Parameters
    ----------
    power_kw : Series
        Measured AC power, kW, UTC index.
    sky : dict of ndarray
        :func:`sky_arrays` at the same times.
    usable : array_like of bool
        :func:`usable_samples` ``usable``.
    csi : array_like
        Weather clear-sky index, unitless.
    plant : dict
        ``tilt``, ``azimuth`` (deg, stated), ``tracking``, ``capacity_ac_kw``,
        ``capacity_dc_kw`` (kW), ``gamma_pdc``, ``losses_pct``,
        ``temp_model_u0``, ``temp_model_u1``.
    cutoff : Timestamp
        tz-aware; only samples with time < cutoff are used.
    timezone : str
        IANA zone (local days).
    n_planes : int
        Plane rows of the plant (0 or 1: the plant's own columns).
    half_life_days : float or None
        days (``engine.conformal.recency_weights``); None: equal weights.

    Returns
    -------
    dict
        ``ok``, ``reason``, ``tilt``, ``azimuth`` (fitted; the stated ones
        when refused), ``stated_tilt``, ``stated_azimuth`` (deg),
        ``diagnostics``: ``clear_days``, ``clear_samples``,
        ``solar_azimuth_span``, ``error_stated``, ``error_fitted`` (MAE,
        fraction of AC capacity), ``gain`` (1 - fitted / stated error),
        ``dc_scale_fitted``, ``near_best_tilt``, ``near_best_azimuth``
        ([min, max] of the candidates within ``near_best`` of the best error:
        how well determined the fit is), the bounds and thresholds.
    """
    cutoff = pd.Timestamp(cutoff).tz_convert("UTC")
    stated = (float(plant["tilt"]), float(plant["azimuth"]))
    cap = float(plant["capacity_ac_kw"])
    diagnostics = {"tilt_bounds": list(TILT_BOUNDS), "azimuth_window": AZIMUTH_WINDOW,
                   "min_clear_days": int(min_clear_days), "min_solar_azimuth_span": float(min_azimuth_span),
                   "near_best": float(near_best),
                   "half_life_days": None if half_life_days is None else float(half_life_days)}
    result = refused_orientation(*stated, None, diagnostics)
    if str(plant["tracking"]).upper() != "FIXED" or n_planes > 1:
        result["reason"] = "orientation: fitted only for one fixed plane (tracker or multi-plane plant)"
        return result
    before = np.asarray(power_kw.index < cutoff)
    y = power_kw.to_numpy(dtype=float) / cap
    elevation = 90.0 - sky["apparent_zenith"]
    clear = (before & np.asarray(usable, dtype=bool) & (np.asarray(csi, dtype=float) >= CLEAR_CSI)
             & (elevation > 10.0) & (y > 0.1) & (y < 0.9) & np.isfinite(y))
    days = pd.Series(1, index=pd.DatetimeIndex(power_kw.index[clear]).tz_convert(timezone).normalize())
    per_day = days.groupby(level=0).size()
    per_clear_day = samples_for(MIN_CLEAR_HOURS_PER_DAY, sample_minutes(power_kw.index))
    clear_days = per_day.index[per_day >= per_clear_day]
    local_day = pd.DatetimeIndex(power_kw.index).tz_convert(timezone).normalize()
    clear &= np.asarray(local_day.isin(clear_days))
    sun_az = sky["solar_azimuth"][clear]
    span = float(np.subtract(*np.quantile(sun_az, [0.9, 0.1]))) if clear.any() else 0.0
    diagnostics.update(clear_days=int(len(clear_days)), clear_samples=int(clear.sum()), solar_azimuth_span=span,
                       clear_samples_per_clear_day=per_clear_day)
    if len(clear_days) < min_clear_days:
        result["reason"] = (f"orientation: {len(clear_days)} clear days before {cutoff.isoformat()}, "
                            f"at least {min_clear_days} needed")
        return result
    if span < min_azimuth_span:
        result["reason"] = (f"orientation: the clear samples span {span:.0f} deg of solar azimuth, "
                            f"at least {min_azimuth_span:.0f} needed (morning and afternoon)")
        return result
    rows = np.flatnonzero(clear)
    rows = rows[np.linspace(0, len(rows) - 1, min(len(rows), MAX_ORIENTATION_SAMPLES)).round().astype(int)]
    rows = np.unique(rows)
    s = {k: np.asarray(v, dtype=float)[rows] for k, v in sky.items()}
    yy = y[rows]
    weight = None if half_life_days is None else recency_weights(power_kw.index[rows], cutoff, half_life_days)
    scale_ac = physics.ETA_INV_NOM / cap

    def errors(tilt, azimuth):
        return orientation_errors(yy, candidate_dc_power(tilt, azimuth, s, plant) * scale_ac, weight)

    tilt_lim = (max(TILT_BOUNDS[0], LOCATION_BOUNDS["tilt"]["ge"]), min(TILT_BOUNDS[1], LOCATION_BOUNDS["tilt"]["le"]))
    dt, da = COARSE_STEP
    tilts = np.arange(tilt_lim[0], tilt_lim[1] + 1e-9, dt)
    azimuths = stated[1] + np.arange(-AZIMUTH_WINDOW, AZIMUTH_WINDOW + 1e-9, da)
    grid_t, grid_a = (g.ravel() for g in np.meshgrid(tilts, azimuths, indexing="ij"))
    _, coarse = errors(grid_t, grid_a)
    best = int(np.argmin(coarse))
    fine_t, fine_a = (g.ravel() for g in np.meshgrid(
        np.clip(grid_t[best] + np.arange(-dt, dt + 1e-9, 1.0), *tilt_lim),
        np.clip(grid_a[best] + np.arange(-da, da + 1e-9, 1.0), stated[1] - AZIMUTH_WINDOW, stated[1] + AZIMUTH_WINDOW),
        indexing="ij"))
    cand_t = np.concatenate([[stated[0]], grid_t, fine_t])
    cand_a = np.concatenate([[stated[1]], grid_a, fine_a])
    scale, err = errors(cand_t, cand_a)
    best = int(np.argmin(err))
    near = err <= (1.0 + near_best) * err[best]
    gain = float(1.0 - err[best] / err[0]) if err[0] > 0 else 0.0
    diagnostics.update(error_stated=float(err[0]), error_fitted=float(err[best]), gain=gain,
                       dc_scale_fitted=float(scale[best]), dc_scale_stated=float(scale[0]),
                       near_best_tilt=[float(cand_t[near].min()), float(cand_t[near].max())],
                       near_best_azimuth=[float(cand_a[near].min() % 360), float(cand_a[near].max() % 360)],
                       candidates=int(len(cand_t)), samples_fitted=int(len(rows)))
    if near[0]:
        result["reason"] = (f"orientation: the stated one's error is within {100 * near_best:.0f} % of the best fit's "
                            f"(tilt {cand_t[best]:.0f}, azimuth {cand_a[best] % 360:.0f}): stated kept")
        return result
    result.update(ok=True, tilt=float(cand_t[best]), azimuth=float(cand_a[best] % 360.0))
    return result


def orientation_at_edge(oriented):
    """Whether a fitted orientation lies on the edge of the window :func:`fit_orientation` searched.

    The grid ends at the stated azimuth +- :data:`AZIMUTH_WINDOW` and at the
    tilt :data:`TILT_BOUNDS` [1] (75 deg; 0 is a flat roof, a physical end,
    not the search's): a best candidate there means the best orientation is
    outside the window, i.e. the actuals contradict the stated side of the
    roof by more than a user errs (another plant's actuals, a plant entered
    facing the other way). Within 1 deg (the fine grid's step) of the edge.

    Parameters
    ----------
    oriented : dict or None
        :func:`fit_orientation`'s answer.

    Returns
    -------
    bool
    """
    if not oriented or not oriented.get("ok"):
        return False
    turned = abs((oriented["azimuth"] - oriented["stated_azimuth"] + 180.0) % 360.0 - 180.0)
    return bool(turned >= AZIMUTH_WINDOW - 1.0 or oriented["tilt"] >= TILT_BOUNDS[1] - 1.0)


def tuned_locations(locations, planes, tuning):
    """The physical description with each plant's tuning applied (vectorised over plants).

    Parameters
    ----------
    locations : DataFrame
        Locations frame (``location_id``, ``capacity_dc_kw``, ``capacity_ac_kw``,
        ``export_limit_kw``, ``tilt``, ``azimuth``).
    planes : DataFrame or None
        Planes frame keyed by ``location_id`` (each plane's ``capacity_dc_kw``
        is scaled by its plant's ``dc_scale``; plane orientations are never
        tuned: :func:`fit_orientation` refuses multi-plane plants).
    tuning : DataFrame
        ``location_id``, ``dc_scale`` (unitless), ``clip_kw`` (kW, NaN = none),
        optionally ``tilt``, ``azimuth`` (deg, NaN = the stated one kept);
        plants without a row are unchanged.

    Returns
    -------
    locations : DataFrame
        ``capacity_dc_kw`` scaled; ``export_limit_kw`` = min(export limit,
        ``clip_kw``) where a clipping level was observed (the forecast limit
        of ``engine.quantiles``); ``tilt``/``azimuth`` the fitted ones where
        an orientation was fitted.
    planes : DataFrame or None
    """
    t = tuning.set_index("location_id")
    scale = t["dc_scale"].reindex(locations["location_id"]).fillna(1.0).to_numpy(dtype=float)
    clip = t["clip_kw"].reindex(locations["location_id"]).to_numpy(dtype=float)
    out = locations.copy()
    out["capacity_dc_kw"] = locations["capacity_dc_kw"].to_numpy(dtype=float) * scale
    out["export_limit_kw"] = np.fmin(locations["export_limit_kw"].to_numpy(dtype=float), clip)
    for column in ("tilt", "azimuth"):
        if column in t:
            fitted = t[column].reindex(locations["location_id"]).to_numpy(dtype=float)
            out[column] = np.where(np.isfinite(fitted), fitted, locations[column].to_numpy(dtype=float))
    if planes is None or not len(planes):
        return out, planes
    plane_scale = t["dc_scale"].reindex(planes["location_id"]).fillna(1.0).to_numpy(dtype=float)
    return out, planes.assign(capacity_dc_kw=planes["capacity_dc_kw"].to_numpy(dtype=float) * plane_scale)

"""Intraday forecasts walked forward as a client issues them (issue 10 item 3 and its evaluation).

Plant-period: SERF East 2016-07-01..2016-10-13 (``engine.data.load_serf_east_2016``), in
neither the training data (2011-04..2012-12) nor the 2013 hold-out (2013 fits nothing here).
The plant is entered with capacity_dc_kw = capacity_ac_kw (the common mistake), weather is
the period's PSM3 file stamped as issued at 18:00 UTC of the previous local day
(``bench_adaptive.stamp_day_ahead``): every run, day-ahead or intraday, sees the same weather
a day-ahead user had, so the weather error is that of a satellite analysis (small).

The walk, as a client meets the service:

* actuals arrive continuously; the calibration (``engine.adaptation.fit_calibration``: tuning +
  band offsets) is refitted at the 18:00 UTC day-ahead issue once
  the daylight actuals that arrived since the last cutoff stand for
  ``adaptation.refit_after_daylight_hours`` (configs/service.yaml; 15-min samples: 0.25 h each),
  as the service's refit policy does;
* a day-ahead run is issued every day at 18:00 UTC for the next local day;
* an intraday run is issued every hour of daylight for the next 6 h (within the local day),
  with the latest calibration; it sees the actuals with time < T only, and weather issued at
  or before T (asserted for every run).

Each intraday issue is scored per lead bucket (``engine.metrics.LEAD_EDGES_HOURS``; 0-1 h and
1-6 h here) with finer sub-buckets against

(a) smart persistence: the clear-sky index of measured power over [T - 60 min, T) carried
    forward, times the clear-sky physical power of the plant as the model describes it (the
    tuned description, the weather file's ``ghi_clear``; ``bench_adaptive.clear_physical``);
(b) the same run without actuals (band offsets, no intraday update);
(c) the day-ahead run for the same valid times.

With ``--served`` the walk also runs, for every intraday issue, what the service computes:
``engine.adaptation.forecast_with_calibrations`` (the body of ``Forecaster.predict``) on the
serving feature frame (``feature_frame(serving=True)``, the feature task's) of the plant tuned by
its calibration (``tuning.tuned_locations``, as the forecaster), the calibration's own intraday
blend (fitted at calibration time on simulated past issues, ``adaptation.fit_intraday_blend``),
the actuals in [T - window, T) and the lookback features at their times; and the same without
actuals. The table then has the served columns beside the bench's own (daily refitted) blend.

With ``--weather persistence`` every run reads a forecast-grade proxy instead of the analysis: daily
persistence of the PSM3 analysis (:func:`persistence_weather`: a run issued at T reads, for valid time t, the
record at t - k x 24 h with the smallest k >= 1 known by T, i.e. with t - k x 24 h + :data:`PERSISTENCE_DELAY`
<= T, stamped issued then). Everything that reads weather reads it: the calibrations (tuning, band offsets and
the served blend's simulated past issues, fitted on the latest vintage issued by the cutoff, as
``engine.store.read_weather`` hands it to the service's calibrate), the day-ahead runs, every intraday run (its
own frame, its power index's reference and its clear-sky power over the last hour) and the served runs. The
clear-sky irradiance ``ghi_clear`` of the smart-persistence reference stays the analysis file's at t (geometry,
known in advance); its temperature is the run's.

Run: ``.venv/bin/python bench/bench_intraday.py [--served] [--weather analysis|persistence] [cache prefix]``
(a few minutes; ``--served`` about twice that).
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from engine import (adaptation, conformal, data, features, forecast, intraday, metrics, modelio, resources,
                    tuning)
from bench_adaptive import CAP, COLS, CONFIG, ISSUE_HOUR_UTC, clear_physical, stamp_day_ahead

SERVICE = yaml.safe_load(resources.config_path("service.yaml").read_text())["adaptation"]
HORIZON_HOURS = 6
WINDOW = pd.Timedelta(minutes=SERVICE["intraday_window_minutes"])
SHORT = pd.Timedelta(minutes=15)  # the last sample only
PERSISTENCE_DELAY = pd.Timedelta(hours=1)
"""Latency of an analysis record in the persistence proxy: the record valid at s is known at s + 1 h (an assumed
latency of a near-real-time satellite analysis; the PSM3 file itself is a retrospective product)."""


def persistence_weather(analysis, issue_time, delay=PERSISTENCE_DELAY):
    """Daily persistence of a weather analysis as a run issued at ``issue_time`` reads it (a forecast-grade proxy).

    For each valid time t of ``analysis`` the weather is the analysis record at
    s = t - k x 24 h, k the smallest integer >= 1 with s + ``delay`` <= ``issue_time``
    (so s < ``issue_time``: no record at or after the issue is read), stamped issued at
    s + ``delay``: per valid time the latest vintage issued by ``issue_time``, as
    ``engine.store.read_weather`` selects it from a store of every vintage. For t before
    the issue k = 1 (yesterday's record); for t up to ``issue_time + 24 h - delay``
    too; later t take k = 2, 3, ... The clear-sky irradiance ``ghi_clear`` stays the
    analysis' at t (solar geometry, known in advance).

    Parameters
    ----------
    analysis : DataFrame
        One plant's weather analysis (``valid_time`` UTC, unique, on a grid dividing
        24 h; ``ghi``, ``dni``, ``dhi``, ``ghi_clear`` W/m^2, ``temp_air`` degC,
        ``wind_speed`` m/s, ...); its ``issue_time`` is not read.
    issue_time : Timestamp
        The run's issue time, tz-aware.
    delay : Timedelta
        Latency of a record (:data:`PERSISTENCE_DELAY`).

    Returns
    -------
    DataFrame
        ``analysis``' columns at the valid times whose record s is in ``analysis``
        (the others dropped), with s's values except ``valid_time`` (t) and
        ``ghi_clear`` (t's); ``issue_time`` = s + ``delay`` (<= ``issue_time``);
        ``persisted_days`` = k.
    """
    day_ns = pd.Timedelta(days=1).value
    valid = pd.DatetimeIndex(analysis["valid_time"]).tz_convert("UTC").as_unit("ns")
    known_by = pd.Timestamp(issue_time).tz_convert("UTC") - delay  # latest record time read
    k = np.maximum(1, -((known_by.value - valid.asi8) // day_ns))  # ceil((t - known_by) / 24 h), at least 1
    source = valid - pd.to_timedelta(k * day_ns, unit="ns")
    at = valid.get_indexer(source)
    have = at >= 0
    out = analysis.iloc[at[have]].assign(valid_time=valid[have], issue_time=source[have] + delay,
                                         ghi_clear=analysis["ghi_clear"].to_numpy()[have], persisted_days=k[have])
    assert (out["issue_time"] <= pd.Timestamp(issue_time)).all()  # no record at or after the issue
    return out.reset_index(drop=True)


def adaptation_of(cal, k=np.nan, tau=0.0):
    """``forecast_quantiles``' adaptation argument of one plant (location_id 1)."""
    return {"location_ids": np.array([1]), "offsets": np.asarray(cal["bands"]["offsets"])[None],
            "level_floor": conformal.level_floors([cal["bands"]]), "k_meas": np.array([k]),
            "tau_hours": np.array([tau])}


def window_ratio(times, measured, reference, issues, window, floor_kw):
    """``intraday.power_indices`` of each issue over [issue - window, issue): sum(measured) / sum(reference).

    ``reference`` is the model P50 (-> the power index k) or the clear-sky
    physical power (-> the clear-sky index of smart persistence). NaN where no
    sample has ``reference > floor_kw``.
    """
    t = pd.DatetimeIndex(times)
    issues = pd.DatetimeIndex(issues)
    pair_issue = np.repeat(np.arange(len(issues)), len(t))
    pair_time = np.tile(np.arange(len(t)), len(issues))
    inside = (t[pair_time] >= issues[pair_issue] - window) & (t[pair_time] < issues[pair_issue])
    i, j = pair_issue[inside], pair_time[inside]
    assert (t[j] < issues[i]).all()  # nothing at or after the issue
    got = intraday.power_indices(i, t[j], measured[j], reference[j], np.full(len(j), CAP), issues[i],
                                 int(window / pd.Timedelta(minutes=1)), min_fraction=floor_kw / CAP)
    out = np.full(len(issues), np.nan)
    out[got.index.to_numpy()] = got.to_numpy()
    return out


def served_day(cal, version, location, knowns, times, actuals, issues, aheads, model):
    """P50 (kW) of the service's runs of one day, with and without actuals: one array per issue each.

    What ``Forecaster.predict`` runs (``adaptation.forecast_with_calibrations``), on the serving feature
    frame of the plant tuned by its calibration, the actuals in [T - window, T) and the lookback features
    at their times. ``knowns``: the weather each issue reads (one frame per issue; the same object for
    issues that read the same weather). The day's frame of each weather is computed once and sliced:
    features are computed per (plant, time), which the first issue of the day checks against frames
    computed for its own times, as the feature task does.
    """
    cal = {**cal, "version": version}
    tuned = tuning.tuned_locations(location, None, adaptation.tuning_table({1: cal}))[0]
    frames = {}  # id(weather) -> the day's serving frame
    window = pd.Timedelta(minutes=cal["intraday"]["window_minutes"])
    t_act = pd.DatetimeIndex(actuals["time"])
    with_actuals, without = [], []
    for n, (issue, ahead, known) in enumerate(zip(issues, aheads, knowns)):
        assert (known["issue_time"] <= issue).all()  # weather: forecasts available at T
        if id(known) not in frames:
            frames[id(known)] = features.feature_frame(tuned, known, times, serving=True)
        fs = frames[id(known)]
        sel = np.asarray((t_act >= issue - window) & (t_act < issue))
        act = actuals[sel].assign(location_id=1)
        assert (act["time"] < issue).all()  # a forecast issued at T sees actuals with time < T only
        lookback = fs[times.isin(pd.DatetimeIndex(act["time"]))] if len(act) else None
        rows = fs[ahead]
        if n == 0:
            own = features.feature_frame(tuned, known, times[ahead], serving=True)
            pd.testing.assert_frame_equal(own, rows)
            if lookback is not None:
                pd.testing.assert_frame_equal(
                    features.feature_frame(tuned, known, pd.DatetimeIndex(act["time"]), serving=True), lookback)
        models = {model["card"]["model_id"]: model}
        got = adaptation.forecast_with_calibrations(rows, tuned, models, "ml", issue, -1, {1: cal}, act, lookback)[0]
        plain = adaptation.forecast_with_calibrations(rows, tuned, models, "ml", issue, -1, {1: cal})[0]
        with_actuals.append(got["p50"].to_numpy())
        without.append(plain["p50"].to_numpy())
    return with_actuals, without


def issue_inputs(tuned, known, times, y, issues, model, f=None):
    """What the intraday runs of one day that read the weather ``known`` need, on the day's 15-min ``times``.

    Returns
    -------
    dict
        ``f`` (feature frame at ``times``; ``f`` itself when given, the frame of
        ``known``), ``clear`` (clear-sky physical power at ``times``, kW,
        ``bench_adaptive.clear_physical``) and, one value per issue of
        ``issues``, ``k60``, ``k15`` (power index of the measured ``y`` against
        the model P50 without plant offsets over the last 60 / 15 min) and
        ``kc60``, ``kc15`` (clear-sky index of ``y``, same windows).
    """
    f = features.feature_frame(tuned, known, times) if f is None else f
    reference = forecast.forecast_quantiles(f, tuned, model, "ml", times[0])["p50"].to_numpy()  # no offsets
    clear = clear_physical(tuned, known, times)
    floor = 0.05 * CAP
    return {"f": f, "clear": clear,
            "k60": window_ratio(times, y, reference, issues, WINDOW, floor),
            "k15": window_ratio(times, y, reference, issues, SHORT, floor),
            "kc60": window_ratio(times, y, clear, issues, WINDOW, floor),
            "kc15": window_ratio(times, y, clear, issues, SHORT, floor)}


def run_weather(weather, issue, times, source):
    """The weather a run issued at ``issue`` for ``times`` reads: the stamped analysis issued by then
    (``source`` "analysis"), or its daily persistence (:func:`persistence_weather`; "persistence"),
    the valid times within a day of ``times``."""
    if source == "analysis":
        return weather[weather["issue_time"] <= issue]
    valid = pd.DatetimeIndex(weather["valid_time"])
    near = (valid >= times.min() - pd.Timedelta(days=2)) & (valid <= times.max() + pd.Timedelta(days=1))
    got = persistence_weather(weather[near], issue)
    return got[pd.DatetimeIndex(got["valid_time"]) >= times.min() - pd.Timedelta(days=1)]


def walk(power, weather, location, model, tz, first_day="2016-07-02", last_day="2016-10-12", served=False,
         source="analysis"):
    """Every intraday (issue, lead) row of the period and every day-ahead row, as a client would have them.

    ``source``: "analysis" (``weather`` as stamped, every run reads the rows issued by
    its issue time) or "persistence" (every run, and every calibration, reads the daily
    persistence of ``weather``'s analysis as of its issue time or cutoff,
    :func:`persistence_weather`; a day whose day-ahead issue is less than a day + the
    delay after the analysis starts is skipped: its persisted weather has gaps).

    Returns
    -------
    rows : DataFrame
        One row per intraday (issue, valid time) in daylight: ``issue``, ``valid``,
        ``lead`` (h), ``y`` (kW), ``none`` (P50 of the run without actuals), ``update``
        (P50 of the service's intraday update, tau of configs/service.yaml), ``day_ahead``
        (P50 of the day-ahead run for that valid time), ``clear`` (clear-sky physical kW),
        ``k60``, ``k15`` (power index over the last 60 / 15 min), ``kc60``, ``kc15``
        (clear-sky index of measured power, same windows), ``version``; with ``served``:
        ``served``, ``served_none`` (:func:`served_day`).
    day_ahead : DataFrame
        Day-ahead rows: ``issue``, ``valid``, ``y``, ``day``, p10..p90 (kW), ``version``.
    """
    actuals = pd.DataFrame({"time": power.index, "power_kw": power.to_numpy()})
    y_all = power.to_numpy()
    threshold = SERVICE["refit_after_daylight_hours"] * 4  # 15-min samples: 4 per hour
    persisted = source == "persistence"
    first_issue = pd.DatetimeIndex(weather["valid_time"]).min() + pd.Timedelta(days=1) + PERSISTENCE_DELAY
    cal, version, rows, da_rows = None, 0, [], []
    for d in pd.date_range(first_day, last_day, freq="D"):
        da_issue = (d - pd.Timedelta(days=1) + pd.Timedelta(hours=ISSUE_HOUR_UTC)).tz_localize("UTC")
        if persisted and da_issue < first_issue:  # the persisted weather of the day would have gaps
            continue
        since = (power.index >= (cal["cutoff"] if cal else power.index[0])) & (power.index < da_issue)
        if cal is None or (y_all[since] > 0).sum() >= threshold:  # the refit policy
            # the calibration reads the latest vintage per valid time issued by its cutoff (engine.store.read_weather)
            fit = adaptation.fit_calibration(location, persistence_weather(weather, da_issue) if persisted else weather,
                                             actuals, model, da_issue)
            if fit["ok"]:
                cal, version = fit, version + 1
        if cal is None:
            continue
        tuned = location.assign(capacity_dc_kw=cal["capacity_dc_kw"])
        if cal["clip_kw"] is not None:
            tuned = tuned.assign(export_limit_kw=cal["clip_kw"])
        times = pd.DatetimeIndex(pd.date_range(d, d + pd.Timedelta(days=1), freq="15min", inclusive="left")
                                 .tz_localize(tz).tz_convert("UTC"))
        known = run_weather(weather, da_issue, times, source)
        if times.max() > known["valid_time"].max():
            continue
        f = features.feature_frame(tuned, known, times)
        y = power.reindex(times).to_numpy()
        elev = f["solar_elevation"].to_numpy()
        da = forecast.forecast_quantiles(f, tuned, model, "ml", da_issue, adaptation=adaptation_of(cal))
        da_rows.append(pd.DataFrame({"issue": da_issue, "valid": times, "y": y, "day": elev > 0, "version": version,
                                     **{c: da[c].to_numpy() for c in COLS}}))
        issues = times[(times.minute == 0) & (elev > 0) & (times > times[0])]
        # the weather each intraday run reads: the day-ahead run's (analysis) or its own issue's (persistence)
        knowns = [run_weather(weather, issue, times, source) for issue in issues] if persisted else \
            [known] * len(issues)
        inputs = {}  # id(weather) -> issue_inputs of the issues that read it
        for w in {id(k): k for k in knowns}.values():
            at = [n for n, k in enumerate(knowns) if k is w]
            inputs[id(w)] = (at, issue_inputs(tuned, w, times, y, issues[at], model, f if w is known else None))
        aheads = [(times > issue) & (times <= issue + pd.Timedelta(hours=HORIZON_HOURS)) & (elev > 0)
                  for issue in issues]
        keep = [n for n, a in enumerate(aheads) if a.any()]
        if served:
            sv, sv_none = served_day(cal, version, location, [knowns[n] for n in keep], times, actuals, issues[keep],
                                     [aheads[n] for n in keep], model)
            served_of = dict(zip(keep, zip(sv, sv_none)))
        for n, issue in enumerate(issues):
            assert (knowns[n]["issue_time"] <= issue).all()  # weather: forecasts available at T
            ahead = aheads[n]
            if not ahead.any():
                continue
            at, got = inputs[id(knowns[n])]
            j = at.index(n)
            fa = got["f"][ahead]
            k60 = got["k60"][j]
            none = forecast.forecast_quantiles(fa, tuned, model, "ml", issue, adaptation=adaptation_of(cal))
            upd = forecast.forecast_quantiles(fa, tuned, model, "ml", issue,
                                              adaptation=adaptation_of(cal, k60, SERVICE["intraday_tau_hours"]))
            rows.append(pd.DataFrame({
                "issue": issue, "valid": times[ahead], "lead": (times[ahead] - issue).total_seconds() / 3600.0,
                "y": y[ahead], "none": none["p50"].to_numpy(), "update": upd["p50"].to_numpy(),
                "day_ahead": da["p50"].to_numpy()[ahead], "clear": got["clear"][ahead], "k60": k60,
                "k15": got["k15"][j], "kc60": got["kc60"][j], "kc15": got["kc15"][j], "version": version,
                **({"served": served_of[n][0], "served_none": served_of[n][1]} if served else {})}))
    return pd.concat(rows, ignore_index=True), pd.concat(da_rows, ignore_index=True)


CHOICE_END = pd.Timestamp("2016-08-16T00:00:00Z")
"""Design choices (candidate set, ACI step) are made on issues before this; the figures are scored after it."""

SUB_BUCKETS = ((0.0, 0.25), (0.25, 0.5), (0.5, 1.0), (1.0, 2.0), (2.0, 4.0), (4.0, 6.0))
"""Finer lead buckets inside ``engine.metrics.LEAD_EDGES_HOURS``' 0-1 h and 1-6 h, h ((lower, upper])."""


def candidate_sets(rows):
    """Candidates of the blend (kW): the power index persisted, smart persistence; by name."""
    none = rows["none"].to_numpy()
    k = {w: np.clip(rows[f"k{w}"].to_numpy(), *intraday.K_BOUNDS) * none for w in (60, 15)}
    s = {w: np.minimum(rows[f"kc{w}"].to_numpy() * rows["clear"].to_numpy(), CAP) for w in (60, 15)}
    return {"ratio 60 min": [k[60]], "ratio 60 + smart persistence 60": [k[60], s[60]],
            "ratio 60 + ratio 15 + smart persistence 60": [k[60], k[15], s[60]],
            "ratio 60 + smart persistence 60 + smart persistence 15": [k[60], s[60], s[15]],
            "ratio 60 + ratio 15 + smart persistence 60 + 15 (grid 0.1)": [k[60], k[15], s[60], s[15]]}


def online_blend(rows, candidates, tau, n0=intraday.BLEND_N0):
    """:func:`_online_blend` with the grid step of the number of candidates (0.05 up to 3, 0.1 for 4)."""
    return _online_blend(rows, candidates, tau, n0, intraday.BLEND_STEP if len(candidates) <= 3 else 0.1)


def _online_blend(rows, candidates, tau, n0, step):
    """P50 of the blend, its weights refitted every local day from that plant's rows with valid time < the day's
    first issue (kW); and the fits' fallback messages of the first day."""
    base = rows["none"].to_numpy() / CAP
    cand = np.column_stack(candidates) / CAP
    y = rows["y"].to_numpy() / CAP
    lead = rows["lead"].to_numpy()
    issue = pd.DatetimeIndex(rows["issue"])
    valid = pd.DatetimeIndex(rows["valid"])
    out = np.full(len(rows), np.nan)
    day = issue.tz_convert(CONFIG["site"]["timezone"]).normalize()
    first = None
    for d in day.unique():
        today = np.asarray(day == d)
        start = issue[today].min()
        past = np.asarray(valid < start)
        assert (valid[past] < issue[today].min()).all()  # the weights of an issue never see its own future
        fit = intraday.fit_blend(lead[past], y[past], base[past], cand[past], tau, n0=n0, step=step)
        first = first or fit["fallback"]
        out[today] = base[today] + intraday.blend_shift(base[today], lead[today], cand[today], fit)
    return np.clip(out, 0.0, 1.0) * CAP, first, fit


def served_reference_candidates(rows, source="analysis"):
    """The bench's candidates with the SERVED clear-sky reference (``intraday.clear_sky_power``: physical_ac_kw /
    csi of the plant's features) instead of the physical power under PSM3's clear sky (kW).

    Isolates what the served reference costs from the other difference of the served blend (weights fitted at
    each calibration on simulated past issues instead of refitted daily on the bench's own rows). The plant is
    taken with DC = 1.13 x AC for the whole period (the tuned DC of the calibrations; the clear-sky index of
    measured power x the clear-sky power does not depend on the DC scale below clipping).
    ``source`` "persistence": the features of yesterday's record at every time (:func:`persistence_weather`
    with k = 1 everywhere, what every intraday run reads for its window and its 6 h ahead).
    """
    _, _, power, weather, location = load()
    if source == "persistence":
        weather = persistence_weather(weather, pd.DatetimeIndex(weather["valid_time"]).max())
        power = power[power.index >= pd.DatetimeIndex(weather["valid_time"]).min()]
    times = power.index
    f = features.feature_frame(location.assign(capacity_dc_kw=CAP * 1.13), weather, times)
    ref = intraday.clear_sky_power(f["physical_ac_kw"].to_numpy(), f["csi"].to_numpy())
    y = power.to_numpy()
    issue = pd.DatetimeIndex(rows["issue"])
    issues = issue.unique()
    day = issues.normalize()
    kc = {w: np.full(len(issues), np.nan) for w in (WINDOW, SHORT)}
    for d in day.unique():  # window_ratio pairs every issue with every time: one day at a time
        sel = np.asarray(day == d)
        near = (times >= d - pd.Timedelta(hours=2)) & (times < d + pd.Timedelta(days=1, hours=2))
        for w in kc:
            kc[w][sel] = window_ratio(times[near], y[near], ref[near], issues[sel], w, 0.05 * CAP)
    clear = pd.Series(ref, index=times).reindex(pd.DatetimeIndex(rows["valid"])).to_numpy()
    none = rows["none"].to_numpy()
    at = issues.get_indexer(issue)
    return [np.clip(rows["k60"].to_numpy(), *intraday.K_BOUNDS) * none] + [
        np.minimum(np.clip(kc[w][at], *intraday.K_BOUNDS) * clear, CAP) for w in (WINDOW, SHORT)]


def nmae(y, fx):
    """P50 nMAE, % of capacity_ac_kw."""
    return 100.0 * metrics.mae(y, fx) / CAP


def report(rows, forecasts, title):
    """nMAE % per lead bucket of each forecast, and the ratios of the last one to the others."""
    edges = metrics.LEAD_EDGES_HOURS
    buckets = [(edges[0], edges[1]), (edges[1], HORIZON_HOURS), *SUB_BUCKETS]
    names = list(forecasts)
    print(f"\n== {title}: daylight P50 nMAE % of {CAP} kW, by lead ==")
    print(f"{'lead h':>9} " + " ".join(f"{n:>14}" for n in names) + "   " +
          " ".join(f"{'/' + n:>14}" for n in names[:-1]) + f" {'n':>6}")
    lead = rows["lead"].to_numpy()
    y = rows["y"].to_numpy()
    for lo, hi in buckets:
        sel = (lead > lo) & (lead <= hi) if (lo, hi) in SUB_BUCKETS else (lead >= lo) & (lead < hi)
        if not sel.any():
            continue
        v = {n: nmae(y[sel], f[sel]) for n, f in forecasts.items()}
        last = v[names[-1]]
        tag = f"{lo:g}-{hi:g}" + ("" if (lo, hi) in SUB_BUCKETS else " *")
        print(f"{tag:>9} " + " ".join(f"{v[n]:14.2f}" for n in names) + "   " +
              " ".join(f"{last / v[n]:14.3f}" for n in names[:-1]) + f" {int(sel.sum()):6d}")
    print("(* = engine.metrics.LEAD_EDGES_HOURS bucket, [lower, upper); others (lower, upper] inside them)")


def aci_walk(da, gamma, reset_at_refit=True):
    """Day-ahead quantiles (kW) with the online offsets of ``engine.conformal.aci_update``.

    Before each day-ahead issue the offsets take one step from the daylight
    rows of earlier runs whose valid time is before that issue and that were
    not yet used; reset to 0 when a new calibration (refit) is used, whose
    band offsets already hold those residuals (``reset_at_refit``).
    """
    q = da[COLS].to_numpy() / CAP
    y = da["y"].to_numpy() / CAP
    ok = da["day"].to_numpy() & np.isfinite(y)
    valid = pd.DatetimeIndex(da["valid"])
    issue = pd.DatetimeIndex(da["issue"])
    version = da["version"].to_numpy()
    out = q.copy()
    theta = np.zeros(q.shape[1])
    used = np.zeros(len(da), dtype=bool)
    last_version = None
    for t in issue.unique():
        run = np.asarray(issue == t)
        v = version[run][0]
        if reset_at_refit and v != last_version:
            theta[:] = 0.0
            used |= np.asarray(valid < t)  # residuals the refit already used
        last_version = v
        new = ok & ~used & np.asarray(valid < t)
        assert (valid[new] < t).all()
        theta = conformal.aci_update(theta, y[new], out[new], gamma=gamma)
        used |= new
        out[run] = np.sort(np.clip(q[run] + theta, 0.0, 1.0), axis=1)
    return np.where(da["day"].to_numpy()[:, None], out, 0.0) * CAP


def coverage_stability(da, q, label, start, end):
    """Weekly daylight P10-P90 / P25-P75 coverage on issues in [start, end): mean and worst |deviation|."""
    sel = (pd.DatetimeIndex(da["issue"]) >= start) & (pd.DatetimeIndex(da["issue"]) < end) & da["day"].to_numpy() \
        & np.isfinite(da["y"].to_numpy())
    y = da["y"].to_numpy()[sel] / CAP
    qq = q[sel] / CAP
    week = np.asarray((pd.DatetimeIndex(da["valid"])[sel] - start).days // 7)
    cov = pd.DataFrame({"week": week, "c80": metrics.below(y, qq[:, 4], 0.9) - metrics.below(y, qq[:, 0], 0.1),
                        "c50": metrics.below(y, qq[:, 3], 0.75) - metrics.below(y, qq[:, 1], 0.25)})
    weekly = cov.groupby("week")[["c80", "c50"]].mean()
    dev80, dev50 = (weekly["c80"] - 0.8).abs(), (weekly["c50"] - 0.5).abs()
    return {"label": label, "cov80": 100 * cov["c80"].mean(), "cov50": 100 * cov["c50"].mean(),
            "mean_dev80": 100 * dev80.mean(), "max_dev80": 100 * dev80.max(), "mean_dev50": 100 * dev50.mean(),
            "max_dev50": 100 * dev50.max(), "crps": 100 * metrics.crps_from_quantiles(y, qq), "weeks": len(weekly),
            "nmae": 100 * metrics.mae(y, qq[:, 2])}


def print_stability(results, title):
    print(f"\n== {title} ==")
    print(f"{'bands':>34} {'P10-P90':>8} {'|wk dev| mean/max':>18} {'P25-P75':>8} {'|wk dev| mean/max':>18} "
          f"{'CRPS %':>7} {'nMAE %':>7} {'weeks':>5}")
    for r in results:
        print(f"{r['label']:>34} {r['cov80']:8.1f} {r['mean_dev80']:8.1f} / {r['max_dev80']:5.1f}    "
              f"{r['cov50']:8.1f} {r['mean_dev50']:8.1f} / {r['max_dev50']:5.1f}    {r['crps']:7.2f} {r['nmae']:7.2f} "
              f"{r['weeks']:5d}")


def load():
    """Model, plant (entered DC = AC), power and day-ahead-stamped weather."""
    model = modelio.load_model(resources.folder("models"), "global")
    tz = CONFIG["site"]["timezone"]
    power, weather = data.load_serf_east_2016(1, CONFIG["data"]["wind_speed_ms"])
    location = data.site_location(CONFIG["site"], 1, CAP, CAP)
    return model, tz, power, stamp_day_ahead(weather, tz), location


def hindsight(rows, lead_sel):
    """nMAE % of the best linear correction of the run without actuals from the last-hour quantities,
    least squares fitted IN HINDSIGHT on the scored rows themselves (an upper bound of what they can predict)."""
    none = rows["none"].to_numpy()
    x = np.column_stack([np.ones(len(rows))] + [c - none for c in candidate_sets(rows)[
        "ratio 60 + ratio 15 + smart persistence 60"]] + [np.minimum(rows["kc15"] * rows["clear"], CAP) - none])
    x = np.where(np.isfinite(x), x, 0.0)
    y = rows["y"].to_numpy()
    out = np.empty(len(rows))
    for lo, hi in lead_sel:
        sel = (rows["lead"].to_numpy() > lo) & (rows["lead"].to_numpy() <= hi)
        beta = np.linalg.lstsq(x[sel], y[sel] - none[sel], rcond=None)[0]
        out[sel] = none[sel] + x[sel] @ beta
    return np.clip(out, 0.0, CAP)


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("cache", nargs="?", help="a parquet prefix to keep / reuse the walk")
    parser.add_argument("--served", action="store_true", help="also run what the service computes per issue")
    parser.add_argument("--weather", choices=("analysis", "persistence"), default="analysis",
                        help="analysis: PSM3 stamped as issued the day before (default); persistence: its daily "
                             "persistence as of each run's issue time (persistence_weather)")
    args = parser.parse_args(argv[1:])
    t0 = time.time()
    served, cache = args.served, args.cache
    if cache and Path(f"{cache}_rows.parquet").exists():
        rows, da = pd.read_parquet(f"{cache}_rows.parquet"), pd.read_parquet(f"{cache}_da.parquet")
        served = "served" in rows
        weather_source = rows.attrs.get("weather", "analysis")  # the cached walk's (caches before it: analysis)
    else:
        model, tz, power, weather, location = load()
        weather_source = args.weather
        rows, da = walk(power, weather, location, model, tz, served=served, source=weather_source)
        if cache:
            rows.attrs["weather"] = weather_source
            rows.to_parquet(f"{cache}_rows.parquet")
            da.to_parquet(f"{cache}_da.parquet")
    tau = SERVICE["intraday_tau_hours"]
    if weather_source == "persistence":
        print(f"weather: daily persistence of the PSM3 analysis as of each run's issue time (records known "
              f"{PERSISTENCE_DELAY} after their time)")
    print(f"SERF East 2016, entered DC = AC = {CAP} kW; {rows['issue'].nunique()} intraday issues "
          f"({len(rows)} daylight issue-lead rows), {da['issue'].nunique()} day-ahead runs, "
          f"{da['version'].max()} calibrations (refit policy: {SERVICE['refit_after_daylight_hours']} h of daylight "
          f"actuals); walk {time.time() - t0:.0f} s")
    usable = np.isfinite(rows["y"]) & np.isfinite(rows["k60"]) & np.isfinite(rows["kc60"])
    print(f"scored: rows with a measured value and both last-hour indices ({usable.sum()} of {len(rows)}; the "
          f"others are issues within an hour after sunrise)")
    sets = candidate_sets(rows)
    blends = {name: online_blend(rows, cand, tau) for name, cand in sets.items()}
    choice = usable & (pd.DatetimeIndex(rows["issue"]) < CHOICE_END)
    score = usable & (pd.DatetimeIndex(rows["issue"]) >= CHOICE_END)
    y = rows["y"].to_numpy()
    print(f"\n== choice of the candidates on issues before {CHOICE_END.date()} ({choice.sum()} rows): "
          f"nMAE % 0-1 h / 1-6 h / 0-6 h ==")
    table = {}
    for name, (fx, _, _) in blends.items():
        lead = rows["lead"].to_numpy()
        parts = [nmae(y[choice & m], fx[choice & m]) for m in (lead < 1, lead >= 1, lead > 0)]
        table[name] = parts[2]
        print(f"  {name:>55}: {parts[0]:.2f} / {parts[1]:.2f} / {parts[2]:.2f}")
    chosen = min(table, key=table.get)
    print(f"  -> {chosen}")
    fx, first_fallback, last_fit = blends[chosen]
    print(f"first day's fit: {first_fallback[:2]} ... ({len(first_fallback)} bins on the prior)")
    print("last fit's weights by lead bin (" + ", ".join(
        f"{lo:g}-{hi:g} h: {np.round(w * last_fit['shrink'][b], 2).tolist()}" for b, (lo, hi, w) in enumerate(
            zip(last_fit["lead_edges_hours"][:-1], last_fit["lead_edges_hours"][1:], last_fit["fitted"]))) + ")")
    r = rows[score]
    smart = np.minimum(r["kc60"].to_numpy() * r["clear"].to_numpy(), CAP)
    report(r, {"smart persist.": smart, "day-ahead": r["day_ahead"].to_numpy(), "no actuals": r["none"].to_numpy(),
               f"ratio tau {tau:g}": r["update"].to_numpy(), "blend": fx[score]},
           f"intraday, issues {CHOICE_END.date()}..2016-10-12 (scored; weights refitted daily on earlier rows)")
    if served:
        report(r, {"smart persist.": smart, "day-ahead": r["day_ahead"].to_numpy(),
                   "served no act.": r["served_none"].to_numpy(), f"ratio tau {tau:g}": r["update"].to_numpy(),
                   "bench blend": fx[score], "served blend": r["served"].to_numpy()},
               f"the SERVICE's forecasts (adaptation.forecast_with_calibrations), issues {CHOICE_END.date()}.."
               f"2016-10-12: blend weights fitted at each calibration on its simulated past issues")
        own_ref = online_blend(rows, served_reference_candidates(rows, weather_source), tau)[0]
        report(r, {"bench blend": fx[score], "bench, served ref": own_ref[score],
                   "served blend": r["served"].to_numpy()},
               "the bench's daily-refitted blend with PSM3's clear sky and with the served clear-sky reference "
               "(physical_ac_kw / csi), and the served blend")
    richest = np.column_stack(candidate_sets(r)["ratio 60 + ratio 15 + smart persistence 60 + 15 (grid 0.1)"]) / CAP
    own = intraday.fit_blend(r["lead"], r["y"] / CAP, r["none"] / CAP, richest, tau, n0=1e-9, min_rows=1, step=0.1)
    in_sample = np.clip(r["none"].to_numpy() / CAP + intraday.blend_shift(r["none"].to_numpy() / CAP,
                                                                          r["lead"].to_numpy(), richest, own), 0, 1)
    report(r, {"day-ahead": r["day_ahead"].to_numpy(), "no actuals": r["none"].to_numpy(), "blend": fx[score],
               "hindsight LS": hindsight(r, SUB_BUCKETS), "hindsight MAE": in_sample * CAP},
           f"the cause: day-ahead error on {weather_source} weather vs the best last-hour corrections fitted IN "
           "HINDSIGHT on these rows (LS: least squares on the 4 candidates + intercept; MAE: the 4-candidate blend, "
           "n0 = 0)")
    # online conformal offsets between refits (day-ahead runs)
    start = pd.DatetimeIndex(da["issue"]).min()
    end = pd.DatetimeIndex(da["issue"]).max() + pd.Timedelta(days=1)
    plain = da[COLS].to_numpy()
    gammas = (0.0005, 0.001, 0.002, 0.005)
    tried = [coverage_stability(da, plain, "refits only", start, CHOICE_END)] + [
        coverage_stability(da, aci_walk(da, g), f"refits + ACI gamma {g:g}", start, CHOICE_END) for g in gammas]
    print_stability(tried, f"choice of the ACI step on day-ahead runs issued before {CHOICE_END.date()}")
    best = min(tried[1:], key=lambda t: t["mean_dev80"] + t["mean_dev50"])
    g = gammas[tried[1:].index(best)]
    print_stability([coverage_stability(da, plain, "refits only", CHOICE_END, end),
                     coverage_stability(da, aci_walk(da, g), f"refits + ACI gamma {g:g}", CHOICE_END, end),
                     coverage_stability(da, aci_walk(da, g, reset_at_refit=False), f"+ ACI {g:g}, no reset",
                                        CHOICE_END, end)],
                    f"day-ahead bands, runs issued {CHOICE_END.date()}..: weekly coverage (scored)")
    print(f"\n{time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

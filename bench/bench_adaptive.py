"""Plant adaptation measured as a user would meet it, on data neither trained nor held out.

Plant-period: SERF East 2016-07-01..2016-10-13 (15 min, ``engine.data.load_serf_east_2016``),
not in the training data (2011-04..2012-12) nor in the 2013 hold-out. Weather: the
period's PSM3 file, stamped as issued the day before at 18:00 UTC (12:00 MDT) so that
a day-ahead run sees exactly the weather a user would have fed in by then. The plant is
entered twice: rightly (capacity_dc_kw = 1.2 x AC, a typical ratio, and the true tilt 45 /
azimuth 158 of SERF East, configs/training.yaml) and with issue 10's wrong description
(DC = AC, the common mistake, AND tilt 30, azimuth 180).

Day-ahead walk: every day a run issued at 18:00 UTC for the next local day; before it,
the calibration is refitted (``engine.adaptation.fit_calibration``) from the actuals
strictly before the issue time (the service's POST .../calibrate), once with orientation
tuning (``engine.tuning.fit_orientation``, the service's default) and once keeping the stated
orientation. Scored on local daylight: P50 nMAE (% of AC capacity), P10-P90 and P25-P75
coverage, CRPS, for the global forecast (no adaptation) and both adapted ones, against a
one-factor PVWatts whose least-squares scale is fitted on the same past actuals; then the
wrong description's P50 nMAE / the right one's (issue 10 target <= 1.05).

Intraday: decay constant tau fitted on out-of-fold forecasts of the model's TRAINING
period (SERF East 2011-04..2012-12, month blocks in 2 folds; never 2013) by minimising
the P50 MAE over 0-6 h leads of hourly issues; then on 2016 (entered DC = AC, adapted)
hourly issues 0-6 h: no update, update, and smart persistence (clear-sky index of the
last hour of measured power carried forward x clear-sky physical power).

Run: ``.venv/bin/python bench/bench_adaptive.py`` (``--help``: ``--day-ahead-only`` skips the
intraday part, ``--description right|wrong`` walks one description, ``--no-stated`` skips the
stated-orientation calibration, halving the walk's cost; each calibration tunes the plant up to
``adaptation.BAND_FOLDS`` times for its forward band residuals; ``--skyline`` imposes a known tree
line on the measured power, :func:`imposed_skyline`; ``--tuning-half-life 14`` weighs the tuning's
samples by age, ``engine.conformal.recency_weights``; the service's default is equal weights). Every
adapted forecast is also made without the calibration's fitted skyline (``engine.shading``), reported as
"... without fitted skyline"; while a calibration is untuned (the plant's first days) its forecast is also made with
the same actuals' calibration fitted with kW offsets (``relative_untuned=False``, the rule before session 11),
reported as "... untuned offsets in kW".
"""

import argparse
import functools
import sys
import time

import numpy as np
import pandas as pd

from engine import adaptation, conformal, data, features, forecast, intraday, metrics, modelio, quantiles, resources
from engine import shading, training, tuning

CONFIG = training.load_config()
CAP = 5.5  # kW AC entered for SERF East 2016 (above every measured value: 5.43 kW)
ISSUE_HOUR_UTC = 18
COLS = list(quantiles.QUANTILE_COLUMNS)
LEAD_BUCKETS = ((0, 1), (1, 2), (2, 4), (4, 6))
TRUE_ORIENTATION = (CONFIG["site"]["tilt"], CONFIG["site"]["azimuth"])  # SERF East, PVDAQ system 50 (45, 158)
DESCRIPTIONS = (  # label, capacity_dc_kw, tilt, azimuth as entered
    ("right: DC = 1.2 x AC, true tilt/azimuth", 1.2 * CAP, *TRUE_ORIENTATION),
    ("wrong: DC = AC, tilt 30, azimuth 180", CAP, 30.0, 180.0),
)


def stamp_day_ahead(weather, tz):
    """issue_time of each weather row = 18:00 UTC of the local day before its valid time's local day."""
    local_day = pd.DatetimeIndex(weather["valid_time"]).tz_convert(tz).tz_localize(None).normalize()
    issue = (local_day - pd.Timedelta(days=1) + pd.Timedelta(hours=ISSUE_HOUR_UTC)).tz_localize("UTC")
    return weather.assign(issue_time=issue)


SKYLINE = pd.DataFrame({"location_id": 1, "azimuth": [0.0, 65.0, 70.0, 120.0, 125.0],
                        "elevation": [0.0, 0.0, 20.0, 20.0, 0.0]})
"""An imposed tree line (deg): 20 deg from azimuth 70 to 120 (``--skyline``; tests/engine/test_shading.py's)."""


def imposed_skyline(power, weather):
    """Measured power behind :data:`SKYLINE`: x (physical with it / without it) of the true description, kW.

    A known transformation of real data (``engine.horizon`` shading of the plant as it is), not invented data.
    """
    true = data.site_location(CONFIG["site"], 1, CAP, 1.2 * CAP)
    free = features.feature_frame(true, weather, power.index)["physical_ac_kw"].to_numpy()
    behind = features.feature_frame(true, weather, power.index, horizon=SKYLINE)["physical_ac_kw"].to_numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        return power * np.where(free > 0, behind / free, 1.0)


def scores(y, q, day):
    ok = day & np.isfinite(y)
    out = metrics.evaluate(y[ok], q[ok], CAP, np.ones(ok.sum(), dtype=bool))
    return {"nmae_%": 100 * out["mae_day"], "crps_%": 100 * out["crps_day"],
            "cov_p10_p90_%": 100 * out["coverage_p10_p90_day"], "cov_p25_p75_%": 100 * out["coverage_p25_p75_day"],
            "n": int(ok.sum())}


def tuned_location(location, cal):
    """The entered description with a calibration's tuning applied (``engine.tuning.tuned_locations``)."""
    return tuning.tuned_locations(location, None, adaptation.tuning_table({int(location["location_id"].iloc[0]):
                                                                           {**cal, "version": 0}}))[0]


def without_day_inflation(cal):
    """The calibration with its bands as fitted before the day inflation (``day_inflation=False``): offsets - widening.

    Equal to the former rule's offsets up to rounding (the widening is added last, to nothing else);
    the calibration itself when it has no widening.
    """
    widen = (cal.get("bands") or {}).get("predictive") if cal.get("ok") else None
    if widen is None:
        return cal
    offsets = np.asarray(cal["bands"]["offsets"]) - np.asarray(widen["widening"])
    return {**cal, "bands": {**cal["bands"], "offsets": offsets.tolist()}}


def absolute_untuned(location, known, actuals, model, issue, cal):
    """The calibration as fitted with ``relative_untuned=False`` (absolute offsets), when its bands are relative.

    An untuned calibration costs no tuning: refitting it is cheap. A tuned one (or one fitted absolute) is itself.
    """
    if not cal["ok"] or cal["bands"].get("level_floor") is None:
        return cal
    return adaptation.fit_calibration(location, known, actuals, model, issue, tau_hours=0.0, relative_untuned=False)


def adapted_forecast(location, known, times, model, issue, cal, skyline=True):
    """Day-ahead quantiles (kW) of the tuned description with the plant's band offsets; global when not calibrated.

    ``skyline``: with the calibration's fitted skyline (``engine.shading.served_horizon``, as the service).
    """
    if not cal["ok"]:
        return forecast.forecast_quantiles(features.feature_frame(location, known, times), location, model, "ml",
                                           issue)[COLS].to_numpy()
    tuned = tuned_location(location, cal)
    adapt = {"location_ids": tuned["location_id"].to_numpy(), "offsets": np.asarray(cal["bands"]["offsets"])[None],
             "level_floor": conformal.level_floors([cal["bands"]]), "k_meas": np.array([np.nan]),
             "tau_hours": np.array([0.0])}
    horizon = shading.served_horizon(None, {int(location["location_id"].iloc[0]): cal.get("shading")}) \
        if skyline else None
    return forecast.forecast_quantiles(features.feature_frame(tuned, known, times, horizon=horizon), tuned, model,
                                       "ml", issue, adaptation=adapt)[COLS].to_numpy()


def day_ahead_walk(power, weather, location, model, tz, stated=True, days=None):
    """Rows of every day-ahead run: measured, global, adapted (with and without orientation tuning), PVWatts baseline.

    ``days``: the local days forecast (default: 2016-07-02..10-12).
    """
    days = pd.date_range("2016-07-02", "2016-10-12", freq="D") if days is None else days
    out = []
    actuals = pd.DataFrame({"time": power.index, "power_kw": power.to_numpy()})
    for d in days:
        issue = (d - pd.Timedelta(days=1) + pd.Timedelta(hours=ISSUE_HOUR_UTC)).tz_localize("UTC")
        local = pd.date_range(d, d + pd.Timedelta(days=1), freq="15min", inclusive="left").tz_localize(tz)
        times = pd.DatetimeIndex(local.tz_convert("UTC"))
        known = weather[weather["issue_time"] <= issue]
        if times.max() > known["valid_time"].max():
            continue
        cal = adaptation.fit_calibration(location, known, actuals, model, issue, tau_hours=0.0)
        fixed = adaptation.fit_calibration(location, known, actuals, model, issue, tau_hours=0.0,
                                           orientation=False) if stated else None
        f = features.feature_frame(location, known, times)
        plain = forecast.forecast_quantiles(f, location, model, "ml", issue)[COLS].to_numpy()
        adapted = adapted_forecast(location, known, times, model, issue, cal)
        unshaded = adapted_forecast(location, known, times, model, issue, cal, skyline=False)
        absolute = absolute_untuned(location, known, actuals, model, issue, cal)
        kw_bands = adapted if absolute is cal else adapted_forecast(location, known, times, model, issue, absolute)
        plain_cal = without_day_inflation(cal)
        former = adapted if plain_cal is cal else adapted_forecast(location, known, times, model, issue, plain_cal)
        no_orient = adapted_forecast(location, known, times, model, issue, fixed) if stated else \
            np.full_like(adapted, np.nan)
        # one-factor PVWatts on the same past: least-squares scale of the entered physical estimate
        past = power[(power.index < issue) & (power.index >= weather["valid_time"].min())].dropna()
        fp = features.feature_frame(location, known, past.index)
        use = fp["solar_elevation"].to_numpy() > 0
        scale = training.least_squares_scale(past.to_numpy()[use], fp["physical_ac_kw"].to_numpy()[use]) \
            if use.sum() > 96 else 1.0
        base = np.minimum(scale * f["physical_ac_kw"].to_numpy(), CAP)
        orient = cal.get("orientation") or {}
        out.append(pd.DataFrame({
            "valid_time": times, "history_days": (issue - power.index[0]).days, "y": power.reindex(times).to_numpy(),
            "day": f["solar_elevation"].to_numpy() > 0, "calibrated": cal["ok"], "base": base,
            **{f"g_{c}": plain[:, j] for j, c in enumerate(COLS)},
            **{f"a_{c}": adapted[:, j] for j, c in enumerate(COLS)},
            **{f"n_{c}": no_orient[:, j] for j, c in enumerate(COLS)},
            **{f"s_{c}": unshaded[:, j] for j, c in enumerate(COLS)},
            **{f"f_{c}": former[:, j] for j, c in enumerate(COLS)},
            **{f"u_{c}": kw_bands[:, j] for j, c in enumerate(COLS)},
            "relative": absolute is not cal,
            "inflation": ((cal.get("bands") or {}).get("predictive") or {}).get("factor", 1.0) if cal["ok"] else 1.0,
            "shaded_bins": int(np.count_nonzero((cal.get("shading") or {}).get("elevation", []))),
            "dc_scale": cal.get("dc_scale", np.nan), "clip_kw": cal.get("clip_kw") or np.nan,
            "tilt": orient.get("tilt", np.nan) if orient.get("ok") else np.nan,
            "azimuth": orient.get("azimuth", np.nan) if orient.get("ok") else np.nan,
            "orientation_reason": orient.get("reason")}))
    return pd.concat(out, ignore_index=True)


HISTORY_BUCKETS = ((0, 7, "0-6 d"), (7, 14, "7-13 d"), (14, 30, "14-29 d"), (30, 999, ">= 30 d"), (14, 999, ">= 14 d"))


def report_day_ahead(rows, label):
    print(f"\n== day-ahead, entered {label}: daylight, normalised by {CAP} kW ==")
    print(f"{'history':>12} {'forecast':>30} {'nMAE %':>7} {'CRPS %':>7} {'P10-P90 %':>9} {'P25-P75 %':>9} {'n':>6}")
    table = {}
    for lo, hi, name in HISTORY_BUCKETS:
        sel = (rows["history_days"] >= lo) & (rows["history_days"] < hi)
        r = rows[sel]
        if not len(r):
            continue
        y, day = r["y"].to_numpy(), r["day"].to_numpy()
        for tag, q in (("global (no adaptation)", r[[f"g_{c}" for c in COLS]].to_numpy()),
                       ("adapted, stated orientation", r[[f"n_{c}" for c in COLS]].to_numpy()),
                       ("adapted + orientation", r[[f"a_{c}" for c in COLS]].to_numpy()),
                       ("... without day inflation", r.reindex(columns=[f"f_{c}" for c in COLS]).to_numpy()),
                       ("... untuned offsets in kW", r.reindex(columns=[f"u_{c}" for c in COLS]).to_numpy()),
                       ("... without fitted skyline", r.reindex(columns=[f"s_{c}" for c in COLS]).to_numpy()),
                       ("PVWatts 1-factor", np.repeat(r[["base"]].to_numpy(), 5, axis=1))):
            if np.isnan(q).all():  # not run (--no-stated)
                continue
            s = scores(y, q, day)
            table[(name, tag)] = s
            cov = ("-", "-") if tag.startswith("PVWatts") else (
                f"{s['cov_p10_p90_%']:.1f}", f"{s['cov_p25_p75_%']:.1f}")
            print(f"{name:>12} {tag:>30} {s['nmae_%']:7.2f} {s['crps_%']:7.2f} {cov[0]:>9} {cov[1]:>9} {s['n']:6d}")
    last = rows.dropna(subset=["dc_scale"]).iloc[-1]
    shaded = rows.drop_duplicates("history_days")
    print(f"fitted skyline: shaded bins on {int((shaded['shaded_bins'] > 0).sum())} of {len(shaded)} calibrations "
          f"(at most {int(shaded['shaded_bins'].max())} bins of {shading.BIN_DEG:g} deg)")
    fitted = rows.dropna(subset=["tilt"]).drop_duplicates("history_days")
    print(f"last calibration: dc_scale {last['dc_scale']:.3f}, clip_kw {last['clip_kw']}, "
          f"tilt {last['tilt']}, azimuth {last['azimuth']} ({last['orientation_reason'] or 'fitted'})")
    if len(fitted):
        print(f"orientation fitted on {len(fitted)} of {rows['history_days'].nunique()} days: tilt "
              f"{fitted['tilt'].min():.0f}..{fitted['tilt'].max():.0f}, azimuth {fitted['azimuth'].min():.0f}.."
              f"{fitted['azimuth'].max():.0f}; first from history day {fitted['history_days'].min()}")
    return table


def intraday_rows(times, y, p50, clear_kw, issues, cap, window_minutes=60):
    """Per (issue, lead) rows: lead h, measured, model P50, power index of the issue, smart persistence.

    The power index of an issue comes from ``intraday.power_indices`` on the
    samples before it only (it raises on one at or after it).
    """
    t = pd.DatetimeIndex(times)
    n = len(t)
    idx = np.searchsorted(t, issues)
    window = int(window_minutes // 15)
    past = idx[:, None] - 1 - np.arange(window)[None, :]  # the samples before the issue (time < T)
    past = np.clip(past, 0, n - 1)
    sample_ids = np.repeat(np.arange(len(issues)), window)
    flat = past.ravel()
    issue_of = pd.DatetimeIndex(issues).repeat(window)
    ok = np.asarray((t[flat] >= issue_of - pd.Timedelta(minutes=window_minutes)) & (t[flat] < issue_of))
    got = intraday.power_indices(sample_ids[ok], t[flat[ok]], y[flat[ok]], p50[flat[ok]], np.full(ok.sum(), cap),
                                 issue_of[ok], window_minutes)
    k = np.full(len(issues), np.nan)
    k[got.index.to_numpy()] = got.to_numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        cs_sum = np.where(ok.reshape(-1, window), clear_kw[past], 0.0).sum(axis=1)
        y_sum = np.where(ok.reshape(-1, window), np.nan_to_num(y[past]), 0.0).sum(axis=1)
        kc = np.where(cs_sum > 0.05 * cap * window, y_sum / cs_sum, np.nan)
    leads = np.arange(1, 25)
    target = idx[:, None] + leads[None, :]
    valid = target < n
    target = np.clip(target, 0, n - 1)
    lead_h = (t[target.ravel()] - pd.DatetimeIndex(issues).repeat(len(leads))).total_seconds().to_numpy()
    lead_h = lead_h.reshape(target.shape) / 3600
    out = pd.DataFrame({"lead": lead_h.ravel(), "y": y[target].ravel(), "p50": p50[target].ravel(),
                        "k": np.repeat(k, len(leads)), "smart": (kc[:, None] * clear_kw[target]).ravel(),
                        "day": (clear_kw[target] > 0).ravel(), "valid": valid.ravel()})
    return out[out["valid"] & np.isfinite(out["y"]) & out["day"] & np.isfinite(out["k"])
               & (out["lead"] > 0) & (out["lead"] <= 6.0 + 1e-9)]


def clear_physical(location, weather, times):
    """Physical AC power under the weather file's clear sky (PSM3 ``ghi_clear``), kW."""
    clear = weather.assign(ghi=weather["ghi_clear"].to_numpy())
    return features.feature_frame(location, clear, times)["physical_ac_kw"].to_numpy()


def oof_p50(ds, config):
    """Out-of-fold P50 (kW) of the training period: month blocks in 2 folds, each predicted by a model of the other.

    Only 2011-04..2012-12 rows are fitted and predicted (never 2013); NaN elsewhere.
    """
    f, cap = ds["features"], ds["capacity_ac_kw"]
    y = ds["y_kw"] / cap
    elev = f["solar_elevation"].to_numpy()
    periods = config["periods"]
    rows = training.period_mask(ds["times"], periods["train_start"], periods["train_end"]) & np.isfinite(y) & (elev > 0)
    x = f.loc[rows, list(features.MODEL_FEATURES)].reset_index(drop=True)
    phys = f["physical_ac_kw"].to_numpy() / cap
    base = training.least_squares_scale(y[rows], phys[rows]) * phys[rows]
    folds = training.month_folds(ds["times"][rows], 2)
    out = np.empty(rows.sum())
    for k in (0, 1):
        fit = folds != k
        model = training.fit_quantile_model(x[fit], y[rows][fit] - base[fit], config)
        out[~fit] = quantiles.predict_normalised(model, x[~fit])[:, 2] + base[~fit]
    p50 = np.full(len(y), np.nan)
    p50[rows] = np.clip(out, 0.0, 1.0) * cap
    train = training.period_mask(ds["times"], periods["train_start"], periods["train_end"])
    p50[train & (elev <= 0)] = 0.0
    return p50


def fit_tau():
    """tau on out-of-fold forecasts of the model's training period (SERF East 2011-04..2012-12, never 2013)."""
    ds = training.build_dataset(CONFIG, features.feature_frame)
    p50 = oof_p50(ds, CONFIG)
    train = np.isfinite(p50)
    times = ds["times"][train]
    cap = ds["capacity_ac_kw"]
    regular = pd.DatetimeIndex(times)
    clear = ds["clear_physical_kw"][train]
    y = ds["y_kw"][train]
    elev = ds["features"]["solar_elevation"].to_numpy()[train]
    issues = regular[(regular.minute == 0) & (elev > 5)]
    rows = intraday_rows(regular, y, p50[train], clear, issues, cap)
    tau, table = intraday.fit_decay(rows["y"] / cap, rows["p50"] / cap, rows["lead"], rows["k"])
    return tau, table, rows, cap


def report_intraday(rows, tau, cap, title):
    print(f"\n== intraday, {title}: daylight P50 nMAE % by lead (tau = {tau} h) ==")
    print(f"{'lead h':>8} {'no update':>10} {'update':>8} {'smart persistence':>18} {'n':>6}")
    for lo, hi in LEAD_BUCKETS:
        r = rows[(rows["lead"] > lo) & (rows["lead"] <= hi)]
        upd = np.clip(r["p50"] + intraday.intraday_shift(r["p50"].to_numpy(), r["lead"].to_numpy(), r["k"].to_numpy(),
                                                         tau), 0, cap)
        nm = {name: 100 * np.mean(np.abs(r["y"] - v)) / cap for name, v in
              (("none", r["p50"]), ("upd", upd), ("smart", r["smart"].fillna(r["p50"])))}
        print(f"{lo:>3}-{hi:<4} {nm['none']:10.2f} {nm['upd']:8.2f} {nm['smart']:18.2f} {len(r):6d}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--day-ahead-only", action="store_true", help="skip the intraday part")
    parser.add_argument("--description", choices=("right", "wrong"), help="walk only this description")
    parser.add_argument("--no-stated", action="store_true",
                        help="skip the calibration that keeps the stated orientation (half the cost)")
    parser.add_argument("--skyline", action="store_true",
                        help="impose SKYLINE on the measured power (x physical with it / without it, true description)")
    parser.add_argument("--tuning-half-life", default=None,
                        help="days, or none (equal weights); default: the service's "
                             "(adaptation.fit_calibration's tuning_half_life_days: equal weights)")
    parser.add_argument("--no-day-inflation", action="store_true",
                        help="fit_calibration(day_inflation=False): the bands as fitted (the rule before session 9); "
                             "every walk also reports them as '... without day inflation'")
    parser.add_argument("--no-relative-untuned", action="store_true",
                        help="fit_calibration(relative_untuned=False): untuned band offsets in kW (the rule before "
                             "session 11); every walk also reports them as '... untuned offsets in kW'")
    args = parser.parse_args()
    if args.no_relative_untuned:
        adaptation.fit_calibration = functools.partial(adaptation.fit_calibration, relative_untuned=False)
        print("fit_calibration(relative_untuned=False)")
    if args.no_day_inflation:
        adaptation.fit_calibration = functools.partial(adaptation.fit_calibration, day_inflation=False)
        print("fit_calibration(day_inflation=False)")
    if args.tuning_half_life is not None:
        half_life = None if args.tuning_half_life == "none" else float(args.tuning_half_life)
        adaptation.fit_calibration = functools.partial(adaptation.fit_calibration, tuning_half_life_days=half_life)
        print(f"tuning half-life: {half_life} d")
    t0 = time.time()
    model = modelio.load_model(resources.folder("models"), "global")
    tz = CONFIG["site"]["timezone"]
    power, weather = data.load_serf_east_2016(1, CONFIG["data"]["wind_speed_ms"])
    weather = stamp_day_ahead(weather, tz)
    if args.skyline:
        power = imposed_skyline(power, weather)
        print(f"measured power x (physical with the skyline {SKYLINE.to_dict('list')} / without), true description")
    print(f"SERF East 2016: {power.index[0]} .. {power.index[-1]}, {power.notna().sum()} samples; "
          f"capacity_ac_kw entered {CAP}; weather PSM3 issued the day before {ISSUE_HOUR_UTC}:00 UTC; "
          f"band offsets n0 = {conformal.N0}, fitted on forward residuals of {adaptation.BAND_FOLDS} day blocks")
    site = CONFIG["site"]
    walks, tables = {}, {}
    for label, dc, tilt, azimuth in DESCRIPTIONS:
        if args.description and not label.startswith(args.description):
            continue
        location = data.site_location(site, 1, CAP, dc).assign(tilt=tilt, azimuth=azimuth)
        walks[label] = day_ahead_walk(power, weather, location, model, tz, stated=not args.no_stated)
        tables[label] = report_day_ahead(walks[label], label)
    right, wrong = DESCRIPTIONS[0][0], DESCRIPTIONS[-1][0]
    print("\n== wrong vs right description, adapted + orientation: P50 nMAE ratio (target <= 1.05) ==")
    for _, _, name in HISTORY_BUCKETS:
        a, b = (tables.get(label, {}).get((name, "adapted + orientation")) for label in (wrong, right))
        if a and b:
            print(f"{name:>12} {a['nmae_%']:.2f} / {b['nmae_%']:.2f} = {a['nmae_%'] / b['nmae_%']:.3f}")
    if args.day_ahead_only:
        print(f"\n{time.time() - t0:.0f} s")
        return 0
    tau, table, train_rows, train_cap = fit_tau()
    print(f"\n== intraday decay fitted on out-of-fold forecasts of the training period 2011-04..2012-12 "
          f"({len(train_rows)} rows, leads 0-6 h): P50 nMAE % ==")
    print("  " + ", ".join(f"tau {k:g} h: {100 * v:.3f}" for k, v in table.items()) + f"  -> tau = {tau} h")
    report_intraday(train_rows, tau, train_cap, "training period out-of-fold (where tau was fitted)")
    location = data.site_location(CONFIG["site"], 1, CAP, CAP)
    cutoff = pd.Timestamp("2016-07-22T00:00:00Z")
    actuals = pd.DataFrame({"time": power.index, "power_kw": power.to_numpy()})
    analysis = weather.assign(issue_time=weather["valid_time"])  # intraday: the weather as analysed
    cal = adaptation.fit_calibration(location, analysis[analysis["valid_time"] < cutoff], actuals, model, cutoff)
    tuned = location.assign(capacity_dc_kw=cal["capacity_dc_kw"])
    later = power.index[power.index >= cutoff]
    later = later[later <= analysis["valid_time"].max()]
    f = features.feature_frame(tuned, analysis, later)
    p50 = forecast.forecast_quantiles(f, tuned, model, "ml", later[0])["p50"].to_numpy()
    issues = later[(later.minute == 0) & (f["solar_elevation"].to_numpy() > 5)]
    rows = intraday_rows(later, power.reindex(later).to_numpy(), p50, clear_physical(tuned, analysis, later), issues,
                         CAP)
    report_intraday(rows, tau, CAP, "SERF East 2016-07-22..10-13 (entered DC = AC, calibrated on 07-01..07-21)")
    print(f"\n{time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

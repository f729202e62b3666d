"""Plant calibration from hourly-mean actuals vs 15-min instants (issue 10, inputs users really have).

SERF East 2016 (``engine.data.load_serf_east_2016``; neither trained on nor held out), its 15-min
instantaneous samples and the same turned into hour-ending means (an inverter portal's export).
The plant is entered rightly and with issue 10's wrong description (``bench_adaptive.DESCRIPTIONS``).
At each cut-off (18:00 UTC) it is calibrated (``engine.adaptation.fit_calibration``) from

- the 15-min samples (``period_minutes`` 0),
- the hourly means with ``period_minutes`` 60 (compared with the model at the middle of the hour; the
  band residuals widened by the training data's within-hour deviations, model card ``within_period``),
- the same without the within-period term (the model without its ``within_period`` table: the former bands),
- 30-min means with ``period_minutes`` 30 (the 30-min deviations),
- the hourly means sent as instants (``period_minutes`` 0: read 30 min after their middle),

and its day-ahead forecasts of the 14 following local days (weather as issued the day before,
``bench_adaptive.stamp_day_ahead``) are scored against the 15-min measured power: daylight P50
nMAE (% of 5.5 kW), P10-P90 and P25-P75 coverage; the fitted tilt/azimuth and DC scale are printed.

Run: ``nice -n 10 .venv/bin/python bench/bench_actual_periods.py`` (~3 min on 2 idle cores).

``--decompose`` instead splits the gap between bands from hourly means and from 15-min samples (:func:`decompose`):
with the 15-min calibration's tuning fixed, band offsets are fitted from score sets that differ in one step
each (the residual of a mean against the forecast at the period's middle, against the mean of the forecast
at its instants, at each instant; the table's deviations or the plant's own true ones) and scored on the same
14 days (~2 min per cut-off and description).
"""

import argparse

import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_adaptive as ba  # noqa: E402
from engine import adaptation, conformal, data, features, forecast, modelio, resources, shading, tuning  # noqa: E402
from engine.quantiles import QUANTILE_COLUMNS  # noqa: E402

CUTOFFS = ("2016-08-05", "2016-08-20", "2016-09-10", "2016-09-25")
SCORED_DAYS = 14


def period_means(power, minutes=60):
    """15-min samples -> means of the period ENDING at each label (periods with all their samples only)."""
    r = power.resample(f"{minutes}min", label="right", closed="right")
    return r.mean()[r.count() == minutes // 15]


def scored(location, cal, weather, power, issue, model, tz):
    """Scores of the day-ahead runs of the ``SCORED_DAYS`` local days after ``issue`` (``bench_adaptive.scores``)."""
    days = pd.date_range(issue.tz_convert(tz).normalize().tz_localize(None) + pd.Timedelta(days=1),
                         periods=SCORED_DAYS, freq="D")
    ys, qs, day = [], [], []
    for d in days:
        run_issue = (d - pd.Timedelta(days=1) + pd.Timedelta(hours=ba.ISSUE_HOUR_UTC)).tz_localize("UTC")
        known = weather[weather["issue_time"] <= run_issue]
        local = pd.date_range(d, d + pd.Timedelta(days=1), freq="15min", inclusive="left").tz_localize(tz)
        times = pd.DatetimeIndex(local.tz_convert("UTC"))
        qs.append(ba.adapted_forecast(location, known, times, model, run_issue, cal))
        ys.append(power.reindex(times).to_numpy())
        day.append(features.feature_frame(location, known, times)["solar_elevation"].to_numpy() > 0)
    return ba.scores(np.concatenate(ys), np.concatenate(qs), np.concatenate(day))


def decomposition_scores(location, known, power, model, issue):
    """Score sets of the band offsets from the 15-min history before ``issue``, with the 15-min tuning fixed.

    The forward quantiles (``adaptation.forward_quantiles``) at every 15-min instant ``q_i``; for each full
    hour-ending hour of usable samples its mean ``Y``, the forecast at its middle ``q_m`` (:30), the plant's
    clear-sky physical power ``c_i`` (mean ``C``), the table's deviations ``d`` (model card ``within_period``,
    training data) and the plant's own ``y_i``. Returns the 15-min calibration and a dict name ->
    ``conformal.fit_band_offsets`` result.
    """
    cap = ba.CAP
    cal15 = adaptation.fit_calibration(location, known, pd.DataFrame(
        {"time": power.index, "power_kw": power.to_numpy(), "period_minutes": 0}), model, issue)
    p = power[(power.index < issue) & (power.index >= pd.DatetimeIndex(known["valid_time"]).min())]
    times = pd.DatetimeIndex(p.index)
    entered = features.feature_frame(location, known, times)
    q_kw, _ = adaptation.forward_quantiles(location, p, entered, known, times, model)
    flags = tuning.usable_samples(p, entered["physical_ac_kw"], entered["solar_elevation"], cap, min_elevation=0.0)
    ok = (~(flags["night"] | flags["missing"] | flags["outage"] | flags["stale"])).to_numpy() & np.isfinite(q_kw).all(
        axis=1)
    y, q = p.to_numpy() / cap, q_kw / cap
    lead, csi = adaptation.weather_lead_hours(known, times), entered["csi"].to_numpy()
    w = conformal.recency_weights(times, issue)
    tuned = ba.tuned_location(location, cal15)
    clear = adaptation.clear_sky_physical_kw(tuned, features.feature_frame(tuned, known, times)) / cap
    hours = pd.DataFrame({"end": times.ceil("60min"), "ok": ok, "i": np.arange(len(times))})
    full = hours.groupby("end")["ok"].transform("sum").to_numpy() == 4
    idx = hours["i"].to_numpy()[full].reshape(-1, 4)  # the 4 samples of each full hour, in time order
    mid = idx[:, 1]  # the hour's middle (:30)
    ybar, c_bar = y[idx].mean(axis=1), clear[idx].mean(axis=1)
    table = conformal.instant_deviations(ybar, c_bar, conformal.within_period_entry(model["within_period"], 60)[0])
    four = np.full(len(ybar), 4.0)
    flat = idx.ravel()
    shape = (ybar[:, None] * clear[idx] / c_bar[:, None]).ravel()
    return cal15, {
        "15-min instants (the reference)": conformal.fit_band_offsets(y[ok], q[ok], lead[ok], csi[ok], weights=w[ok]),
        "Y - q_m, no term (before the term)": conformal.fit_band_offsets(
            ybar, q[mid], lead[mid], csi[mid], weights=w[mid], counts=four),
        "Y - q_m + table (before this change)": conformal.fit_band_offsets(
            ybar, q[mid], lead[mid], csi[mid], weights=w[mid], within=table, counts=four),
        "Y - q_m + own y_i - Y beyond shape": conformal.fit_band_offsets(
            ybar, q[mid], lead[mid], csi[mid], weights=w[mid], within=y[idx] - ybar[:, None] * clear[idx] / c_bar[:, None],
            counts=four),
        "Y - q_m + own y_i - Y": conformal.fit_band_offsets(
            ybar, q[mid], lead[mid], csi[mid], weights=w[mid], within=y[idx] - ybar[:, None], counts=four),
        "Y - (q_:30 + q_:45)/2 + table": conformal.fit_band_offsets(  # the forecast at the samples' centre, :37.5
            ybar, (q[idx[:, 1]] + q[idx[:, 2]]) / 2, lead[mid], csi[mid], weights=w[mid], within=table, counts=four),
        "Y - mean(q_i) + table": conformal.fit_band_offsets(
            ybar, q[idx].mean(axis=1), lead[mid], csi[mid], weights=w[mid], within=table, counts=four),
        "Y c_i/C - q_i, no term": conformal.fit_band_offsets(shape, q[flat], lead[flat], csi[flat], weights=w[flat]),
        "Y c_i/C - q_i + table (served)": conformal.fit_band_offsets(
            shape, q[flat], lead[flat], csi[flat], weights=w[flat], within=np.repeat(table, 4, axis=0)),
    }


def decompose(model, weather, power, tz, cutoffs):
    """Print each score set's daylight coverage on the 14 days after each cut-off (15-min tuning, its skyline)."""
    print(f"{'entered':>6} {'cut-off':>10} {'band scores':>38} {'nMAE %':>7} {'P10-P90':>8} {'P25-P75':>8} "
          f"pooled offsets, % of AC")
    for label, dc, tilt, azimuth in ba.DESCRIPTIONS:
        location = data.site_location(ba.CONFIG["site"], 1, ba.CAP, dc).assign(tilt=tilt, azimuth=azimuth)
        for cut in cutoffs:
            issue = pd.Timestamp(f"{cut}T{ba.ISSUE_HOUR_UTC}:00:00Z")
            cal15, sets = decomposition_scores(location, weather[weather["issue_time"] <= issue], power, model, issue)
            tuned = ba.tuned_location(location, cal15)
            horizon = shading.served_horizon(None, {1: cal15.get("shading")})
            days = pd.date_range(issue.tz_convert(tz).normalize().tz_localize(None) + pd.Timedelta(days=1),
                                 periods=SCORED_DAYS, freq="D")
            qs, ys, day = {name: [] for name in sets}, [], []
            for d in days:
                run_issue = (d - pd.Timedelta(days=1) + pd.Timedelta(hours=ba.ISSUE_HOUR_UTC)).tz_localize("UTC")
                local = pd.date_range(d, d + pd.Timedelta(days=1), freq="15min", inclusive="left").tz_localize(tz)
                times = pd.DatetimeIndex(local.tz_convert("UTC"))
                f = features.feature_frame(tuned, weather[weather["issue_time"] <= run_issue], times, horizon=horizon)
                ys.append(power.reindex(times).to_numpy())
                day.append(f["solar_elevation"].to_numpy() > 0)
                for name, bands in sets.items():
                    adapt = {"location_ids": np.array([1]), "offsets": np.asarray(bands["offsets"])[None],
                             "k_meas": np.array([np.nan]), "tau_hours": np.array([0.0])}
                    qs[name].append(forecast.forecast_quantiles(f, tuned, model, "ml", run_issue, adaptation=adapt)[
                        list(QUANTILE_COLUMNS)].to_numpy())
            for name, bands in sets.items():
                s = ba.scores(np.concatenate(ys), np.concatenate(qs[name]), np.concatenate(day))
                print(f"{label.split(':')[0]:>6} {cut:>10} {name:>38} {s['nmae_%']:7.2f} {s['cov_p10_p90_%']:8.1f} "
                      f"{s['cov_p25_p75_%']:8.1f} {np.round(100 * np.asarray(bands['pooled']), 2).tolist()}", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--decompose", action="store_true", help="the score-set decomposition instead (decompose)")
    parser.add_argument("--cutoffs", nargs="+", default=list(CUTOFFS))
    args = parser.parse_args()
    model = modelio.load_model(resources.folder("models"), "global")
    tz = ba.CONFIG["site"]["timezone"]
    power, weather = data.load_serf_east_2016(1, ba.CONFIG["data"]["wind_speed_ms"])
    weather = ba.stamp_day_ahead(weather, tz)
    if args.decompose:
        decompose(model, weather, power, tz, args.cutoffs)
        return 0
    means, halves = period_means(power, 60), period_means(power, 30)
    bare = {**model, "within_period": None}  # the former bands: no within-period term
    sent = (("15-min instants", power, 0, model), ("hourly means, period 60", means, 60, model),
            ("hourly, 60, no within term", means, 60, bare), ("30-min means, period 30", halves, 30, model),
            ("hourly means as instants", means, 0, model))
    print(f"{'entered':>6} {'cut-off':>10} {'actuals':>26} {'tilt':>5} {'az':>5} {'dc':>6} {'nMAE %':>7} "
          f"{'P10-P90':>8} {'P25-P75':>8}")
    for label, dc, tilt, azimuth in ba.DESCRIPTIONS:
        location = data.site_location(ba.CONFIG["site"], 1, ba.CAP, dc).assign(tilt=tilt, azimuth=azimuth)
        for cut in args.cutoffs:
            issue = pd.Timestamp(f"{cut}T{ba.ISSUE_HOUR_UTC}:00:00Z")
            known = weather[weather["issue_time"] <= issue]
            for name, values, period, fitted_with in sent:
                actuals = pd.DataFrame({"time": values.index, "power_kw": values.to_numpy(), "period_minutes": period})
                cal = adaptation.fit_calibration(location, known, actuals, fitted_with, issue)
                o = cal.get("orientation") or {}
                s = scored(location, cal, weather, power, issue, model, tz)
                print(f"{label.split(':')[0]:>6} {cut:>10} {name:>26} {o.get('tilt', np.nan):5.0f} "
                      f"{o.get('azimuth', np.nan):5.0f} {cal.get('dc_scale', np.nan):6.3f} {s['nmae_%']:7.2f} "
                      f"{s['cov_p10_p90_%']:8.1f} {s['cov_p25_p75_%']:8.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

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
"""

import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_adaptive as ba  # noqa: E402
from engine import adaptation, data, features, modelio, resources  # noqa: E402

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


def main():
    model = modelio.load_model(resources.folder("models"), "global")
    tz = ba.CONFIG["site"]["timezone"]
    power, weather = data.load_serf_east_2016(1, ba.CONFIG["data"]["wind_speed_ms"])
    weather = ba.stamp_day_ahead(weather, tz)
    means, halves = period_means(power, 60), period_means(power, 30)
    bare = {**model, "within_period": None}  # the former bands: no within-period term
    sent = (("15-min instants", power, 0, model), ("hourly means, period 60", means, 60, model),
            ("hourly, 60, no within term", means, 60, bare), ("30-min means, period 30", halves, 30, model),
            ("hourly means as instants", means, 0, model))
    print(f"{'entered':>6} {'cut-off':>10} {'actuals':>26} {'tilt':>5} {'az':>5} {'dc':>6} {'nMAE %':>7} "
          f"{'P10-P90':>8} {'P25-P75':>8}")
    for label, dc, tilt, azimuth in ba.DESCRIPTIONS:
        location = data.site_location(ba.CONFIG["site"], 1, ba.CAP, dc).assign(tilt=tilt, azimuth=azimuth)
        for cut in CUTOFFS:
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

"""A plant's first two weeks: day-ahead bands and P50 from several starts of its history (issue 10).

The walk of ``bench/bench_adaptive.py`` (SERF East 2016, both entered descriptions, weather stamped
as issued the day before at 18:00 UTC, the calibration refitted before every run from the actuals
strictly before it, orientation tuning on), but the plant's history begins at each of several start
days (its actuals before the start are not sent): every start gives a plant's first 14 runs.
Scores (daylight, % of the 5.5 kW entered AC capacity) by days of history at the issue: 0-2 (no
calibration possible: ``adaptation.MIN_BAND_DAYS``), 3-6 (before the tuning's 7 days), 7-13. Forecasts:
global (no adaptation), "no inflation" (the calibration's offsets minus its day inflation), "kW untuned" (an
untuned calibration refitted with ``relative_untuned=False``, its offsets in kW: the rule before session 11)
and "adapted" (the service's).

Run: ``PYTHONPATH=. nice -n 10 .venv/bin/python bench/bench_first_days.py`` (``--starts 2016-07-01,...``,
``--days 14``, ``--description right|wrong``, ``--no-relative-untuned``: untuned offsets in kW for every
forecast, ``--no-prior-evidence``: the global bands' weight n0 whatever the
plant's scores say). On another checkout's engine: that checkout first on
``PYTHONPATH``.
"""

import argparse
import functools
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_adaptive as b  # noqa: E402
from engine import data, modelio, resources  # noqa: E402

STARTS = "2016-07-01,2016-07-16,2016-08-01,2016-08-16,2016-09-01,2016-09-16"
BUCKETS = ((0, 3, "0-2 d"), (3, 7, "3-6 d"), (7, 14, "7-13 d"), (3, 14, "3-13 d"))


def first_days(power, weather, location, model, tz, start, n_days):
    """:func:`bench_adaptive.day_ahead_walk` of a plant whose actuals begin at local day ``start``."""
    begin = pd.Timestamp(start).tz_localize(tz).tz_convert("UTC")
    days = pd.date_range(pd.Timestamp(start) + pd.Timedelta(days=1), periods=n_days - 1, freq="D")
    return b.day_ahead_walk(power[power.index >= begin], weather, location, model, tz, stated=False,
                            days=days).assign(start=start)


def report(rows, label):
    print(f"\n== entered {label}: daylight, % of {b.CAP} kW, {rows['start'].nunique()} starts ==")
    print(f"{'history':>8} {'forecast':>12} {'nMAE %':>7} {'CRPS %':>7} {'P10-P90 %':>9} {'P25-P75 %':>9} {'n':>6}")
    for lo, hi, name in BUCKETS:
        r = rows[(rows["history_days"] >= lo) & (rows["history_days"] < hi)]
        if not len(r):
            continue
        y, day = r["y"].to_numpy(), r["day"].to_numpy()
        for tag, prefix in (("global", "g_"), ("no inflation", "f_"), ("kW untuned", "u_"), ("adapted", "a_")):
            s = b.scores(y, r[[prefix + c for c in b.COLS]].to_numpy(), day)
            print(f"{name:>8} {tag:>12} {s['nmae_%']:7.2f} {s['crps_%']:7.3f} {s['cov_p10_p90_%']:9.1f} "
                  f"{s['cov_p25_p75_%']:9.1f} {s['n']:6d}")
    for lo, hi, name in BUCKETS[:3]:
        early = rows[(rows["history_days"] >= lo) & (rows["history_days"] < hi)]
        for tag, prefix in (("kW untuned", "u_"), ("adapted", "a_")):
            print(f"{name} {tag} by start (nMAE % / P10-P90 % / P25-P75 %): " + "; ".join(
                "{} {nmae_%:.2f} / {cov_p10_p90_%:.1f} / {cov_p25_p75_%:.1f}".format(
                    start, **b.scores(r["y"].to_numpy(), r[[prefix + c for c in b.COLS]].to_numpy(),
                                      r["day"].to_numpy()))
                for start, r in early.groupby("start")))
    factor = rows.groupby(["start", "history_days"])["inflation"].first().unstack("history_days")
    print("day inflation factor by start (columns: history days):")
    print(factor.round(3).to_string())
    first = rows[rows["calibrated"]].groupby("start")["history_days"].min()
    scale = rows.groupby(["start", "history_days"])["dc_scale"].first().unstack("history_days")
    print("first calibrated run (history days) by start: " + ", ".join(f"{k} {v}" for k, v in first.items()))
    print("dc_scale served by start (columns: history days):")
    print(scale.round(3).to_string())


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--starts", default=STARTS, help="local start days, comma separated")
    parser.add_argument("--days", type=int, default=14, help="runs per start (the first has no history)")
    parser.add_argument("--description", choices=("right", "wrong"), help="walk only this description")
    parser.add_argument("--min-band-days", type=int, default=None,
                        help="adaptation.fit_calibration's min_band_days (default: the service's)")
    parser.add_argument("--n0", type=float, default=None,
                        help="adaptation.fit_calibration's band shrinkage n0 (default: engine.conformal.N0)")
    parser.add_argument("--no-day-inflation", action="store_true",
                        help="fit_calibration(day_inflation=False): the bands as fitted, not widened by sqrt(1 + 1/D) "
                             "(the rule before session 9; every walk also reports them as 'no inflation')")
    parser.add_argument("--no-prior-evidence", action="store_true",
                        help="fit_calibration(prior_evidence=False): the global bands weigh n0 whatever the plant's "
                             "scores say (the rule before session 8)")
    parser.add_argument("--no-relative-untuned", action="store_true",
                        help="fit_calibration(relative_untuned=False): untuned offsets in kW (the rule before session "
                             "11; every walk also reports them as 'kW untuned')")
    args = parser.parse_args()
    options = {k: v for k, v in (("min_band_days", args.min_band_days), ("n0", args.n0),
                                 ("relative_untuned", False if args.no_relative_untuned else None),
                                 ("prior_evidence", False if args.no_prior_evidence else None),
                                 ("day_inflation", False if args.no_day_inflation else None)) if v is not None}
    if options:
        b.adaptation.fit_calibration = functools.partial(b.adaptation.fit_calibration, **options)
        print(f"fit_calibration options {options}")
    t0 = time.time()
    model = modelio.load_model(resources.folder("models"), "global")
    tz = b.CONFIG["site"]["timezone"]
    power, weather = data.load_serf_east_2016(1, b.CONFIG["data"]["wind_speed_ms"])
    weather = b.stamp_day_ahead(weather, tz)
    for label, dc, tilt, azimuth in b.DESCRIPTIONS:
        if args.description and not label.startswith(args.description):
            continue
        location = data.site_location(b.CONFIG["site"], 1, b.CAP, dc).assign(tilt=tilt, azimuth=azimuth)
        rows = pd.concat([first_days(power, weather, location, model, tz, s, args.days)
                          for s in args.starts.split(",")], ignore_index=True)
        report(rows, label)
    print(f"\n{time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Does the plant tuning lag the season? Tunings on all history vs the last 14 days, and their next two weeks.

Plant-period and descriptions of ``bench/bench_adaptive.py`` (SERF East 2016, entered right or wrong;
the weather as analysed: only the tunings are compared, no forecast is issued). At weekly cutoffs
(18:00 UTC, 2016-07-16..10-08) the tuning of ``engine.adaptation.tune_description`` (orientation, DC
scale) is fitted on

- every actual before the cutoff (the service: equal weights),
- the same with the samples weighted by age (``--half-life``, ``engine.conformal.recency_weights``),
- the last 14 days before the cutoff only,
- the 7 days AFTER it (an oracle: what the next days would have fitted; analysis only),

with the service's minimum data except 5 days (a 7-day oracle window). Printed: tilt / azimuth (deg;
``-``: the stated orientation kept) / DC (kW) and the near-best tilt range. Then the served tuning
(all history) and the weighted one are scored on the 14 days after the cutoff: daylight P50 nMAE of the
global model on the tuned description (% of 5.5 kW), and measured / physical and measured / P50 on clear
samples (weather clear-sky index >= 0.9, sun above 15 deg) before and after solar noon: where the
tuned plane's shape misses (docs/model.md "Recency-weighted tuning").

Run: ``.venv/bin/python bench/bench_tuning_lag.py wrong`` (``right``; ``--half-life 14``).
"""

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_adaptive as b  # noqa: E402

from engine import adaptation, conformal, data, features, forecast, modelio, resources, tuning  # noqa: E402

WINDOW_MIN_DAYS = 5
"""Minimum days of the windowed fits (the 7-day oracle could not reach the service's 7)."""


def tuned(loc, power, entered, weather, lo, hi, half_life_days=None, min_days=WINDOW_MIN_DAYS):
    """``tune_description`` on the actuals in [lo, hi), cutoff hi."""
    sel = np.asarray((power.index >= lo) & (power.index < hi))
    return adaptation.tune_description(loc, power[sel], entered[sel], weather, power.index[sel], hi,
                                       min_days=min_days, half_life_days=half_life_days)


def described(t, stated_dc):
    o = t["orientation"]
    dc = t["fit"]["dc_scale"] * stated_dc
    plane = f"{o['tilt']:.0f}/{o['azimuth']:.0f}" if o["ok"] else "-/-"
    near = o["diagnostics"].get("near_best_tilt")
    return f"{plane}/{dc:.2f}" + (f" [{near[0]:.0f}..{near[1]:.0f}]" if near else "")


def next_weeks(t, power, weather, model, cutoff):
    """nMAE % and clear am / pm measured / physical and measured / P50 of a tuning on the 14 days after ``cutoff``."""
    later = power[(power.index >= cutoff) & (power.index < cutoff + pd.Timedelta(days=14))]
    f = features.feature_frame(t["location"], weather, later.index)
    p50 = forecast.forecast_quantiles(f, t["location"], model, "ml", cutoff)["p50"].to_numpy()
    y, phys = later.to_numpy(), f["physical_ac_kw"].to_numpy()
    day = f["solar_elevation"].to_numpy() > 0
    clear = (f["csi"].to_numpy() >= 0.9) & (f["solar_elevation"].to_numpy() > 15)
    pm = f["solar_azimuth"].to_numpy() > 180
    out = [f"nMAE {100 * np.mean(np.abs(y - p50)[day]) / b.CAP:5.2f}"]
    for name, s in (("am", clear & ~pm), ("pm", clear & pm)):
        out.append(f"{name} n {s.sum():3d} y/phys {y[s].sum() / phys[s].sum():.3f} "
                   f"y/P50 {y[s].sum() / p50[s].sum():.3f}")
    return " ".join(out)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("description", choices=("right", "wrong"))
    parser.add_argument("--half-life", type=float, default=conformal.HALF_LIFE_DAYS,
                        help="days, of the weighted fit (default: the bands' conformal.HALF_LIFE_DAYS)")
    args = parser.parse_args()
    model = modelio.load_model(resources.folder("models"), "global")
    power, weather = data.load_serf_east_2016(1, b.CONFIG["data"]["wind_speed_ms"])
    weather = weather.assign(issue_time=weather["valid_time"])  # the tunings only: the weather as analysed
    label, dc, tilt, azimuth = next(d for d in b.DESCRIPTIONS if d[0].startswith(args.description))
    loc = data.site_location(b.CONFIG["site"], 1, b.CAP, dc).assign(tilt=tilt, azimuth=azimuth)
    power = power.dropna()
    power = power[(power.index >= weather["valid_time"].min()) & (power.index <= weather["valid_time"].max())]
    entered = features.feature_frame(loc, weather, power.index)
    start = power.index[0]
    print(f"entered {label}; tilt/azimuth/DC kW [near-best tilt]; weighted: half-life {args.half_life:g} d")
    cutoffs = pd.date_range("2016-07-16", "2016-10-08", freq="7D", tz="UTC") + pd.Timedelta(hours=b.ISSUE_HOUR_UTC)
    for c in cutoffs:
        served = tuned(loc, power, entered, weather, start, c, min_days=tuning.MIN_DAYS)
        weighted = tuned(loc, power, entered, weather, start, c, args.half_life, tuning.MIN_DAYS)
        last = tuned(loc, power, entered, weather, c - pd.Timedelta(days=14), c)
        oracle = tuned(loc, power, entered, weather, c, c + pd.Timedelta(days=7))
        print(f"{c.date()} all {described(served, dc)} | weighted {described(weighted, dc)} | last 14 d "
              f"{described(last, dc)} | next 7 d {described(oracle, dc)}", flush=True)
        if c + pd.Timedelta(days=14) <= power.index[-1]:
            for name, t in (("all", served), ("weighted", weighted)):
                print(f"    next 14 d, {name:>8}: {next_weeks(t, power, weather, model, c)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

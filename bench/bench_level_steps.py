"""Can a smaller level change (x0.75..x0.85: one inverter of four, a soiling step, a partial string loss) be told
from the season on real data? (issue 10, ``engine.tuning.level_changes``.)

The daily clear-sky level of ``engine.tuning.fit_tuning`` (measured / modelled power on clear, usable, unclipped
samples, days with ``LEVEL_DAY_HOURS`` of them; its daily median) is computed once per plant-period and
description (the fitted orientation is not applied: the entered one's physical power), then every history of a
daily walk (cutoff every local day, the last ``--max-days`` days, at least ``--min-history``) is searched:

* false steps: histories of UNCHANGED real data where a rule finds a step (any; the share of histories);
* found steps: the same histories with the measured power multiplied by a factor from a day in the history's
  middle third on (a known transformation of real data): found when the rule's last step is within
  ``--tolerance`` days of it and its factor within 10 % of the imposed one.

Rules (``engine.tuning.level_changes`` with other parameters): ``global`` alone, the medians of the whole sides
(``min_days`` each at least) differ by ``factor`` (main's rule: x1.3, 5 days); ``sharp`` alone, the medians of
``sharp_days`` or more each side differ by ``sharp_factor``, the ``sharp_days`` days either side of the split too,
and a share ``sharp_agree`` of them lie on their own side of the midpoint (a step is sharp, a season's drift is
not); ``engine``: the defaults, either test.

Plant-periods: SERF East 2016 (07-01..10-13, bench/bench_adaptive.py's) and the training plant (PVDAQ system 50)
in 2012, never the 2013 hold-out (a rule chosen on it would be fitted to it); descriptions right (DC 1.2 x AC,
tilt 45, azimuth 158) and wrong (DC = AC, tilt 30, azimuth 180), as in bench_adaptive.py.

Run: ``PYTHONPATH=. nice -n 10 .venv/bin/python bench/bench_level_steps.py``.
"""

import argparse
import sys

import numpy as np
import pandas as pd

from engine import data, features, training, tuning

CONFIG = training.load_config()
TZ = CONFIG["site"]["timezone"]
DESCRIPTIONS = {"right": (1.2, CONFIG["site"]["tilt"], CONFIG["site"]["azimuth"]), "wrong": (1.0, 30.0, 180.0)}


def daily_levels(power, weather, location):
    """Local day -> log clear-sky level on ``engine.tuning.fit_tuning``'s samples (``tuning.level_samples``)."""
    f = features.feature_frame(location, weather, power.index)
    cap = float(location["capacity_ac_kw"].iloc[0])
    phys = f["physical_ac_kw"].to_numpy(dtype=float)
    y = power.to_numpy(dtype=float)
    flags = tuning.usable_samples(power, phys, f["solar_elevation"].to_numpy(dtype=float), cap)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = y / phys
    clear = tuning.clear_samples(ratio, phys, f["solar_elevation"].to_numpy(dtype=float), f["csi"].to_numpy(dtype=float),
                                 cap)
    day = np.asarray(power.index.tz_convert(TZ).tz_localize(None).normalize())
    counted = tuning.level_samples(flags["usable"].to_numpy() & clear, phys, cap, day,
                                   tuning.sample_minutes(power.index))
    return pd.Series(np.log(np.maximum(ratio[counted], 1e-6)), index=day[counted]).groupby(level=0).median()


def find_steps(levels, **rule):
    """``engine.tuning.level_changes`` on daily log levels (one value per day): [(first day, factor)]."""
    return [(c["first_day"], c["factor"]) for c in tuning.level_changes(levels.index, np.exp(levels.to_numpy()),
                                                                           **rule)]


def plant_periods():
    """(name, power kW, weather, AC capacity kW, location_id) of the real plant-periods."""
    power, weather = data.load_serf_east_2016(1, CONFIG["data"]["wind_speed_ms"])
    yield "SERF East 2016-07..10", power, weather, 5.5, 1
    train = data.load_serf_east(CONFIG)
    for year in ("2012",):  # never the 2013 hold-out: the rule is chosen here
        p = train["power"][train["power"].index.year == int(year)]
        step = pd.Timedelta(minutes=tuning.sample_minutes(p.index))
        p = p.reindex(pd.date_range(p.index.min(), p.index.max(), freq=step))  # dropped samples as NaN: regular
        yield f"system 50 {year}", p, train["weather"], float(train["capacity_ac_kw"]), 50


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--max-days", type=int, default=90)
    ap.add_argument("--min-history", type=int, default=21)
    ap.add_argument("--tolerance", type=int, default=3)
    ap.add_argument("--every", type=int, default=3, help="cutoff every this many days")
    args = ap.parse_args(argv)
    rules = {"x1.30 d5 alone (main)": dict(sharp_factor=None),
             "engine: x1.30 d5, or sharp x1.15 d10 0.85": {}}
    for f in (1.15, 1.2):
        rules[f"global x{f:.2f} d7 alone"] = dict(min_days=7, factor=f, sharp_factor=None)
        for d, agree in ((7, 0.85), (7, 0.9), (10, 0.8), (10, 0.85), (10, 0.9)):
            rules[f"sharp x{f:.2f} d{d} {agree} alone"] = dict(factor=np.inf, sharp_factor=f, sharp_days=d,
                                                               sharp_agree=agree)
    imposed = (0.75, 0.8, 0.85, 1.2, 1.25)
    false = {(r, desc): [0, 0] for r in rules for desc in DESCRIPTIONS}
    found = {(r, m, desc): [0, 0] for r in rules for m in imposed for desc in DESCRIPTIONS}
    largest = {}
    for name, power, weather, cap, lid in plant_periods():
        for desc, (dc, tilt, az) in DESCRIPTIONS.items():
            loc = data.site_location(CONFIG["site"], lid, cap, dc * cap).assign(tilt=tilt, azimuth=az)
            levels = daily_levels(power, weather, loc)
            days = levels.index
            largest[(name, desc)] = 0.0
            for end in range(args.min_history, len(days) + 1, args.every):
                hist = levels.iloc[max(0, end - args.max_days):end]
                for r, kw in rules.items():
                    false[(r, desc)][0] += bool(find_steps(hist, **kw))
                    false[(r, desc)][1] += 1
                s = find_steps(hist, factor=1.0001, sharp_factor=None)
                if s:
                    largest[(name, desc)] = max(largest[(name, desc)], max(abs(np.log(f)) for _, f in s[:1]))
                n = len(hist)
                at = hist.index[n // 3 + (end % max(n // 3, 1))]  # a day in the middle third, moving with the cutoff
                for m in imposed:
                    stepped = hist.where(hist.index < at, hist + np.log(m))
                    for r, kw in rules.items():
                        st = find_steps(stepped, **kw)
                        ok = bool(st) and abs((st[-1][0] - at).days) <= args.tolerance \
                            and abs(st[-1][1] / m - 1.0) <= 0.1
                        found[(r, m, desc)][0] += ok
                        found[(r, m, desc)][1] += 1
            print(f"{name:>22} {desc:>5}: {len(days)} level days; largest first split on unchanged data "
                  f"x{np.exp(largest[(name, desc)]):.3f}", flush=True)
    print(f"\nhistories with a step found (false: unchanged data; found: the imposed step, % of histories), "
          f"right / wrong description")
    print(f"{'rule':>36} | {'false steps':>13} | " + " | ".join(f"found x{m:<7}" for m in imposed))
    for r in rules:
        print(f"{r:>36} | {false[(r, 'right')][0]:3d} / {false[(r, 'wrong')][0]:<3d} of {false[(r, 'right')][1]:<3d} | "
              + " | ".join(f"{100 * found[(r, m, 'right')][0] / max(found[(r, m, 'right')][1], 1):5.0f} /"
                           f"{100 * found[(r, m, 'wrong')][0] / max(found[(r, m, 'wrong')][1], 1):3.0f}"
                           for m in imposed))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

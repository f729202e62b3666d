"""A careless client's actuals: what the plant adaptation learns from each common mistake (issue 10).

Plant-period: SERF East 2016 (``engine.data.load_serf_east_2016``, 15 min; neither trained on nor
held out), entered rightly (capacity_dc_kw = 1.2 x AC, true tilt 45 / azimuth 158, as
``bench/bench_adaptive.py``). Weather: the period's PSM3, stamped as issued the day before at
18:00 UTC. Every probe sends the plant's real measured power transformed by one mistake (a known
transformation of real data, nothing invented) for the history 2016-07-01..07-31; then:

1. ingest: ``engine.validation.validate_actuals`` with the plant's capacity (what
   ``POST /api/v1/actuals`` checks) -- accepted, or the 422 message;
2. calibration at the cutoff 2016-08-01 00:00 UTC (``engine.adaptation.fit_calibration``, what
   ``POST .../calibrate`` runs): ok / refused (code, reason), dc_scale, clip_kw, orientation;
3. the next 14 local days (2016-08-01..08-14) forecast day-ahead with that calibration (global
   forecast when refused) and scored against the plant's true power (as measured; curtailed, or
   with half its strings, where that is the plant's own lasting state): daylight P50 nMAE (% of
   the AC capacity), P10-P90 and P25-P75 coverage, and the mean daylight P10-P90 width (% of AC).

Run: ``PYTHONPATH=. nice -n 10 .venv/bin/python bench/bench_careless.py [probe ...]`` (default: every
probe; a probe is chosen by a part of its name). On another checkout's engine: run this file with that
checkout first on ``PYTHONPATH``.
"""

import sys
import time

import numpy as np
import pandas as pd

from bench.bench_adaptive import CAP, COLS, CONFIG, ISSUE_HOUR_UTC, TRUE_ORIENTATION, adapted_forecast, scores
from bench.bench_adaptive import stamp_day_ahead
from engine import adaptation, data, features, modelio, resources, validation

CUTOFF = pd.Timestamp("2016-08-01T00:00:00Z")
DAYS = pd.date_range("2016-08-01", "2016-08-14", freq="D")
TZ = CONFIG["site"]["timezone"]


def other_plant(power, weather, location, tilt, azimuth, size):
    """Measured power of a plant turned to (tilt, azimuth) and ``size`` x as large: x physical ratio, kW."""
    other = location.assign(tilt=tilt, azimuth=azimuth, capacity_dc_kw=size * location["capacity_dc_kw"])
    mine = features.feature_frame(location, weather, power.index)["physical_ac_kw"].to_numpy()
    theirs = features.feature_frame(other, weather, power.index)["physical_ac_kw"].to_numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        return power * np.where(mine > 0.02 * CAP, theirs / np.where(mine > 0, mine, 1.0), 0.0)


def probes(power, weather, location):
    """name -> (location as entered, actuals power Series sent[, the plant's power after the cutoff]).

    The scored truth is the plant's real power after the cutoff (SERF East as measured), except where the
    mistake is the plant's own state that persists: an export limit (curtailed after the cutoff too), half
    the strings off since mid-July (still off)."""
    hist = power[power.index < CUTOFF]
    local = hist.index.tz_convert(TZ)
    week = (local >= pd.Timestamp("2016-07-11", tz=TZ)) & (local < pd.Timestamp("2016-07-18", tz=TZ))
    late = local >= pd.Timestamp("2016-07-17", tz=TZ)
    stuck = hist.copy()
    frozen = (local >= pd.Timestamp("2016-07-12 12:00", tz=TZ)) & (local < pd.Timestamp("2016-07-15 12:00", tz=TZ))
    stuck_week = hist.copy()
    frozen_week = (local >= pd.Timestamp("2016-07-12 12:00", tz=TZ)) & (local < pd.Timestamp("2016-07-19 12:00", tz=TZ))
    stuck_week[frozen_week] = hist[frozen_week].iloc[0]
    stuck[frozen] = hist[frozen].iloc[0]
    in_w = location.assign(capacity_ac_kw=1000 * CAP, capacity_dc_kw=1000 * location["capacity_dc_kw"])
    return {
        "correct": (location, hist),
        "W sent as kW (x1000)": (location, hist * 1000.0),
        "kW for a plant entered in W": (in_w, hist),
        "kWh per 15 min sent as power (/4)": (location, hist / 4.0),
        "Wh per 15 min sent as power (x250)": (location, hist * 250.0),
        "export sign (negative)": (location, -hist),
        "outage: a week of zeros": (location, hist.where(~week, 0.0)),
        "stuck meter: 3 days of one value": (location, stuck),
        "stuck meter: 7 days of one value": (location, stuck_week),
        "curtailed at 3.5 kW, limit not entered": (location, hist.clip(upper=3.5), power.clip(upper=3.5)),
        "another plant (azimuth 240, tilt 20, 0.6 x)": (location,
                                                        other_plant(hist, weather, location, 20.0, 240.0, 0.6)),
        "half the strings off since 07-17, still off": (location, hist.where(~late, hist * 0.5), power * 0.5),
        "half the strings off until 07-17, back on": (location, hist.where(late, hist * 0.5)),
        "a fifth of the strings off since 07-17 (x0.8)": (location, hist.where(~late, hist * 0.8), power * 0.8),
        "soiled from 07-17, still (x0.85)": (location, hist.where(~late, hist * 0.85), power * 0.85),
    }


def main(names):
    t0 = time.time()
    model = modelio.load_model(resources.folder("models"), "global")
    power, weather = data.load_serf_east_2016(1, CONFIG["data"]["wind_speed_ms"])
    weather = stamp_day_ahead(weather, TZ)
    right = data.site_location(CONFIG["site"], 1, CAP, 1.2 * CAP).assign(tilt=TRUE_ORIENTATION[0],
                                                                        azimuth=TRUE_ORIENTATION[1])
    print(f"SERF East 2016, entered AC {CAP} kW, DC {1.2 * CAP:.1f} kW, tilt/azimuth {TRUE_ORIENTATION}; history "
          f"2016-07-01..{CUTOFF.date()}, scored {DAYS[0].date()}..{DAYS[-1].date()} against the true power")
    print(f"{'probe':>44} | {'ingest':>8} | {'calibration':>40} | {'dc_scale':>8} {'clip_kw':>7} {'tilt':>5} {'az':>5}"
          f" | {'nMAE %':>6} {'P10-P90 %':>9} {'P25-P75 %':>9} {'width %':>7}")
    for name, (loc, sent, *truth) in probes(power, weather, right).items():
        truth = truth[0] if truth else power
        if names and not any(n in name for n in names):
            continue
        frame = pd.DataFrame({"location_id": 1, "time": sent.index, "power_kw": sent.to_numpy()}).dropna()
        try:
            validation.validate_actuals(frame, [1], pd.Series({1: float(loc["capacity_ac_kw"].iloc[0])}))
            ingest = "accepted"
        except (ValueError, LookupError) as exc:
            ingest = "422"
            print(f"{name:>44} | {ingest:>8} | {str(exc)[:110]}")
            continue
        cal = adaptation.fit_calibration(loc, weather[weather["issue_time"] <= CUTOFF], frame, model, CUTOFF)
        state = "ok" if cal["ok"] else f"refused [{cal.get('code')}] {cal['reason']}"
        o = cal.get("orientation") or {}
        ys, qs, days = [], [], []
        for d in DAYS:
            issue = (d - pd.Timedelta(days=1) + pd.Timedelta(hours=ISSUE_HOUR_UTC)).tz_localize("UTC")
            times = pd.DatetimeIndex(pd.date_range(d, d + pd.Timedelta(days=1), freq="15min", inclusive="left")
                                     .tz_localize(TZ).tz_convert("UTC"))
            known = weather[weather["issue_time"] <= issue]
            q = adapted_forecast(loc, known, times, model, issue, cal)
            f = features.feature_frame(loc, known, times)
            ys.append(truth.reindex(times).to_numpy())
            qs.append(q * CAP / float(loc["capacity_ac_kw"].iloc[0]))  # a plant in W: its kW x 1000
            days.append(f["solar_elevation"].to_numpy() > 0)
        y_all, q_all, day_all = np.concatenate(ys), np.concatenate(qs), np.concatenate(days)
        s = scores(y_all, q_all, day_all)
        scored = day_all & np.isfinite(y_all)
        width = 100 * float(np.mean(q_all[scored, 4] - q_all[scored, 0])) / CAP  # daylight P10-P90, % of AC
        tilt = f"{o['tilt']:.0f}" if o.get("ok") else "-"
        az = f"{o['azimuth']:.0f}" if o.get("ok") else "-"
        clip = "-" if not cal["ok"] or cal["clip_kw"] is None else f"{cal['clip_kw']:.2f}"
        scale = f"{cal['dc_scale']:.3f}" if cal["ok"] else "-"
        print(f"{name:>44} | {ingest:>8} | {state[:40]:>40} | {scale:>8} {clip:>7} {tilt:>5} {az:>5} | "
              f"{s['nmae_%']:6.2f} {s['cov_p10_p90_%']:9.1f} {s['cov_p25_p75_%']:9.1f} {width:7.2f}")
        if not cal["ok"]:
            print(f"{'':>44}   reason: {cal['reason']}")
        else:
            dg = cal["diagnostics"]
            print(f"{'':>44}   unbounded dc_scale {dg.get('dc_scale_unbounded', float('nan')):.3f}, rejected: "
                  + ", ".join(f"{k} {dg.get(k)}" for k in ("outage", "stale", "clipped", "usable", "days"))
                  + f"; level changes {dg.get('level_changes')}; band residual rows left out (before the "
                  f"last change) {dg['band_residuals'].get('present_state', {}).get('rows_left_out')}")
    print(f"{time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

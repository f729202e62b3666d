"""bench_adaptive.py's day-ahead walk as a client of a running service: plant adaptation through HTTP only.

The same plant-period, weather and descriptions as ``bench/bench_adaptive.py`` (SERF East
2016-07-01..10-13, 15 min; the period's PSM3 file stamped as issued at 18:00 UTC of the local day
before; entered rightly and wrongly, 5.5 kW AC), but every step goes through the HTTP API of a
pvcast started for the run (``bench/local_instance.py``: a scratch database ``pvcast_httpwalk_<random>``,
dropped at the end, ``serve run`` of serve_config.yaml on a new Ray head, loopback only, an API key):
``POST /api/v1/locations`` creates each plant, ``POST /api/v1/weather`` stores its weather with
the issue times, and every day D (issue time D 18:00 UTC):

1. ``POST /api/v1/actuals``: the measured power of the previous local day (``--actuals day``, what
   a client that uploads yesterday's meter data sends) or of everything before the issue time
   (``--actuals issue``, what bench_adaptive.py's in-process calibration sees);
2. policy ``daily``: ``POST /api/v1/locations/{id}/calibrate`` with cutoff D 18:00 UTC (what
   bench_adaptive.py does before every run); policy ``auto``: no call, the service's refit policy
   (configs/service.yaml ``adaptation.refit_after_daylight_hours``; ``--refit-after-hours`` overrides it);
3. ``POST /api/v1/forecast/generate`` (ml, issue D 18:00 UTC, 15 min, 35 h: the next local day's daylight,
   ``wait``), then ``GET /api/v1/forecast/location/{id}?run_id=`` (the values and the calibration
   version the run recorded) and that version's ``GET .../calibration?version=``.

A background refit (``auto``) runs after the actuals or the forecast that made it due (the service checks
its policy at both); a real client's next step is later, so the client waits (at most ``--refit-wait`` s)
until the refit is stored or the service logged that it skipped or failed it (its JSON events in the
``serve run`` log): after sending actuals, before the forecast, and after the forecast. All plants
(both descriptions x the ``--policy`` modes) are walked by one service at once, one request per
step for all of them.

Scored as bench_adaptive.py scores its "adapted + orientation" forecast (its functions, imported):
daylight of the next local day, P50 nMAE (% of 5.5 kW AC), CRPS, P10-P90 and P25-P75 coverage, by
history. Per plant: the calibration version of each run (when refits happened) and the age of the
calibration a run used (issue time - cutoff). ``--in-process`` also runs bench_adaptive.py's
own walk (``--no-stated``) on the same days instead, in this process (no service), for the figures beside.

Run (the walk is bounded by ``--days``; the whole period: 103 days)::

    .venv/bin/python bench/bench_adaptive_http.py [--policy auto daily] [--description right wrong]
        [--days 103] [--actuals day|issue] [--actual-period 0|30|60] [--refit-after-hours H]
        [--refit-wait 300] [--in-process] [--no-day-inflation] [--no-relative-untuned]
"""

import argparse
import asyncio
import json
import signal
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import asyncpg
import httpx
import numpy as np
import pandas as pd
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_actual_periods as bap  # noqa: E402
import bench_adaptive as ba  # noqa: E402
import service  # noqa: E402

from engine import adaptation, data, features, modelio, resources, store, validation  # noqa: E402

ROOT = service.ROOT
COLS = ba.COLS
#: issue 18:00 UTC + 35 h = 23:00 MDT of the next local day: the weather issued with the run ends at 23:45 local,
#: so 36 h (00:00 local of the day after) is refused ("weather covers ... not the forecast times"); the
#: missing 23:15..23:45 are night, outside the daylight score.
HORIZON_HOURS = 35
WALK_DAYS = pd.date_range("2016-07-02", "2016-10-12", freq="D")  # bench_adaptive.day_ahead_walk's days
REFIT_EVENTS = ("calibrated", "refit_skipped", "refit_failed")


def json_rows(frame):
    """API JSON rows of a frame: ISO-8601 times, NaN -> null."""
    out = frame.copy()
    for c in out.columns:
        if str(out[c].dtype).startswith("datetime64"):
            out[c] = out[c].map(pd.Timestamp.isoformat)
    return out.astype(object).where(out.notna(), None).to_dict(orient="records")


def plant_record(name, capacity_dc_kw, tilt, azimuth):
    """``POST /api/v1/locations`` record of bench_adaptive.py's plant as entered (``engine.data.site_location``)."""
    loc = data.site_location(ba.CONFIG["site"], 1, ba.CAP, capacity_dc_kw).assign(tilt=tilt, azimuth=azimuth)
    unused = ("export_limit_kw", "axis_azimuth", "max_angle", "gcr")  # none, or not a tracker: the defaults
    fields = [c for c in validation.LOCATION_COLUMNS if c not in unused]
    return {**{c: (v.item() if hasattr(v, "item") else v) for c, v in loc[fields].iloc[0].items()}, "name": name}


def check(response, what):
    if response.status_code != 200:
        raise RuntimeError(f"{what}: HTTP {response.status_code}: {response.text[:2000]}")
    return response.json()


def log_events(log_path, offset):
    """(pvcast JSON events of the ``serve run`` log after byte ``offset``, new offset)."""
    with open(log_path, "rb") as f:
        f.seek(offset)
        chunk = f.read()
    events = []
    for line in chunk.decode(errors="replace").splitlines():
        start = line.find('{"event"')
        if start >= 0:
            try:
                events.append(json.loads(line[start:]))
            except json.JSONDecodeError:
                pass
    return events, offset + len(chunk)


async def refit_counts(db_url, location_ids):
    """The service's own counts of the refit policy (``engine.store.refit_counts``)."""
    conn = await asyncpg.connect(db_url)
    try:
        return await store.refit_counts(conn, location_ids)
    finally:
        await conn.close()


def wait_refits(client, log_path, offset, auto_ids, ours, db_url, policy, refused, timeout):
    """Wait until every due refit of ``auto_ids`` ended (stored, skipped or failed); its log offset and outcome.

    Due: the service's own rule (``engine.adaptation.refits_due`` on ``engine.store.refit_counts``, ``policy`` =
    ``refused`` as the service keeps it). ``ours(calibration)``: whether a stored
    calibration is this refit's (its cutoff is the issue time, or its last actual the last one sent).
    ``policy``: ``engine.adaptation.refit_policy`` of the service's settings.
    """
    threshold, first_days, column = policy
    counts = asyncio.run(refit_counts(db_url, auto_ids)) if threshold else None
    due = set(adaptation.refits_due(counts, threshold, first_days, refused, column).tolist()) if threshold else set()
    at = {} if counts is None else dict(zip(counts["location_id"].tolist(),
                                            zip(counts[column].astype(float), counts["daylight_days"].astype(int))))
    outcome = {}
    deadline = time.monotonic() + timeout
    while due - set(outcome):
        events, offset = log_events(log_path, offset)
        for i in due - set(outcome):
            latest = client.get(f"/api/v1/locations/{i}/calibration")
            if latest.status_code == 200 and ours(latest.json()):
                outcome[i] = "calibrated"
                refused.pop(i, None)
        for e in events:
            if e.get("event") in REFIT_EVENTS and e.get("location_id") in due - set(outcome):
                outcome[e["location_id"]] = e["event"]
                if e["event"] == "refit_skipped":
                    refused[e["location_id"]] = at[e["location_id"]]
                else:
                    refused.pop(e["location_id"], None)
        if time.monotonic() > deadline:
            for i in due - set(outcome):
                outcome[i] = "not seen"
            break
        time.sleep(1)
    return offset, outcome


def calibrate(client, location_id, cutoff):
    """``POST .../calibrate`` at ``cutoff``: the stored calibration, or None when refused (422: too little data)."""
    r = client.post(f"/api/v1/locations/{location_id}/calibrate", json={"cutoff": cutoff.isoformat()})
    if r.status_code == 422 and r.json()["error"]["field"] == "actuals":
        return None
    return check(r, f"calibrate {location_id}")


def calibration_of(client, location_id, version, cache):
    """``GET .../calibration?version=`` (cached): the calibration a run used."""
    if version is None:
        return None
    if (location_id, version) not in cache:
        cache[(location_id, version)] = check(
            client.get(f"/api/v1/locations/{location_id}/calibration", params={"version": version}),
            f"calibration {location_id} v{version}")
    return cache[(location_id, version)]


def run_rows(values, times, y, day, history_days, cal, issue):
    """bench_adaptive.day_ahead_walk's rows of one run (``a_*``: the served forecast; global/PVWatts not run)."""
    q = values.set_index("valid_time").reindex(times)[COLS].to_numpy(dtype=float)
    if np.isnan(q[day]).any():
        raise RuntimeError(f"run issued {issue}: {int(np.isnan(q[day]).any(axis=1).sum())} daylight times missing")
    ok = bool(cal)
    orient = (cal or {}).get("orientation") or {}
    return pd.DataFrame({
        "valid_time": times, "history_days": history_days, "y": y, "day": day, "calibrated": ok, "base": np.nan,
        **{f"g_{c}": np.nan for c in COLS}, **{f"a_{c}": q[:, j] for j, c in enumerate(COLS)},
        **{f"n_{c}": np.nan for c in COLS},
        "dc_scale": cal["dc_scale"] if ok else np.nan, "clip_kw": (cal.get("clip_kw") or np.nan) if ok else np.nan,
        "tilt": orient.get("tilt", np.nan) if orient.get("ok") else np.nan,
        "azimuth": orient.get("azimuth", np.nan) if orient.get("ok") else np.nan,
        "orientation_reason": orient.get("reason"),
        "shaded_bins": int(np.count_nonzero(((cal or {}).get("shading") or {}).get("elevation", []))),
        "version": cal["version"] if ok else np.nan,
        "age_days": (issue - pd.Timestamp(cal["cutoff"])).total_seconds() / 86400 if ok else np.nan})


def walk(client, plants, power, weather, days, actuals_upto, log_path, db_url, policy, refit_wait, stop_at,
         out, log, sent_power=None, period_minutes=0):
    """Every day's client steps for every plant, into ``out`` {location_id: [rows]} and ``log`` (per-day timings).

    ``sent_power`` (default ``power``): the actuals sent, with ``period_minutes`` (0: instants; 30, 60: means of
    the period ending at the label); the forecasts are scored against ``power`` (15-min instants) either way.
    Stops before a day that would start after ``stop_at`` (``time.monotonic()``).
    """
    sent_power = power if sent_power is None else sent_power
    tz = ba.CONFIG["site"]["timezone"]
    ids = list(plants)
    auto_ids = [i for i, (_, policy) in plants.items() if policy == "auto"]
    daily_ids = [i for i, (_, policy) in plants.items() if policy == "daily"]
    entered = data.site_location(ba.CONFIG["site"], 1, ba.CAP, ba.CAP)
    first = power.index[0]
    sent_until, offset, refused, cache = first, 0, {}, {}
    pool = ThreadPoolExecutor(max(1, len(daily_ids)))
    for d in days:
        if time.monotonic() > stop_at:
            print(f"time budget spent: stopped before {d:%Y-%m-%d}", flush=True)
            break
        t0 = time.perf_counter()
        issue = (d - pd.Timedelta(days=1) + pd.Timedelta(hours=ba.ISSUE_HOUR_UTC)).tz_localize("UTC")
        local = pd.date_range(d, d + pd.Timedelta(days=1), freq="15min", inclusive="left").tz_localize(tz)
        times = pd.DatetimeIndex(local.tz_convert("UTC"))
        known = weather[weather["issue_time"] <= issue]
        if times.max() > known["valid_time"].max():
            continue
        upto = issue if actuals_upto == "issue" else (d - pd.Timedelta(days=1)).tz_localize(tz).tz_convert("UTC")
        new = sent_power[(sent_power.index >= sent_until) & (sent_power.index < upto)].dropna()
        if len(new):
            rows = pd.concat([pd.DataFrame({"location_id": i, "time": new.index, "power_kw": new.to_numpy(),
                                            "period_minutes": period_minutes}) for i in ids], ignore_index=True)
            check(client.post("/api/v1/actuals", json={"rows": json_rows(rows)}), f"actuals until {upto}")
            last = new.index.max()  # the service checks its refit policy when actuals arrive: wait for those refits
            offset, arrived = wait_refits(
                client, log_path, offset, auto_ids,
                lambda c: pd.Timestamp(c["diagnostics"].get("actuals_end", pd.NaT)) == last,
                db_url, policy, refused, refit_wait)
        else:
            arrived = {}
        sent_until = upto
        refits = dict(zip(daily_ids, pool.map(lambda i: calibrate(client, i, issue), daily_ids)))
        t1 = time.perf_counter()
        body = {"location_ids": ids, "issue_time": issue.isoformat(), "horizon_hours": HORIZON_HOURS,
                "resolution": "15min", "forecast_type": "ml", "wait": True, "include_forecast": False}
        answer = check(client.post("/api/v1/forecast/generate", json=body), f"generate {issue}")
        if answer["status"] != "succeeded":
            raise RuntimeError(f"generate {issue}: {answer}")
        t2 = time.perf_counter()
        y = power.reindex(times).to_numpy()
        day = features.feature_frame(entered, known, times)["solar_elevation"].to_numpy() > 0
        for i in ids:
            got = check(client.get(f"/api/v1/forecast/location/{i}", params={"run_id": answer["run_ids"][str(i)]}),
                        f"forecast of {i}")
            values = pd.DataFrame(got["rows"])
            values["valid_time"] = pd.to_datetime(values["valid_time"], utc=True)
            cal = calibration_of(client, i, got["run"]["calibration_version"], cache)
            out.setdefault(i, []).append(run_rows(values, times, y, day, (issue - first).days, cal, issue))
        offset, outcome = wait_refits(client, log_path, offset, auto_ids,
                                      lambda c: pd.Timestamp(c["cutoff"]) == issue, db_url, policy, refused, refit_wait)
        outcome = {**{i: f"{o} (on arrival)" for i, o in arrived.items()}, **outcome}
        t3 = time.perf_counter()
        log.append({"issue": issue, "actuals_until": upto, "calibrate_s": t1 - t0, "generate_s": t2 - t1,
                    "refit_wait_s": t3 - t2, "daily_refused": [i for i, c in refits.items() if c is None],
                    "auto_refits": outcome})
        print(f"{issue:%Y-%m-%d %H:%M} history {(issue - first).days:3d} d: calibrate {t1 - t0:5.1f} s, "
              f"generate {t2 - t1:4.1f} s, refit wait {t3 - t2:5.1f} s"
              + (f", auto refits {outcome}" if outcome else ""), flush=True)
    pool.shutdown()


def report_versions(rows, label):
    """When the plant's calibration changed (history day: version, cutoff) and the age of what runs used."""
    runs = rows.drop_duplicates("history_days")
    version = runs["version"].fillna(0).to_numpy()
    changed = np.flatnonzero(np.r_[True, version[1:] != version[:-1]])
    parts, k = [], 0
    while k < len(changed):  # a change at every run over a stretch is listed as one range
        j = k
        while j + 1 < len(changed) and changed[j + 1] == changed[j] + 1:
            j += 1
        first, last = runs.iloc[changed[k]], runs.iloc[changed[j]]
        name = "none" if np.isnan(first["version"]) else f"v{int(first['version'])}"
        parts.append(f"d{int(first['history_days'])}: {name}" if j == k or np.isnan(first["version"]) else
                     f"d{int(first['history_days'])}..d{int(last['history_days'])}: a new version every run "
                     f"(v{int(first['version'])}..v{int(last['version'])})")
        k = j + 1 if j > k and not np.isnan(first["version"]) else k + 1
    listed = ", ".join(parts)
    print(f"calibration version by history day (changes), {label}: {listed}")
    for lo, hi, name in ba.HISTORY_BUCKETS:
        sel = runs[(runs["history_days"] >= lo) & (runs["history_days"] < hi)]
        if len(sel):
            age = sel["age_days"]
            print(f"  {name:>9}: {len(sel)} runs, {int(sel['calibrated'].sum())} calibrated, calibration age "
                  f"mean {age.mean():.2f} d, max {age.max():.2f} d")


def in_process(power, weather, labels, days):
    """bench_adaptive.py's own walk (orientation tuned, no stated variant) on ``days``; its tables."""
    model = modelio.load_model(resources.folder("models"), "global")
    tz = ba.CONFIG["site"]["timezone"]
    for label, dc, tilt, azimuth in ba.DESCRIPTIONS:
        if label.split(":")[0] not in labels:
            continue
        location = data.site_location(ba.CONFIG["site"], 1, ba.CAP, dc).assign(tilt=tilt, azimuth=azimuth)
        rows = ba.day_ahead_walk(power, weather, location, model, tz, stated=False, days=days)
        ba.report_day_ahead(rows, f"{label} [in process, bench_adaptive.day_ahead_walk]")


def main():
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # `timeout`: stop the service, report the days walked
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--policy", nargs="+", choices=("auto", "daily"), default=["auto", "daily"])
    parser.add_argument("--description", nargs="+", choices=("right", "wrong"), default=["right", "wrong"])
    parser.add_argument("--days", type=int, default=len(WALK_DAYS), help="walk the first N days (default: all 103)")
    parser.add_argument("--actuals", choices=("day", "issue"), default="day",
                        help="actuals sent before each run: up to the end of the previous local day, or to the issue")
    parser.add_argument("--refit-after-hours", type=float, default=None,
                        help="adaptation.refit_after_daylight_hours of the service (default: configs/service.yaml)")
    parser.add_argument("--actual-period", type=int, choices=(0, 30, 60), default=0,
                        help="actuals sent as 15-min instants (0) or as means of the period ending at the label, "
                             "with period_minutes 30 or 60 (an inverter portal's export)")
    parser.add_argument("--refit-wait", type=float, default=300.0, help="longest wait for a due background refit, s")
    parser.add_argument("--in-process", action="store_true",
                        help="instead of the service: bench_adaptive.py's own walk on the same days, in this process")
    parser.add_argument("--budget", type=float, default=2400.0,
                        help="no new day after this many s of walking (the days walked are reported)")
    parser.add_argument("--until", default=None,
                        help="UTC wall-clock time (ISO-8601) after which no new day starts, as --budget")
    parser.add_argument("--report", action="store_true", help="only print the report of the saved walk of --out")
    parser.add_argument("--no-day-inflation", action="store_true",
                        help="the service's adaptation.day_inflation false: bands as fitted (the rule before session 9)")
    parser.add_argument("--no-relative-untuned", action="store_true",
                        help="the service's adaptation.relative_untuned false: an untuned calibration's band offsets in "
                             "kW like a tuned one's (the rule before session 11)")
    parser.add_argument("--out", default="out/bench",
                        help="folder of the service's logs and of the walk's rows (adaptive_http.pkl)")
    args = parser.parse_args()
    t0 = time.time()
    if args.report:
        saved = pd.read_pickle(ROOT / args.out / "adaptive_http.pkl")
        report(saved["plants"], saved["walks"], saved["log"])
        return 0
    budget = args.budget if args.until is None else min(
        args.budget, (pd.Timestamp(args.until) - pd.Timestamp.now(tz="UTC")).total_seconds())
    settings = yaml.safe_load((ROOT / "configs/service.yaml").read_text())
    adapt = {**({} if args.refit_after_hours is None else {"refit_after_daylight_hours": args.refit_after_hours}),
             **({"day_inflation": False} if args.no_day_inflation else {}),
             **({"relative_untuned": False} if args.no_relative_untuned else {})}
    overrides = {"adaptation": adapt} if adapt else None
    conf = {**settings["adaptation"], **(overrides or {}).get("adaptation", {})}
    days = WALK_DAYS[:args.days]
    power, weather = data.load_serf_east_2016(1, ba.CONFIG["data"]["wind_speed_ms"])
    weather = ba.stamp_day_ahead(weather, ba.CONFIG["site"]["timezone"]).drop(columns=["ghi_clear"])
    print(f"SERF East 2016 through HTTP: days {days[0]:%Y-%m-%d}..{days[-1]:%Y-%m-%d}; actuals sent up to "
          f"{'the issue time' if args.actuals == 'issue' else 'the end of the previous local day'}; "
          f"{f'period-ending means, period_minutes {args.actual_period}' if args.actual_period else '15-min instants'}; "
          f"refit_after_daylight_hours {conf['refit_after_daylight_hours']}, refit_first_after_days {conf.get('refit_first_after_days')}; "
          f"policies {args.policy}", flush=True)
    if args.in_process:
        in_process(power, weather, args.description, days)
        print(f"\n{time.time() - t0:.0f} s")
        return 0
    workdir = ROOT / args.out / "serve_adaptive_http"
    with service.scratch_database("pvcast_httpwalk") as (url, _), \
            service.serve_instance(url, workdir, service_settings=overrides) as (base, _):
        key = service.api_key(url, "bench", "read,write", "bench/bench_adaptive_http.py")
        with httpx.Client(base_url=base, timeout=1800, headers=service.bearer(key)) as client:
            records, kinds = [], []
            for label, dc, tilt, azimuth in ba.DESCRIPTIONS:
                for policy in args.policy:
                    if label.split(":")[0] in args.description:
                        records.append(plant_record(f"SERF East 2016 [{label.split(':')[0]}, {policy}]", dc, tilt,
                                                    azimuth))
                        kinds.append((label, policy))
            saved = check(client.post("/api/v1/locations", json={"locations": records}), "locations")["locations"]
            plants = {loc["location_id"]: kind for loc, kind in zip(saved, kinds)}
            frames = [weather.assign(location_id=i) for i in plants]
            cols = list(validation.WEATHER_COLUMNS)
            stored = check(client.post("/api/v1/weather", json={"rows": json_rows(pd.concat(frames)[cols])}),
                           "weather")
            print(f"{len(plants)} plants, {stored['rows']} weather rows stored ({time.time() - t0:.0f} s)", flush=True)
            out, log = {}, []
            try:
                walk(client, plants, power, weather, days, args.actuals, workdir / "serve.log", url,
                     adaptation.refit_policy(conf), args.refit_wait, time.monotonic() + budget, out, log,
                     bap.period_means(power, args.actual_period) if args.actual_period else power, args.actual_period)
            finally:  # a walk cut short (SIGTERM of `timeout`, an error) still reports its days
                walks = {i: pd.concat(r, ignore_index=True) for i, r in out.items()}
                pd.to_pickle({"plants": plants, "walks": walks, "log": log, "args": vars(args)},
                             ROOT / args.out / "adaptive_http.pkl")
    report(plants, walks, log)
    print(f"\n{time.time() - t0:.0f} s")
    return 0


def report(plants, walks, log):
    """The day-ahead tables (bench_adaptive.report_day_ahead) and calibration versions of every plant."""
    for i, (label, policy) in plants.items():
        if i not in walks:
            continue
        tag = f"{label} [HTTP, policy {policy}]"
        if walks[i]["calibrated"].any():
            ba.report_day_ahead(walks[i], tag)
        else:
            print(f"\n== {tag}: never calibrated ==")
        report_versions(walks[i], tag)
    steps = pd.DataFrame(log)
    if len(steps):
        print(f"\n{len(steps)} days; per day: calibrate {steps['calibrate_s'].median():.1f} s, generate "
              f"{steps['generate_s'].median():.1f} s, refit wait {steps['refit_wait_s'].median():.1f} s (medians)")


if __name__ == "__main__":
    sys.exit(main())

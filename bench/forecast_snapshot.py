"""Features and forecasts of a real-weather fleet, saved to compare two trees bit for bit (issue 12).

A speed change must not move a forecast by one bit. This script computes, in process and without a
database, the serving feature task (``serve_app.featuretask.feature_task``), the ml forecast
(``engine.adaptation.forecast_with_calibrations``), the physics forecast and the full training
feature frame with its ml forecast, for fleets of 1, 3 and 300 plants of ``bench/fleet.py`` (real
weather records of its four sites; plants of one to three planes, some behind a skyline; the
weather rows shuffled; in the 300-plant fleet one plant without weather, an error as data, and one
without wind speed) at two issue times, and pickles them. ``--compare`` checks two pickles for
exact equality (frames with ``check_exact``, dtypes included).

Run it with each tree's interpreter from that tree (imports come from the working directory)::

    (cd /work/main && .venv/bin/python /path/to/bench/forecast_snapshot.py --write /tmp/main.pkl)
    .venv/bin/python bench/forecast_snapshot.py --write /tmp/branch.pkl
    .venv/bin/python bench/forecast_snapshot.py --compare /tmp/main.pkl /tmp/branch.pkl
"""

import argparse
import pickle
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

ROOT = Path.cwd()
sys.path.insert(0, str(ROOT / "bench"))
import bench_stages  # noqa: E402
import fleet  # noqa: E402

FLEETS = ((1, 1), (3, 2), (300, bench_stages.SEED))  # (plants, seed)
ISSUES = (bench_stages.ISSUE, bench_stages.ISSUE + pd.Timedelta(hours=3, minutes=5))


def snapshot():
    """{(plants, issue): {name: frame or dict}} of the current tree."""
    from engine import adaptation, features, forecast, modelio
    from serve_app.featuretask import feature_task

    for s in fleet.SITES:
        fleet.site_weather(s, bench_stages.WEATHER_START, bench_stages.WEATHER_END)
    defaults = yaml.safe_load((ROOT / "configs/service.yaml").read_text())["location_defaults"]
    models = {"global": modelio.load_model(str(ROOT / "models"), "global")}
    out = {}
    for n, seed in FLEETS:
        plants = fleet.plants(n, seed, list(fleet.SITES))
        planes, plants = fleet.multi_plane(plants, seed)
        sky = fleet.skylines(plants, seed)
        ids = np.arange(100, 100 + n)
        name_id = dict(zip(plants["name"], ids))
        loc = pd.DataFrame({**{k: [v] * n for k, v in defaults.items()}, **plants.drop(columns=["site"])})
        loc["location_id"], loc["model_id"] = ids, "global"
        planes = planes.assign(location_id=planes["name"].map(name_id)).drop(columns=["name"])
        sky = sky.assign(location_id=sky["name"].map(name_id)).drop(columns=["name"])
        weather = bench_stages.fleet_weather(ids, plants["site"].to_numpy())
        weather = weather.sample(frac=1.0, random_state=seed).reset_index(drop=True)  # any row order
        if n >= 10:  # a plant without weather (an error as data), a plant without wind speed
            weather = weather[weather["location_id"] != ids[5]].reset_index(drop=True)
            weather.loc[weather["location_id"] == ids[6], "wind_speed"] = np.nan
        for issue in ISSUES:
            times = forecast.forecast_times(issue, 48, 15)
            feats, locs, errors, lookback, _ = feature_task(
                loc, weather, times, planes, sky, lookback_times=times[:8] - pd.Timedelta(hours=3),
                lookback_ids=ids[:2].tolist(), wind_speed_ms=1.0)
            frame, _ = adaptation.forecast_with_calibrations(
                feats, locs, models, "ml", issue, 1, {}, pd.DataFrame(columns=["location_id", "time", "power_kw"]))
            physics, _ = forecast.forecast_batch(feats, locs, models, "physics", issue, 1)
            full = None if errors else features.feature_frame(loc, weather, times, planes, sky)
            out[(n, str(issue))] = {
                "features": feats, "errors": errors, "lookback": lookback, "ml": frame, "physics": physics,
                "full": full, "full_ml": None if full is None else forecast.forecast_batch(
                    full, locs, models, "ml", issue, 1)[0]}
    return out


def compare(a, b):
    """Raise AssertionError at the first difference of two snapshots; the number of cases compared."""
    assert a.keys() == b.keys(), (sorted(a), sorted(b))
    for key in a:
        for name, x in a[key].items():
            y = b[key][name]
            if isinstance(x, pd.DataFrame):
                pd.testing.assert_frame_equal(x, y, check_exact=True, obj=f"{key} {name}")
            else:
                assert x == y, (key, name, x, y)
    return len(a)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--write", metavar="PATH", help="pickle this tree's snapshot to PATH")
    group.add_argument("--compare", nargs=2, metavar=("A", "B"), help="check two snapshots equal")
    args = parser.parse_args()
    if args.write:
        data = snapshot()
        Path(args.write).write_bytes(pickle.dumps(data))
        print(f"wrote {args.write}: " + ", ".join(f"{n} plants at {i}: {len(v['ml'])} rows, {len(v['errors'])} "
                                                  f"errors" for (n, i), v in data.items()))
    else:
        a, b = (pickle.loads(Path(p).read_bytes()) for p in args.compare)
        print(f"identical: {compare(a, b)} cases (features, lookback, ml and physics forecasts, full frame)")

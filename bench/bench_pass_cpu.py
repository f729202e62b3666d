"""CPU of a forecast pass's feature task and predict, in process, for one plant at a time or one large batch.

No database, no Ray: the code the Forecaster runs in its executor (``serve_app.featuretask.feature_task``,
``engine.adaptation.forecast_with_calibrations``, ``serve_app.forecaster.clipped_by_location``) on plants
of ``bench/fleet.py`` with their sites' real weather records (48 h x 15 min from ``bench/bench_stages.py``'s
issue time). ``--plants 1``: ``--calls`` single-plant passes over 40 plants in turn, after one warm call each
(every plant's Linke cell read once), medians and means of ``time.process_time`` per call. ``--plants N``:
one batch of N plants (one to three planes, skylines), ``--rounds`` times.

Run it with each tree's interpreter from that tree (imports come from the working directory) to compare::

    (cd /work/main && .venv/bin/python /path/to/bench/bench_pass_cpu.py --plants 1)
    .venv/bin/python bench/bench_pass_cpu.py --plants 1
"""

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

ROOT = Path.cwd()
sys.path.insert(0, str(ROOT / "bench"))
import bench_stages  # noqa: E402
import fleet  # noqa: E402


def fleet_inputs(n, seed, multi):
    """(locations, weather, planes, horizon) of ``n`` plants of ``bench/fleet.py``."""
    for s in fleet.SITES:
        fleet.site_weather(s, bench_stages.WEATHER_START, bench_stages.WEATHER_END)
    defaults = yaml.safe_load((ROOT / "configs/service.yaml").read_text())["location_defaults"]
    plants = fleet.plants(n, seed, list(fleet.SITES))
    planes = horizon = None
    ids = np.arange(1, n + 1)
    if multi:
        planes, plants = fleet.multi_plane(plants, seed)
        horizon = fleet.skylines(plants, seed)
        name_id = dict(zip(plants["name"], ids))
        planes = planes.assign(location_id=planes["name"].map(name_id)).drop(columns=["name"])
        horizon = horizon.assign(location_id=horizon["name"].map(name_id)).drop(columns=["name"])
    loc = pd.DataFrame({**{k: [v] * n for k, v in defaults.items()}, **plants.drop(columns=["site"])})
    loc["location_id"] = ids
    return loc, bench_stages.fleet_weather(ids, plants["site"].to_numpy()), planes, horizon


def main(args):
    from engine import adaptation, features, forecast, modelio
    from serve_app.featuretask import feature_task
    from serve_app.forecaster import clipped_by_location

    warnings.simplefilter("ignore")  # main's tree warns per call (pandas deprecations): not this script's business
    models = {"global": modelio.load_model(str(ROOT / "models"), "global")}
    times = forecast.forecast_times(bench_stages.ISSUE, 48, 15)

    def one_pass(loc, weather, planes=None, horizon=None):
        c = time.process_time()
        feats, locs, *_ = feature_task(loc, weather, times, planes, horizon, wind_speed_ms=1.0)
        f = time.process_time() - c
        c = time.process_time()
        frame, _ = adaptation.forecast_with_calibrations(feats, locs, models, "ml", bench_stages.ISSUE, 1, {})
        p = time.process_time() - c
        c = time.process_time()
        clipped_by_location(frame, locs)
        return f, p, time.process_time() - c

    if args.plants == 1:
        loc, weather, _, _ = fleet_inputs(40, args.seed, False)
        weather = weather[list(features.WEATHER_COLUMNS)]
        cases = [(loc.iloc[[i]].reset_index(drop=True),
                  weather[weather["location_id"] == i + 1].reset_index(drop=True)) for i in range(40)]
        for case in cases:
            one_pass(*case)
        ms = np.array([one_pass(*cases[k % 40]) for k in range(args.calls)]) * 1e3
        print(f"single plant, {args.calls} calls over 40 plants (warm), CPU ms per call, median / mean: "
              + ", ".join(f"{name} {np.median(ms[:, i]):.2f} / {ms[:, i].mean():.2f}"
                          for i, name in enumerate(("features", "predict", "clipped"))))
        return
    inputs = fleet_inputs(args.plants, args.seed, True)
    for r in range(args.rounds):
        f, p, _ = one_pass(*inputs)
        print(f"{args.plants} plants, round {r}: features {f:.2f} s CPU, predict {p:.2f} s CPU", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plants", type=int, default=1, help="1: single-plant passes; N: one batch of N plants")
    parser.add_argument("--calls", type=int, default=400, help="single-plant passes measured")
    parser.add_argument("--rounds", type=int, default=3, help="repeats of the batch")
    parser.add_argument("--seed", type=int, default=3)
    main(parser.parse_args())

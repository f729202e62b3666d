"""The day-ahead walk of ``bench/bench_adaptive.py`` for several band half-lives, in one process.

Only the weights of the band residuals depend on the half-life
(``engine.conformal.recency_weights``); the forward quantiles
(``engine.adaptation.forward_quantiles``, 4 tunings per calibration) do not,
so they are memoised by (entered description, history) and the later walks
reuse the first's; everything else (served tuning, bands, intraday blend,
forecasts, scores) is recomputed per walk exactly as ``bench_adaptive.py``
does. The walk with ``none`` (equal weights) reproduces the figures of
``bench_adaptive.py`` before recency weighting; the one with the default
half-life those of ``bench_adaptive.py`` now.

Run: ``.venv/bin/python bench/bench_band_half_life.py wrong 14 30 none`` (``right`` or ``wrong``;
half-lives in days, ``none``: equal weights).
"""

import argparse
import functools
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_adaptive as b  # noqa: E402

from engine import adaptation, data, modelio, resources  # noqa: E402


def memoised(forward):
    """``forward`` memoised by the entered description and the history's rows (first, last, count)."""
    cache = {}

    def cached(loc, power, entered, weather, times, model, *args, **kwargs):
        key = (float(loc.loc[0, "tilt"]), float(loc.loc[0, "azimuth"]), float(loc.loc[0, "capacity_dc_kw"]),
               len(times), times[0], times[-1], args, tuple(sorted(kwargs.items())))
        if key not in cache:
            cache[key] = forward(loc, power, entered, weather, times, model, *args, **kwargs)
        return cache[key]

    return cached


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("description", choices=("right", "wrong"))
    parser.add_argument("half_lives", nargs="+", help="days, or none (equal weights)")
    args = parser.parse_args()
    fit = adaptation.fit_calibration
    adaptation.forward_quantiles = memoised(adaptation.forward_quantiles)
    model = modelio.load_model(resources.folder("models"), "global")
    tz = b.CONFIG["site"]["timezone"]
    power, weather = data.load_serf_east_2016(1, b.CONFIG["data"]["wind_speed_ms"])
    weather = b.stamp_day_ahead(weather, tz)
    label, dc, tilt, azimuth = next(d for d in b.DESCRIPTIONS if d[0].startswith(args.description))
    location = data.site_location(b.CONFIG["site"], 1, b.CAP, dc).assign(tilt=tilt, azimuth=azimuth)
    for text in args.half_lives:
        h = None if text == "none" else float(text)
        t0 = time.time()
        adaptation.fit_calibration = functools.partial(fit, half_life_days=h)
        rows = b.day_ahead_walk(power, weather, location, model, tz, stated=False)
        b.report_day_ahead(rows, f"{label} | band half-life {h} d")
        print(f"walk with half-life {h}: {time.time() - t0:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

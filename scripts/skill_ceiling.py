"""How far can P50 skill over the physical baseline go with the shipped data?

Reproduces the figures behind docs/model.md "Why the 20 % skill target is out of
reach": every number is the P50 daylight nMAE skill against the scaled physical
baseline, single CatBoost fits (no conformal offsets, which leave the P50
skill unchanged: 15.1 % with or without), same rows as ``pvcast evaluate``.

Nothing here is fitted on 2013 except where a line says "diagnostic, hold-out
rows removed from BOTH methods", which only drops rows from the scoring.

Run: ``.venv/bin/python scripts/skill_ceiling.py`` (about 7 min on 2 cores).
"""

import copy
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import minimize_scalar

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine import data, features, quantiles, training  # noqa: E402

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "training.yaml"


def extra_features(f, times, day_key):
    """Candidate features beyond MODEL_FEATURES (computed on the training frame).

    Returns
    -------
    DataFrame
        ``csi_day`` (daily clear-sky index of the local day), ``phase``
        (minutes after the last PSM3 instant), ``temp_max_24h`` /
        ``temp_min_24h`` / ``csi_mean_24h`` (trailing 24 h, needs weather
        history before the issue time in serving), ``ghi``.
    """
    ghi = f["ghi_clear"].to_numpy() * f["csi"].to_numpy()
    sums = pd.DataFrame({"d": day_key, "ghi": ghi, "clr": f["ghi_clear"].to_numpy()}).groupby("d").transform("sum")
    temp = pd.Series(f["temp_air"].to_numpy(), index=times)
    day_csi = pd.Series(f["csi"].to_numpy() * (f["solar_elevation"].to_numpy() > 0), index=times)
    return pd.DataFrame({
        "csi_day": (sums["ghi"] / sums["clr"]).to_numpy(),
        "phase": np.asarray(times.minute % 30),
        "temp_max_24h": temp.rolling("24h").max().to_numpy(),
        "temp_min_24h": temp.rolling("24h").min().to_numpy(),
        "csi_mean_24h": day_csi.rolling("24h").mean().to_numpy(),
        "ghi": ghi,
    })


def p50(config, x, target, fit_rows, predict_rows):
    """P50 (fraction of capacity) of one MultiQuantile fit on ``target``."""
    model = training.fit_quantile_model(x[fit_rows], target[fit_rows], config)
    return quantiles.predict_normalised(model, x[predict_rows])[:, 2]


def nmae(pred, y):
    """Daylight nMAE of a forecast clipped to [0, 1] of capacity."""
    return float(np.mean(np.abs(np.clip(pred, 0.0, 1.0) - y)))


def main():
    config = training.load_config(CONFIG)
    per = config["periods"]
    print("building the dataset (PVDAQ system 50 + PSM3) ...", flush=True)
    ds = training.build_dataset(config, features.feature_frame)
    f = ds["features"].reset_index(drop=True)
    times = ds["times"]
    y = ds["y_kw"] / ds["capacity_ac_kw"]
    el = f["solar_elevation"].to_numpy()
    day_key = times.tz_convert(config["site"]["timezone"]).tz_localize(None).normalize()
    train = training.period_mask(times, per["train_start"], per["train_end"]) & np.isfinite(y) & (el > 0)
    hold = training.holdout_rows(ds, config)[0] & (el > 0)
    pn = f["physical_ac_kw"].to_numpy() / ds["capacity_ac_kw"]
    scale = training.least_squares_scale(y[train], pn[train])
    base = scale * pn
    x = f[list(features.MODEL_FEATURES)]
    resid = y - base
    ref = nmae(base[hold], y[hold])

    def report(name, pred, rows=hold):
        ml, b = nmae(pred, y[rows]), nmae(base[rows], y[rows])
        print(f"{name:<72s} {100 * ml:6.2f} {100 * b:6.2f} {100 * (1 - ml / b):6.1f}", flush=True)

    print(f"{'variant':<72s} {'ml':>6s} {'base':>6s} {'skill%':>6s}")
    committed = p50(config, x, resid, train, hold) + base[hold]
    report("MODEL_FEATURES, committed CatBoost settings (2013 hold-out)", committed)

    mae_scale = minimize_scalar(lambda s: nmae(s * pn[train], y[train]), bounds=(0.5, 1.5), method="bounded").x
    print(f"baseline scale: least squares {scale:.4f}, MAE-optimal {mae_scale:.4f} -> hold-out baseline "
          f"nMAE {100 * ref:.2f} vs {100 * nmae(mae_scale * pn[hold], y[hold]):.2f} %", flush=True)

    daily = pd.DataFrame({"d": day_key[hold], "y": y[hold], "b": np.clip(base[hold], 0, 1)}).groupby("d").sum()
    covered = daily.index[daily["y"] < 0.6 * daily["b"]]
    keep = ~np.isin(day_key[hold], covered)
    report(f"diagnostic: {len(covered)} hold-out days with measured < 60 % of baseline removed from BOTH",
           committed[keep], rows=np.flatnonzero(hold)[keep])

    idx = np.flatnonzero(train)
    folds = training.month_folds(times[idx], per["calibration_folds"])
    oof = np.empty(len(idx))
    for k in np.unique(folds):  # one full fit per month-block fold
        fit = np.zeros(len(y), bool)
        fit[idx[folds != k]] = True
        out = np.zeros(len(y), bool)
        out[idx[folds == k]] = True
        oof[folds == k] = p50(config, x, resid, fit, out) + base[out]
    report("training period 2011-04..2012-12, month-block out-of-fold", oof, rows=idx)

    wide = pd.concat([x, extra_features(f, times, day_key)], axis=1)
    report("+ csi_day, phase, trailing 24 h temp/csi, ghi", p50(config, wide, resid, train, hold) + base[hold])
    slow = copy.deepcopy(config)
    slow["catboost"].update(learning_rate=0.04, iterations=1200)
    report("+ same, learning rate 0.04, 1200 iterations", p50(slow, wide, resid, train, hold) + base[hold])
    report("MODEL_FEATURES, target = power (not residual)", p50(config, x, y, train, hold))

    temp = data.load_weather(config, location_id=0)["temp_air"].to_numpy()
    print(f"PSM3 temp_air: min {temp.min():.1f} C, {int((temp == 0).sum())} of {len(temp)} values exactly 0 C "
          "(below-zero temperatures censored at 0 in the shipped file)")


if __name__ == "__main__":
    main()

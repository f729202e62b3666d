"""Fitting a plant's calibration from its own history: tuning, then per-plant bands (pure).

:func:`fit_calibration` is what ``POST /api/v1/locations/{id}/calibrate``,
the refit policy and ``bench/bench_adaptive.py`` run: from one plant's actuals
strictly before a cutoff and the weather stored for those times (as issued
before the cutoff),

1. :func:`engine.tuning.fit_tuning` on the physical estimate of the ENTERED
   description (effective DC scale, observed clipping level);
2. the global model re-forecasts those times with the TUNED description
   (cross-fitted in the sense that the model never saw this plant; the two
   tuning numbers are fitted on the same rows), and
   :func:`engine.conformal.fit_band_offsets` turns the plant's residuals into
   shrunk offsets per lead bucket (lead = valid time - the weather's issue
   time) and clear-sky regime;
3. the intraday decay constant of the settings is recorded with it.

The result is JSON-ready data; a plant with too little history gets
``ok = False`` and the reason (errors as data).
"""

import numpy as np
import pandas as pd

from engine import conformal, forecast, tuning
from engine.features import feature_frame
from engine.metrics import coverage
from engine.quantiles import QUANTILE_COLUMNS


def weather_lead_hours(weather, times):
    """Lead of the weather behind each time, h: valid time - issue time of the nearest weather row."""
    w = weather[["valid_time", "issue_time"]].sort_values("valid_time")
    t = pd.DataFrame({"valid_time": pd.DatetimeIndex(times)})
    joined = pd.merge_asof(t, w.assign(valid_time=pd.DatetimeIndex(w["valid_time"]).as_unit("ns")).rename(
        columns={"valid_time": "weather_time"}), left_on=t["valid_time"].astype("datetime64[ns, UTC]"),
        right_on="weather_time", direction="nearest")
    return ((joined["valid_time"] - joined["issue_time"]).dt.total_seconds() / 3600.0).clip(lower=0.0).to_numpy()


def fit_calibration(location, weather, actuals, model, cutoff, planes=None, horizon=None, tau_hours=0.0,
                    window_minutes=60, min_days=tuning.MIN_DAYS, n0=conformal.N0):
    """A plant's calibration from its actuals before ``cutoff``.

    Parameters
    ----------
    location : DataFrame
        One-row locations frame, the description as ENTERED.
    weather : DataFrame
        The plant's weather frame as stored, every row issued before ``cutoff``.
    actuals : DataFrame
        ``time`` (UTC), ``power_kw`` (kW); rows at or after ``cutoff`` are ignored.
    model : dict
        ``modelio.load_model`` (the plant's model id).
    cutoff : Timestamp
        tz-aware.
    planes, horizon : DataFrame, optional
        Keyed by ``location_id`` (``features.feature_frame``).
    tau_hours : float
        Intraday decay constant recorded with the calibration, h.
    window_minutes : int
        Intraday power-index window, min.
    min_days : int
        Minimum days of usable actuals (:data:`engine.tuning.MIN_DAYS`).
    n0 : float
        Shrinkage constant of the band offsets (:data:`engine.conformal.N0`).

    Returns
    -------
    dict
        ``ok``, ``reason``, ``cutoff``, ``dc_scale``, ``capacity_dc_kw``
        (tuned), ``clip_kw``, ``window_start``, ``window_end``,
        ``n_samples``, ``bands`` (:func:`engine.conformal.fit_band_offsets`),
        ``intraday`` (``tau_hours``, ``window_minutes``), ``diagnostics``
        (tuning rejections and fit, daylight P10-P90/P25-P75 coverage of the
        fitting rows before/after the band offsets).
    """
    cutoff = pd.Timestamp(cutoff).tz_convert("UTC")
    loc = location.iloc[[0]].reset_index(drop=True)
    act = actuals.assign(time=pd.DatetimeIndex(actuals["time"]).tz_convert("UTC"))
    act = act[act["time"] < cutoff].drop_duplicates("time").sort_values("time")
    fail = {"ok": False, "cutoff": cutoff, "n_samples": 0, "diagnostics": {"actuals": int(len(act))}}
    if weather is None or not len(weather) or not len(act):
        return {**fail, "reason": f"no actuals with weather before {cutoff.isoformat()}"}
    wt = pd.DatetimeIndex(weather["valid_time"])
    inside = (act["time"] >= wt.min()) & (act["time"] <= wt.max())
    act = act[inside.to_numpy()]
    if len(act) < tuning.MIN_CLEAR_SAMPLES:
        return {**fail, "reason": f"{len(act)} actuals covered by stored weather before {cutoff.isoformat()}"}
    times = pd.DatetimeIndex(act["time"])
    power = pd.Series(act["power_kw"].to_numpy(dtype=float), index=times)
    cap = float(loc.loc[0, "capacity_ac_kw"])
    try:
        entered = feature_frame(loc, weather, times, planes, horizon)
    except ValueError as exc:
        return {**fail, "reason": f"weather: {exc}"}
    fit = tuning.fit_tuning(power, entered["physical_ac_kw"], entered["solar_elevation"], entered["csi"], cap,
                            float(loc.loc[0, "capacity_dc_kw"]), cutoff, str(loc.loc[0, "timezone"]),
                            min_days=min_days)
    if not fit["ok"]:
        return {**fail, "reason": fit["reason"], "n_samples": fit["n_samples"], "diagnostics": fit["diagnostics"]}
    table = pd.DataFrame({"location_id": loc["location_id"], "dc_scale": [fit["dc_scale"]],
                          "clip_kw": [np.nan if fit["clip_kw"] is None else fit["clip_kw"]]})
    tuned, tuned_planes = tuning.tuned_locations(loc, planes, table)
    feats = feature_frame(tuned, weather, times, tuned_planes, horizon)
    fx = forecast.forecast_quantiles(feats, tuned, model, "ml", times[0])
    flags = tuning.usable_samples(power, entered["physical_ac_kw"], entered["solar_elevation"], cap,
                                  min_elevation=0.0)
    rows = (~(flags["night"] | flags["missing"] | flags["outage"] | flags["stale"])).to_numpy()
    y = power.to_numpy()[rows] / cap
    q = fx[list(QUANTILE_COLUMNS)].to_numpy()[rows] / cap
    lead = weather_lead_hours(weather, times)[rows]
    csi = feats["csi"].to_numpy()[rows]
    bands = conformal.fit_band_offsets(y, q, lead, csi, n0=n0)
    plant = np.zeros(len(y), dtype=int)
    q_after = np.sort(conformal.apply_band_offsets(q, plant, lead, csi, np.asarray(bands["offsets"])[None]), axis=1)
    diagnostics = {**fit["diagnostics"], "band_rows": int(rows.sum()),
                   "coverage_p10_p90_before": coverage(y, q[:, 0], q[:, 4], (0.1, 0.9)),
                   "coverage_p10_p90_after": coverage(y, q_after[:, 0], q_after[:, 4], (0.1, 0.9)),
                   "coverage_p25_p75_before": coverage(y, q[:, 1], q[:, 3], (0.25, 0.75)),
                   "coverage_p25_p75_after": coverage(y, q_after[:, 1], q_after[:, 3], (0.25, 0.75))}
    return {"ok": True, "reason": None, "cutoff": cutoff, "dc_scale": fit["dc_scale"],
            "capacity_dc_kw": fit["capacity_dc_kw"], "clip_kw": fit["clip_kw"],
            "window_start": fit["window_start"], "window_end": fit["window_end"], "n_samples": fit["n_samples"],
            "bands": bands, "intraday": {"tau_hours": float(tau_hours), "window_minutes": int(window_minutes)},
            "diagnostics": diagnostics}


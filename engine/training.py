"""Training of the global MultiQuantile model, its calibration and the physics quantiles.

Data: PVDAQ system 50 ``ac_power_2`` + NSRDB PSM3 (:mod:`engine.data`).
Train 2011-04 -> 2012-12, hold out all of 2013 (``configs/training.yaml``).
Nothing here is fitted or calibrated on the hold-out period.
"""

import importlib.metadata
from pathlib import Path

import catboost
import numpy as np
import pandas as pd
import yaml

from engine import calibration, conformal, data, forecast, metrics, quantiles, resources, validation

WEATHER_COLUMNS = list(validation.WEATHER_COLUMNS)  # the weather frame of ARCHITECTURE "Frames"


def load_config(path=None):
    """Training configuration (YAML) as a dict.

    Parameters
    ----------
    path : str or Path, optional
        A YAML file; default the shipped ``configs/training.yaml``
        (:mod:`engine.resources`, found from any directory).
    """
    return yaml.safe_load(Path(path or resources.config_path("training.yaml")).read_text())


def period_mask(times, start, end):
    """Boolean mask of ``start <= times < end`` (dates as strings, UTC)."""
    return np.asarray((times >= pd.Timestamp(start, tz="UTC")) & (times < pd.Timestamp(end, tz="UTC")))


def fit_dc_ratio(y_kw, physical_kw, elevation, csi, capacity_ac_kw):
    """Ratio measured / physical power on clear, unclipped training samples.

    Used to derive ``capacity_dc_kw`` (the PVWatts ``pdc0``) from data:
    ``capacity_dc_kw = provisional_dc * ratio``. Samples: PSM3 clear-sky
    index >= 0.9, sun above 15 deg, physical power below 80 % of AC capacity.

    Returns
    -------
    float
    """
    ok = (np.isfinite(y_kw) & (y_kw > 0) & (csi >= 0.9) & (elevation > 15)
          & (physical_kw > 0.05 * capacity_ac_kw) & (physical_kw < 0.8 * capacity_ac_kw))
    if ok.sum() < 100:
        raise ValueError(f"capacity_dc_kw: only {ok.sum()} clear unclipped samples to fit the DC ratio")
    return float(np.median(y_kw[ok] / physical_kw[ok]))


def least_squares_scale(y, x):
    """Scale ``s`` minimising ``sum((y - s x)^2)`` (the fair physical baseline)."""
    return float(np.dot(x, y) / np.dot(x, x))


def build_dataset(config, feature_frame, step=lambda msg: None):
    """Cleaned power + features on the power's 15-min times (train and hold-out).

    Parameters
    ----------
    config : dict
        ``configs/training.yaml``.
    feature_frame : callable
        ``engine.features.feature_frame``.
    step : callable
        Progress callback taking a message.

    Returns
    -------
    dict
        ``features`` (DataFrame indexed by (location_id, valid_time)),
        ``clear_physical_kw`` (physical power under PSM3 clear sky, kW),
        ``y_kw`` (measured, kW, NaN = missing/removed), ``times``,
        ``location`` (one-row frame), ``counts``, ``capacity_ac_kw``,
        ``capacity_dc_kw``, ``dc_ratio``, ``csi`` (PSM3 GHI / clear-sky GHI).
    """
    step("loading PVDAQ system 50 + PSM3 from the pvanalytics wheel")
    loaded = data.load_serf_east(config)
    weather = loaded["weather"]
    periods = config["periods"]
    power = loaded["power"]
    t = power.index
    covered = (t >= weather["valid_time"].min()) & (t <= weather["valid_time"].max())
    times = t[covered & period_mask(t, periods["train_start"], periods["holdout_end"])]
    y_kw = power.reindex(times).to_numpy(dtype=float)
    ghi = data.weather_at(weather, times, "ghi")
    ghi_clear = data.weather_at(weather, times, "ghi_clear")
    with np.errstate(invalid="ignore", divide="ignore"):
        csi = np.where(ghi_clear > 0, ghi / ghi_clear, 0.0)
    location = loaded["location"]
    cap = loaded["capacity_ac_kw"]
    step("features with provisional DC capacity")
    provisional = feature_frame(location, weather[WEATHER_COLUMNS], times)
    train = period_mask(times, periods["train_start"], periods["train_end"])
    ratio = fit_dc_ratio(y_kw[train], provisional["physical_ac_kw"].to_numpy()[train],
                         provisional["solar_elevation"].to_numpy()[train], csi[train], cap)
    location = location.assign(capacity_dc_kw=float(location.loc[0, "capacity_dc_kw"] * ratio))
    step("features with fitted DC capacity")
    features = feature_frame(location, weather[WEATHER_COLUMNS], times)
    clear = weather[WEATHER_COLUMNS].assign(ghi=weather["ghi_clear"].to_numpy())
    step("clear-sky physical power (for persistence)")
    clear_kw = feature_frame(location, clear, times)["physical_ac_kw"].to_numpy()
    return {"features": features, "clear_physical_kw": clear_kw, "y_kw": y_kw, "times": times,
            "location": location, "counts": loaded["counts"], "capacity_ac_kw": cap,
            "capacity_dc_kw": float(location.loc[0, "capacity_dc_kw"]), "dc_ratio": ratio, "csi": csi}


def multiquantile_loss(alphas):
    """CatBoost loss string ``MultiQuantile:alpha=...``."""
    return "MultiQuantile:alpha=" + ",".join(f"{a:g}" for a in alphas)


def fit_quantile_model(x, y, config):
    """Fit one CatBoost MultiQuantile model on normalised power.

    Parameters
    ----------
    x : DataFrame
        Model features.
    y : ndarray
        Power / capacity_ac (unitless).
    config : dict
        Training config (``catboost``); the levels are ``quantiles.ALPHAS``.

    Returns
    -------
    catboost.CatBoostRegressor
    """
    params = dict(config["catboost"])
    model = catboost.CatBoostRegressor(loss_function=multiquantile_loss(quantiles.ALPHAS), verbose=False,
                                       allow_writing_files=False, **params)
    model.fit(x, y)
    return model


def month_folds(times, n_folds):
    """Cross-fitting fold of each time: consecutive calendar months dealt round-robin."""
    months = np.asarray(times.year * 12 + times.month)
    return months % n_folds


def cross_fit_offsets(x, y, base, elevation, times, config, step=lambda msg: None):
    """Conformal offsets from out-of-fold predictions inside the training period.

    Each month block is predicted by a model fitted (on ``y - base``, the
    residual around the scaled physical baseline) on the other folds; the
    offsets are the per-elevation-bin empirical quantiles of ``y - q``.

    Returns
    -------
    offsets : ndarray
        Shape (n_bins, 5), fraction of capacity.
    oof : ndarray
        Shape (n, 5): the out-of-fold raw quantiles.
    """
    folds = month_folds(times, config["periods"]["calibration_folds"])
    oof = np.empty((len(y), len(quantiles.ALPHAS)))
    for k in np.unique(folds):  # a few folds, each a full model fit
        step(f"calibration fold {k + 1}/{config['periods']['calibration_folds']}")
        fit = folds != k
        model = fit_quantile_model(x[fit], y[fit] - base[fit], config)
        oof[~fit] = quantiles.predict_normalised(model, x[~fit]) + base[~fit, None]
    edges = config["calibration"]["elevation_edges"]
    groups = calibration.bin_index(elevation, edges)
    return calibration.fit_offsets(y, oof, quantiles.ALPHAS, groups, len(edges) - 1), oof


def fit_physics_residuals(y, physical_norm, elevation, config):
    """Empirical residual quantiles of the scaled physical estimate, per bin.

    Residual = measured/capacity - physical_norm (both fraction of capacity),
    binned by solar elevation and physical_norm; bins with < 30 samples use
    the quantiles pooled over their elevation bin.

    Returns
    -------
    ndarray
        Shape (n_elevation_bins, n_norm_bins, 5).
    """
    spec = config["physics_residuals"]
    alphas = quantiles.ALPHAS
    e = calibration.bin_index(elevation, spec["elevation_edges"])
    p = calibration.bin_index(physical_norm, spec["norm_edges"])
    r = y - physical_norm
    out = np.zeros((len(spec["elevation_edges"]) - 1, len(spec["norm_edges"]) - 1, len(alphas)))
    for i in range(out.shape[0]):  # small fixed grid of bins, not a hot path
        pooled = np.quantile(r[e == i], alphas) if (e == i).sum() else np.quantile(r, alphas)
        for j in range(out.shape[1]):
            sel = (e == i) & (p == j)
            out[i, j] = np.quantile(r[sel], alphas) if sel.sum() >= 30 else pooled
    return out


def within_period_table(ds, config):
    """The model card's ``within_period``: instants' deviations from their period's mean, training period only.

    :func:`engine.conformal.within_period_deviations` of the cleaned 15-min
    training samples (``y_kw``) with their clear-sky physical power
    (``clear_physical_kw``) for every period of
    :data:`engine.conformal.WITHIN_PERIODS_MINUTES`. Plants that send period
    means get this within-period spread added to their band residuals
    (``engine.adaptation.fit_calibration``). Deterministic: a function of the
    training data and the configuration; the hold-out year is never read.

    Parameters
    ----------
    ds : dict
        :func:`build_dataset`.
    config : dict
        ``configs/training.yaml``.

    Returns
    -------
    dict
        JSON-ready: ``method``, ``source``, ``train_period``, ``periods``
        (list of :func:`engine.conformal.within_period_deviations` dicts).
    """
    periods = config["periods"]
    rows = period_mask(ds["times"], periods["train_start"], periods["train_end"])
    times = ds["times"][rows]
    return {"method": "deviation of each 15-min sample from its period's mean beyond the clear-sky shape, "
                      "/ the period's clear-sky physical power, quantiles per bin of the period's clear-sky "
                      "index of power (engine.conformal.within_period_deviations)",
            "source": f"{config['data']['source']}: cleaned {config['data']['power_file']}, training period",
            "train_period": [periods["train_start"], periods["train_end"]],
            "periods": [conformal.within_period_deviations(times, ds["y_kw"][rows], ds["clear_physical_kw"][rows],
                                                           ds["capacity_ac_kw"], p)
                        for p in conformal.WITHIN_PERIODS_MINUTES]}


def library_versions():
    """Versions of the libraries a model depends on."""
    return {name: importlib.metadata.version(name)
            for name in ("catboost", "pvlib", "pandas", "numpy", "pvanalytics")}


def train(config, feature_frame, model_features, step=lambda msg: None):
    """Train the global model, its conformal offsets and the physics quantiles.

    Parameters
    ----------
    config : dict
        ``configs/training.yaml``.
    feature_frame : callable
        ``engine.features.feature_frame``.
    model_features : list of str
        ``engine.features.MODEL_FEATURES`` (order = model input order).
    step : callable
        Progress callback.

    Returns
    -------
    bundle : dict
        ``model``, ``card`` (without metrics/sha256), ``physics``,
        ``calibration`` (same shape as ``modelio.load_model``).
    dataset : dict
        From :func:`build_dataset`.
    """
    ds = build_dataset(config, feature_frame, step)
    f = ds["features"]
    cap = ds["capacity_ac_kw"]
    periods = config["periods"]
    y = ds["y_kw"] / cap
    elevation = f["solar_elevation"].to_numpy()
    rows = (period_mask(ds["times"], periods["train_start"], periods["train_end"]) & np.isfinite(y)
            & (elevation > config["daylight_min_elevation"]))
    x = f.loc[rows, list(model_features)].reset_index(drop=True)
    physical_norm = f["physical_ac_kw"].to_numpy() / cap
    scale = least_squares_scale(y[rows], physical_norm[rows])
    base = scale * physical_norm[rows]
    offsets, _ = cross_fit_offsets(x, y[rows], base, elevation[rows], ds["times"][rows], config, step)
    step("final model on the whole training period")
    model = fit_quantile_model(x, y[rows] - base, config)
    residuals = fit_physics_residuals(y[rows], scale * physical_norm[rows], elevation[rows], config)
    cal = {"method": "CQR-style additive conformal offsets, per solar-elevation bin, from "
                     f"{periods['calibration_folds']}-fold month-block cross-fitting on the training period",
           "elevation_edges": list(config["calibration"]["elevation_edges"]), "offsets": offsets.tolist()}
    physics = {"method": "physical_ac_kw x scale (least squares on training daylight) + empirical residual "
                         "quantiles (training daylight) per solar-elevation x physical-power bin",
               "scale": scale, "elevation_edges": list(config["physics_residuals"]["elevation_edges"]),
               "norm_edges": list(config["physics_residuals"]["norm_edges"]),
               "residual_quantiles": residuals.tolist()}
    location = ds["location"].iloc[0].to_dict()
    card = {
        "model_id": config["model_id"],
        "target": "ac power / capacity_ac_kw minus physics.scale x physical_ac_kw / capacity_ac_kw "
                  "(residual around the scaled physical baseline; forecast adds the baseline back)",
        "loss_function": multiquantile_loss(quantiles.ALPHAS),
        "alphas": list(quantiles.ALPHAS),
        "features": list(model_features),
        "data": {
            "source": config["data"]["source"],
            "files": [config["data"]["power_file"], config["data"]["weather_file"]],
            "train_period": [periods["train_start"], periods["train_end"]],
            "holdout_period": [periods["holdout_start"], periods["holdout_end"]],
            "training_rows": int(rows.sum()),
            "dst_fix": "power index re-localised as America/Denver wall-clock time",
            "weather_labels": "PSM3 instantaneous at label (period_minutes 0)",
            "wind_speed": f"not in the PSM3 subset; constant {config['data']['wind_speed_ms']} m/s",
            "cleaning_counts": ds["counts"],
        },
        "capacity": {
            "capacity_ac_kw": cap, "capacity_dc_kw": ds["capacity_dc_kw"], "dc_ratio": ds["dc_ratio"],
            "derivation": (f"capacity_ac_kw = {config['capacity']['quantile']} quantile of cleaned training "
                           f"power where PSM3 GHI/clear-sky GHI >= {config['capacity']['clear_sky_index_min']} "
                           f"and elevation > {config['capacity']['min_elevation']} deg; capacity_dc_kw = "
                           "capacity_ac_kw x median(measured / physical) on clear unclipped training samples"),
        },
        "location": {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in location.items()},
        "catboost_params": dict(config["catboost"]),
        "versions": library_versions(),
        "within_period": within_period_table(ds, config),
    }
    return {"model": model, "card": card, "physics": physics, "calibration": cal}, ds


def holdout_rows(ds, config):
    """Rows every method is scored on, and the clear-sky persistence forecast.

    Rows: hold-out period, measurement present, persistence defined (the
    previous local day has measurements).

    Returns
    -------
    rows : ndarray of bool
        One per ``ds["times"]``.
    persistence : ndarray
        Day-ahead clear-sky persistence, kW, one per ``ds["times"]``.
    """
    periods = config["periods"]
    day_key = ds["times"].tz_convert(config["site"]["timezone"]).tz_localize(None).normalize()
    persistence = metrics.clear_sky_persistence(ds["y_kw"], ds["clear_physical_kw"], day_key)
    rows = (period_mask(ds["times"], periods["holdout_start"], periods["holdout_end"])
            & np.isfinite(ds["y_kw"]) & np.isfinite(persistence))
    return rows, persistence


def holdout_forecasts(bundle, ds, config):
    """Forecasts of every method on the 2013 hold-out rows with measurements.

    Methods: ``ml`` (calibrated), ``ml_uncalibrated``, ``physics``
    (quantiles), ``baseline`` (scaled physical estimate, deterministic),
    ``persistence`` (day-ahead clear-sky persistence, deterministic). All are
    evaluated on the same rows: hold-out, measurement present, persistence
    defined.

    Returns
    -------
    dict
        ``times``, ``obs_kw``, ``daylight``, ``capacity_ac_kw`` and one
        (n, 5) kW array per method.
    """
    periods = config["periods"]
    f = ds["features"]
    cap = ds["capacity_ac_kw"]
    loc = ds["location"]
    elevation = f["solar_elevation"].to_numpy()
    rows, persistence = holdout_rows(ds, config)
    fr = f[rows]
    issue = pd.Timestamp(periods["holdout_start"], tz="UTC")
    cols = list(quantiles.QUANTILE_COLUMNS)
    out = {"times": ds["times"][rows], "obs_kw": ds["y_kw"][rows], "daylight": elevation[rows] > 0,
           "capacity_ac_kw": cap}
    for kind in forecast.FORECAST_TYPES:
        out[kind] = forecast.forecast_quantiles(fr, loc, bundle, kind, issue)[cols].to_numpy()
    raw = forecast.ml_raw_quantiles(fr, cap, bundle)
    out["ml_uncalibrated"] = quantiles.apply_limits(raw, np.full(len(fr), cap), np.full(len(fr), np.nan),
                                                    elevation[rows])
    for name, point in (("baseline", bundle["physics"]["scale"] * fr["physical_ac_kw"].to_numpy()),
                        ("persistence", persistence[rows])):
        out[name] = quantiles.apply_limits(np.repeat(point[:, None] / cap, len(quantiles.ALPHAS), axis=1),
                                           np.full(len(fr), cap),
                                           np.full(len(fr), np.nan), elevation[rows])
    return out


METHODS = ("ml", "ml_uncalibrated", "physics", "baseline", "persistence")
POINT_FORECASTS = ("baseline", "persistence")
"""Deterministic methods (all quantiles equal): an interval coverage means nothing for them."""


def holdout_table(fx):
    """Metrics of every method plus skill scores.

    Returns
    -------
    dict
        method -> metrics dict (fractions of capacity), plus ``skill`` ->
        dict of ml skill (1 - ml/reference) in daylight nMAE and CRPS
        against ``baseline`` and ``persistence``, and ``rows``.
    """
    table = {m: metrics.evaluate(fx["obs_kw"], fx[m], fx["capacity_ac_kw"], fx["daylight"]) for m in METHODS}
    table["skill"] = {f"{score}_vs_{ref}": metrics.skill(table["ml"][score], table[ref][score])
                      for score in ("mae_day", "crps_day", "mae_all") for ref in ("baseline", "persistence", "physics")}
    table["rows"] = {"all": int(len(fx["obs_kw"])), "daylight": int(fx["daylight"].sum())}
    return table


def format_table(table):
    """The hold-out table as text (percent of capacity).

    Coverage of a point forecast (:data:`POINT_FORECASTS`) is shown as ``-``,
    as in the README table.
    """
    names = ["mae_day", "rmse_day", "bias_day", "crps_day", "mae_all", "rmse_all", "bias_all", "crps_all",
             "pinball_p10_day", "pinball_p50_day", "pinball_p90_day", "coverage_p10_p90_day",
             "coverage_p25_p75_day"]

    def cell(method, name):
        if name.startswith("coverage") and method in POINT_FORECASTS:
            return "-".rjust(17)
        return f"{100 * table[method][name]:17.2f}"

    lines = ["metric (% of capacity_ac)".ljust(26) + "".join(m.rjust(17) for m in METHODS)]
    for n in names:
        lines.append(n.ljust(26) + "".join(cell(m, n) for m in METHODS))
    lines.append("")
    for k, v in table["skill"].items():
        lines.append(f"skill ml {k}".ljust(40) + f"{100 * v:8.1f} %")
    lines.append(f"rows: {table['rows']['all']} (daylight {table['rows']['daylight']})")
    return "\n".join(lines)

"""The serving pipeline as pure functions (what the Ray Serve replicas call).

``forecast_times`` gives the forecast grid; ``features.feature_frame`` builds
the features; :func:`forecast_quantiles` turns them into the forecast frame
with every limit applied by :mod:`engine.quantiles`.
"""

import numpy as np
import pandas as pd

from engine import calibration, conformal, intraday, quantiles
from engine.validation import FORECAST_TYPES, plant_error  # the one definition (also the SQL CHECK, tested)


def forecast_times(issue_time, horizon_hours, resolution_minutes):
    """The forecast grid after ``issue_time``.

    Parameters
    ----------
    issue_time : Timestamp
        tz-aware.
    horizon_hours : int
        Length of the forecast, h.
    resolution_minutes : int
        Grid step, min; must divide 1440.

    Returns
    -------
    DatetimeIndex
        UTC; first step = first grid point strictly after ``issue_time``;
        ``horizon_hours * 60 / resolution_minutes`` steps.
    """
    issue_time = pd.Timestamp(issue_time)
    if issue_time.tzinfo is None:
        raise ValueError(f"issue_time {issue_time} must be tz-aware (UTC)")
    if resolution_minutes <= 0 or 1440 % resolution_minutes:
        raise ValueError(f"resolution_minutes {resolution_minutes} must divide 1440")
    if horizon_hours <= 0 or (horizon_hours * 60) % resolution_minutes:
        raise ValueError(f"horizon_hours {horizon_hours} must be a positive multiple of the resolution")
    step = pd.Timedelta(minutes=resolution_minutes)
    first = issue_time.tz_convert("UTC").floor(step) + step
    return pd.date_range(first, periods=horizon_hours * 60 // resolution_minutes, freq=step)


def location_columns(locations, location_ids, columns):
    """Columns of ``locations`` repeated for each row's ``location_id`` (vectorised).

    Returns
    -------
    dict of ndarray
        ``columns`` -> one value per entry of ``location_ids``.

    Raises
    ------
    LookupError
        If a feature row's location is not in ``locations``.
    """
    ids = np.asarray(location_ids)
    at = pd.Index(locations["location_id"].to_numpy()).get_indexer(ids)
    if (at < 0).any():
        raise LookupError(f"location_id {ids[at < 0][0]} of the features is not in locations")
    return {c: locations[c].to_numpy()[at] for c in columns}


def baseline_normalised(features, capacity_ac_kw, scale):
    """Physical baseline as fraction of capacity: ``scale * physical_ac_kw / capacity_ac_kw``."""
    return scale * features["physical_ac_kw"].to_numpy() / capacity_ac_kw


def ml_raw_quantiles(features, capacity_ac_kw, model, thread_count=-1):
    """Uncalibrated normalised quantiles of the ``ml`` type, shape (n, 5).

    The model predicts the residual of power/capacity around the scaled
    physical baseline; the baseline is added back here. Only rows with the
    sun above the horizon go through the model (the rest are zeroed by
    :func:`engine.quantiles.apply_limits` anyway), halving the predict cost.
    """
    day = features["solar_elevation"].to_numpy() > 0.0
    raw = np.zeros((len(features), len(quantiles.ALPHAS)))
    if day.any():  # night rows are exactly 0 after quantiles.apply_limits: not worth a model evaluation
        raw[day] = quantiles.predict_normalised(model["model"], model_matrix(features, model, day), thread_count)
    return raw + baseline_normalised(features, capacity_ac_kw, model["physics"]["scale"])[:, None]


def model_matrix(features, model, rows):
    """The model's inputs of the ``rows`` (boolean mask) as one float32 matrix in the card's feature order.

    CatBoost evaluates float features as float32 whatever it is given; handed a
    frame, it converts it column by column (and a frame of selected rows and
    columns is built first). The same values cast once here give the same
    predictions, for a fraction of the cost on a few plants' rows.

    The frame's float blocks are cast once (``DataFrame.to_numpy``, the cast an assignment to float32 makes)
    and the card's columns and the rows taken from them in one step: taking each column as a Series costs
    ~40 us in pandas 3 (the index is copied into every Series), ~1 ms for one plant's 25 features.
    """
    names = model["card"]["features"]
    at = features.columns.get_indexer(names)
    if (at < 0).any():
        raise KeyError(f"features lack the model's columns {[n for n, k in zip(names, at) if k < 0]}")
    values = features.to_numpy(np.float32).T  # (columns, rows), C-ordered: one contiguous row per column
    return values[np.ix_(at, np.flatnonzero(rows))].T  # (rows, features), Fortran-ordered


def ml_quantiles(features, capacity_ac_kw, model, thread_count=-1):
    """Calibrated normalised quantiles of the ``ml`` forecast type, shape (n, 5)."""
    cal = model["calibration"]
    groups = calibration.bin_index(features["solar_elevation"].to_numpy(), cal["elevation_edges"])
    return calibration.apply_offsets(ml_raw_quantiles(features, capacity_ac_kw, model, thread_count), groups,
                                     np.asarray(cal["offsets"]))


def physics_quantiles(features, capacity_ac_kw, model):
    """Normalised quantiles of the ``physics`` forecast type, shape (n, 5).

    Physical estimate (``physical_ac_kw`` / capacity, times the baseline scale
    fitted on the training period) plus empirical residual quantiles of the
    training period, looked up by solar-elevation bin and physical-power bin.
    """
    phys = model["physics"]
    norm = baseline_normalised(features, capacity_ac_kw, phys["scale"])
    e = calibration.bin_index(features["solar_elevation"].to_numpy(), phys["elevation_edges"])
    p = calibration.bin_index(norm, phys["norm_edges"])
    residual = np.asarray(phys["residual_quantiles"])[e, p]
    return norm[:, None] + residual


def adapt_quantiles(q_norm, features, location_ids, lead_hours, capacity_ac_kw, adaptation):
    """A plant's own calibration on its normalised quantiles (before the limits).

    Band offsets (:func:`engine.conformal.apply_band_offsets`) first, then the
    intraday blend (:func:`engine.intraday.blend_shift`) of the candidates
    measured up to the issue time (:func:`engine.intraday.candidates`: the
    plant's window indices, the P50 after the offsets, the clear-sky power of
    the row's features), every quantile moved by the same amount. Plants
    without a calibration are unchanged; a plant without actuals before the
    issue gets its band offsets only.

    Parameters
    ----------
    q_norm : ndarray
        Shape (n, 5), fraction of capacity_ac_kw.
    features : DataFrame
        ``csi``, ``physical_ac_kw`` per row.
    location_ids : ndarray
        Shape (n,).
    lead_hours : ndarray
        Shape (n,), h after the issue.
    capacity_ac_kw : ndarray
        Shape (n,), kW.
    adaptation : dict
        ``location_ids`` (plants with a calibration), ``offsets`` (shape
        (plants, lead buckets, regimes, 5)), optionally ``level_floor``
        (shape (plants,): relative offsets of those with a finite one,
        ``engine.conformal.apply_band_offsets``; absent: all absolute), ``indices`` (shape (plants, 3),
        NaN = no actuals) and ``blend`` (``engine.adaptation.stacked_blends``)
        of ``engine.adaptation.serving_adaptation``; without those two,
        ``k_meas`` and ``tau_hours`` (shape (plants,)): the prior blend on the
        power index (:func:`engine.intraday.intraday_shift`).

    Returns
    -------
    ndarray
        Shape (n, 5), not yet sorted or clipped.
    """
    ids = np.asarray(adaptation["location_ids"], dtype="int64")
    order = np.argsort(ids)
    pos = np.searchsorted(ids[order], location_ids)
    pos = np.minimum(pos, len(ids) - 1)
    plant = np.where(ids[order][pos] == location_ids, order[pos], -1) if len(ids) else np.full(len(location_ids), -1)
    csi = features["csi"].to_numpy(dtype=float)
    q = conformal.apply_band_offsets(q_norm, plant, lead_hours, csi, adaptation["offsets"],
                                     adaptation.get("level_floor"))
    has = plant >= 0
    p = np.maximum(plant, 0)
    if "indices" in adaptation:
        indices, blend = np.asarray(adaptation["indices"], dtype=float), adaptation["blend"]
    else:  # the update before fitted weights: the power index with weight exp(-lead / tau)
        k = np.asarray(adaptation["k_meas"], dtype=float)
        indices = np.column_stack([k, np.full((len(k), len(intraday.BLEND_CANDIDATES) - 1), np.nan)])
        blend = intraday.prior_blend(adaptation["tau_hours"])
    if not has.any() or not np.isfinite(indices).any():
        return q
    row_indices = np.where(has[:, None], indices[p], np.nan)
    clear = intraday.clear_sky_power(features["physical_ac_kw"].to_numpy(dtype=float), csi) / capacity_ac_kw
    base = q[:, 2]
    shift = intraday.blend_shift(base, lead_hours, intraday.candidates(base, clear, row_indices), blend, p)
    return q + shift[:, None]


def forecast_quantiles(features, locations, model, forecast_type, issue_time, thread_count=-1, adaptation=None):
    """Quantile forecast frame for a batch of plants (one predict call).

    Parameters
    ----------
    features : DataFrame
        From ``features.feature_frame``: indexed by (location_id, valid_time),
        holding the model features, ``physical_ac_kw`` (kW) and
        ``solar_elevation`` (deg).
    locations : DataFrame
        Locations frame with ``location_id``, ``capacity_ac_kw``,
        ``export_limit_kw``, ``model_id``.
    model : dict
        From ``modelio.load_model``.
    forecast_type : {'ml', 'physics'}
    issue_time : Timestamp
        tz-aware; ``horizon_minutes`` is counted from it.
    thread_count : int
        CatBoost threads of the predict call (-1: all cores).
    adaptation : dict, optional
        Per-plant calibrations (:func:`adapt_quantiles`, ``ml`` type only: the
        offsets are fitted on its residuals); None: the global forecast
        exactly as without plant adaptation.

    Returns
    -------
    DataFrame
        location_id, valid_time (UTC), p10..p90 (kW), horizon_minutes (int).

    Raises
    ------
    ValueError
        Unknown forecast type, or a location asks for another model id.
    LookupError
        A feature row's location is missing from ``locations``.
    """
    if forecast_type not in FORECAST_TYPES:
        raise ValueError(f"forecast_type {forecast_type!r} must be one of {FORECAST_TYPES}")
    lid = features.index.get_level_values("location_id")
    valid_time = features.index.get_level_values("valid_time")
    loc = location_columns(locations, lid, ["capacity_ac_kw", "export_limit_kw", "model_id"])
    wrong = loc["model_id"] != model["card"]["model_id"]
    if wrong.any():
        raise ValueError(f"location_id {lid[wrong][0]} has model_id {loc['model_id'][wrong][0]!r}, "
                         f"not the loaded model {model['card']['model_id']!r}")
    cap = loc["capacity_ac_kw"].astype(float)
    if forecast_type == "ml":
        q_norm = ml_quantiles(features, cap, model, thread_count)
    else:
        q_norm = physics_quantiles(features, cap, model)
    issue = pd.Timestamp(issue_time).tz_convert("UTC")
    if forecast_type == "ml" and adaptation is not None and len(adaptation["location_ids"]):
        lead = (pd.DatetimeIndex(valid_time).tz_convert("UTC") - issue).total_seconds().to_numpy() / 3600.0
        q_norm = adapt_quantiles(q_norm, features, np.asarray(lid, dtype="int64"), lead, cap, adaptation)
    kw = quantiles.apply_limits(q_norm, cap, loc["export_limit_kw"].astype(float),
                                features["solar_elevation"].to_numpy())
    valid_time = pd.DatetimeIndex(valid_time).tz_convert("UTC")
    minutes = (valid_time.as_unit("ns").asi8 - issue.as_unit("ns").value) // 60_000_000_000  # floor, as Timedelta //
    return pd.DataFrame({"location_id": np.asarray(lid, dtype="int64"), "valid_time": valid_time,
                         **{c: kw[:, i] for i, c in enumerate(quantiles.QUANTILE_COLUMNS)},
                         "horizon_minutes": minutes.astype("int64")})


def forecast_batch(features, locations, models, forecast_type, issue_time, thread_count=-1, adaptation=None):
    """Quantile forecast of a batch of plants, with the plants that cannot be forecast as data.

    One :func:`forecast_quantiles` call per model id of the batch. A plant
    whose model id is not loaded, or whose physical estimate is not finite
    (inputs that break the physical model), is left out and reported; its
    batch-mates are forecast.

    Parameters
    ----------
    features : DataFrame
        From ``features.feature_frame`` for (at least) ``locations``.
    locations : DataFrame
        Locations frame with ``location_id``, ``capacity_ac_kw``,
        ``export_limit_kw``, ``model_id``.
    models : dict
        model_id -> model dict of ``modelio.load_model``.
    forecast_type, issue_time, thread_count, adaptation
        As in :func:`forecast_quantiles`.

    Returns
    -------
    frame : DataFrame
        The forecast frame of the plants that could be forecast.
    errors : dict
        location_id -> error, for the others (``engine.validation.plant_error``: code ``model_not_loaded``
        or ``physics_not_finite`` and the sentence).
    """
    lid = np.asarray(features.index.get_level_values("location_id"), dtype="int64")
    errors = {}
    unknown = ~locations["model_id"].isin(list(models)).to_numpy()
    for location_id, model_id in zip(locations["location_id"].to_numpy()[unknown], locations["model_id"][unknown]):
        errors[int(location_id)] = plant_error("model_not_loaded",
                                               f"model_id {model_id!r} is not loaded (loaded: {sorted(models)})")
    broken = np.unique(lid[~np.isfinite(features["physical_ac_kw"].to_numpy(dtype=float))])
    for location_id in broken.tolist():
        errors.setdefault(int(location_id), plant_error(
            "physics_not_finite", "the physical model gives non-finite power for this plant's parameters"))
    good = locations[~locations["location_id"].isin(list(errors))] if errors else locations

    def rows_of(group):  # the whole batch (one model, no error): the frame itself, not a copy of it
        ids = group["location_id"].to_numpy("int64")
        return features if np.array_equal(np.unique(lid), np.unique(ids)) else features[np.isin(lid, ids)]

    frames = [forecast_quantiles(rows_of(group), group, models[model_id], forecast_type, issue_time, thread_count,
                                 adaptation)
              for model_id, group in by_model(good)]  # one predict per model id, not per plant
    if not frames:
        return pd.DataFrame(columns=["location_id", "valid_time", *quantiles.QUANTILE_COLUMNS, "horizon_minutes"]), errors
    return pd.concat(frames, ignore_index=True), errors


def by_model(locations):
    """(model_id, its plants) of a locations frame, model ids sorted (as ``groupby``); one model: the frame itself."""
    model_ids = locations["model_id"].to_numpy()
    names = np.unique(model_ids)
    return [(m, locations if len(names) == 1 else locations[model_ids == m]) for m in names.tolist()]

"""Intraday update and online band offsets on a real plant-period outside training and hold-out (SERF East 2016)."""

import json

import numpy as np
import pandas as pd
import pytest

from engine import (adaptation, conformal, data, features, forecast, intraday, modelio, quantiles, resources, store,
                    training, tuning)

CONFIG = training.load_config()
CAP = 5.5
CUTOFF = pd.Timestamp("2016-08-01T00:00:00Z")
COLS = list(quantiles.QUANTILE_COLUMNS)


@pytest.fixture(scope="module")
def plant():
    """SERF East 2016 entered with capacity_dc_kw = capacity_ac_kw, calibrated on its actuals before 08-01."""
    power, weather = data.load_serf_east_2016(1, CONFIG["data"]["wind_speed_ms"])
    location = data.site_location(CONFIG["site"], 1, CAP, CAP)
    model = modelio.load_model(resources.folder("models"), "global")
    actuals = pd.DataFrame({"time": power.index, "power_kw": power.to_numpy()})
    cal = adaptation.fit_calibration(location, weather, actuals, model, CUTOFF, tau_hours=0.75)
    assert cal["ok"], cal["reason"]
    tuned = location.assign(capacity_dc_kw=cal["capacity_dc_kw"])
    return power, weather, tuned, model, cal


@pytest.fixture(scope="module")
def past_rows(plant):
    """Hourly issues of 08-01..08-20 (leads 15 min..6 h): measured, model P50, power index, all / capacity."""
    power, weather, tuned, model, _ = plant
    times = power.index[(power.index >= CUTOFF) & (power.index < pd.Timestamp("2016-08-21T00:00Z"))]
    f = features.feature_frame(tuned, weather, times)
    p50 = forecast.forecast_quantiles(f, tuned, model, "ml", times[0])["p50"].to_numpy() / CAP
    y = power.reindex(times).to_numpy() / CAP
    elev = f["solar_elevation"].to_numpy()
    issues = np.flatnonzero((times.minute == 0) & (elev > 10) & (np.arange(len(times)) >= 4))
    leads = np.arange(1, 25)
    target = np.minimum(issues[:, None] + leads[None, :], len(times) - 1)
    before = issues[:, None] - 1 - np.arange(4)[None, :]  # [T - 60 min, T)
    k = intraday.power_indices(np.repeat(np.arange(len(issues)), 4), times[before.ravel()], y[before.ravel()],
                               p50[before.ravel()], np.ones(before.size), times[issues].repeat(4))
    kk = np.full(len(issues), np.nan)
    kk[k.index.to_numpy()] = k.to_numpy()
    rows = pd.DataFrame({"lead": np.tile(leads / 4.0, len(issues)), "y": y[target].ravel(),
                         "base": p50[target].ravel(), "k": np.repeat(kk, len(leads))})
    return rows[np.isfinite(rows["y"]) & (elev[target].ravel() > 0)].reset_index(drop=True)


def served(plant, issue, known=None, cal=None, hours=6, limit=None):
    """The service's forecast issued at ``issue`` (adaptation.forecast_with_calibrations, what Forecaster.predict
    runs): serving frames of the plant tuned by its calibration, the actuals ``known`` in [T - window, T)."""
    power, weather, _, model, fitted = plant
    cal = {**(fitted if cal is None else cal), "version": 1}
    location = data.site_location(CONFIG["site"], 1, CAP, CAP)
    if limit is not None:
        location = location.assign(export_limit_kw=limit)
    tuned = tuning.tuned_locations(location, None, adaptation.tuning_table({1: cal}))[0]
    f = features.feature_frame(tuned, weather, forecast.forecast_times(issue, hours, 15), serving=True)
    lookback = None
    if known is not None:
        known = known[intraday.actuals_window(known["time"], issue, cal["intraday"]["window_minutes"])]
        lookback = features.feature_frame(tuned, weather, pd.DatetimeIndex(known["time"]), serving=True)
    return adaptation.forecast_with_calibrations(f, tuned, {"global": model}, "ml", issue, -1, {1: cal}, known,
                                                 lookback)[0]


def client_actuals(power):
    return pd.DataFrame({"location_id": 1, "time": power.index, "power_kw": power.to_numpy()})


def test_forecast_issued_at_t_is_the_same_whether_or_not_actuals_at_or_after_t_exist(plant):
    """The service path with the actuals a client has at T, and with the same plus wrong values at and after T:
    the selection [T - window, T) makes both forecasts identical, and a sample at T handed in directly is
    refused, not used."""
    power, weather, tuned, model, cal = plant
    issue = pd.Timestamp("2016-08-10T17:00:00Z")
    actuals = client_actuals(power)
    later = actuals.assign(power_kw=np.where(actuals["time"] >= issue, 0.0, actuals["power_kw"]))
    frames = [served(plant, issue, known) for known in (actuals[actuals["time"] < issue], actuals, later)]
    pd.testing.assert_frame_equal(frames[0], frames[1])
    pd.testing.assert_frame_equal(frames[0], frames[2])
    assert not frames[0].equals(served(plant, issue))  # the actuals before T are used
    window = pd.Timedelta(minutes=cal["intraday"]["window_minutes"])
    at_t = actuals[(actuals["time"] > issue - window) & (actuals["time"] <= issue)]
    lookback = features.feature_frame(tuned, weather, pd.DatetimeIndex(at_t["time"]), serving=True)
    reference = forecast.forecast_quantiles(lookback, tuned, model, "ml", issue)
    with pytest.raises(ValueError, match="at or after the issue time"):
        adaptation.serving_adaptation({1: cal}, tuned, issue, at_t, reference, lookback)


def test_calibration_holds_a_fitted_blend_that_survives_storage_as_json(plant):
    """The calibration's intraday blend: fitted on simulated hourly issues before the cutoff (every lead bin
    with enough rows, none on the prior), JSON as stored (NaN as null) and read back into the same weights."""
    blend = plant[4]["intraday"]["blend"]
    assert blend["ok"] and blend["reason"] is None and blend["fallback"] == [], blend
    assert blend["candidates"] == list(intraday.BLEND_CANDIDATES) and blend["issues"] > 300
    shrink = np.asarray(blend["shrink"])
    assert ((shrink > 0) & (shrink < 1)).all() and min(blend["n"]) >= intraday.BLEND_MIN_ROWS
    fitted = np.asarray(blend["fitted"], dtype=float)
    assert (fitted >= 0).all() and (fitted.sum(axis=1) <= 1 + 1e-9).all()
    assert fitted[0, 1:].sum() > 0  # the clear-sky-index candidates carry weight at the first leads
    stored = json.loads(store.finite_json(plant[4]["intraday"]))
    assert stored["blend"] == blend
    got = adaptation.stacked_blends({1: {**plant[4], "intraday": stored}}, [1])
    np.testing.assert_array_equal(got["fitted"][0], fitted)


def test_blend_fit_sees_nothing_at_or_after_the_cutoff(plant):
    """Actuals at and after the cutoff set to 0: the same blend (its simulated issues and targets are before it)."""
    power, weather, _, model, cal = plant
    location = data.site_location(CONFIG["site"], 1, CAP, CAP)
    actuals = pd.DataFrame({"time": power.index, "power_kw": np.where(power.index >= CUTOFF, 0.0, power.to_numpy())})
    again = adaptation.fit_calibration(location, weather, actuals, model, CUTOFF, tau_hours=0.75)
    assert again["intraday"]["blend"] == cal["intraday"]["blend"]


def test_too_short_a_history_keeps_the_prior_and_says_so(plant):
    """Ten hours of history: every lead bin under BLEND_MIN_ROWS, ok False with the reason, and the served
    forecast is the update before fitted weights (the power index with weight exp(-lead / tau))."""
    power, weather, tuned, model, cal = plant
    times = power.index[(power.index >= CUTOFF - pd.Timedelta(hours=10)) & (power.index < CUTOFF)]
    f = features.feature_frame(tuned, weather, times)
    p50 = forecast.forecast_quantiles(f, tuned, model, "ml", times[0])["p50"]
    blend = adaptation.fit_intraday_blend(times, power.reindex(times), p50, f, tuned, model, cal["bands"], 0.75, 60)
    assert not blend["ok"] and "prior weights exp(-lead / 0.75 h)" in blend["reason"], blend
    assert len(blend["fallback"]) == len(intraday.BLEND_LEAD_EDGES_HOURS) - 1 and sum(blend["shrink"]) == 0
    refused = {**cal, "intraday": {**cal["intraday"], "blend": blend}}
    issue = pd.Timestamp("2016-08-10T17:00:00Z")
    known = client_actuals(power)
    got = served(plant, issue, known[known["time"] < issue], refused)
    before = {**cal, "intraday": {**cal["intraday"], "blend": None}}  # stored before fitted blends
    assert got.equals(served(plant, issue, known[known["time"] < issue], before))
    # ... which is intraday_shift of the power index (the update the service ran before)
    f = features.feature_frame(tuned, weather, forecast.forecast_times(issue, 6, 15), serving=True)
    adapt = adaptation.serving_adaptation({1: refused}, tuned, issue)
    sel = known[intraday.actuals_window(known["time"], issue)]
    lookback = features.feature_frame(tuned, weather, pd.DatetimeIndex(sel["time"]), serving=True)
    reference = forecast.forecast_quantiles(lookback, tuned, model, "ml", issue)
    k = adaptation.serving_adaptation({1: refused}, tuned, issue, sel, reference, lookback)["k_meas"]
    old = forecast.forecast_quantiles(f, tuned, model, "ml", issue, adaptation={**{
        key: adapt[key] for key in ("location_ids", "offsets")}, "k_meas": k, "tau_hours": np.array([0.75])})
    new = forecast.forecast_quantiles(f, tuned, model, "ml", issue, adaptation=adaptation.serving_adaptation(
        {1: refused}, tuned, issue, sel, reference, lookback))
    np.testing.assert_allclose(new[COLS].to_numpy(), old[COLS].to_numpy(), rtol=0, atol=1e-12)


def test_the_fitted_weight_on_the_last_sample_is_served(plant):
    """The last 15 min measured 60 % lower, the hour's sum kept (the first sample raised by as much): the power
    index and the hour's clear-sky index do not move, so the prior forecast does not; the served forecast of
    the first lead falls (the fitted weight on the last sample's clear-sky index), and nothing after 6 h moves."""
    power, _, _, _, cal = plant
    issue = pd.Timestamp("2016-08-10T18:00:00Z")
    known = client_actuals(power[power.index < issue])
    last = known.index[-4:]
    moved = known.copy()
    drop = 0.6 * moved.loc[last[-1], "power_kw"]
    moved.loc[last[-1], "power_kw"] -= drop
    moved.loc[last[0], "power_kw"] += drop
    prior = {**cal, "intraday": {**cal["intraday"], "blend": None}}
    assert served(plant, issue, known, prior, 12).equals(served(plant, issue, moved, prior, 12))
    a, b = served(plant, issue, known, hours=12), served(plant, issue, moved, hours=12)
    assert b["p50"].iloc[0] < a["p50"].iloc[0] - 0.05
    late = (a["horizon_minutes"] > 360).to_numpy()
    pd.testing.assert_frame_equal(a[late], b[late])


def test_a_plant_without_calibration_or_without_actuals_is_forecast_as_before(plant):
    """No calibration: the global forecast, bit for bit. A calibration but no actuals before T: its band
    offsets only (no intraday shift), bit for bit the forecast with the power index missing."""
    power, weather, tuned, model, cal = plant
    issue = pd.Timestamp("2016-08-10T17:00:00Z")
    f = features.feature_frame(tuned, weather, forecast.forecast_times(issue, 24, 15), serving=True)
    plain = forecast.forecast_quantiles(f, tuned, model, "ml", issue)
    got = adaptation.forecast_with_calibrations(f, tuned, {"global": model}, "ml", issue, -1, {})[0]
    pd.testing.assert_frame_equal(got, plain)
    bands = {"location_ids": np.array([1]), "offsets": np.asarray(cal["bands"]["offsets"])[None],
             "k_meas": np.array([np.nan]), "tau_hours": np.array([0.75])}
    expected = forecast.forecast_quantiles(f, tuned, model, "ml", issue, adaptation=bands)
    for known in (None, client_actuals(power.iloc[:0])):
        got = adaptation.forecast_with_calibrations(f, tuned, {"global": model}, "ml", issue, -1,
                                                    {1: {**cal, "version": 1}}, known)[0]
        pd.testing.assert_frame_equal(got, expected)


def test_invariants_hold_on_the_served_path_with_any_actuals(plant):
    """Actuals of the last hour at 0, x 3 and x 50: the served forecast keeps 0 <= p10 <= ... <= p90 <= the export
    limit and 0 at night."""
    power, _, _, _, _ = plant
    issue = pd.Timestamp("2016-08-22T15:00:00Z")
    known = client_actuals(power[power.index < issue])
    for factor in (0.0, 3.0, 50.0):
        fx = served(plant, issue, known.assign(power_kw=known["power_kw"] * factor), hours=24, limit=4.0)
        kw = fx[COLS].to_numpy()
        assert (kw >= 0).all() and (np.diff(kw, axis=1) >= 0).all() and (kw <= 4.0).all()
        hours = fx["valid_time"].dt.tz_convert("America/Denver").dt.hour
        assert (kw[((hours < 4) | (hours > 21)).to_numpy()] == 0).all()


def test_invariants_hold_with_the_fitted_blend_on(plant, past_rows):
    """Fitted blend weights and extreme power indices keep 0 <= p10 <= ... <= p90 <= limit and 0 at night."""
    power, weather, tuned, model, cal = plant
    fit = intraday.fit_blend(past_rows["lead"], past_rows["y"], past_rows["base"],
                             (np.clip(past_rows["k"], *intraday.K_BOUNDS) * past_rows["base"]).to_numpy()[:, None],
                             0.75)
    issue = pd.Timestamp("2016-08-22T15:00:00Z")
    times = forecast.forecast_times(issue, 24, 15)
    loc = tuned.assign(export_limit_kw=4.0)
    f = features.feature_frame(loc, weather, times)
    lead = (times - issue).total_seconds().to_numpy() / 3600.0
    elev = f["solar_elevation"].to_numpy()
    q = forecast.ml_quantiles(f, np.full(len(times), CAP), model)
    for k in (0.0, 0.4, 3.0, 50.0):
        shift = intraday.blend_shift(q[:, 2], lead, (np.clip(k, *intraday.K_BOUNDS) * q[:, 2])[:, None], fit)
        kw = quantiles.apply_limits(q + shift[:, None], np.full(len(times), CAP), np.full(len(times), 4.0), elev)
        assert (kw >= 0).all() and (np.diff(kw, axis=1) >= 0).all() and (kw <= 4.0).all()
        assert (kw[elev <= 0] == 0).all()
        assert np.abs(shift).max() > 0 or k == 1.0


def test_fitted_blend_weights_are_convex_and_help_on_the_rows_they_were_fitted_on(past_rows):
    r = past_rows
    cand = np.column_stack([np.clip(r["k"], *intraday.K_BOUNDS) * r["base"], r["base"] * 0.9])
    fit = intraday.fit_blend(r["lead"], r["y"], r["base"], cand, 0.75)
    w = intraday.blend_weights(r["lead"].to_numpy(), fit)
    assert (w >= 0).all() and (w.sum(axis=1) <= 1 + 1e-12).all()
    assert fit["fallback"] == [] and (fit["shrink"] > 0).all() and (fit["shrink"] < 1).all()
    # the grid holds the prior's weights only to its step: never worse than the prior by more than that costs
    assert (fit["mae_fitted"] <= fit["mae_prior"] + 1e-4).all() and fit["mae_fitted"].mean() < fit["mae_prior"].mean()
    assert (intraday.blend_weights(np.array([0.0, 6.25, 30.0]), fit) == 0).all()  # outside the fitted leads


def test_too_little_history_falls_back_to_the_prior_and_says_so(past_rows):
    """With 10 rows no bin is fitted: the weights are exp(-lead / tau) on the power index (the update before
    fitted weights, intraday_shift), and every bin is listed in ``fallback`` with its count."""
    r = past_rows.iloc[:10]
    cand = (np.clip(r["k"], *intraday.K_BOUNDS) * r["base"]).to_numpy()[:, None]
    fit = intraday.fit_blend(r["lead"], r["y"], r["base"], cand, 0.75)
    assert len(fit["fallback"]) == len(intraday.BLEND_LEAD_EDGES_HOURS) - 1
    assert "prior weights (tau 0.75 h)" in fit["fallback"][0] and (fit["shrink"] == 0).all()
    lead = past_rows["lead"].to_numpy()
    base = past_rows["base"].to_numpy()
    k = past_rows["k"].to_numpy()
    got = intraday.blend_shift(base, lead, (np.clip(k, *intraday.K_BOUNDS) * base)[:, None], fit)
    np.testing.assert_allclose(got, intraday.intraday_shift(base, lead, k, 0.75), atol=1e-12)


def test_aci_raises_an_offset_after_misses_above_and_lowers_it_after_misses_below(plant, past_rows):
    """Real residuals of the plant's P50 as issued: rows measured above the P90 push the P90 offset up, rows
    below the P10 push the P10 offset down; rows at the nominal rate leave the offsets where they are."""
    r = past_rows
    q = r["base"].to_numpy()[:, None] + np.array([-0.1, -0.05, 0.0, 0.05, 0.1])[None, :]
    y = r["y"].to_numpy()
    high = y > q[:, 4]
    low = y < q[:, 0]
    assert high.sum() > 10 and low.sum() > 10
    up = conformal.aci_update(np.zeros(5), y[high], q[high])
    down = conformal.aci_update(np.zeros(5), y[low], q[low])
    assert (up > 0).all() and (down < 0).all()
    theta = np.zeros((2, 5))
    both = conformal.aci_update(theta, np.concatenate([y[high], y[low]]), np.vstack([q[high], q[low]]),
                                plant=np.r_[np.zeros(high.sum(), int), np.ones(low.sum(), int)])
    np.testing.assert_allclose(both, np.vstack([up, down]))
    # nominal rate: of 10 rows, one above the P90 -> the P90 offset stays (up to rounding)
    ten = np.r_[np.flatnonzero(high)[:1], np.flatnonzero(~high & (y < q[:, 4]))[:9]]
    assert conformal.aci_update(np.zeros(5), y[ten], q[ten])[4] == pytest.approx(0.0, abs=1e-12)
    assert (np.abs(conformal.aci_update(np.zeros(5), np.full(10 ** 5, 9.0), np.zeros((10 ** 5, 5))))
            <= conformal.ACI_BOUND).all()

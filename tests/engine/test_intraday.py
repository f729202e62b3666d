"""Intraday update and online band offsets on a real plant-period outside training and hold-out (SERF East 2016)."""

import numpy as np
import pandas as pd
import pytest

from engine import adaptation, conformal, data, features, forecast, intraday, modelio, quantiles, resources, training

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


def test_forecast_issued_at_t_is_the_same_whether_or_not_actuals_at_or_after_t_exist(plant):
    """The service path (serving_adaptation -> forecast_quantiles) with the actuals a client has at T, and with
    the same plus wrong values at and after T: the selection [T - window, T) makes both forecasts identical,
    and a sample at T handed in directly is refused, not used."""
    power, weather, tuned, model, cal = plant
    issue = pd.Timestamp("2016-08-10T17:00:00Z")
    times = forecast.forecast_times(issue, 6, 15)
    f = features.feature_frame(tuned, weather, times)
    calibrations = {1: cal}
    actuals = pd.DataFrame({"location_id": 1, "time": power.index, "power_kw": power.to_numpy()})
    later = actuals.assign(power_kw=np.where(actuals["time"] >= issue, 0.0, actuals["power_kw"]))
    window = pd.Timedelta(minutes=cal["intraday"]["window_minutes"])
    frames = []
    for known in (actuals[actuals["time"] < issue], actuals, later):
        sel = known[intraday.actuals_window(known["time"], issue, cal["intraday"]["window_minutes"])]
        assert (sel["time"] < issue).all() and len(sel) == window / pd.Timedelta(minutes=15)
        lookback = features.feature_frame(tuned, weather, pd.DatetimeIndex(sel["time"]))
        reference = forecast.forecast_quantiles(lookback, tuned, model, "ml", issue)
        adapt = adaptation.serving_adaptation(calibrations, tuned, issue, sel, reference)
        assert np.isfinite(adapt["k_meas"]).all()
        frames.append(forecast.forecast_quantiles(f, tuned, model, "ml", issue, adaptation=adapt))
    pd.testing.assert_frame_equal(frames[0], frames[1])
    pd.testing.assert_frame_equal(frames[0], frames[2])
    at_t = actuals[(actuals["time"] > issue - window) & (actuals["time"] <= issue)]
    lookback = features.feature_frame(tuned, weather, pd.DatetimeIndex(at_t["time"]))
    reference = forecast.forecast_quantiles(lookback, tuned, model, "ml", issue)
    with pytest.raises(ValueError, match="at or after the issue time"):
        adaptation.serving_adaptation(calibrations, tuned, issue, at_t, reference)


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

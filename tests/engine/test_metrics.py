"""Metric functions on small slices of the real SERF East measurements."""

from pathlib import Path

import numpy as np
import pytest
import yaml

from engine import data, metrics, quantiles

CONFIG = yaml.safe_load((Path(__file__).parents[2] / "configs" / "training.yaml").read_text())


@pytest.fixture(scope="module")
def july_day():
    """Measured power (kW) of 2012-07-10 (local), 15-min, and the next sample as a 'forecast'."""
    power = data.load_power(CONFIG)[0]
    day = power["2012-07-10 06:00":"2012-07-11 06:00"].dropna()
    return day.to_numpy()[:-1], day.to_numpy()[1:]


def test_mae_rmse_bias_match_hand_computation(july_day):
    obs, fx = july_day
    n = len(obs)
    assert metrics.mae(obs, fx) == pytest.approx(sum(abs(f - o) for o, f in zip(obs, fx)) / n)
    assert metrics.rmse(obs, fx) == pytest.approx((sum((f - o) ** 2 for o, f in zip(obs, fx)) / n) ** 0.5)
    assert metrics.bias(obs, fx) == pytest.approx(sum(f - o for o, f in zip(obs, fx)) / n)
    assert metrics.mae(obs, obs) == 0.0


def test_pinball_median_is_half_mae(july_day):
    obs, fx = july_day
    assert metrics.pinball(obs, fx, 0.5) == pytest.approx(0.5 * metrics.mae(obs, fx))


def test_pinball_penalises_under_forecast_at_high_quantile(july_day):
    obs, _ = july_day
    low, high = obs - 0.1, obs + 0.1
    assert metrics.pinball(obs, low, 0.9) == pytest.approx(0.09)
    assert metrics.pinball(obs, high, 0.9) == pytest.approx(0.01)


def test_crps_of_a_point_forecast_equals_mae(july_day):
    obs, fx = july_day
    q = np.repeat(fx[:, None], 5, axis=1)
    assert metrics.crps_from_quantiles(obs, q) == pytest.approx(metrics.mae(obs, fx))


def test_coverage_of_a_known_construction_is_exact(july_day):
    """Even rows: the interval is [obs, obs] (ties at both ends: inside); odd rows: it lies above obs."""
    obs, _ = july_day
    odd = np.arange(len(obs)) % 2 == 1
    lower = np.where(odd, obs + 1.0, obs)
    upper = np.where(odd, obs + 2.0, obs)
    assert metrics.coverage(obs, lower, upper) == (~odd).sum() / len(obs)
    assert metrics.coverage(obs, obs - 1.0, upper) == 1.0
    assert metrics.coverage(obs, obs + 1.0, obs + 2.0) == 0.0


def test_coverage_counts_inside_interval(july_day):
    obs, fx = july_day
    lower, upper = np.minimum(obs, fx), np.maximum(obs, fx)
    assert metrics.coverage(obs, lower, upper) == 1.0
    above = obs > fx
    assert metrics.coverage(obs, lower - 1.0, fx) == pytest.approx(1.0 - above.mean())


def test_skill_score():
    assert metrics.skill(0.06, 0.08) == pytest.approx(0.25)
    assert metrics.skill(0.08, 0.08) == 0.0


def test_evaluate_normalises_by_capacity_and_reports_daylight(july_day):
    obs, fx = july_day
    q = np.column_stack([fx * 0.8, fx * 0.9, fx, fx * 1.1, fx * 1.2])
    daylight = obs > 0
    out = metrics.evaluate(obs, q, 3.0, daylight)
    assert out["mae_all"] == pytest.approx(metrics.mae(obs, fx) / 3.0)
    assert out["mae_day"] == pytest.approx(metrics.mae(obs[daylight], fx[daylight]) / 3.0)
    assert "coverage_p10_p90_all" not in out
    # P10 = P90 = obs on even rows (inside), above obs on odd rows (outside): coverage = share of even rows
    odd = np.arange(len(obs)) % 2 == 1
    out = metrics.evaluate(obs, np.repeat(np.where(odd, obs + 1.0, obs)[:, None], 5, axis=1), 3.0, daylight)
    assert out["coverage_p10_p90_day"] == (~odd[daylight]).sum() / daylight.sum()
    assert set(f"{m}_day" for m in metrics.METRICS) <= set(out)


def test_evaluate_refuses_missing_observations(july_day):
    obs, fx = july_day
    obs = obs.copy()
    obs[3] = np.nan
    with pytest.raises(ValueError, match="finite"):
        metrics.evaluate(obs, np.repeat(fx[:, None], 5, axis=1), 3.0, obs > 0)


def test_clear_sky_persistence_uses_yesterdays_index():
    power = data.load_power(CONFIG)[0]["2012-07-09 06:00":"2012-07-11 06:00"]
    # reference curve: the measured power of the first day repeated (a real diurnal shape)
    first = power.iloc[:96].fillna(0).to_numpy()
    clear = np.resize(first, len(power)) + 0.01
    day_key = power.index.tz_convert("America/Denver").tz_localize(None).normalize()
    fx = metrics.clear_sky_persistence(power, clear, day_key)
    days = day_key.unique()
    d0 = np.asarray(day_key == days[0])
    d1 = np.asarray(day_key == days[1])
    ok = d0 & power.notna().to_numpy()
    k0 = power.to_numpy()[ok].sum() / clear[ok].sum()
    assert np.isnan(fx[d0]).all()
    np.testing.assert_allclose(fx[d1], k0 * clear[d1])


def test_conformal_offsets_restore_nominal_coverage_on_real_errors():
    """Too-narrow quantiles around yesterday's power, widened by conformal offsets per bin."""
    from engine import calibration

    power = data.load_power(CONFIG)[0]["2012-05-01":"2012-09-01"]
    obs = power.to_numpy()
    prev_day = power.shift(96).to_numpy()
    ok = np.isfinite(obs) & np.isfinite(prev_day) & (obs > 0)
    obs, prev_day = obs[ok], prev_day[ok]
    narrow = np.column_stack([prev_day * f for f in (0.97, 0.99, 1.0, 1.01, 1.03)])
    assert metrics.coverage(obs, narrow[:, 0], narrow[:, 4]) < 0.5
    groups = calibration.bin_index(prev_day, [0.0, 1.0, 2.0, 10.0])
    offsets = calibration.fit_offsets(obs, narrow, quantiles.ALPHAS, groups, 3)
    q = calibration.apply_offsets(narrow, groups, offsets)
    assert metrics.coverage(obs, q[:, 0], q[:, 4]) == pytest.approx(0.8, abs=0.01)
    assert metrics.coverage(obs, q[:, 1], q[:, 3]) == pytest.approx(0.5, abs=0.01)
    for g in range(3):
        sel = groups == g
        assert np.mean(obs[sel] <= q[sel, 2]) == pytest.approx(0.5, abs=0.02)


def test_reliability_points_and_coverage_agree_with_ties_at_zero():
    """Measured power at night and dusk is exactly 0 where the lower quantiles are clipped to 0.

    Forecast: the previous day's measured power widened by fixed offsets, floored at 0 (as
    ``quantiles.apply_limits`` floors). The reliability frequencies of P10 and P90 must differ by
    exactly the P10-P90 coverage (P25/P75 likewise), and a tie at 0 must not count as below P10.
    """
    power = data.load_power(CONFIG)[0]["2012-06-01":"2012-07-01"]
    obs = power.to_numpy()
    prev = power.shift(96).to_numpy()
    ok = np.isfinite(obs) & np.isfinite(prev)
    obs, prev = obs[ok], prev[ok]
    q = np.maximum(np.column_stack([prev * f + d for f, d in
                                    zip((0.6, 0.8, 1.0, 1.2, 1.4), (-0.3, -0.1, 0.0, 0.1, 0.3))]), 0.0)
    ties = (obs == 0) & (q[:, 0] == 0)
    assert ties.sum() > 1000  # the real data has the ties this test is about
    freq = metrics.observed_frequencies(obs, q)
    assert freq[4] - freq[0] == pytest.approx(metrics.coverage(obs, q[:, 0], q[:, 4]), abs=1e-12)
    assert freq[3] - freq[1] == pytest.approx(metrics.coverage(obs, q[:, 1], q[:, 3], (0.25, 0.75)), abs=1e-12)
    # counting a tie at 0 as "below P10" (obs <= q) would move the P10 point up by the share of ties
    assert np.mean(obs <= q[:, 0]) - freq[0] == pytest.approx(ties.mean(), abs=1e-12)

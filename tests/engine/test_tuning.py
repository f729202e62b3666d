"""Plant tuning on real measured power (SERF East, training period only; never the 2013 hold-out)."""

import numpy as np
import pandas as pd
import pytest

from engine import conformal, data, features, training, tuning

CONFIG = training.load_config()
CUTOFF = pd.Timestamp("2012-07-01T00:00:00Z")  # inside the training period (ends 2013-01-01)


@pytest.fixture(scope="module")
def serf():
    """SERF East 2012-05..2012-06 (training period): cleaned power, PSM3 weather, entered with DC = AC."""
    loaded = data.load_serf_east(CONFIG)
    power = loaded["power"]
    power = power[(power.index >= "2012-05-01") & (power.index < "2012-07-08")].asfreq("15min")
    weather = loaded["weather"]
    weather = weather[(weather["valid_time"] >= "2012-04-30") & (weather["valid_time"] < "2012-07-09")]
    return power, weather, loaded["location"]


def fit(serf, dc_kw, power=None, half_life_days=None):
    p, weather, location = serf
    p = p if power is None else power
    loc = location.assign(capacity_dc_kw=dc_kw)
    f = features.feature_frame(loc, weather, p.index)
    cap = float(loc.loc[0, "capacity_ac_kw"])
    return tuning.fit_tuning(p, f["physical_ac_kw"], f["solar_elevation"], f["csi"], cap, dc_kw, CUTOFF,
                             "America/Denver", half_life_days=half_life_days)


def true_dc(serf):
    """The DC capacity fitted by training (model card derivation) on the whole training period."""
    import json
    from engine import resources
    card = json.loads((resources.folder("models") / "global.json").read_text())
    return card["capacity"]["capacity_dc_kw"]


@pytest.mark.parametrize("entered", [1.0, 0.7, 1.4])
def test_scale_recovers_the_dc_capacity_within_5_percent(serf, entered):
    """Entered DC = AC (1.0 x AC), or a DC 30 % low / 40 % high: the tuned DC is the plant's within 5 %."""
    cap = float(serf[2].loc[0, "capacity_ac_kw"])
    result = fit(serf, entered * cap)
    assert result["ok"], result["reason"]
    assert result["capacity_dc_kw"] == pytest.approx(true_dc(serf), rel=0.05)
    assert result["window_end"] < CUTOFF and result["diagnostics"]["days"] >= tuning.MIN_DAYS


def test_actuals_after_the_cutoff_change_nothing(serf):
    cap = float(serf[2].loc[0, "capacity_ac_kw"])
    power = serf[0].copy()
    power[power.index >= CUTOFF] *= 3.0
    assert fit(serf, cap, power) == fit(serf, cap)


def test_outages_and_stale_runs_are_rejected_not_learned(serf):
    """A week of zeros in daylight (an outage) and a stuck logger leave the scale where it was."""
    cap = float(serf[2].loc[0, "capacity_ac_kw"])
    power = serf[0].copy()
    power[(power.index >= "2012-06-10") & (power.index < "2012-06-17")] = 0.0
    stuck = (power.index >= "2012-06-20T16:00Z") & (power.index < "2012-06-20T20:00Z")
    power[stuck] = 1.234
    broken = fit(serf, cap, power)
    assert broken["diagnostics"]["outage"] > 100 and broken["diagnostics"]["stale"] >= 10
    assert broken["dc_scale"] == pytest.approx(fit(serf, cap)["dc_scale"], rel=0.01)


def test_too_little_history_is_an_error_as_data(serf):
    cap = float(serf[2].loc[0, "capacity_ac_kw"])
    power = serf[0][serf[0].index >= "2012-06-27"]
    result = fit(serf, cap, power)
    assert not result["ok"] and result["code"] == "too_few_days"
    assert result["dc_scale"] == 1.0


@pytest.mark.parametrize("divisor", [4.0, 12.0])
def test_energy_per_period_sent_as_power_is_refused_not_clamped(serf, divisor):
    """kWh per 15 min (power / 4) or per 5 min (/ 12) sent as kW: the measured/modelled ratio is far below any
    plant's DC scale, so the fit is refused with the code ``scale`` (it was clamped to 0.5 and learnt)."""
    cap = float(serf[2].loc[0, "capacity_ac_kw"])
    result = fit(serf, 1.2 * cap, serf[0] / divisor)
    assert not result["ok"] and result["code"] == "scale", result["reason"]
    assert result["dc_scale"] == 1.0 and result["capacity_dc_kw"] == 1.2 * cap
    assert result["diagnostics"]["level_ratio"] < tuning.DC_SCALE_BOUNDS[0]


def test_kw_sent_for_a_plant_entered_in_w_is_a_scale_refusal_not_an_outage(serf):
    """Capacity entered in W (x1000), actuals in kW: every daylight value is under 1 % of the capacity, i.e. an
    "outage" to usable_samples; the refusal says scale (before: "too few clear samples")."""
    p, weather, location = serf
    loc = location.assign(capacity_ac_kw=1000 * location["capacity_ac_kw"], capacity_dc_kw=1200 * location[
        "capacity_ac_kw"])
    f = features.feature_frame(loc, weather, p.index)
    cap = float(loc.loc[0, "capacity_ac_kw"])
    result = tuning.fit_tuning(p, f["physical_ac_kw"], f["solar_elevation"], f["csi"], cap,
                               float(loc.loc[0, "capacity_dc_kw"]), CUTOFF, "America/Denver")
    assert not result["ok"] and result["code"] == "scale", result["reason"]
    assert result["diagnostics"]["level_ratio"] < 0.01


def test_a_plant_at_twice_its_scale_bound_is_refused_but_inside_it_is_fitted(serf):
    """The bound is a refusal, not a clamp: entered DC half of what the plant has (scale ~2.4 > 2.0) is refused;
    0.7 x AC (scale ~1.7) is fitted."""
    cap = float(serf[2].loc[0, "capacity_ac_kw"])
    assert fit(serf, 0.7 * cap)["ok"]
    low = fit(serf, 0.5 * cap)
    assert not low["ok"] and low["code"] == "scale", low["reason"]


def test_refusal_codes_are_one_definition():
    assert tuning.REFUSAL_CODES == tuple(tuning.REFUSALS) and len(set(tuning.REFUSAL_CODES)) == len(tuning.REFUSALS)


def test_an_observed_clipping_level_below_the_rating_is_found(serf):
    """The same plant behind an inverter limited to 2.5 kW: the flat tops give the level."""
    cap = float(serf[2].loc[0, "capacity_ac_kw"])
    result = fit(serf, cap, serf[0].clip(upper=2.5))
    assert result["clip_kw"] == pytest.approx(2.5, abs=0.01)
    assert fit(serf, cap)["clip_kw"] is None


def test_tuned_locations_scale_dc_and_limit_export():
    locations = pd.DataFrame({"location_id": [1, 2], "capacity_dc_kw": [5.0, 8.0], "capacity_ac_kw": [5.0, 6.0],
                              "export_limit_kw": [np.nan, 4.0]})
    planes = pd.DataFrame({"location_id": [2, 2], "plane": [0, 1], "capacity_dc_kw": [4.0, 4.0]})
    tuned, tuned_planes = tuning.tuned_locations(locations, planes, pd.DataFrame(
        {"location_id": [2], "dc_scale": [1.25], "clip_kw": [3.5]}))
    assert tuned["capacity_dc_kw"].tolist() == [5.0, 10.0]
    assert tuned["export_limit_kw"].tolist()[1] == 3.5 and np.isnan(tuned["export_limit_kw"].iloc[0])
    assert tuned_planes["capacity_dc_kw"].tolist() == [5.0, 5.0]


def test_stale_values_are_pvanalytics_stale_values_diff(serf):
    """The vectorised stale rule flags exactly what pvanalytics' stale_values_diff flags (gaps as -1 or NaN)."""
    from pvanalytics.quality import gaps
    power = serf[0]
    for series in (power.fillna(-1.0), power):
        for window in (2, 4, 6):
            expected = np.asarray(gaps.stale_values_diff(series, window=window), dtype=bool)
            assert expected.sum() > 0
            np.testing.assert_array_equal(tuning.stale_values(series, window), expected)


def test_recency_weights_tune_the_dc_scale_to_the_plant_after_a_step(serf):
    """From 2012-06-10 the measured power is x 0.8 (a string lost, heavy soiling: a known change imposed on real
    actuals), 21 of the 61 days before the cutoff. Weighted by age (conformal's recency weights, its half-life) the
    tuned DC is the plant's recent one within 3 %; with equal weights the median stays with the 40 days before the step.
    """
    cap = float(serf[2].loc[0, "capacity_ac_kw"])
    power = serf[0].copy()
    power[power.index >= "2012-06-10"] *= 0.8
    half_life = conformal.HALF_LIFE_DAYS
    steady = fit(serf, cap, half_life_days=half_life)["capacity_dc_kw"]
    recent = fit(serf, cap, power, half_life_days=half_life)
    assert recent["capacity_dc_kw"] == pytest.approx(0.8 * steady, rel=0.03)
    assert recent["diagnostics"]["half_life_days"] == half_life
    assert recent["diagnostics"]["clear_n_effective"] < recent["diagnostics"]["clear_samples"]
    assert fit(serf, cap, power)["capacity_dc_kw"] > 0.9 * fit(serf, cap)["capacity_dc_kw"]  # equal weights lag


def test_equal_recency_weights_are_the_unweighted_tuning(serf):
    """A half-life far longer than the history gives the unweighted fit (the weighted median is the median)."""
    cap = float(serf[2].loc[0, "capacity_ac_kw"])
    assert fit(serf, cap, half_life_days=1e9)["dc_scale"] == pytest.approx(fit(serf, cap)["dc_scale"], rel=1e-6)


@pytest.mark.parametrize("since_off", [True, False])
def test_a_capacity_change_is_fitted_on_the_plants_present_state(serf, since_off):
    """Half the strings off for the last two weeks (still off), or off until then and back on: the DC scale is the
    present state's (x0.5, or x1, of the unchanged plant's within 5 %) from the days after the level change found,
    not a median of the two states (it learnt a mix: between the two)."""
    cap = float(serf[2].loc[0, "capacity_ac_kw"])
    power = serf[0].copy()
    late = power.index >= "2012-06-17T06:00Z"  # local midnight, America/Denver
    power[late if since_off else ~late] *= 0.5
    whole, changed = fit(serf, cap), fit(serf, cap, power)
    assert changed["ok"], changed["reason"]
    steps = changed["diagnostics"]["level_changes"]
    assert len(steps) == 1 and steps[0]["factor"] == pytest.approx(0.5 if since_off else 2.0, rel=0.1), steps
    assert abs(pd.Timestamp(steps[0]["first_day"]) - pd.Timestamp("2012-06-17")) <= pd.Timedelta(days=3)
    assert changed["dc_scale"] == pytest.approx(whole["dc_scale"] * (0.5 if since_off else 1.0), rel=0.05)


def test_the_unchanged_plant_has_no_level_change(serf):
    cap = float(serf[2].loc[0, "capacity_ac_kw"])
    assert fit(serf, cap)["diagnostics"]["level_changes"] == []


def test_too_few_clear_samples_since_a_level_change_is_refused(serf):
    """Half the strings off for the last 5 days: a change is found but the days after it hold fewer clear samples
    than a DC scale needs; refused with the code ``level_change`` rather than fitted on a mix of the two states."""
    cap = float(serf[2].loc[0, "capacity_ac_kw"])
    power = serf[0].copy()
    power[power.index >= "2012-06-26T06:00Z"] *= 0.5
    result = fit(serf, cap, power)
    assert not result["ok"] and result["code"] == "level_change", (result["code"], result["reason"])


def test_an_outage_is_the_whole_daylight_run_of_zeros(serf):
    """A week of zeros: every daylight sample of it (sun above 5 deg) is an outage, its mornings and evenings
    too (before, only the samples whose physical estimate was above 20 % of capacity: the ends of each day were
    left in as the plant's own low power and widened its bands); a plant's low power outside it is not."""
    p, weather, location = serf
    cap = float(location.loc[0, "capacity_ac_kw"])
    power = p.copy()
    week = (power.index >= "2012-06-10T06:00Z") & (power.index < "2012-06-17T06:00Z")
    power[week] = 0.0
    f = features.feature_frame(location, weather, power.index)
    flags = tuning.usable_samples(power, f["physical_ac_kw"], f["solar_elevation"], cap)
    daylight = f["solar_elevation"].to_numpy() > 5.0
    assert flags["outage"].to_numpy()[week & daylight].all()
    untouched = tuning.usable_samples(p, f["physical_ac_kw"], f["solar_elevation"], cap)["outage"].to_numpy()
    assert (flags["outage"].to_numpy() & ~week == untouched & ~week).all()

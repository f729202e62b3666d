"""engine.validation: bad input is refused naming column and row, never coerced (pure)."""

import numpy as np
import pandas as pd
import pytest

from engine import data, resample, validation

from storehelpers import TRAINING, demo_frames, demo_locations, forecast_of, real_weather

KNOWN = {1, 2, 3, 4}


@pytest.fixture
def weather():
    return real_weather(1)


@pytest.fixture
def locations():
    return demo_locations()


@pytest.fixture
def actuals():
    power, _ = data.load_power(TRAINING)
    power = power["2013-07-01":"2013-07-03"].dropna()
    return pd.DataFrame({"location_id": 1, "time": power.index, "power_kw": power.to_numpy()})


def test_real_psm3_weather_passes_with_nan_dni_dhi_cloud_cover(weather):
    assert weather[["dni", "dhi", "cloud_cover"]].isna().all().all()
    validation.validate_weather(weather, KNOWN)


def test_real_plants_pass(locations):
    validation.validate_locations(locations)


def test_negative_ghi_names_column_row_and_value(weather):
    weather.loc[3, "ghi"] = -5.0
    with pytest.raises(ValueError, match=r"^ghi: row 3 is out of range \[0, 2000\] W/m\^2 \(-5\.0\)$") as err:
        validation.validate_weather(weather, KNOWN)
    assert err.value.field == "ghi"


def test_implausible_wind_speed_is_refused(weather):
    weather.loc[4, "wind_speed"] = 1e300
    with pytest.raises(ValueError, match=r"^wind_speed: row 4 is out of range \[0, 100\] m/s"):
        validation.validate_weather(weather, KNOWN)


def test_negative_dni_is_refused(weather):
    weather.loc[7, "dni"] = -1.0
    with pytest.raises(ValueError, match=r"^dni: row 7 is out of range \[0, 2000\]"):
        validation.validate_weather(weather, KNOWN)


def test_missing_temperature_is_refused_not_filled(weather):
    weather.loc[10, "temp_air"] = np.nan
    with pytest.raises(ValueError, match=r"^temp_air: row 10 is missing \(NaN\)"):
        validation.validate_weather(weather, KNOWN)


def test_a_missing_wind_speed_is_accepted_and_replaced_by_the_training_constant_with_its_plants_named(weather):
    weather.loc[[3, 4], "wind_speed"] = np.nan
    validation.validate_weather(weather, KNOWN)  # optional: no error
    filled, flagged = resample.fill_wind_speed(weather, 1.0)
    assert (filled.loc[[3, 4], "wind_speed"] == 1.0).all() and filled["wind_speed"].notna().all()
    assert flagged.tolist() == sorted(set(weather.loc[[3, 4], "location_id"]))
    assert resample.fill_wind_speed(filled, 1.0)[1].size == 0


def test_infinite_wind_speed_is_refused(weather):
    weather.loc[2, "wind_speed"] = np.inf
    with pytest.raises(ValueError, match=r"^wind_speed: row 2 is infinite"):
        validation.validate_weather(weather, KNOWN)


def test_temperature_in_kelvin_is_refused(weather):
    weather["temp_air"] = weather["temp_air"] + 273.15
    with pytest.raises(ValueError, match=r"^temp_air: row 0 is out of range \[-90, 70\] degC"):
        validation.validate_weather(weather, KNOWN)


def test_unknown_location_id_is_refused(weather):
    weather.loc[5, "location_id"] = 999
    with pytest.raises(LookupError, match=r"^location_id: row 5 is not a known location \(999\)") as err:
        validation.validate_weather(weather, KNOWN)
    assert err.value.field == "location_id"


def test_weather_time_outside_the_accepted_range_is_refused(weather):
    weather["issue_time"] = weather["issue_time"].astype(object)
    weather.loc[3, "issue_time"] = pd.Timestamp("2263-01-01T00:00:00Z")
    with pytest.raises(ValueError, match=r"^issue_time: row 3 is outside \[1900-01-01"):
        validation.validate_weather(weather, KNOWN)


def test_control_character_in_a_source_is_refused(weather):
    weather.loc[9, "source"] = "psm3\x00"
    with pytest.raises(ValueError, match=r"^source: row 9 holds a control character"):
        validation.validate_weather(weather, KNOWN)


def test_naive_valid_time_is_refused(weather):
    weather["valid_time"] = weather["valid_time"].dt.tz_localize(None)
    with pytest.raises(ValueError, match=r"^valid_time: row 0 is naive"):
        validation.validate_weather(weather, KNOWN)


def test_naive_timestamp_among_aware_ones_is_refused(weather):
    weather["issue_time"] = weather["issue_time"].astype(object)
    weather.loc[4, "issue_time"] = pd.Timestamp("2013-07-01 02:00")
    with pytest.raises(ValueError, match=r"^issue_time: row 4 is naive"):
        validation.validate_weather(weather, KNOWN)


def test_duplicate_weather_key_names_both_rows(weather):
    weather = pd.concat([weather, weather.iloc[[6]]], ignore_index=True)
    last = len(weather) - 1
    with pytest.raises(ValueError, match=rf"^valid_time: row {last} repeats the key \(location_id, valid_time, "
                                         rf"issue_time, source\) of row 6"):
        validation.validate_weather(weather, KNOWN)


def test_missing_column_is_named(weather):
    with pytest.raises(ValueError, match=r"^wind_speed: column is missing"):
        validation.validate_weather(weather.drop(columns=["wind_speed"]), KNOWN)


@pytest.mark.parametrize("column, value, reason", [
    ("latitude", 91.0, r"is out of range \[-90, 90\] deg \(91\.0\)"),
    ("longitude", -180.5, r"is out of range \[-180, 180\] deg \(-180\.5\)"),
    ("tilt", 95.0, r"is out of range \[0, 90\] deg"),
    ("azimuth", 360.0, r"is out of range \[0, 360\) deg"),
    ("capacity_ac_kw", 0.0, r"is out of range \(0, 1e\+07\] kW \(0\.0\)"),
    ("capacity_dc_kw", -3.0, r"is out of range \(0, 1e\+07\] kW"),
    ("altitude", 1e300, r"is out of range \[-500, 9000\] m"),
    ("altitude", -1e6, r"is out of range \[-500, 9000\] m"),
    ("gamma_pdc", 1e10, r"is out of range \[-0.02, 0\] 1/degC"),
    ("temp_model_u0", 0.0, r"is out of range \(0, 100\] W/m\^2/K"),
    ("gcr", 0.0, r"is out of range \(0, 1\)"),
    ("name", "plant\x00", r"holds a control character"),
    ("name", "x" * 201, r"is longer than 200 characters"),
    ("tracking", "DUAL_AXIS", r"must be one of \['FIXED', 'SINGLE_AXIS'\] \('DUAL_AXIS'\)"),
    ("timezone", "Mars/Olympus", r"is not an IANA time zone"),
])
def test_out_of_range_plant_configuration_is_refused(locations, column, value, reason):
    locations[column] = locations[column].astype(object)
    locations.loc[2, column] = value
    with pytest.raises(ValueError, match=rf"^{column}: row 2 {reason}"):
        validation.validate_locations(locations.infer_objects())


def test_dc_ac_ratio_outside_real_plants_is_refused(locations):
    locations.loc[1, "capacity_dc_kw"] = locations.loc[1, "capacity_ac_kw"] * 1000  # W entered as kW
    with pytest.raises(ValueError, match=r"^capacity_dc_kw: row 1 is out of range \[0.5, 3\] x capacity_ac_kw"):
        validation.validate_locations(locations)


def test_model_id_must_be_one_the_service_holds(locations):
    validation.validate_locations(locations, model_ids={"global"})
    locations.loc[2, "model_id"] = "mystery"
    with pytest.raises(ValueError, match=r"^model_id: row 2 must be one of \['global'\] \('mystery'\)"):
        validation.validate_locations(locations, model_ids={"global"})


def test_text_in_a_number_column_is_refused(locations):
    locations["latitude"] = locations["latitude"].astype(object)
    locations.loc[1, "latitude"] = "39.7N"
    with pytest.raises(ValueError, match=r"^latitude: row 1 must be a number \('39.7N'\)"):
        validation.validate_locations(locations)


def test_duplicate_plant_name_is_refused(locations):
    locations.loc[3, "name"] = locations.loc[0, "name"]
    with pytest.raises(ValueError, match=r"^name: row 3 repeats the key \(name\) of row 0"):
        validation.validate_locations(locations)


def test_actuals_missing_power_is_refused(actuals):
    actuals.loc[8, "power_kw"] = np.nan
    with pytest.raises(ValueError, match=r"^power_kw: row 8 is missing"):
        validation.validate_actuals(actuals, KNOWN)


@pytest.mark.parametrize("power, reason, code", [
    (-100.0, r"is outside \[-0.1, 1.25\] x the plant's capacity_ac_kw \(-100\.0\)", "out_of_bounds"),
    (500.0, r"is outside \[-0.1, 1.25\] x the plant's capacity_ac_kw \(500\.0\)", "above_capacity"),
    (1e300, r"is out of range \[-1e\+07, 1e\+07\] kW", "out_of_bounds"),
])
def test_actuals_outside_the_physical_range_of_the_plant_are_refused(actuals, power, reason, code):
    capacity = pd.Series({1: 5.0})  # kW
    validation.validate_actuals(actuals, KNOWN, capacity)  # real SERF East power of a 3.25 kW plant
    actuals.loc[6, "power_kw"] = power
    with pytest.raises(ValueError, match=rf"^power_kw: row 6 {reason}") as err:
        validation.validate_actuals(actuals, KNOWN, capacity)
    assert err.value.code == code


def test_actuals_in_watts_are_above_capacity_row_by_row(actuals):
    """W sent as kW: the real SERF East series x 1000 is refused as above the plant's capacity, not as a bound."""
    capacity = pd.Series({1: 5.0})  # kW
    actuals["power_kw"] *= 1000.0
    with pytest.raises(ValueError) as err:
        validation.validate_actuals(actuals, KNOWN, capacity)
    first = int(np.flatnonzero(actuals["power_kw"].to_numpy() > 1.25 * 5.0)[0])
    assert (err.value.code, err.value.field, err.value.row) == ("above_capacity", "power_kw", first)


@pytest.mark.parametrize("change, code", [
    (lambda f: f.drop(columns=["power_kw"]), "missing_field"),
    (lambda f: f.assign(power_kw=np.where(f.index == 2, np.inf, f["power_kw"])), "not_finite"),
    (lambda f: f.assign(power_kw=np.where(f.index == 2, np.nan, f["power_kw"])), "not_finite"),
    (lambda f: f.assign(power_kw=f["power_kw"].astype(object).where(f.index != 2, "3.1")), "wrong_type"),
    (lambda f: f.assign(time=f["time"].dt.tz_localize(None)), "bad_time"),
    (lambda f: f.assign(location_id=99), "unknown_location"),
    (lambda f: pd.concat([f, f.iloc[[3]]], ignore_index=True), "duplicate"),
])
def test_every_actuals_refusal_carries_its_code(actuals, change, code):
    with pytest.raises((ValueError, LookupError)) as err:
        validation.validate_actuals(change(actuals), KNOWN)
    assert err.value.code == code and code in validation.ERRORS


def test_a_code_outside_the_definition_is_a_bug():
    with pytest.raises(ValueError, match="not one of engine.validation.ERRORS"):
        validation.field_error("power_kw", "is odd", code="odd")


def test_actuals_duplicate_time_is_refused(actuals):
    actuals = pd.concat([actuals, actuals.iloc[[0]]], ignore_index=True)
    with pytest.raises(ValueError, match=rf"^time: row {len(actuals) - 1} repeats the key \(location_id, time\) of row 0"):
        validation.validate_actuals(actuals, KNOWN)


def test_crossing_quantiles_are_refused():
    runs, forecast = forecast_of(demo_locations().iloc[:4].assign(location_id=[1, 2, 3, 4]))
    day = int(np.flatnonzero(forecast["p50"].to_numpy() > 0)[0])
    forecast.loc[day, "p75"] = forecast.loc[day, "p50"] / 2
    with pytest.raises(ValueError, match=rf"^p75: row {day} is below p50 \(quantiles cross\)"):
        validation.validate_forecast(runs, forecast)


def test_run_without_forecast_rows_is_refused():
    runs, forecast = forecast_of(demo_locations().iloc[:4].assign(location_id=[1, 2, 3, 4]))
    with pytest.raises(ValueError, match=r"^location_id: row 3 has a run row but no forecast rows \(4\)"):
        validation.validate_forecast(runs, forecast[forecast["location_id"] != 4])



def test_a_repeated_forecast_row_names_the_row_it_repeats():
    runs, forecast = forecast_of(demo_locations().iloc[:2].assign(location_id=[1, 2]))
    forecast = pd.concat([forecast, forecast.iloc[[5]]], ignore_index=True)
    with pytest.raises(ValueError, match=rf"^valid_time: row {len(forecast) - 1} repeats the key "
                                         r"\(location_id, valid_time\) of row 5"):
        validation.validate_forecast(runs, forecast)


def test_a_repeated_run_location_is_refused():
    runs, forecast = forecast_of(demo_locations().iloc[:2].assign(location_id=[1, 2]))
    with pytest.raises(ValueError, match=r"^location_id: row 2 repeats the key \(location_id\) of row 0"):
        validation.validate_forecast(pd.concat([runs, runs.iloc[[0]]], ignore_index=True), forecast)


@pytest.mark.parametrize("column, value, reason", [
    ("forecast_type", "probabilistic", r"must be one of \['ml', 'physics'\] \('probabilistic'\)"),
    ("forecast_type", " ", "must be a non-empty string"),
    ("model_version", "global@\x07", "holds a control character"),
    ("model_id", "m" * 65, "is longer than 64 characters"),
])
def test_a_bad_run_label_is_refused_naming_its_row(column, value, reason):
    runs, forecast = forecast_of(demo_locations().iloc[:3].assign(location_id=[1, 2, 3]))
    runs[column] = runs[column].astype(object)
    runs.loc[1, column] = value
    with pytest.raises(ValueError, match=rf"^{column}: row 1 {reason}"):
        validation.validate_forecast(runs, forecast)


# --- planes and horizon (issue 13)

@pytest.fixture
def demo_planes():
    return demo_frames()[1]


@pytest.fixture
def demo_horizon():
    return demo_frames()[2]


def test_demo_planes_and_horizon_pass(demo_planes, demo_horizon):
    validation.validate_planes(demo_planes)
    validation.validate_horizon(demo_horizon)


@pytest.mark.parametrize("column, value, reason", [
    ("tilt", 91.0, r"is out of range \[0, 90\] deg"),
    ("tilt", -1.0, r"is out of range \[0, 90\] deg"),
    ("azimuth", 360.0, r"is out of range \[0, 360\) deg"),
    ("capacity_dc_kw", 0.0, r"is out of range \(0, 1e\+07\] kW"),
    ("capacity_dc_kw", np.nan, "is missing"),
    ("tracking", "DUAL_AXIS", "must be one of"),
    ("gcr", 1.5, r"is out of range \(0, 1\)"),
    ("backtrack", 1, "must be true or false"),
    ("losses_pct", 100.0, r"is out of range \[0, 100\) %"),
    ("temp_model_u1", -2.0, r"is out of range \[0, 50\]"),
])
def test_bad_plane_is_refused_naming_planes_column_and_row(demo_planes, column, value, reason):
    demo_planes[column] = demo_planes[column].astype(object)
    demo_planes.loc[1, column] = value
    with pytest.raises(ValueError, match=rf"^planes\.{column}: row 1 {reason}") as err:
        validation.validate_planes(demo_planes.infer_objects() if column != "backtrack" else demo_planes)
    assert err.value.field == f"planes.{column}" and err.value.row == 1


def test_inherited_plane_values_may_be_missing(demo_planes):
    assert demo_planes.loc[0, list(validation.PLANE_INHERITED)].isna().all()
    validation.validate_planes(demo_planes)


def test_more_planes_than_the_limit_are_refused(demo_planes):
    one = demo_planes.iloc[[0]]
    many = pd.concat([one.assign(plane=k) for k in range(validation.MAX_PLANES + 1)], ignore_index=True)
    validation.validate_planes(many.iloc[:validation.MAX_PLANES])
    with pytest.raises(ValueError, match=rf"^planes\.name: row {validation.MAX_PLANES} has more than "
                                         rf"{validation.MAX_PLANES} planes"):
        validation.validate_planes(many)


def test_repeated_plane_index_is_refused(demo_planes):
    demo_planes.loc[1, "plane"] = 0
    with pytest.raises(ValueError, match=r"^planes\.plane: row 1 repeats the key \(name, plane\) of row 0"):
        validation.validate_planes(demo_planes)


@pytest.mark.parametrize("row, azimuth, reason, code", [
    (3, 60.0, "repeats the previous azimuth of its location", "duplicate"),
    (3, 45.0, "is below the previous azimuth of its location", "unsorted"),
    (0, 360.0, r"is out of range \[0, 360\) deg", "out_of_bounds"),
    (2, -5.0, r"is out of range \[0, 360\)", "out_of_bounds"),
])
def test_horizon_that_is_not_a_function_of_azimuth_is_refused(demo_horizon, row, azimuth, reason, code):
    demo_horizon.loc[row, "azimuth"] = azimuth
    with pytest.raises(ValueError, match=rf"^horizon\.azimuth: row {row} {reason}") as err:
        validation.validate_horizon(demo_horizon)
    assert err.value.code == code


@pytest.mark.parametrize("elevation", [90.0, -1.0, np.nan])
def test_horizon_elevation_outside_0_90_is_refused(demo_horizon, elevation):
    demo_horizon.loc[4, "elevation"] = elevation
    with pytest.raises(ValueError, match=r"^horizon\.elevation: row 4 "):
        validation.validate_horizon(demo_horizon)


def test_profiles_of_two_locations_are_checked_separately(demo_horizon):
    """Interleaved rows of two locations: each location's own azimuths must increase, not the frame's."""
    other = demo_horizon.assign(name="another plant")
    both = pd.concat([demo_horizon, other]).sort_values("azimuth", kind="stable").reset_index(drop=True)
    validation.validate_horizon(both)
    too_many = pd.DataFrame({"name": "x", "azimuth": np.arange(validation.MAX_HORIZON_POINTS + 1) * 0.5,
                             "elevation": 1.0})
    with pytest.raises(ValueError, match=rf"^horizon\.name: row {validation.MAX_HORIZON_POINTS} has more than"):
        validation.validate_horizon(too_many)


@pytest.mark.parametrize("column", list(validation.PLANE_BOUNDS))
def test_every_plane_bound_is_applied(demo_planes, column):
    """Just outside each bound of PLANE_BOUNDS (the location's bounds of the same parameter) is refused."""
    bounds = validation.PLANE_BOUNDS[column]
    low = bounds["ge"] - 1e-6 if "ge" in bounds else bounds["gt"]
    high = bounds["le"] + 1e-6 if "le" in bounds else bounds["lt"]
    for value in (low, high):
        bad = demo_planes.copy()
        bad.loc[0, column] = int(np.floor(value)) if column == "plane" else value
        with pytest.raises(ValueError, match=rf"^planes\.{column}: row 0 is out of range"):
            validation.validate_planes(bad)

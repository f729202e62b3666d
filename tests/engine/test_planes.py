"""Plants of several planes behind one inverter, and horizon shading, on real PSM3 weather.

The multi-plane chain must equal pvlib's own ``PVSystem`` of several ``Array``
objects run by ``ModelChain`` with the same models (Perez, physical IAM,
Faiman, PVWatts DC and inverter), and a horizon must remove exactly the beam
the profile hides.
"""

from pathlib import Path

import numpy as np
import pandas as pd
import pvlib
import pytest
import yaml

from engine import data, features, forecast, horizon, modelio, physics, planes, quantiles

ROOT = Path(__file__).parents[2]
CONFIG = yaml.safe_load((ROOT / "configs" / "training.yaml").read_text())
ISSUE = pd.Timestamp("2013-06-01 06:00", tz="UTC")
TIMES = forecast.forecast_times(ISSUE, 48, 15)
SERF = {"latitude": 39.742, "longitude": -105.1727, "altitude": 1730.0}
# a skyline: a hill in the east, a tree line in the west (deg azimuth clockwise from north, deg elevation)
PROFILE = pd.DataFrame({"azimuth": [0.0, 45.0, 75.0, 95.0, 120.0, 160.0, 210.0, 250.0, 275.0, 300.0, 330.0],
                        "elevation": [2.0, 6.0, 21.0, 24.0, 12.0, 3.0, 1.0, 9.0, 14.0, 10.0, 4.0]})


def plant(location_id, **overrides):
    """A locations-frame row at SERF East (its real site), one plane unless planes are given separately."""
    row = {"location_id": location_id, "name": f"plant {location_id}", **SERF, "timezone": "America/Denver",
           "capacity_ac_kw": 6.0, "capacity_dc_kw": 10.0, "export_limit_kw": np.nan, "tilt": 25.0,
           "azimuth": 180.0, "tracking": "FIXED", "axis_azimuth": 180.0, "max_angle": 60.0, "gcr": 0.35,
           "losses_pct": 14.0, "gamma_pdc": -0.004, "temp_model_u0": 25.0, "temp_model_u1": 6.84,
           "model_id": "global"}
    row.update(overrides)
    return row


def plane_rows(location_id, *specs):
    """Planes-frame rows of one location; unspecified optional values NaN (inherited from the location)."""
    base = {"tracking": "FIXED", "axis_azimuth": 180.0, "max_angle": 60.0, "gcr": 0.35, "backtrack": True,
            "losses_pct": np.nan, "gamma_pdc": np.nan, "temp_model_u0": np.nan, "temp_model_u1": np.nan}
    return [{"location_id": location_id, "plane": k, **base, **spec} for k, spec in enumerate(specs)]


EAST_WEST = ({"tilt": 20.0, "azimuth": 90.0, "capacity_dc_kw": 5.0},
             {"tilt": 20.0, "azimuth": 270.0, "capacity_dc_kw": 5.0, "losses_pct": 10.0, "temp_model_u0": 22.0,
              "temp_model_u1": 5.5})
FIELD_AND_ROOF = ({"tilt": 0.0, "azimuth": 180.0, "capacity_dc_kw": 800.0, "tracking": "SINGLE_AXIS",
                   "axis_azimuth": 175.0, "max_angle": 55.0, "gcr": 0.4, "backtrack": False},
                  {"tilt": 10.0, "azimuth": 200.0, "capacity_dc_kw": 300.0, "gamma_pdc": -0.0035})


@pytest.fixture(scope="module")
def psm3():
    """Real NSRDB PSM3 weather of SERF East around the forecast window."""
    w = data.load_weather(CONFIG, 0)
    return w[(w["valid_time"] >= "2013-05-31") & (w["valid_time"] < "2013-06-05")].reset_index(drop=True)


def weather_for(psm3, ids):
    return pd.concat([psm3.assign(location_id=i) for i in ids], ignore_index=True)


@pytest.fixture(scope="module")
def fleet():
    """Locations and planes: east/west roof (one shared 6 kW inverter), tracker field + roof, a one-plane plant."""
    locations = pd.DataFrame([plant(1), plant(2, capacity_ac_kw=900.0, export_limit_kw=800.0), plant(3)])
    rows = pd.DataFrame(plane_rows(1, *EAST_WEST) + plane_rows(2, *FIELD_AND_ROOF))
    multi = locations["location_id"].isin(rows["location_id"]).to_numpy()
    for column in planes.SUMMARY_COLUMNS:  # not given for multi-plane plants: derived from their planes
        locations[column] = locations[column].astype(object).where(~multi, None)
    locations = planes.summarise(locations, rows, key="location_id")
    return locations, rows


@pytest.fixture(scope="module")
def frame(fleet, psm3):
    locations, rows = fleet
    return features.feature_frame(locations, weather_for(psm3, locations["location_id"]), TIMES, planes=rows)


def model_chain(location, location_planes, weather, capacity_ac_kw):
    """pvlib's ModelChain on a PVSystem of one Array per plane (same models as pvcast).

    Per-plane losses are folded into each Array's ``pdc0`` (PVWatts DC is
    linear in it). Solar position: ModelChain refracts at the weather's air
    temperature, pvcast (like pvlib's default) at 12 degC; the irradiance and
    temperature steps are ModelChain's own, so the solar position is taken at
    12 degC by preparing the inputs without ``temp_air`` and running the rest
    with ``run_model_from_effective_irradiance`` on the full weather.
    """
    arrays = []
    for spec in location_planes.to_dict(orient="records"):
        p = {**location, **{k: v for k, v in spec.items() if not (isinstance(v, float) and np.isnan(v))}}
        mount = (pvlib.pvsystem.SingleAxisTrackerMount(axis_azimuth=p["axis_azimuth"], max_angle=p["max_angle"],
                                                       backtrack=p["backtrack"], gcr=p["gcr"])
                 if p["tracking"] == "SINGLE_AXIS" else pvlib.pvsystem.FixedMount(p["tilt"], p["azimuth"]))
        arrays.append(pvlib.pvsystem.Array(
            mount, module_parameters={"pdc0": p["capacity_dc_kw"] * (1 - p["losses_pct"] / 100),
                                      "gamma_pdc": p["gamma_pdc"]},
            temperature_model_parameters={"u0": p["temp_model_u0"], "u1": p["temp_model_u1"]}))
    system = pvlib.pvsystem.PVSystem(arrays=arrays, inverter_parameters={
        "pdc0": capacity_ac_kw / physics.ETA_INV_NOM, "eta_inv_nom": physics.ETA_INV_NOM})
    site = pvlib.location.Location(location["latitude"], location["longitude"], altitude=location["altitude"])
    mc = pvlib.modelchain.ModelChain(system, site, aoi_model="physical", spectral_model="no_loss",
                                     temperature_model="faiman", transposition_model="perez", dc_model="pvwatts",
                                     ac_model="pvwatts", losses_model="no_loss")
    irradiance = tuple(weather[["ghi", "dni", "dhi"]] for _ in arrays)
    mc.prepare_inputs(irradiance)
    mc.aoi_model().spectral_model().effective_irradiance_model()
    mc.run_model_from_effective_irradiance(tuple(
        weather.assign(effective_irradiance=e, poa_global=t["poa_global"])
        for e, t in zip(mc.results.effective_irradiance, mc.results.total_irrad)))
    return mc.results


def plant_weather(frame, location_id):
    return frame.xs(location_id, level="location_id")[["ghi", "dni", "dhi", "temp_air", "wind_speed"]]


@pytest.mark.parametrize("location_id", [1, 2])
def test_dc_is_the_sum_of_pvlib_modelchain_arrays(frame, fleet, location_id):
    locations, rows = fleet
    loc = locations.set_index("location_id").loc[location_id].to_dict()
    got = frame.xs(location_id, level="location_id")
    results = model_chain(loc, rows[rows["location_id"] == location_id], plant_weather(frame, location_id),
                          loc["capacity_ac_kw"])
    dc = sum(d.fillna(0.0) for d in results.dc)
    day = got["solar_elevation"].to_numpy() > 0
    assert dc[day].max() > 0.5 * loc["capacity_dc_kw"]  # a sunny window: the comparison covers high power
    np.testing.assert_allclose(got["physical_dc_kw"].to_numpy(), dc.to_numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got["physical_ac_kw"].to_numpy(), results.ac.fillna(0.0).clip(lower=0).to_numpy(),
                               rtol=1e-5, atol=1e-6)


def test_shared_inverter_clips_once_where_separate_clips_would_lose_energy(frame, fleet):
    """East/west 5 + 5 kW DC on one 6 kW inverter: mornings the east plane alone exceeds a 3 kW half share."""
    locations, rows = fleet
    loc = locations.set_index("location_id").loc[1].to_dict()
    got = frame.xs(1, level="location_id")
    results = model_chain(loc, rows[rows["location_id"] == 1], plant_weather(frame, 1), loc["capacity_ac_kw"])
    dc = [d.fillna(0.0).to_numpy() for d in results.dc]
    shares = [s["capacity_dc_kw"] / loc["capacity_dc_kw"] * loc["capacity_ac_kw"] for s in EAST_WEST]
    separate = sum(np.asarray(physics.inverter_ac(d, share)) for d, share in zip(dc, shares))
    joint = got["physical_ac_kw"].to_numpy()
    np.testing.assert_allclose(joint, physics.inverter_ac(dc[0] + dc[1], loc["capacity_ac_kw"]), rtol=1e-5, atol=1e-6)
    assert (joint <= loc["capacity_ac_kw"]).all()
    differs = joint > separate + 0.05
    assert differs.sum() >= 8  # several steps of both mornings and evenings
    assert (joint >= separate - 1e-9).all()  # one shared clip never loses power against split clips


def test_model_sees_dc_weighted_plane_features_and_the_plant_estimate(frame, fleet, psm3):
    """A 2-plane plant's poa_global, aoi, temp_cell: DC-weighted means of each plane; physical_norm plant-level."""
    locations, rows = fleet
    loc = locations[locations["location_id"] == 1].iloc[0].to_dict()
    alone = pd.DataFrame([{**loc, **{k: v for k, v in spec.items() if not (isinstance(v, float) and np.isnan(v))},
                           "location_id": 10 + k, "capacity_ac_kw": 100.0} for k, spec in enumerate(EAST_WEST)])
    each = features.feature_frame(alone, weather_for(psm3, alone["location_id"]), TIMES)
    got = frame.xs(1, level="location_id")
    w = np.array([s["capacity_dc_kw"] for s in EAST_WEST]) / loc["capacity_dc_kw"]
    for column in ("poa_global", "aoi", "temp_cell", "poa_direct"):
        expected = sum(wk * each.xs(10 + k, level="location_id")[column].to_numpy() for k, wk in enumerate(w))
        np.testing.assert_allclose(got[column].to_numpy(), expected, rtol=1e-12, atol=1e-9)
    np.testing.assert_array_equal(got["physical_norm"].to_numpy(), got["physical_ac_kw"].to_numpy() / 6.0)
    assert set(features.MODEL_FEATURES) <= set(frame.columns)


def test_one_plane_given_as_a_plane_row_is_bit_identical(psm3):
    """A location's own columns and the same plane as an explicit row give identical frames (the model's input)."""
    loc = pd.DataFrame([plant(5), plant(6, tracking="SINGLE_AXIS", tilt=0.0, capacity_ac_kw=900.0,
                                        capacity_dc_kw=1100.0)])
    w = weather_for(psm3, [5, 6])
    implicit = features.feature_frame(loc, w, TIMES)
    same = pd.DataFrame([{"location_id": r["location_id"], "plane": 0, "backtrack": True,
                          **{c: r[c] for c in planes.GEOMETRY_COLUMNS + ("tracking",)}} for _, r in loc.iterrows()])
    pd.testing.assert_frame_equal(features.feature_frame(loc, w, TIMES, planes=same), implicit, check_exact=True)


def test_one_plane_plants_are_unchanged_beside_multi_plane_and_horizon_plants(frame, fleet, psm3):
    """Batching a one-plane plant with others (summed planes, horizons) leaves its rows bit-identical."""
    locations, rows = fleet
    alone = features.feature_frame(locations.iloc[[2]], weather_for(psm3, [3]), TIMES)
    mixed = features.feature_frame(locations, weather_for(psm3, locations["location_id"]), TIMES, planes=rows,
                                   horizon=PROFILE.assign(location_id=1))
    pd.testing.assert_frame_equal(mixed.xs(3, level="location_id", drop_level=False), alone, check_exact=True)
    pd.testing.assert_frame_equal(frame.xs(3, level="location_id", drop_level=False), alone, check_exact=True)


# --- horizon ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def shaded(fleet, psm3):
    """Every plant of the fleet with and without the skyline PROFILE."""
    locations, rows = fleet
    w = weather_for(psm3, locations["location_id"])
    profile = pd.concat([PROFILE.assign(location_id=i) for i in locations["location_id"]], ignore_index=True)
    return (features.feature_frame(locations, w, TIMES, planes=rows),
            features.feature_frame(locations, w, TIMES, planes=rows, horizon=profile))


def test_horizon_blocks_beam_exactly_while_the_sun_is_below_the_profile(shaded, fleet):
    free, behind = shaded
    sun = pvlib.solarposition.get_solarposition(TIMES, SERF["latitude"], SERF["longitude"], SERF["altitude"],
                                                method="nrel_numpy", delta_t=None)
    skyline = np.interp(sun["azimuth"].to_numpy(), PROFILE["azimuth"], PROFILE["elevation"], period=360.0)
    below = sun["apparent_elevation"].to_numpy() < skyline
    clear_margin = np.abs(sun["apparent_elevation"].to_numpy() - skyline) > 1e-6
    for lid in fleet[0]["location_id"]:
        f, b = free.xs(lid, level="location_id"), behind.xs(lid, level="location_id")
        beam = f["poa_direct"].to_numpy()
        assert ((beam > 10) & below).sum() >= 8  # the profile hides real beam, mornings and evenings
        assert ((beam > 10) & ~below).sum() >= 50
        np.testing.assert_array_equal(b["poa_direct"].to_numpy()[below & clear_margin], 0.0)
        np.testing.assert_array_equal(b["poa_direct"].to_numpy()[~below & clear_margin],
                                      beam[~below & clear_margin])


def test_horizon_never_raises_power_and_lowers_diffuse_by_the_sky_view(shaded, fleet):
    free, behind = shaded
    for column in ("poa_global", "poa_direct", "physical_dc_kw", "physical_ac_kw"):
        assert (behind[column].to_numpy() <= free[column].to_numpy() + 1e-9).all(), column
    diffuse_free = (free["poa_global"] - free["poa_direct"]).to_numpy()
    diffuse_behind = (behind["poa_global"] - behind["poa_direct"]).to_numpy()
    day = free["solar_elevation"].to_numpy() > 5
    assert (diffuse_behind[day] < diffuse_free[day]).mean() > 0.95  # the skyline hides sky all day
    lost = 1 - diffuse_behind[day].sum() / diffuse_free[day].sum()
    assert 0.01 < lost < 0.15  # a few percent of the diffuse for a skyline of 1..24 deg
    np.testing.assert_array_equal(behind["ghi"].to_numpy(), free["ghi"].to_numpy())  # weather untouched


def test_sky_view_of_a_horizontal_plane_under_a_constant_horizon_is_cos_squared():
    grid = np.full((3, len(horizon.grid_azimuths())), [[0.0], [10.0], [30.0]])
    got = horizon.sky_view_fraction(grid, np.arange(3), np.zeros(3), np.full(3, 180.0))
    np.testing.assert_allclose(got, np.cos(np.radians([0.0, 10.0, 30.0])) ** 2, rtol=0, atol=1e-12)


def test_sky_view_equals_a_brute_force_integral_of_the_sky_dome():
    """Tilted planes under PROFILE: closed form vs numerical cos-weighted integral over the visible dome."""
    support = horizon.periodic_support(np.zeros(len(PROFILE), dtype=int), PROFILE["azimuth"].to_numpy(),
                                       PROFILE["elevation"].to_numpy())
    centres = horizon.grid_azimuths()
    grid = horizon.elevation_at(support, np.zeros(len(centres), dtype=int), centres)[None, :]
    phi = np.radians(np.arange(0.05, 360, 0.1))[:, None]
    e = np.radians(np.arange(0.025, 90, 0.05))[None, :]
    h = np.radians(np.interp(np.degrees(phi[:, 0]), PROFILE["azimuth"], PROFILE["elevation"], period=360))[:, None]
    for tilt, azimuth in ((0.0, 180.0), (35.0, 180.0), (60.0, 100.0), (90.0, 270.0)):
        b, g = np.radians(tilt), np.radians(azimuth)
        cos_incidence = np.maximum(np.sin(e) * np.cos(b) + np.cos(e) * np.sin(b) * np.cos(phi - g), 0) * np.cos(e)
        want = (cos_incidence * (e >= h)).sum() / cos_incidence.sum()
        got = horizon.sky_view_fraction(grid, [0], [tilt], [azimuth])[0]
        assert abs(got - want) < 2e-3, (tilt, azimuth, got, want)


def test_a_skyline_below_the_planes_own_horizon_hides_nothing():
    """A wall behind a 30 deg south plane, as high as the plane's own horizon, takes no sky; 5 deg more does."""
    tilt, azimuth = 30.0, 180.0
    phi = horizon.grid_azimuths()
    own = np.degrees(np.arctan(np.tan(np.radians(tilt)) * np.maximum(0.0, -np.cos(np.radians(phi - azimuth)))))
    grids = np.stack([own, np.where(own > 0, own + 5.0, 0.0)])
    got = horizon.sky_view_fraction(grids, [0, 1], [tilt, tilt], [azimuth, azimuth])
    assert abs(got[0] - 1.0) < 1e-12
    assert got[1] < 0.999  # 5 deg above the plane's own horizon: sky seen at grazing incidence, little but some


def test_profile_wraps_around_north():
    support = horizon.periodic_support(np.zeros(2, dtype=int), np.array([10.0, 350.0]), np.array([0.0, 10.0]))
    np.testing.assert_allclose(horizon.elevation_at(support, np.zeros(4, dtype=int), [0.0, 5.0, 355.0, 180.0]),
                               [5.0, 2.5, 7.5, 5.0])


def test_horizon_that_is_not_a_function_of_azimuth_is_refused(fleet, psm3):
    locations, rows = fleet
    unsorted = PROFILE.iloc[[0, 2, 1, 3]].assign(location_id=1)
    with pytest.raises(ValueError, match="location_id 1: horizon"):
        features.feature_frame(locations, weather_for(psm3, locations["location_id"]), TIMES, planes=rows,
                               horizon=unsorted)


# --- the product --------------------------------------------------------------------------------

@pytest.mark.parametrize("forecast_type", forecast.FORECAST_TYPES)
def test_forecasts_of_multi_plane_plants_behind_a_horizon_hold_every_invariant(shaded, fleet, forecast_type):
    locations, _ = fleet
    _, behind = shaded
    model = modelio.load_model(ROOT / "models", CONFIG["model_id"])
    fx = forecast.forecast_quantiles(behind, locations, model, forecast_type, ISSUE)
    q = fx[list(quantiles.QUANTILE_COLUMNS)].to_numpy()
    table = locations.set_index("location_id")
    limits = pd.Series(quantiles.power_limit_kw(table["capacity_ac_kw"], table["export_limit_kw"]), index=table.index)
    limit = fx["location_id"].map(limits).to_numpy()
    assert (q >= 0).all() and (np.diff(q, axis=1) >= 0).all()
    assert (q <= limit[:, None] + 1e-9).all()
    night = behind["solar_elevation"].to_numpy() <= 0
    assert night.sum() > 100 and (q[night] == 0).all()
    assert (q[~night, 2] > 0).mean() > 0.5  # daylight forecasts are not all zero
    export = fx["location_id"].to_numpy() == 2
    assert np.isclose(q[export].max(), 800.0)  # the tracker field reaches its export limit, never above

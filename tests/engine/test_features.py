"""Feature frames for many plants at once equal pvlib's per-site results, on real PSM3 weather."""

from pathlib import Path

import numpy as np
import pandas as pd
import pvlib
import pytest
import yaml

from engine import data, features, forecast, physics

ROOT = Path(__file__).parents[2]
CONFIG = yaml.safe_load((ROOT / "configs" / "training.yaml").read_text())
ISSUE = pd.Timestamp("2013-06-01 06:00", tz="UTC")
TIMES = forecast.forecast_times(ISSUE, 48, 15)


@pytest.fixture(scope="module")
def psm3():
    """Real NSRDB PSM3 weather of SERF East around the forecast window."""
    w = data.load_weather(CONFIG, 0)
    return w[(w["valid_time"] >= "2013-05-31") & (w["valid_time"] < "2013-06-05")].reset_index(drop=True)


@pytest.fixture(scope="module")
def plants():
    """Six plants: SERF East as configured plus other sites, orientations and single-axis trackers."""
    base = data.site_location(CONFIG["site"], 0, 3.2, 3.6)
    rows = base.loc[np.zeros(6, dtype=int)].reset_index(drop=True)
    rows["location_id"] = [11, 12, 13, 14, 15, 16]
    rows["latitude"] = [39.742, 35.05, 44.5, 39.0, 31.9, 47.6]
    rows["longitude"] = [-105.1727, -106.6, -100.3, -104.0, -110.9, -117.4]
    rows["altitude"] = [1730.0, 1600.0, 500.0, 1500.0, 800.0, 700.0]
    rows["tilt"] = [45.0, 20.0, 35.0, 0.0, 0.0, 10.0]
    rows["azimuth"] = [158.0, 180.0, 225.0, 180.0, 180.0, 135.0]
    rows["tracking"] = ["FIXED", "FIXED", "FIXED", "SINGLE_AXIS", "SINGLE_AXIS", "FIXED"]
    rows["axis_azimuth"] = [0.0, 0.0, 0.0, 180.0, 170.0, 0.0]
    rows["max_angle"] = [0.0, 0.0, 0.0, 60.0, 52.0, 0.0]
    rows["gcr"] = [0.0, 0.0, 0.0, 0.35, 0.4, 0.0]
    rows["capacity_ac_kw"] = [3.2, 100.0, 5.0, 2000.0, 900.0, 10.0]
    rows["capacity_dc_kw"] = [3.6, 130.0, 5.0, 2600.0, 1000.0, 14.0]
    return rows


@pytest.fixture(scope="module")
def frame(plants, psm3):
    weather = pd.concat([psm3.assign(location_id=i) for i in plants["location_id"]], ignore_index=True)
    return features.feature_frame(plants, weather, TIMES)


def per_site(frame, location_id):
    return frame.xs(location_id, level="location_id")


def test_frame_is_location_major_with_every_feature(frame, plants):
    assert frame.index.names == ["location_id", "valid_time"]
    assert list(frame.index.get_level_values("location_id").unique()) == list(plants["location_id"])
    assert set(features.MODEL_FEATURES) <= set(frame.columns)
    assert len(frame) == len(plants) * len(TIMES)
    assert str(frame.index.get_level_values("valid_time").tz) == "UTC"


def test_solar_position_equals_pvlib_per_site(frame, plants):
    for _, p in plants.iterrows():
        ref = pvlib.solarposition.get_solarposition(TIMES, p["latitude"], p["longitude"], p["altitude"],
                                                    method="nrel_numpy", delta_t=None)
        got = per_site(frame, p["location_id"])
        np.testing.assert_allclose(got["solar_elevation"], ref["apparent_elevation"], atol=1e-9)
        np.testing.assert_allclose(got["solar_zenith"], ref["apparent_zenith"], atol=1e-9)


def test_clear_sky_equals_pvlib_location_per_site(frame, plants):
    for _, p in plants.iterrows():
        ref = pvlib.location.Location(p["latitude"], p["longitude"], altitude=p["altitude"]).get_clearsky(TIMES)
        # Location.get_solarposition uses a constant delta_t of 67 s, pvcast the year's delta_t: ~1e-6 relative
        np.testing.assert_allclose(per_site(frame, p["location_id"])["ghi_clear"], ref["ghi"], rtol=1e-5, atol=1e-3)


def test_plane_of_array_and_power_equal_pvlib_per_site(frame, plants):
    """Given the frame's own GHI/DNI/DHI, pvlib's scalar-per-site calls give the same POA and power."""
    for _, p in plants.iterrows():
        got = per_site(frame, p["location_id"])
        sp = pvlib.solarposition.get_solarposition(TIMES, p["latitude"], p["longitude"], p["altitude"],
                                                   delta_t=None)
        if p["tracking"] == "SINGLE_AXIS":
            orient = pvlib.tracking.singleaxis(sp["apparent_zenith"], sp["azimuth"], axis_azimuth=p["axis_azimuth"],
                                               max_angle=p["max_angle"], backtrack=True, gcr=p["gcr"])
            tilt = orient["surface_tilt"].fillna(0.0)
            azimuth = orient["surface_azimuth"].fillna(p["axis_azimuth"] + 90.0)
        else:
            tilt, azimuth = p["tilt"], p["azimuth"]
        poa = pvlib.irradiance.get_total_irradiance(
            tilt, azimuth, sp["apparent_zenith"], sp["azimuth"], got["dni"], got["ghi"], got["dhi"],
            dni_extra=pvlib.irradiance.get_extra_radiation(TIMES),
            airmass=pvlib.atmosphere.get_relative_airmass(sp["apparent_zenith"]), model="perez").fillna(0.0)
        np.testing.assert_allclose(got["poa_global"], poa["poa_global"], rtol=1e-9, atol=1e-6)
        aoi = pvlib.irradiance.aoi(tilt, azimuth, sp["apparent_zenith"], sp["azimuth"])
        eff = poa["poa_direct"] * pvlib.iam.physical(aoi).fillna(0.0) + poa["poa_diffuse"]
        cell = pvlib.temperature.faiman(poa["poa_global"], got["temp_air"], got["wind_speed"],
                                        p["temp_model_u0"], p["temp_model_u1"])
        pdc = pvlib.pvsystem.pvwatts_dc(eff, cell, p["capacity_dc_kw"], p["gamma_pdc"]) * (1 - p["losses_pct"] / 100)
        pac = pvlib.inverter.pvwatts(pdc, p["capacity_ac_kw"] / physics.ETA_INV_NOM)
        np.testing.assert_allclose(got["physical_ac_kw"], pac.clip(0, p["capacity_ac_kw"]), rtol=1e-9, atol=1e-9)


def test_power_is_zero_at_night_and_bounded_by_capacity(frame, plants):
    cap = frame.index.get_level_values("location_id").map(plants.set_index("location_id")["capacity_ac_kw"])
    night = frame["solar_elevation"].to_numpy() < -1.0
    assert night.sum() > 100
    assert (frame["physical_ac_kw"].to_numpy()[night] == 0).all()
    assert (frame["physical_ac_kw"].to_numpy() <= cap.to_numpy()).all()
    assert (frame["physical_ac_kw"].to_numpy() >= 0).all()


def test_instantaneous_weather_is_reproduced_at_its_own_instants(plants, psm3):
    """period_minutes 0: at a PSM3 label the interpolated GHI and temperature are the PSM3 values."""
    p = plants.iloc[:1]
    weather = psm3.assign(location_id=p["location_id"].iloc[0])
    labels = pd.DatetimeIndex(psm3["valid_time"]).tz_convert("UTC")
    day = labels[(labels >= "2013-06-01 13:00") & (labels <= "2013-06-01 23:00")]
    got = features.feature_frame(p, weather, day)
    want = psm3.set_index("valid_time").loc[day]
    np.testing.assert_allclose(got["ghi"].to_numpy(), want["ghi"].to_numpy(), rtol=1e-9, atol=1e-6)
    np.testing.assert_allclose(got["temp_air"].to_numpy(), want["temp_air"].to_numpy())


def test_hourly_period_averages_are_placed_mid_period(plants, psm3):
    """Hourly means of the real PSM3 (labelled at the hour's end) give the same energy and shape."""
    p = plants.iloc[:1]
    inst = psm3.set_index("valid_time")[["ghi", "temp_air", "wind_speed"]]
    # trapezoidal mean over (T - 60 min, T] of the 30-min instants = the hour's period average
    hourly = (0.25 * inst.shift(2) + 0.5 * inst.shift(1) + 0.25 * inst).iloc[2::2].dropna()
    hourly = hourly.reset_index().assign(location_id=p["location_id"].iloc[0], dni=np.nan, dhi=np.nan,
                                         period_minutes=60)
    got_h = features.feature_frame(p, hourly, TIMES)
    got_i = features.feature_frame(p, psm3.assign(location_id=p["location_id"].iloc[0]), TIMES)
    assert abs(got_h["ghi"].sum() / got_i["ghi"].sum() - 1) < 0.03
    # labelled at the END of the hour: treating them as instants would shift the day by 30 min
    naive = features.feature_frame(p, hourly.assign(period_minutes=0), TIMES)
    err = lambda f: np.abs(f["ghi"].to_numpy() - got_i["ghi"].to_numpy()).mean()  # noqa: E731
    assert err(got_h) < 0.8 * err(naive)


def test_weather_not_covering_the_horizon_names_the_location(plants, psm3):
    weather = pd.concat([psm3.assign(location_id=i) for i in plants["location_id"]], ignore_index=True)
    short = weather[~((weather["location_id"] == 13) & (weather["valid_time"] > "2013-06-02 12:00"))]
    with pytest.raises(ValueError, match="location_id 13: weather covers"):
        features.feature_frame(plants, short, TIMES)


def test_gap_in_the_weather_names_the_location(plants, psm3):
    weather = pd.concat([psm3.assign(location_id=i) for i in plants["location_id"]], ignore_index=True)
    t = weather["valid_time"]
    holed = weather[~((weather["location_id"] == 14) & (t > "2013-06-02 10:00") & (t < "2013-06-02 16:00"))]
    with pytest.raises(ValueError, match="location_id 14: weather has a gap"):
        features.feature_frame(plants, holed, TIMES)


def test_missing_temperature_is_refused_not_filled(plants, psm3):
    weather = psm3.assign(location_id=11)
    weather.loc[100, "temp_air"] = np.nan
    with pytest.raises(ValueError, match="location_id 11: weather temp_air is not finite"):
        features.feature_frame(plants.iloc[:1], weather, TIMES)


def test_weather_rows_in_any_order_give_the_same_frame(plants, psm3, frame):
    """The weather is sorted by (plant, valid time) before use: shuffled rows and extra plants change no value."""
    weather = pd.concat([psm3.assign(location_id=i) for i in [*plants["location_id"], 99]], ignore_index=True)
    shuffled = weather.sample(frac=1.0, random_state=7).reset_index(drop=True)
    pd.testing.assert_frame_equal(features.feature_frame(plants, shuffled, TIMES), frame, check_exact=True)


def test_duplicate_weather_time_names_the_location(plants, psm3):
    weather = pd.concat([psm3.assign(location_id=i) for i in plants["location_id"]], ignore_index=True)
    twice = pd.concat([weather, weather[weather["location_id"] == 15].iloc[[40]]], ignore_index=True)
    with pytest.raises(ValueError, match="location_id 15: duplicate weather valid_time 2013-05-31 20:00:00"):
        features.feature_frame(plants, twice, TIMES)


def test_given_dni_dhi_are_used_instead_of_erbs(plants, psm3):
    """PSM3 clear-sky components as weather: the frame keeps their diffuse fraction, Erbs would not."""
    p = plants.iloc[:1]
    raw = pd.read_parquet(data.data_file(CONFIG["data"]["weather_file"]))
    components = raw.set_index(pd.DatetimeIndex(raw["index"]).tz_convert("UTC"))[["dni_clear", "dhi_clear"]]
    components = components.reindex(pd.DatetimeIndex(psm3["valid_time"]))
    clear = psm3.assign(location_id=11, ghi=psm3["ghi_clear"].to_numpy(), dni=components["dni_clear"].to_numpy(),
                        dhi=components["dhi_clear"].to_numpy())
    got = features.feature_frame(p, clear, TIMES)
    erbs = features.feature_frame(p, clear.assign(dni=np.nan, dhi=np.nan), TIMES)
    noon = got["solar_elevation"].to_numpy() > 40
    kd_given = (clear["dhi"] / clear["ghi"])[clear["ghi"] > 800].median()
    assert abs(got["diffuse_fraction"].to_numpy()[noon].mean() - kd_given) < 0.03
    assert abs(erbs["diffuse_fraction"].to_numpy()[noon].mean() - kd_given) > 0.03


SPREAD = {"latitude": np.array([39.742, 35.05, 44.5, -33.9, 64.8, 0.3]),
          "longitude": np.array([-105.1727, -106.6, -100.3, 151.2, -147.7, 32.6]),
          "altitude": np.array([1730.0, 1600.0, 500.0, 20.0, 130.0, 1190.0])}


def flat_sun(sites):
    """``sun_and_clear_sky`` of every (site, forecast time), location-major, as ``feature_frame`` lays it out."""
    n, t = len(sites["latitude"]), len(TIMES)
    site, step = np.repeat(np.arange(n), t), np.tile(np.arange(t), n)
    monthly = features.linke_turbidity_monthly(sites["latitude"], sites["longitude"])
    return site, step, monthly, features.sun_and_clear_sky(TIMES, step, site, sites, monthly)


def test_flat_solar_position_is_pvlib_spa_bit_for_bit():
    """Time terms once per timestamp, site terms once per site, shared sines: pvlib's nrel_numpy values exactly."""
    _, _, _, sun = flat_sun(SPREAD)
    for i, (lat, lon, alt) in enumerate(zip(*SPREAD.values())):
        ref = pvlib.solarposition.get_solarposition(TIMES, lat, lon, alt, method="nrel_numpy", delta_t=None)
        part = slice(i * len(TIMES), (i + 1) * len(TIMES))
        for name in ("apparent_elevation", "elevation", "apparent_zenith", "zenith", "azimuth", "equation_of_time"):
            np.testing.assert_array_equal(sun[name][part], ref[name].to_numpy(), err_msg=f"site {i} {name}")


def test_extraterrestrial_irradiance_is_pvlibs_of_the_timestamps():
    """``dni_extra`` from the UTC day of year as numbers: pvlib's value for the DatetimeIndex, bit for bit."""
    site, step, _, sun = flat_sun(SPREAD)
    times = pd.date_range("2012-12-30", "2013-01-02 23:00", freq="1h", tz="UTC").append(TIMES)  # a year's turn
    flat = features.sun_and_clear_sky(times, np.arange(len(times)), np.zeros(len(times), dtype=int),
                                      {k: v[:1] for k, v in SPREAD.items()},
                                      features.linke_turbidity_monthly(SPREAD["latitude"][:1], SPREAD["longitude"][:1]))
    np.testing.assert_array_equal(flat["dni_extra"], pvlib.irradiance.get_extra_radiation(times).to_numpy())
    np.testing.assert_array_equal(sun["dni_extra"], pvlib.irradiance.get_extra_radiation(TIMES).to_numpy()[step])


def test_clear_sky_evaluated_only_above_the_horizon_equals_it_evaluated_everywhere():
    """Skipping air mass and Ineichen below the horizon changes no value: there they are NaN and exactly 0."""
    site, step, monthly, sun = flat_sun(SPREAD)
    below = sun["apparent_zenith"] > 90.0
    assert 0.2 < below.mean() < 0.6  # the shortcut is exercised (and so is the daylight part)
    relative = pvlib.atmosphere.get_relative_airmass(sun["apparent_zenith"])
    absolute = pvlib.atmosphere.get_absolute_airmass(relative, sun["pressure"])
    with np.errstate(divide="ignore", invalid="ignore"):
        everywhere = pvlib.clearsky.ineichen(sun["apparent_zenith"], absolute,
                                             features.linke_turbidity(monthly, site, TIMES, step),
                                             SPREAD["altitude"][site], sun["dni_extra"])
    np.testing.assert_array_equal(sun["airmass_relative"], relative)
    np.testing.assert_array_equal(sun["airmass_absolute"], absolute)
    for k in ("ghi", "dni", "dhi"):
        np.testing.assert_array_equal(sun[f"{k}_clear"], np.nan_to_num(np.asarray(everywhere[k]), nan=0.0))


def test_shifted_csi_gathered_equals_it_interpolated_per_element(psm3):
    """One interpolation per (plant, distinct shifted time), then gathers: each element's value at time + shift exactly.

    Real PSM3 GHI / 1000 as the index (NaN where it is 0, as at night), three plants whose weather ends at
    different times (so some shifted times fall outside a plant's weather: NaN), a subset of the elements
    (the daylight ones in ``feature_frame``).
    """
    from engine import resample, solarposition

    spans = ["2013-06-04 00:00", "2013-06-03 09:00", "2013-06-02 20:00"]
    w = pd.concat([psm3[psm3["valid_time"] < end].assign(site=i) for i, end in enumerate(spans)], ignore_index=True)
    inst_sec = solarposition.unixtime(resample.weather_instants(w))
    w_site = w["site"].to_numpy()
    ghi = w["ghi"].to_numpy(dtype=float)
    csi_w = np.where(ghi > 0, ghi / 1000.0, np.nan)
    t_sec = solarposition.unixtime(TIMES)
    n_sites, n_times = 3, len(TIMES)
    elements = np.flatnonzero(np.arange(n_sites * n_times) % 3 != 1)
    site, step = np.divmod(elements, n_times)
    base = min(inst_sec.min(), t_sec.min()) - 86400.0
    band = max(inst_sec.max(), t_sec.max()) - base + 86400.0
    support = resample.band_axis(w_site, inst_sec - base, band)
    shifts = sorted({*features.CONTEXT_SHIFTS_MINUTES.values(), *features.WINDOW_SHIFTS_MINUTES.tolist()})
    got = features.csi_shifted(csi_w, support, w_site, inst_sec, t_sec, base, band, site, step, shifts, n_sites)
    per_element = resample.band_interpolator(support, w_site, csi_w, site, n_sites)
    target = resample.band_axis(site, t_sec[step] - base, band)
    first = np.array([inst_sec[w_site == i].min() for i in range(n_sites)])
    last = np.array([inst_sec[w_site == i].max() for i in range(n_sites)])
    outside = 0
    for m in shifts:
        seconds = t_sec[step] + m * 60.0
        inside = (seconds >= first[site]) & (seconds <= last[site])
        outside += (~inside).sum()
        np.testing.assert_array_equal(got[m], np.where(inside, per_element(target + m * 60.0), np.nan), err_msg=m)
    assert outside > 100 and np.isfinite(np.stack(list(got.values()))).mean() > 0.3


def test_monthly_linke_turbidity_read_by_chunk_equals_pvlib_lookup():
    """Sites clustered and scattered over the globe (many storage chunks, grid edges): pvlib's monthly values."""
    rng = np.random.default_rng(7)
    lat = np.concatenate([rng.uniform(-60.0, 70.0, 12), 39.7 + rng.uniform(-0.5, 0.5, 4), [89.99, -89.99]])
    lon = np.concatenate([rng.uniform(-180.0, 180.0, 12), -105.2 + rng.uniform(-0.5, 0.5, 4), [179.99, -180.0]])
    months = pd.date_range("2013-01-01", periods=12, freq="MS", tz="UTC")
    expected = np.array([pvlib.clearsky.lookup_linke_turbidity(months, la, lo, interp_turbidity=False).to_numpy()
                         for la, lo in zip(lat, lon)])
    features.LINKE_CELLS.clear()
    np.testing.assert_array_equal(features.linke_turbidity_monthly(lat[::3], lon[::3]), expected[::3])
    np.testing.assert_array_equal(features.linke_turbidity_monthly(lat, lon), expected)  # cells read and cached
    np.testing.assert_array_equal(features.linke_turbidity_monthly(lat, lon), expected)  # every cell cached


def test_monthly_linke_turbidity_past_the_cache_limit_still_equals_the_file(monkeypatch):
    """A read that overflows the cell cache keeps only its own cells, and every site still gets its own cell's values."""
    rng = np.random.default_rng(11)
    lat, lon = rng.uniform(-60.0, 70.0, 40), rng.uniform(-180.0, 180.0, 40)
    features.LINKE_CELLS.clear()
    expected = features.linke_turbidity_monthly(lat, lon)
    monkeypatch.setattr(features, "LINKE_CELLS_CACHED", 25)
    features.LINKE_CELLS.clear()
    np.testing.assert_array_equal(features.linke_turbidity_monthly(lat[:20], lon[:20]), expected[:20])
    np.testing.assert_array_equal(features.linke_turbidity_monthly(lat, lon), expected)  # 20 cached + 20 read > 25
    assert len(features.LINKE_CELLS[str(features.LINKE_FILE)][0]) == 20
    np.testing.assert_array_equal(features.linke_turbidity_monthly(lat[::-1], lon[::-1]), expected[::-1])
    features.LINKE_CELLS.clear()


def test_window_stats_are_numpys_nan_statistics_bit_for_bit(psm3):
    """Mean/min/max over 3 h and mean/std over 6 h ignoring NaN: numpy's nanmean/nanmin/nanmax/nanstd exactly.

    Real PSM3 GHI / 1000 (NaN where it is 0, at night), the window of each instant from the series shifted by
    the window's steps (NaN beyond its ends): windows partly and wholly NaN included.
    """
    ghi = psm3["ghi"].to_numpy(dtype=float)
    csi = np.where(ghi > 0, ghi / 1000.0, np.nan)
    steps = features.WINDOW_SHIFTS_MINUTES // 30  # the PSM3 series is 30-min
    shifted = {m: np.concatenate([np.full(max(-k, 0), np.nan), csi[max(k, 0):len(csi) + min(k, 0)],
                                  np.full(max(k, 0), np.nan)]) for m, k in zip(features.WINDOW_SHIFTS_MINUTES, steps)}
    window = np.stack([shifted[m] for m in features.WINDOW_SHIFTS_MINUTES])
    inner = window[np.abs(features.WINDOW_SHIFTS_MINUTES) <= 90]
    assert np.isnan(inner).all(axis=0).sum() > 10 and (np.isnan(window).any(axis=0) & ~np.isnan(window).all(axis=0)).sum() > 10
    with np.errstate(invalid="ignore"), pytest.warns(RuntimeWarning):
        expected = {"csi_mean_3h": np.nanmean(inner, axis=0), "csi_min_3h": np.nanmin(inner, axis=0),
                    "csi_max_3h": np.nanmax(inner, axis=0), "csi_mean_6h": np.nanmean(window, axis=0),
                    "csi_std_6h": np.nanstd(window, axis=0)}
    got = features.csi_window_stats(shifted)
    for name, values in expected.items():
        np.testing.assert_array_equal(got[name], values, err_msg=name)

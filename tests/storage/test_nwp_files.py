"""Reading real NWP files: cycle -> issue time, valid times, units and period semantics checked
against the values read directly with netCDF4 / ecCodes; bilinear interpolation against a hand
computation from the four surrounding grid points; bad files refused. No database needed."""

import eccodes
import numpy as np
import pandas as pd
import pvlib
import pytest

from engine import gridinterp, nwp, weatherimport

from nwphelpers import (ARM_MET, GEFS_2019, NETCDF, RAP_GRIB, RAP_NC, grid_centre, raw, raw_issue_and_valid,
                        require_samples)

pytestmark = pytest.mark.usefixtures("samples")
ISSUE = pd.Timestamp("2019-05-15T00:00:00Z")


@pytest.fixture(scope="module")
def samples():
    require_samples()


def fields_of(source):
    return nwp.period_means(nwp.read_nwp(NETCDF[source]))


@pytest.mark.parametrize("source", sorted(NETCDF))
def test_cycle_is_issue_time_and_valid_times_come_from_the_steps(source):
    issue, valid = raw_issue_and_valid(NETCDF[source])
    fs = nwp.read_nwp(NETCDF[source])
    assert pd.Timestamp(fs.attrs["issue_time"]) == issue == ISSUE
    assert (issue + pd.to_timedelta(fs["step"].values, unit="min") == valid).all()
    assert fs.attrs["source"] == source


@pytest.mark.parametrize("source", sorted(NETCDF))
def test_temperature_is_celsius_and_wind_is_the_10m_speed(source):
    fs = nwp.read_nwp(NETCDF[source])
    np.testing.assert_allclose(fs["temp_air"].values, raw(NETCDF[source], "t2m") - 273.15)
    np.testing.assert_allclose(fs["wind_speed"].values, raw(NETCDF[source], "si10"))


def test_gfs_average_since_reset_becomes_hourly_means():
    """GFS DSWRF/TCDC at hour h average from the last 6-hourly reset: 1-2 h = 2 m2 - m1, ..."""
    pm = fields_of("gfs")
    m = raw(NETCDF["gfs"], "dswrf")  # (time, lat, lon), time index == forecast hour up to 120
    hour = pm["step"].values // 60
    at = {h: int(np.flatnonzero(hour == h)[0]) for h in (1, 2, 6, 7, 8, 119)}
    np.testing.assert_allclose(pm["ghi"].values[at[1]], np.maximum(m[1], 0))  # first hour after a reset
    np.testing.assert_allclose(pm["ghi"].values[at[2]], np.maximum(2 * m[2] - m[1], 0))
    np.testing.assert_allclose(pm["ghi"].values[at[6]], np.maximum(6 * m[6] - 5 * m[5], 0))
    np.testing.assert_allclose(pm["ghi"].values[at[7]], np.maximum(m[7], 0))  # reset at 6 h
    np.testing.assert_allclose(pm["ghi"].values[at[8]], np.maximum(2 * m[8] - m[7], 0))
    c = raw(NETCDF["gfs"], "tcdc")
    np.testing.assert_allclose(pm["cloud_cover"].values[at[119]], np.clip(5 * c[119] - 4 * c[118], 0, 100))
    periods = pd.Series(pm["period_minutes"].values, index=hour)
    assert (periods.loc[1:120] == 60).all() and (periods.loc[123:240] == 180).all()
    assert hour.max() == 240  # 12-hourly steps after 240 h: averaging window not known from the file, not stored
    assert 0 not in hour  # the analysis has no average: no radiation at step 0


def test_gfs_3_hourly_part_separates_0_3_and_0_6_hour_averages():
    pm = fields_of("gfs")
    m = raw(NETCDF["gfs"], "dswrf")
    valid = raw_issue_and_valid(NETCDF["gfs"])[1]
    k126 = int(np.flatnonzero(valid == ISSUE + pd.Timedelta(hours=126))[0])
    step = int(np.flatnonzero(pm["step"].values == 126 * 60)[0])
    np.testing.assert_allclose(pm["ghi"].values[step], np.maximum(2 * m[k126] - m[k126 - 1], 0))
    assert pm["period_minutes"].values[step] == 180


def test_gefs_member_3_hourly_then_6_hourly_means():
    pm = nwp.period_means(nwp.read_nwp(NETCDF["gefs_p01"]))
    m = raw(NETCDF["gefs_p01"], "dswrf")
    valid = raw_issue_and_valid(NETCDF["gefs_p01"])[1]
    hours = np.asarray((valid - ISSUE) / pd.Timedelta(hours=1))
    k6, k198 = int(np.flatnonzero(hours == 6)[0]), int(np.flatnonzero(hours == 198)[0])
    step = {h: int(np.flatnonzero(pm["step"].values == h * 60)[0]) for h in (3, 6, 198)}
    np.testing.assert_allclose(pm["ghi"].values[step[3]], m[k6 - 1])
    np.testing.assert_allclose(pm["ghi"].values[step[6]], np.maximum(2 * m[k6] - m[k6 - 1], 0))
    np.testing.assert_allclose(pm["ghi"].values[step[198]], m[k198])  # 6-hourly output: a 6 h mean itself
    assert [pm["period_minutes"].values[step[h]] for h in (3, 6, 198)] == [180, 180, 360]


def test_hrrr_hourly_radiation_is_instantaneous_with_dni_normal_to_the_beam():
    """HRRR wrfsfc DSWRF, VBDSF (direct normal), VDDSF (diffuse) are instants: GHI = DNI cos(z) + DHI
    with the sun at the valid time (median relative error < 0.5 %; a 1 h shift breaks it)."""
    pm = fields_of("hrrr")
    assert (pm["period_minutes"].values == 0).all()
    for field, name in (("ghi", "dswrf"), ("dni", "vbdsf"), ("dhi", "vddsf"), ("cloud_cover", "tcdc")):
        np.testing.assert_allclose(pm[field].values, raw(NETCDF["hrrr"], name))
    valid = ISSUE + pd.to_timedelta(pm["step"].values, unit="min")
    lat, lon = float(pm["latitude"][2, 2]), float(pm["longitude"][2, 2])

    def closure(times):
        zen = pvlib.solarposition.get_solarposition(times, lat, lon)["zenith"].to_numpy()
        day = zen < 80
        ghi, dni, dhi = (pm[f].values[:, 2, 2] for f in ("ghi", "dni", "dhi"))
        return np.median(np.abs(ghi - dni * np.cos(np.radians(zen)) - dhi)[day] / ghi[day])

    assert closure(valid) < 0.005
    assert closure(valid - pd.Timedelta(minutes=30)) > 0.02  # as a period mean labelled at its end it fails


def test_hrrr_subhourly_15_minute_means_and_instantaneous_diffuse():
    """wrfsubh: DSWRF and VBDSF are 15-min means ending at the valid time (the analysis an instant),
    VDDSF instantaneous -> mean of the instants at both ends of the 15 min."""
    pm = fields_of("hrrr_subhourly")
    path = NETCDF["hrrr_subhourly"]
    assert pm["period_minutes"].values[0] == 0 and (pm["period_minutes"].values[1:] == 15).all()
    np.testing.assert_allclose(pm["ghi"].values, raw(path, "dswrf"))
    np.testing.assert_allclose(pm["dni"].values, raw(path, "vbdsf"))
    d = raw(path, "vddsf")
    np.testing.assert_allclose(pm["dhi"].values[1:], (d[:-1] + d[1:]) / 2)
    np.testing.assert_allclose(pm["dhi"].values[0], d[0])
    assert "cloud_cover" not in pm  # the 15-min files have no cloud cover: absent, not invented
    # the instant at 01:00 of the hourly file equals the subhourly diffuse instant (same model run)
    np.testing.assert_allclose(raw(NETCDF["hrrr"], "vddsf")[1], d[4])


def test_nam_radiation_is_instantaneous():
    pm = fields_of("nam")
    assert (pm["period_minutes"].values == 0).all()
    np.testing.assert_allclose(pm["ghi"].values, raw(NETCDF["nam"], "dswrf"))
    assert "dni" not in pm and "dhi" not in pm


def test_rap_grib_read_with_eccodes_directly_matches():
    """The raw RAP GRIB2 files: cycle, step, 2 m temperature, 10 m wind, cloud cover as ecCodes reads them."""
    fs = nwp.read_grib(RAP_GRIB[2])
    with open(RAP_GRIB[2], "rb") as f:
        msgs = {}
        while (gid := eccodes.codes_grib_new_from_file(f)) is not None:
            shape = (eccodes.codes_get(gid, "Nj"), eccodes.codes_get(gid, "Ni"))
            msgs[eccodes.codes_get(gid, "shortName")] = (eccodes.codes_get_values(gid).reshape(shape),
                                                         eccodes.codes_get(gid, "dataDate"),
                                                         eccodes.codes_get(gid, "forecastTime"))
            eccodes.codes_release(gid)
    assert pd.Timestamp(fs.attrs["issue_time"]) == pd.Timestamp(str(msgs["2t"][1]), tz="UTC")
    assert fs["step"].values.tolist() == [msgs["2t"][2] * 60] == [120]
    assert fs.attrs["source"] == "rap"
    np.testing.assert_allclose(fs["temp_air"].values[0], msgs["2t"][0] - 273.15)
    np.testing.assert_allclose(fs["wind_speed"].values[0], np.hypot(msgs["10u"][0], msgs["10v"][0]))
    np.testing.assert_allclose(fs["cloud_cover"].values[0], msgs["tcc"][0])
    assert "ghi" not in fs


def test_gfs_interpolation_equals_hand_bilinear_from_four_grid_points():
    pm = fields_of("gfs")
    plant = pd.DataFrame({"location_id": [7], "latitude": [32.1], "longitude": [-110.3]})
    weather, uncovered = nwp.to_locations(pm, plant)
    assert uncovered == {}
    # grid: lat 32.0, 32.25, 32.5; lon -110.5, -110.25, -110.0 -> cell (0..1, 0..1)
    fy, fx = (32.1 - 32.0) / 0.25, (-110.3 + 110.5) / 0.25
    t2m = raw(NETCDF["gfs"], "t2m") - 273.15
    hand = ((1 - fy) * (1 - fx) * t2m[:, 0, 0] + (1 - fy) * fx * t2m[:, 0, 1] + fy * (1 - fx) * t2m[:, 1, 0]
            + fy * fx * t2m[:, 1, 1])
    k = np.searchsorted(raw_issue_and_valid(NETCDF["gfs"])[1], weather["valid_time"])
    np.testing.assert_allclose(weather["temp_air"].to_numpy(), hand[k], rtol=0, atol=1e-9)


def lambert_hrrr(lat, lon):
    """HRRR Lambert conformal (lat_1 = lat_2 = lat_0 = 38.5, lon_0 = -97.5, sphere 6371229 m), x/y in m."""
    r, phi0, lam0 = 6371229.0, np.radians(38.5), np.radians(-97.5)
    n = np.sin(phi0)
    f = np.cos(phi0) * np.tan(np.pi / 4 + phi0 / 2) ** n / n
    rho = r * f / np.tan(np.pi / 4 + np.radians(lat) / 2) ** n
    theta = n * (np.radians(lon) - lam0)
    return rho * np.sin(theta), r * f / np.tan(np.pi / 4 + phi0 / 2) ** n - rho * np.cos(theta)


def test_hrrr_interpolation_equals_hand_bilinear_in_the_projection():
    """On the curvilinear HRRR grid: project the plant with the HRRR Lambert projection, bilinear in the
    file's x/y from the four surrounding grid points by hand, compare. The file stores the grid's lat/lon
    rounded to 0.001 deg (~100 m of a 3 km cell), so they agree to a few % of the corner spread."""
    path = NETCDF["hrrr"]
    pm = fields_of("hrrr")
    lat, lon = raw(path, "latitude"), raw(path, "longitude") - 360.0
    x, y = raw(path, "x"), raw(path, "y")
    gx, gy = lambert_hrrr(lat, lon)
    off_x, off_y = np.median(gx - x[None, :]), np.median(gy - y[:, None])
    plant_lat, plant_lon = 32.07, -110.43
    px, py = (v - o for v, o in zip(lambert_hrrr(plant_lat, plant_lon), (off_x, off_y)))
    i, j = np.searchsorted(x, px) - 1, np.searchsorted(y, py) - 1
    fx, fy = (px - x[i]) / (x[i + 1] - x[i]), (py - y[j]) / (y[j + 1] - y[j])
    ghi = raw(path, "dswrf")
    corners = ghi[:, j:j + 2, i:i + 2]
    hand = ((1 - fy) * (1 - fx) * corners[:, 0, 0] + (1 - fy) * fx * corners[:, 0, 1]
            + fy * (1 - fx) * corners[:, 1, 0] + fy * fx * corners[:, 1, 1])
    plant = pd.DataFrame({"location_id": [1], "latitude": [plant_lat], "longitude": [plant_lon]})
    weather, _ = nwp.to_locations(pm, plant)
    spread = corners.max(axis=(1, 2)) - corners.min(axis=(1, 2))
    assert (np.abs(weather["ghi"].to_numpy() - hand) <= 0.05 * spread + 1e-9).all()
    w = gridinterp.bilinear_weights(lat, lon, [plant_lat], [plant_lon])
    assert {(int(a), int(b)) for a, b in zip(w["iy"][0], w["ix"][0])} == {(j, i), (j, i + 1), (j + 1, i),
                                                                          (j + 1, i + 1)}
    # the weights reproduce the plant's own position from the corners' lat/lon
    np.testing.assert_allclose((w["weights"][0] * lat[w["iy"][0], w["ix"][0]]).sum(), plant_lat, atol=1e-9)
    np.testing.assert_allclose((w["weights"][0] * lon[w["iy"][0], w["ix"][0]]).sum(), plant_lon, atol=1e-9)


def test_plants_outside_the_grid_are_reported_not_extrapolated():
    pm = fields_of("hrrr")
    lat, lon = grid_centre(NETCDF["hrrr"])
    plants = pd.DataFrame({"location_id": [1, 2, 3], "latitude": [lat, 39.74, lat],
                           "longitude": [lon, -105.17, lon + 0.5]})
    weather, uncovered = nwp.to_locations(pm, plants)
    assert sorted(uncovered) == [2, 3] and set(weather["location_id"]) == {1}


def test_a_global_regular_grid_wraps_at_the_date_line():
    """A plant at -0.1 deg lies between the last (359.75) and first (0) column of a global 0.25 grid."""
    lon1 = np.arange(0, 360, 0.25)
    lat, lon = np.meshgrid(np.array([51.0, 51.25]), lon1, indexing="ij")
    glat, glon, wrapped = nwp.periodic_columns(lat, np.where(lon >= 180, lon - 360, lon))
    assert wrapped
    w = gridinterp.bilinear_weights(glat, glon, [51.1], [-0.1])
    assert w["inside"][0] and set(w["ix"][0]) == {len(lon1) - 1, len(lon1)}
    np.testing.assert_allclose(w["weights"][0], [0.6 * 0.4, 0.6 * 0.6, 0.4 * 0.4, 0.4 * 0.6])


@pytest.mark.parametrize("path", [RAP_NC, RAP_GRIB[0]], ids=["rap-netcdf", "rap-grib"])
def test_a_file_without_radiation_is_refused(path):
    with pytest.raises(ValueError, match="ghi"):
        nwp.read_nwp(path)


def test_the_gefs_spread_file_is_refused():
    spread = GEFS_2019[0].parent / "gefs_spr.nc"
    with pytest.raises(ValueError, match="spread"):
        nwp.read_nwp(spread)


def test_truncated_files_are_refused(tmp_path):
    for src in (RAP_GRIB[1], NETCDF["hrrr"]):
        cut = tmp_path / src.name
        cut.write_bytes(src.read_bytes()[: src.stat().st_size // 2])
        with pytest.raises(ValueError, match=src.name):
            nwp.read_nwp(cut)


def test_a_netcdf_without_nwp_variables_is_refused():
    """A real netCDF that is not NWP output (ARM surface met station file)."""
    with pytest.raises(ValueError):
        nwp.read_nwp(ARM_MET, "hrrr")
    with pytest.raises(ValueError, match="source unknown"):
        nwp.read_nwp(ARM_MET)


def test_files_of_one_cycle_combine_and_each_step_once(tmp_path):
    sets = [nwp.read_grib(p) for p in RAP_GRIB]
    combined = nwp.combine(sets)
    assert combined["step"].values.tolist() == [0, 60, 120, 180]
    with pytest.raises(ValueError, match="two files"):
        nwp.combine([sets[0], sets[0]])


# --- server-side paths ------------------------------------------------------------------------

@pytest.fixture
def import_dir(tmp_path):
    root = tmp_path / "imports"
    (root / "gfs").mkdir(parents=True)
    (root / "gfs" / "a.nc").write_bytes(b"x")
    (tmp_path / "secret.nc").write_bytes(b"x")
    (root / "escape.nc").symlink_to(tmp_path / "secret.nc")
    (root / "inside.nc").symlink_to(root / "gfs" / "a.nc")
    return root


def test_confined_path_accepts_files_under_the_root(import_dir):
    assert weatherimport.confined_path(import_dir, "gfs/a.nc") == (import_dir / "gfs/a.nc").resolve()
    assert weatherimport.confined_path(import_dir, str(import_dir / "gfs/a.nc")) == (import_dir / "gfs/a.nc")
    assert weatherimport.confined_path(import_dir, "inside.nc") == (import_dir / "gfs/a.nc").resolve()


@pytest.mark.parametrize("name", ["../secret.nc", "gfs/../../secret.nc", "escape.nc", "/etc/passwd", "", "a\x00b"])
def test_confined_path_refuses_escapes(import_dir, name):
    with pytest.raises(PermissionError):
        weatherimport.confined_path(import_dir, name)


def test_confined_path_refuses_when_unconfigured_and_reports_missing_files(import_dir):
    with pytest.raises(PermissionError):
        weatherimport.confined_path(None, "gfs/a.nc")
    with pytest.raises(FileNotFoundError):
        weatherimport.confined_path(import_dir, "gfs/none.nc")
    with pytest.raises(FileNotFoundError):
        weatherimport.confined_path(import_dir, "gfs")  # a directory is not a file

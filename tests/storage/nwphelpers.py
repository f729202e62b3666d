"""Real NWP sample files (solarforecastarbiter wheel, MIT) extracted by scripts/nwp_samples."""

from pathlib import Path

import netCDF4
import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / ".venv/nwp-samples/solarforecastarbiter/io"
NC = SAMPLES / "tests/data"
GRIB = SAMPLES / "fetch/tests/data/grib"
#: one real file per netCDF source (Solar Forecast Arbiter subsets around Tucson, AZ, 2019-05-15 00Z)
NETCDF = {"gfs": NC / "gfs_0p25/2019/05/15/00/gfs_0p25.nc", "hrrr": NC / "hrrr_hourly/2019/05/15/00/hrrr_hourly.nc",
          "hrrr_subhourly": NC / "hrrr_subhourly/2019/05/15/00/hrrr_subhourly.nc",
          "nam": NC / "nam_12km/2019/05/15/00/nam_12km.nc", "gefs_p01": NC / "gefs/2019/05/15/00/gefs_p01.nc"}
GEFS_2019 = sorted((NC / "gefs/2019/05/15/00").glob("gefs_[ac]*.nc")) + sorted(
    (NC / "gefs/2019/05/15/00").glob("gefs_p*.nc"))
RAP_NC = NC / "rap/2019/05/15/00/rap.nc"
RAP_GRIB = [GRIB / f"rap.t00z.awp130pgrbf0{k}.grib2" for k in range(4)]
ARM_MET = SAMPLES / "fetch/tests/data/sgpmetE13.b1.20190122.000000.cdf"  # real netCDF, not NWP


def require_samples():
    if not (NETCDF["gfs"].is_file() and RAP_GRIB[0].is_file()):
        pytest.fail(f"NWP sample files missing under {SAMPLES}: run scripts/bootstrap (scripts/nwp_samples)")


def raw(path, name):
    """A variable as stored in the file, read with netCDF4 directly (masked -> NaN), float64."""
    with netCDF4.Dataset(path) as ds:
        return np.ma.filled(ds[name][:].astype("float64"), np.nan)


def raw_issue_and_valid(path):
    """Cycle (reference_time attribute) and valid times of a wgrib2 netCDF, read with netCDF4."""
    with netCDF4.Dataset(path) as ds:
        t = ds["time"]
        issue = pd.Timestamp(float(t.reference_time), unit="s", tz="UTC")
        valid = pd.DatetimeIndex(netCDF4.num2date(t[:], t.units, only_use_cftime_datetimes=False,
                                                  only_use_python_datetimes=True)).tz_localize("UTC")
    return issue, valid


def grid_centre(path):
    """(lat, lon) inside the grid of a sample: the mean of its four central grid points."""
    with netCDF4.Dataset(path) as ds:
        lat, lon = ds["latitude"][:].astype(float), ds["longitude"][:].astype(float)
    if lat.ndim == 1:
        lon, lat = np.meshgrid(lon, lat)
    j, i = (lat.shape[0] - 1) // 2, (lat.shape[1] - 1) // 2
    lon = np.where(lon >= 180, lon - 360, lon)
    return float(lat[j:j + 2, i:i + 2].mean()), float(lon[j:j + 2, i:i + 2].mean())

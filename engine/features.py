"""Model features from weather and plant configuration, for many plants at once.

:func:`feature_frame` is the one entry point, used by training and by the
serving Ray tasks alike. It works on flat arrays with one element per
(location, timestamp), location-major, so no step loops over plants in Python:

1. solar position (:mod:`engine.solarposition`: SPA time terms once per
   timestamp) at the weather's own instants and at the forecast times;
2. Ineichen clear sky with the Linke turbidity climatology shipped in pvlib;
3. weather brought to the forecast times through the clear-sky index
   (:mod:`engine.resample`);
4. GHI decomposed with Erbs where the weather has no DNI/DHI;
5. per plane row (:mod:`engine.planes`: a plant has 1..N planes): orientation
   (fixed or single-axis tracking), Perez plane of array, horizon shading
   (:mod:`engine.horizon`), IAM, Faiman cell temperature, PVWatts DC
   (:mod:`engine.physics`); DC summed per plant, ONE inverter clip;
6. normalised, plant-independent model features (:data:`MODEL_FEATURES`).

How the global model sees a multi-plane plant: every feature that depends on
the plant is either plant-level (``physical_norm``, the plant's AC estimate
after the shared inverter clip, / AC capacity: the model's anchor) or a
plane quantity averaged with the planes' DC capacity as weights
(``poa_global``, ``aoi``, ``temp_cell``). A one-plane plant's weights are 1,
so its features, and the committed model's output on them, are exactly those
of a plant without plane rows.
"""

import calendar
import functools
import warnings
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pvlib
from pvlib import atmosphere, clearsky, irradiance

from engine import horizon as shading
from engine import physics, resample, solarposition
from engine.planes import GEOMETRY_COLUMNS, plane_arrays
from engine.validation import TRACKING

#: Model input columns, in the order the model was trained with.
MODEL_FEATURES = (
    "solar_elevation", "aoi", "solar_hour_sin", "solar_hour_cos", "doy_sin", "doy_cos",
    "ghi_clear", "csi", "csi_lag30", "csi_lag15", "csi_lead15", "csi_lead30", "csi_std_1h",
    "diffuse_fraction", "poa_global", "temp_air", "temp_cell", "airmass", "physical_norm",
    "solar_azimuth", "csi_mean_3h", "csi_min_3h", "csi_max_3h", "csi_mean_6h", "csi_std_6h",
)

#: Weather columns ``feature_frame`` reads (pvlib names and units).
WEATHER_COLUMNS = ("location_id", "valid_time", "ghi", "dni", "dhi", "temp_air", "wind_speed", "period_minutes")

#: Location columns ``feature_frame`` reads.
LOCATION_COLUMNS = ("location_id", "latitude", "longitude", "altitude", "capacity_ac_kw", "capacity_dc_kw", "tilt",
                    "azimuth", "tracking", "axis_azimuth", "max_angle", "gcr", "losses_pct", "gamma_pdc",
                    "temp_model_u0", "temp_model_u1")

CONTEXT_SHIFTS_MINUTES = {"csi_lag30": -30, "csi_lag15": -15, "csi_lead15": 15, "csi_lead30": 30}
WINDOW_SHIFTS_MINUTES = np.arange(-180, 181, 30)  # centred 6 h window of the clear-sky index (3 h: |shift| <= 90)
LINKE_FILE = Path(pvlib.__file__).parent / "data" / "LinkeTurbidities.h5"

#: What serving reads of a feature frame (:mod:`engine.forecast`): the model inputs and the physical estimate.
SERVING_COLUMNS = (*MODEL_FEATURES, "physical_ac_kw")
#: Serving columns kept float64: they enter float64 arithmetic (day mask, calibration bins, physical
#: baseline, plant bands). The other model inputs are stored float32, the precision CatBoost evaluates
#: them at whatever it is given, so the predictions are the same.
SERVING_FLOAT64 = ("solar_elevation", "csi", "physical_ac_kw")

#: Columns of :func:`feature_frame(daylight_only=True) <feature_frame>` with the sun at or below the
#: horizon: the grid's solar geometry and clear sky, and what the full computation gives there (no
#: irradiance, no power); the other columns are NaN there.
NIGHT_VALUES = {"solar_elevation": "apparent_elevation", "solar_azimuth": "azimuth", "solar_zenith": "apparent_zenith",
                "ghi_clear": "ghi_clear", "ghi": 0.0, "dni": 0.0, "dhi": 0.0, "poa_global": 0.0, "poa_direct": 0.0,
                "physical_ac_kw": 0.0, "physical_dc_kw": 0.0, "physical_norm": 0.0}


#: Monthly Linke turbidity (/ 20) of the grid cells already read, by file: {path: (cells, values)}, ``cells``
#: sorted int64 cell numbers (row * LINKE_GRID_COLUMNS + col), ``values`` their (n, 12) months. The file is a
#: climatology; a process reads each cell once (a single plant's pass spent ~1.5 ms opening and reading it). At
#: most :data:`LINKE_CELLS_CACHED` cells per file (~1 MB per 10,000 cells; beyond, only the cells just read).
LINKE_CELLS = {}
LINKE_CELLS_CACHED = 200_000
LINKE_GRID_COLUMNS = 4320


def linke_turbidity_monthly(latitude, longitude, filepath=LINKE_FILE):
    """Monthly Linke turbidity of each site from pvlib's climatology file.

    Maps coordinates to grid cells exactly as ``pvlib.clearsky.lookup_linke_turbidity``;
    cells read before in this process come from :data:`LINKE_CELLS` (one
    ``numpy.searchsorted`` of the sites' cells in the sorted cells read), the
    others from the file (:func:`read_linke_cells`).

    Parameters
    ----------
    latitude, longitude : ndarray
        deg, one per site.

    Returns
    -------
    ndarray
        Shape (n_sites, 12), Linke turbidity (dimensionless, already / 20).
    """
    rows = np.clip(np.around((90.0 - 1 / 24 - np.asarray(latitude)) * 12.0), 0, 2159).astype(np.int64)
    cols = np.clip(np.around((np.asarray(longitude) + 180.0 - 1 / 24) * 12.0), 0, 4319).astype(np.int64)
    cells = rows * LINKE_GRID_COLUMNS + cols
    known, values = LINKE_CELLS.get(str(filepath), (np.empty(0, np.int64), np.empty((0, 12))))
    at = np.searchsorted(known, cells)
    found = np.zeros(len(cells), dtype=bool)
    inside = at < len(known)
    found[inside] = known[at[inside]] == cells[inside]
    if not found.all():
        missing = np.unique(cells[~found])
        read = read_linke_cells(missing // LINKE_GRID_COLUMNS, missing % LINKE_GRID_COLUMNS, filepath)
        order = np.argsort(np.concatenate([known, missing]), kind="stable")
        known, values = np.concatenate([known, missing])[order], np.concatenate([values, read])[order]
        at = np.searchsorted(known, cells)
        LINKE_CELLS[str(filepath)] = (known, values) if len(known) <= LINKE_CELLS_CACHED else (missing, read)
    return values[at]


def read_linke_cells(rows, cols, filepath=LINKE_FILE):
    """Monthly Linke turbidity (/ 20) of grid cells (row, col) read from pvlib's climatology file.

    Reads, per storage chunk of the file (gzip, 135 x 270 cells) holding
    cells, only the bounding box of those cells: a fleet clustered around a
    few places reads a few small boxes, not the box spanning all of them
    (nor the 112 MB grid). One read per such chunk (at most 256 on Earth).

    Returns
    -------
    ndarray
        Shape (n_cells, 12).
    """
    out = np.empty((len(rows), 12))
    grid = linke_grid(str(filepath))
    chunk_rows, chunk_cols = grid.chunks[:2] if grid.chunks else grid.shape[:2]
    tile = (rows // chunk_rows) * (grid.shape[1] // chunk_cols + 1) + cols // chunk_cols
    for t in np.unique(tile):
        part = np.flatnonzero(tile == t)
        r, c = rows[part], cols[part]
        box = grid[r.min():r.max() + 1, c.min():c.max() + 1, :]
        out[part] = box[r - r.min(), c - c.min(), :]
    return out / 20.0


#: Bytes of decompressed storage chunks of the Linke file kept by HDF5 (its chunk cache; default 1 MB): a
#: chunk is 135 x 270 cells x 2 months of uint8 (~73 kB), so ~230 chunks, the 12 months of ~19 regions of
#: 11 x 22 deg.
LINKE_CHUNK_CACHE_BYTES = 16 * 2**20


@functools.lru_cache(maxsize=4)
def linke_grid(filepath):
    """The ``LinkeTurbidity`` grid of pvlib's file, opened once per process (read-only) with a chunk cache of
    :data:`LINKE_CHUNK_CACHE_BYTES` (HDF5 keeps a cache per open dataset).

    Opened per read, every new plant decompressed the storage chunks of its
    cell again (~1.8 ms a plant, against ~0.04 ms from the kept grid's cache
    for a plant near plants already forecast: the first forecast of each
    plant of a fleet spread over a region).
    """
    return h5py.File(filepath, "r", rdcc_nbytes=LINKE_CHUNK_CACHE_BYTES, rdcc_nslots=10007)["LinkeTurbidity"]


def linke_turbidity(monthly, site_index, times, inverse):
    """Daily-interpolated Linke turbidity (as ``lookup_linke_turbidity(interp_turbidity=True)``).

    Parameters
    ----------
    monthly : ndarray
        (n_sites, 12) from :func:`linke_turbidity_monthly`.
    site_index : ndarray of int
        Site of each element.
    times : DatetimeIndex
        Distinct UTC timestamps.
    inverse : ndarray of int
        Timestamp of each element (index into ``times``); the position in the
        year is computed once per timestamp.

    Returns
    -------
    ndarray
    """
    lts = np.concatenate([monthly[:, -1:], monthly, monthly[:, :1]], axis=1)
    doy = times.day_of_year.to_numpy()
    position = np.where(times.is_leap_year,
                        np.interp(doy, month_middles(2016), np.arange(14.0)),
                        np.interp(doy, month_middles(2015), np.arange(14.0)))
    lo = np.floor(position).astype(int)
    hi = np.minimum(lo + 1, 13)
    frac = position - lo
    lo, hi, frac = lo[inverse], hi[inverse], frac[inverse]
    return lts[site_index, lo] * (1.0 - frac) + lts[site_index, hi] * frac


def month_middles(year):
    """Day of year of the middle of each month, with the previous Dec and next Jan (14 values)."""
    mdays = np.array(calendar.mdays[1:], dtype=float)
    if calendar.isleap(year):
        mdays[1] += 1
    return np.concatenate([[-15.5], np.cumsum(mdays) - mdays / 2.0, [mdays.sum() + 15.5]])


def sun_and_clear_sky(times, inverse, site_index, sites, monthly_linke):
    """Solar position, air mass, extraterrestrial and clear-sky irradiance on flat arrays.

    Air mass and clear sky are evaluated only where the sun is at or above
    the geometric horizon of refraction (``apparent_zenith <= 90``); below it
    pvlib's relative air mass is NaN and its Ineichen clear sky, through
    ``np.fmax(NaN, 0)``, exactly 0, the values set there directly.

    Parameters
    ----------
    times : DatetimeIndex
        Distinct UTC timestamps.
    inverse : ndarray of int
        Timestamp of each element (index into ``times``).
    site_index : ndarray of int
        Site of each element (index into ``sites`` arrays).
    sites : dict of ndarray
        ``latitude``, ``longitude`` (deg), ``altitude`` (m), one per site.
    monthly_linke : ndarray
        (n_sites, 12).

    Returns
    -------
    dict of ndarray
        Solar position (:func:`engine.solarposition.solar_position`) plus
        ``dni_extra``, ``airmass_relative``, ``airmass_absolute``,
        ``ghi_clear``, ``dni_clear``, ``dhi_clear`` (W/m^2).
    """
    spa_sites = solarposition.site_terms(sites["latitude"], sites["altitude"])
    sun = solarposition.solar_position_flat(times, inverse, spa_sites, site_index, sites["longitude"][site_index])
    # pvlib's Spencer formula of the UTC day of year, given as numbers: the values of a DatetimeIndex argument
    # (pvlib takes its day of year) without a Series built and a pandas deprecation warning issued per call
    doy = pd.DatetimeIndex(times).tz_convert("UTC").day_of_year.to_numpy()
    sun["dni_extra"] = np.asarray(irradiance.get_extra_radiation(doy), dtype=float)[inverse]
    up = np.flatnonzero(sun["apparent_zenith"] <= 90.0)
    zenith, pressure = sun["apparent_zenith"][up], sun["pressure"][up]
    relative = np.asarray(atmosphere.get_relative_airmass(zenith))
    absolute = np.asarray(atmosphere.get_absolute_airmass(relative, pressure))
    linke = linke_turbidity(monthly_linke, site_index[up], times, inverse[up])
    with np.errstate(divide="ignore", invalid="ignore"):
        cs = clearsky.ineichen(zenith, absolute, linke, sites["altitude"][site_index[up]], sun["dni_extra"][up])
    for name, values in (("airmass_relative", relative), ("airmass_absolute", absolute)):
        sun[name] = np.full(len(inverse), np.nan)
        sun[name][up] = values
    for k in ("ghi", "dni", "dhi"):
        sun[f"{k}_clear"] = np.zeros(len(inverse))
        sun[f"{k}_clear"][up] = np.nan_to_num(np.asarray(cs[k], dtype=float), nan=0.0)
    return sun


def location_arrays(locations):
    """Numeric arrays of the locations frame (one value per plant).

    Raises
    ------
    ValueError
        A column is missing or a required value is not finite.
    """
    missing = [c for c in LOCATION_COLUMNS if c not in locations.columns]
    if missing:
        raise ValueError(f"locations: missing column(s) {missing}")
    out = {"location_id": locations["location_id"].to_numpy(dtype="int64"),
           "tracking": np.char.upper(locations["tracking"].to_numpy().astype(str)).astype(object)}
    bad = ~np.isin(out["tracking"], TRACKING)
    if bad.any():
        raise ValueError(f"tracking: location_id {out['location_id'][bad][0]} has {out['tracking'][bad][0]!r}, "
                         f"not one of {TRACKING}")
    for c in LOCATION_COLUMNS[1:]:
        if c == "tracking":
            continue
        out[c] = locations[c].to_numpy(dtype=float)
        if not np.isfinite(out[c]).all():
            raise ValueError(f"{c}: location_id {out['location_id'][~np.isfinite(out[c])][0]} is not finite")
    if len(np.unique(out["location_id"])) != len(out["location_id"]):
        raise ValueError("location_id: duplicate locations")
    return out


def prepare_weather(weather, location_ids):
    """Weather rows of the given locations, sorted by (location, valid_time), checked.

    Returns
    -------
    dict of ndarray
        :data:`WEATHER_COLUMNS` (``valid_time`` a tz-aware DatetimeArray) and
        ``site`` (index into ``location_ids``), one value per row; plain arrays,
        not a frame: a few plants' pass spent more building and sorting a
        frame than computing on it.

    Raises
    ------
    ValueError
        ``location_id <N>: ...`` when a location has no weather, duplicate
        valid times, or a non-finite required value.
    """
    missing = [c for c in WEATHER_COLUMNS if c not in weather.columns]
    if missing:
        raise ValueError(f"weather: missing column(s) {missing}")
    site = pd.Index(location_ids).get_indexer(weather["location_id"].to_numpy())
    stamps = weather["valid_time"].array  # a DatetimeArray: no index built (its validation costs a few plants' pass)
    if not isinstance(stamps, pd.arrays.DatetimeArray):  # e.g. Timestamps in an object column
        stamps = pd.DatetimeIndex(weather["valid_time"]).array
    if stamps.tz is None:
        raise ValueError("valid_time: weather times must be tz-aware (UTC)")
    rows = np.flatnonzero(site >= 0)
    rows = rows[np.lexsort((stamps.asi8[rows], site[rows]))]  # stable, as a sort of both columns
    w = {c: weather[c].to_numpy(dtype="float64")[rows] for c in WEATHER_COLUMNS[2:]}
    w["location_id"], w["valid_time"], w["site"] = weather["location_id"].to_numpy()[rows], stamps[rows], site[rows]
    present = np.zeros(len(location_ids), dtype=bool)
    present[w["site"]] = True
    if not present.all():
        raise ValueError(f"location_id {location_ids[~present][0]}: no weather")
    native = w["valid_time"].asi8
    dup = np.zeros(len(rows), dtype=bool)  # a later row of the same (location, valid time): adjacent once sorted
    dup[1:] = (w["site"][1:] == w["site"][:-1]) & (native[1:] == native[:-1])
    if dup.any():
        raise ValueError(f"location_id {location_ids[w['site'][dup][0]]}: duplicate weather valid_time "
                         f"{w['valid_time'][dup][0]}")
    for c in ("ghi", "temp_air", "wind_speed", "period_minutes"):
        bad = ~np.isfinite(w[c])
        if bad.any():
            raise ValueError(f"location_id {location_ids[w['site'][bad][0]]}: weather {c} is not finite "
                             f"at {w['valid_time'][bad][0]}")
    return w


def cyclic(values, period):
    """(sin, cos) of ``2 pi values / period``."""
    angle = 2.0 * np.pi * np.asarray(values, dtype=float) / period
    return np.sin(angle), np.cos(angle)


def csi_window_stats(shifted):
    """Mean/min/max of the clear-sky index over 3 h and mean/std over 6 h, centred.

    Clouds seen by the weather a few hours around a time tell the model how
    variable the sky is; weather models and satellites misplace clouds in time
    by about that much. Points outside a plant's weather are NaN and left out
    (NaN when none is inside).

    Parameters
    ----------
    shifted : dict of int to ndarray
        Clear-sky index at every element's time + minutes, for every minutes
        in :data:`WINDOW_SHIFTS_MINUTES` (NaN outside the plant's weather).

    Returns
    -------
    dict of ndarray
        ``csi_mean_3h``, ``csi_min_3h``, ``csi_max_3h``, ``csi_mean_6h``, ``csi_std_6h``.
    """
    window = np.stack([shifted[m] for m in WINDOW_SHIFTS_MINUTES])
    inner = np.abs(WINDOW_SHIFTS_MINUTES) <= 90
    # numpy's nanmean / nanstd step by step (NaN -> 0, sums over the window, / count), the NaN
    # replacement and the 6 h mean done once for the three statistics: the same values bit for bit
    missing = np.isnan(window)
    values = np.where(missing, 0.0, window)
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN windows give NaN, as documented
        count = (~missing).sum(axis=0, dtype=np.intp)
        mean_6h = values.sum(axis=0) / count
        mean_3h = values[inner].sum(axis=0) / (~missing[inner]).sum(axis=0, dtype=np.intp)
        values -= mean_6h
        values[missing] = 0.0
        np.multiply(values, values, out=values)
        std_6h = np.sqrt(values.sum(axis=0) / count)
        return {"csi_mean_3h": mean_3h, "csi_min_3h": np.nanmin(window[inner], axis=0),
                "csi_max_3h": np.nanmax(window[inner], axis=0), "csi_mean_6h": mean_6h, "csi_std_6h": std_6h}


def csi_shifted(csi_w, support, w_site, inst_sec, t_sec, base, band, site, step, shifts, n_sites):
    """Clear-sky index at every element's time + each shift, NaN outside the plant's weather instants.

    The shifted times of all forecast times are few and shared by every
    plant (15 min steps, shifts of 15 and 30 min: 216 for 192 steps), so the
    interpolation runs once per (plant, distinct shifted time) and each
    shift is a gather, not an interpolation per element and shift. Times in
    whole seconds make every band-axis value an exact float sum, so the
    values are those of interpolating at each element + shift bit for bit.

    Parameters
    ----------
    csi_w : ndarray
        Clear-sky index at the weather instants (NaN: skipped).
    support : ndarray
        Band axis of the weather instants (:func:`engine.resample.band_axis`).
    w_site : ndarray of int
        Plant of each weather instant (sorted).
    inst_sec, t_sec : ndarray
        s since 1970, weather instants and forecast times.
    base, band : float
        s, of the band axis.
    site, step : ndarray of int
        Plant and forecast time of each element.
    shifts : list of int
        min.
    n_sites : int
        Number of plants.

    Returns
    -------
    dict of int to ndarray
        One value per element for every shift.
    """
    wanted = t_sec[:, None] + np.asarray(shifts, dtype=float) * 60.0  # (n_times, n_shifts)
    at = np.unique(wanted)
    slot = np.searchsorted(at, wanted).T  # (n_shifts, n_times)
    plant = np.repeat(np.arange(n_sites), len(at))
    seconds = np.tile(at, n_sites)
    first = inst_sec[np.searchsorted(w_site, np.arange(n_sites), side="left")]
    last = inst_sec[np.searchsorted(w_site, np.arange(n_sites), side="right") - 1]
    csi_at = resample.band_interpolator(support, w_site, csi_w, plant, n_sites)
    values = np.where((seconds >= first[plant]) & (seconds <= last[plant]),
                      csi_at(resample.band_axis(plant, seconds - base, band)), np.nan)
    row = site * len(at)
    return {m: values[row + slot[j][step]] for j, m in enumerate(shifts)}


def plant_physics(pl, profiles, n_times, sun, ghi, dni, dhi, temp_air, wind_speed, elements=None):
    """Plane-of-array irradiance, cell temperature and DC power of every plane row, per plant.

    Every plane row is computed at once on flat (plane row, timestamp)
    arrays; DC power is summed per plant (:func:`engine.physics.plant_sum`)
    and the plane quantities the model sees are averaged with the planes' DC
    capacity as weights. A plant of one plane skips the sums, so its values
    are exactly those of the plane.

    Parameters
    ----------
    pl : dict of ndarray
        :func:`engine.planes.plane_arrays`.
    profiles : dict or None
        :func:`engine.horizon.profiles` (None: no location has a horizon).
    n_times : int
    sun : dict of ndarray
        :func:`sun_and_clear_sky` of the elements.
    ghi, dni, dhi : ndarray
        W/m^2, flat, location-major.
    temp_air, wind_speed : ndarray
        degC, m/s.
    elements : ndarray of int, optional
        Position of each element in the forecast grid (plant, timestamp),
        location-major, ascending: a subset of it (the daylight elements);
        None: the whole grid.

    Returns
    -------
    dict of ndarray
        One value per (location, timestamp): ``pdc`` (kW, DC of all planes
        after losses, before the inverter); DC-weighted plane means
        ``poa_global``, ``poa_direct`` (W/m^2), ``aoi`` (deg), ``temp_cell`` (degC).
    """
    n_planes, n_sites = len(pl["site"]), len(pl["first"])
    elements = np.arange(n_sites * n_times) if elements is None else elements
    site, step = np.divmod(elements, n_times)
    if n_planes == n_sites:  # one plane per plant: the plane rows' elements are the plants'
        take, row = None, site
    else:  # each plane row repeats the elements of its plant
        start = np.searchsorted(site, np.arange(n_sites))
        per_plane = np.bincount(site, minlength=n_sites)[pl["site"]]
        row = np.repeat(np.arange(n_planes), per_plane)
        take = start[pl["site"]][row] + np.arange(len(row)) - np.repeat(np.cumsum(per_plane) - per_plane, per_plane)

    def on_planes(values):
        return values if take is None else values[take]

    q = {k: pl[k][row] for k in (*GEOMETRY_COLUMNS, "single_axis", "backtrack")}
    zenith, azimuth = on_planes(sun["apparent_zenith"]), on_planes(sun["azimuth"])
    surface_tilt, surface_azimuth, rotation = physics.surface_orientation(
        q["single_axis"], q["tilt"], q["azimuth"], q["axis_azimuth"], q["max_angle"], q["gcr"], zenith, azimuth,
        q["backtrack"])
    poa = physics.plane_of_array(surface_tilt, surface_azimuth, zenith, azimuth, on_planes(ghi), on_planes(dni),
                                 on_planes(dhi), on_planes(sun["dni_extra"]), on_planes(sun["airmass_relative"]),
                                 components=profiles is not None)
    if profiles is not None:
        shade_planes(poa, profiles, pl, row, rotation, on_planes(sun["apparent_elevation"]), azimuth)
    temp_cell = physics.cell_temperature(poa["poa_global"], on_planes(temp_air), on_planes(wind_speed),
                                         q["temp_model_u0"], q["temp_model_u1"])
    pdc = physics.dc_power(poa["effective_irradiance"], temp_cell, q["capacity_dc_kw"], q["gamma_pdc"],
                           q["losses_pct"])
    means = {"poa_global": poa["poa_global"], "poa_direct": poa["poa_direct"], "aoi": poa["aoi"],
             "temp_cell": temp_cell}
    if take is None:  # one plane per plant: nothing to sum
        return {"pdc": pdc, **means}
    share = (pl["capacity_dc_kw"] / np.add.reduceat(pl["capacity_dc_kw"], pl["first"])[pl["site"]])[row]
    on_grid = row * n_times + step[take]  # each plane-row element's place in the (plane row, timestamp) grid

    def plant_sum(values):  # on the whole grid (zeros elsewhere): the grid's own summation order, bit for bit
        grid = np.zeros(n_planes * n_times)
        grid[on_grid] = values
        return physics.plant_sum(grid, pl["first"], n_times)[elements]

    return {"pdc": plant_sum(pdc), **{k: plant_sum(v * share) for k, v in means.items()}}


def shade_planes(poa, profiles, pl, row, rotation, apparent_elevation, solar_azimuth):
    """Apply the horizon profiles to the plane-of-array irradiance of the plane rows behind one (in place).

    Parameters
    ----------
    poa : dict of ndarray
        ``engine.physics.plane_of_array(..., components=True)``, one value per
        (plane row, timestamp); the shaded elements are replaced.
    profiles : dict
        :func:`engine.horizon.profiles`.
    pl : dict of ndarray
        :func:`engine.planes.plane_arrays`.
    row : ndarray of int
        Plane row of each element.
    rotation : ndarray
        deg, tracker rotation of each element.
    apparent_elevation, solar_azimuth : ndarray
        deg, of each element.
    """
    profile = profiles["site"][pl["site"]]  # profile of each plane row, -1: none
    elements = np.flatnonzero(profile[row] >= 0)
    plane = row[elements]
    visible = shading.beam_visible(profiles["support"], profile[plane], apparent_elevation[elements],
                                   solar_azimuth[elements])
    shaded = np.flatnonzero(profile >= 0)
    fixed, trackers = shaded[~pl["single_axis"][shaded]], shaded[pl["single_axis"][shaded]]
    view = np.ones(len(profile))
    view[fixed] = shading.sky_view_fraction(profiles["grid"], profile[fixed], pl["tilt"][fixed], pl["azimuth"][fixed])
    sky_view = view[plane]
    if len(trackers):
        table = shading.tracker_sky_view(profiles["grid"], profile[trackers], pl["axis_azimuth"][trackers])
        slot = np.full(len(profile), -1)
        slot[trackers] = np.arange(len(trackers))
        moving = pl["single_axis"][plane]
        sky_view[moving] = shading.rotation_lookup(table, slot[plane[moving]], rotation[elements[moving]])
    behind = shading.shade({k: v[elements] for k, v in poa.items()}, visible, sky_view)
    for k, v in behind.items():
        poa[k][elements] = v


def feature_frame(locations, weather, times, planes=None, horizon=None, daylight_only=False, serving=False):
    """Model features + physical estimate for every (location, time).

    Parameters
    ----------
    locations : DataFrame
        Locations frame (``docs/ARCHITECTURE.md``), one row per plant.
    weather : DataFrame
        Weather frame (long, pvlib names: ``ghi``/``dni``/``dhi`` W/m^2,
        ``temp_air`` degC, ``wind_speed`` m/s, ``period_minutes``);
        ``dni``/``dhi`` NaN means decompose from ``ghi`` (Erbs). Rows of
        other locations and extra columns are ignored.
    times : DatetimeIndex
        Target times, tz-aware; the same for every plant.
    planes : DataFrame, optional
        Planes frame (``docs/ARCHITECTURE.md``) keyed by ``location_id``. A
        location without rows is one plane from its own columns (bit for bit
        the features it had before planes existed). DC of all planes of a
        plant is summed before its one inverter clip; ``poa_global``,
        ``poa_direct``, ``aoi`` and ``temp_cell`` are the planes' values
        averaged with their DC capacity as weights.
    horizon : DataFrame, optional
        Horizon frame keyed by ``location_id`` (profile points, azimuth
        increasing); locations without rows have a free horizon
        (:mod:`engine.horizon`).
    daylight_only : bool
        Compute only the (location, time) elements with the sun above the
        horizon (apparent elevation > 0, the rows a forecast does not zero);
        the others get :data:`NIGHT_VALUES` and NaN (:func:`frame_of`).
        Every daylight row equals the full computation bit for bit (about a
        third of a 48 h grid is night).
    serving : bool
        The frame a forecast reads (the Ray feature task), not the training
        frame: ``daylight_only``, only :data:`SERVING_COLUMNS`, those not in
        :data:`SERVING_FLOAT64` stored as float32 (half the bytes to allocate
        and to move between processes; the same predictions).

    Returns
    -------
    DataFrame
        Indexed by (location_id, valid_time), location-major in the order of
        ``locations``; :data:`MODEL_FEATURES` plus ``physical_ac_kw`` (kW, in
        [0, capacity_ac_kw]), ``physical_dc_kw`` (kW, all planes after
        losses, before the inverter), ``ghi``, ``dni``, ``dhi``,
        ``ghi_clear``, ``poa_global``, ``poa_direct`` (W/m^2), ``wind_speed``
        (m/s), ``solar_zenith``.

    Raises
    ------
    ValueError
        ``location_id <N>: ...`` when that plant's weather is missing, not
        finite or does not cover ``times`` (never shortened or filled), or a
        plane or horizon value of it is not usable.
    """
    times = pd.DatetimeIndex(times)
    if times.tz is None:
        raise ValueError("times must be tz-aware (UTC)")
    times = times.tz_convert("UTC")
    loc = location_arrays(locations)
    ids = loc["location_id"]
    n_sites, n_times = len(ids), len(times)
    w = prepare_weather(weather, ids)
    linke = linke_turbidity_monthly(loc["latitude"], loc["longitude"])

    # weather at its own instants: clear-sky index (and diffuse fraction where given)
    instants = resample.weather_instants(w)
    inst_sec = solarposition.unixtime(instants)
    uniq, inv = np.unique(inst_sec, return_inverse=True)
    w_site = w["site"]
    native = sun_and_clear_sky(pd.to_datetime(uniq, unit="s", utc=True), inv, w_site, loc, linke)
    ghi_w = w["ghi"]
    csi_w = resample.clear_sky_index(ghi_w, native["ghi_clear"])
    dhi_w = w["dhi"]
    with np.errstate(invalid="ignore", divide="ignore"):
        kd_w = np.where((ghi_w > 0) & np.isfinite(dhi_w), np.clip(dhi_w / ghi_w, 0.0, 1.0), np.nan)
    first = np.flatnonzero(np.r_[True, w_site[1:] != w_site[:-1]])  # each plant's first row (every plant has one)
    measured_diffuse = np.logical_and.reduceat(np.isfinite(dhi_w) & np.isfinite(w["dni"]), first)

    # coverage: first period start .. last label of each plant
    label_sec = solarposition.unixtime(w["valid_time"])
    period_sec = w["period_minutes"] * 60.0
    starts, ends = np.minimum.reduceat(label_sec - period_sec, first), np.maximum.reduceat(label_sec, first)
    t_sec = solarposition.unixtime(times)
    resample.check_coverage(ids, starts, ends, inst_sec, w_site, t_sec)

    # forecast grid, flat, location-major; with daylight_only, the rest runs on the daylight elements
    site = np.repeat(np.arange(n_sites), n_times)
    step = np.tile(np.arange(n_times), n_sites)
    sun = sun_and_clear_sky(times, step, site, loc, linke)
    grid = {"site": site, "step": step, "sun": sun}
    keep = np.flatnonzero(sun["apparent_elevation"] > 0.0) if daylight_only or serving else None
    if keep is not None:
        site, step, sun = site[keep], step[keep], {k: v[keep] for k, v in sun.items()}
    base = min(inst_sec.min(), t_sec.min()) - 86400.0
    band = max(inst_sec.max(), t_sec.max()) - base + 86400.0
    support = resample.band_axis(w_site, inst_sec - base, band)
    target = resample.band_axis(site, t_sec[step] - base, band)

    def interpolator(values):
        return resample.band_interpolator(support, w_site, values, site, n_sites)

    csi = interpolator(csi_w)(target)
    ghi_clear = sun["ghi_clear"]
    night = ghi_clear < resample.MIN_CLEAR_GHI
    ghi = np.where(night, np.nan_to_num(csi, nan=0.0) * ghi_clear, csi * ghi_clear)
    if not np.isfinite(ghi).all():
        raise ValueError(f"location_id {ids[site[~np.isfinite(ghi)][0]]}: no daylight weather to interpolate")
    temp_air = interpolator(w["temp_air"])(target)
    wind_speed = interpolator(w["wind_speed"])(target)

    # decomposition: interpolated measured diffuse fraction, else Erbs
    zenith = sun["apparent_zenith"]
    doy = times.day_of_year.to_numpy()[step]
    use_kd = measured_diffuse[site]
    kd = interpolator(kd_w)(target) if measured_diffuse.any() else np.full(len(site), np.nan)
    by_kd = use_kd & np.isfinite(kd)
    erbs = {k: np.zeros(len(site)) for k in ("dni", "dhi")}  # Erbs is elementwise: only where it is used
    by_erbs = np.flatnonzero(~by_kd)
    decomposed = irradiance.erbs(ghi[by_erbs], zenith[by_erbs], doy[by_erbs])
    for k in erbs:
        erbs[k][by_erbs] = decomposed[k]
    dhi = np.where(by_kd, np.nan_to_num(kd) * ghi, erbs["dhi"])
    with np.errstate(invalid="ignore", divide="ignore"):
        dni_kd = np.where(zenith < 87.0, (ghi - dhi) / np.cos(np.radians(zenith)), 0.0)
    dni = np.where(by_kd, np.maximum(np.nan_to_num(dni_kd), 0.0), erbs["dni"])

    # planes: POA, temperature and DC per plane row, summed per plant before ONE inverter clip
    phys = plant_physics(plane_arrays(loc, planes), shading.profiles(horizon, ids), n_times, sun, ghi, dni, dhi,
                         temp_air, wind_speed, keep)
    p = {"longitude": loc["longitude"][site], "capacity_ac_kw": loc["capacity_ac_kw"][site]}
    ac = physics.inverter_ac(phys["pdc"], p["capacity_ac_kw"])

    # temporal context of the clear-sky index (NaN outside the plant's weather instants): interpolated once
    # per plant at each distinct shifted time, then gathered for every element and shift
    shifts = sorted({*CONTEXT_SHIFTS_MINUTES.values(), *WINDOW_SHIFTS_MINUTES.tolist()})
    shifted = csi_shifted(csi_w, support, w_site, inst_sec, t_sec, base, band, site, step, shifts,
                          n_sites)
    context = {name: np.where(night, np.nan, shifted[m]) for name, m in CONTEXT_SHIFTS_MINUTES.items()}
    window = np.stack([context["csi_lag30"], context["csi_lag15"], csi, context["csi_lead15"],
                       context["csi_lead30"]])
    window_stats = csi_window_stats(shifted)
    utc_hours = ((t_sec % 86400.0) / 3600.0)[step]
    solar_hour = (utc_hours + p["longitude"] / 15.0 + sun["equation_of_time"] / 60.0) % 24.0
    hour_sin, hour_cos = cyclic(solar_hour, 24.0)
    doy_sin, doy_cos = cyclic(doy - 1, 365.25)
    with np.errstate(invalid="ignore", divide="ignore"):
        diffuse_fraction = np.where(ghi > 0, dhi / ghi, np.nan)
    columns = {
        "solar_elevation": sun["apparent_elevation"], "aoi": phys["aoi"],
        "solar_hour_sin": hour_sin, "solar_hour_cos": hour_cos, "doy_sin": doy_sin, "doy_cos": doy_cos,
        "ghi_clear": ghi_clear, "csi": np.where(night, np.nan, csi), **context,
        "csi_std_1h": np.where(night, np.nan, np.std(window, axis=0)),
        "diffuse_fraction": diffuse_fraction, "poa_global": phys["poa_global"], "temp_air": temp_air,
        "temp_cell": phys["temp_cell"], "airmass": np.where(night, np.nan, sun["airmass_relative"]),
        "physical_norm": ac / p["capacity_ac_kw"], "solar_azimuth": sun["azimuth"], **window_stats,
        "physical_ac_kw": ac, "physical_dc_kw": phys["pdc"], "poa_direct": phys["poa_direct"],
        "ghi": ghi, "dni": dni, "dhi": dhi, "wind_speed": wind_speed, "solar_zenith": zenith,
    }
    index = pd.MultiIndex.from_arrays([ids[grid["site"]], times[grid["step"]]], names=["location_id", "valid_time"])
    if not serving:
        return frame_of(columns, index, keep, grid["sun"])
    wide = frame_of({c: columns[c] for c in SERVING_FLOAT64}, index, keep, grid["sun"])
    narrow = frame_of({c: columns[c] for c in SERVING_COLUMNS if c not in SERVING_FLOAT64}, index, keep, grid["sun"],
                      np.float32)
    return pd.concat([wide, narrow], axis=1)[list(SERVING_COLUMNS)]  # no copy: the frame holds both blocks


def frame_of(columns, index, keep=None, sun=None, dtype=np.float64):
    """DataFrame of float columns of ``dtype`` written once into its one block (pandas would copy them into it).

    ``keep`` None: one value per row of ``index``; else the values of the
    daylight rows ``keep``, the others' from :data:`NIGHT_VALUES` (a name: that
    array of ``sun``, the grid's solar position and clear sky; a number: that
    value) or NaN: the forecast zeroes those rows
    (``engine.quantiles.apply_limits``) and never passes them to the model.
    """
    block = np.empty((len(columns), len(index)), dtype)
    if keep is not None:  # ``keep`` is ascending: a boolean mask places the values alike, ~3x faster
        day = np.zeros(len(index), dtype=bool)
        day[keep] = True
    for row, (name, values) in zip(block, columns.items()):
        if keep is None:
            row[:] = values
            continue
        night = NIGHT_VALUES.get(name, np.nan)
        row[:] = sun[night] if isinstance(night, str) else night
        row[day] = values
    return pd.DataFrame(block.T, index=index, columns=list(columns), copy=False)

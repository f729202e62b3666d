"""Numerical weather prediction files (GRIB2, netCDF) to pvcast weather rows.

Three steps, each a function, all vectorised over grid points and steps:

1. :func:`read_nwp` reads one file into a *field set*: an ``xarray.Dataset``
   with dims ``(step, y, x)``, 2-D ``latitude``/``longitude``, the variables
   under their pvlib names in pvcast units, and for every radiation/cloud
   variable the window it is averaged over (``<name>_start``, minutes after
   the cycle; equal to the step for an instantaneous value). Accumulations
   (ECMWF, J/m^2) are divided by their window length here, so every value is
   either an instant or a mean over its window.
2. :func:`period_means` turns windows that overlap the previous step ("average
   since the last reset" of GFS/GEFS, accumulations from the start of the run
   of ECMWF) into means over the period since the previous step, and sets
   ``period_minutes`` (0 = instantaneous) per step.
3. :func:`to_locations` interpolates every variable bilinearly to the plants
   (:mod:`engine.gridinterp`, one vectorised call) and returns the weather
   frame of ARCHITECTURE "Frames", plus the plants that are not covered.

The model cycle (reference time) is the weather ``issue_time``; ``valid_time``
is cycle + step, the END of the averaging period for period means. What each
source holds, and how it is converted, is the table :data:`SOURCES` and
docs/weather.md. A variable a source lacks is absent (NaN ``dni``/``dhi``/
``cloud_cover``), never derived from another one; a file without a radiation
field, 2 m temperature or 10 m wind cannot become pvcast weather and is
refused.

Errors: a file that cannot be read or holds no usable weather raises
``ValueError`` naming the file and what is wrong; plants outside a grid are
returned as data (``{location_id: reason}``).
"""

from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from engine import gridinterp

#: Variables of a field set (pvlib names) and the ones every import needs.
FIELDS = ("ghi", "dni", "dhi", "temp_air", "wind_speed", "cloud_cover")
REQUIRED = ("ghi", "temp_air", "wind_speed")
WINDOWED = ("ghi", "dni", "dhi", "cloud_cover")  # may be period means; carry <name>_start

#: What each source's files hold. ``names``: file short name -> pvlib name.
#: ``window``: how a windowed variable's averaging window is known:
#: ``instant`` (value at the valid time), ``("reset", R)`` (average since the
#: last reset, resets every R minutes: GFS/GEFS), ``("trailing", W)`` (mean over
#: the W minutes ending at the valid time; the analysis step 0 is an instant),
#: ``grib`` (from the GRIB keys stepType/startStep/endStep of each message).
#: ``max_step_minutes``: steps after this are not imported (averaging
#: convention of the file unknown beyond it).
SOURCES = {
    "gfs": {"model": "NOAA GFS 0.25 deg", "window": {"ghi": ("reset", 360), "cloud_cover": ("reset", 360)},
            "max_step_minutes": 240 * 60},
    "gefs": {"model": "NOAA GEFS 0.5 deg, one member (c00, p01..p20) or the member mean (avg)",
             "window": {"ghi": ("reset", 360), "cloud_cover": ("reset", 360)}},
    "hrrr": {"model": "NOAA HRRR 3 km, hourly (wrfsfc)", "window": {}},
    "hrrr_subhourly": {"model": "NOAA HRRR 3 km, 15 min (wrfsubh)",
                       "window": {"ghi": ("trailing", 15), "dni": ("trailing", 15)}},
    "nam": {"model": "NOAA NAM 12 km (awphys)", "window": {}},
    "rap": {"model": "NOAA RAP 13 km", "window": {}},
    "ecmwf_ifs": {"model": "ECMWF IFS open data 0.25 deg", "window": {}},
}

#: netCDF short names (wgrib2 -netcdf with the Solar Forecast Arbiter table) -> pvlib names.
NETCDF_NAMES = {"dswrf": "ghi", "vbdsf": "dni", "vddsf": "dhi", "t2m": "temp_air", "si10": "wind_speed",
                "tcdc": "cloud_cover"}
#: netCDF file stems (Solar Forecast Arbiter layout) -> source.
NETCDF_STEMS = {"gfs_0p25": "gfs", "hrrr_hourly": "hrrr", "hrrr_subhourly": "hrrr_subhourly", "nam_12km": "nam",
                "rap": "rap"}
GEFS_MEMBERS = ("avg", "c00", *(f"p{k:02d}" for k in range(1, 31)))
#: Every source name a file can be imported as (the ``source`` stored; GEFS one name per member).
SOURCE_NAMES = (*(s for s in SOURCES if s != "gefs"), *(f"gefs_{m}" for m in GEFS_MEMBERS))
#: GRIB (shortName, typeOfLevel, level) -> pvlib name; level None = any.
GRIB_NAMES = {("dswrf", "surface"): "ghi", ("sdswrf", "surface"): "ghi", ("ssrd", "surface"): "ghi",
              ("vbdsf", "surface"): "dni", ("vddsf", "surface"): "dhi",
              ("2t", "heightAboveGround"): "temp_air", ("10u", "heightAboveGround"): "u10",
              ("10v", "heightAboveGround"): "v10", ("10si", "heightAboveGround"): "wind_speed",
              ("tcc", "atmosphere"): "cloud_cover", ("tcc", "entireAtmosphere"): "cloud_cover",
              ("tcc", "surface"): "cloud_cover"}
#: NCEP generating process identifiers (GRIB2 code table ON388 A) -> source.
NCEP_PROCESSES = {96: "gfs", 107: "gefs", 83: "hrrr", 84: "nam", 105: "rap"}
UNITS = {"K": ("temp_air", -273.15, 1.0), "percent": ("cloud_cover", 0.0, 1.0), "%": ("cloud_cover", 0.0, 1.0),
         "(0 - 1)": ("cloud_cover", 0.0, 100.0), "W/m^2": (None, 0.0, 1.0), "W m**-2": (None, 0.0, 1.0),
         "J m**-2": (None, 0.0, 1.0), "m/s": ("wind_speed", 0.0, 1.0), "m s**-1": ("wind_speed", 0.0, 1.0)}


def refuse(path, reason):
    """``ValueError`` for a file that cannot be imported: ``<file name>: <reason>``.

    The file's directory is cut from the reason (a reader's own error, netCDF's, quotes the whole path): an
    answer names the file as its client did, never a directory of the server.
    """
    return ValueError(f"{Path(path).name}: {reason.replace(str(path), Path(path).name)}")


# --- reading ------------------------------------------------------------------------------------

def read_nwp(path, source=None):
    """One NWP file as a field set (see module docstring).

    Parameters
    ----------
    path : str or Path
        GRIB2 (``.grib2``, ``.grb2``, ``.grib``) or netCDF (``.nc``) file.
    source : str, optional
        One of :data:`SOURCES` (GEFS: ``gefs_<member>``). Default: from the
        GRIB keys (centre, generating process, ensemble member) or, for
        netCDF, from the file name (``gfs_0p25.nc``, ``hrrr_hourly.nc``,
        ``hrrr_subhourly.nc``, ``nam_12km.nc``, ``rap.nc``, ``gefs_<member>.nc``).

    Returns
    -------
    xarray.Dataset
        Dims ``(step, y, x)``; coords ``step`` (minutes after the cycle,
        int), ``latitude``/``longitude`` (y, x) deg; variables of
        :data:`FIELDS` that the file holds: ``ghi``/``dni``/``dhi`` W/m^2,
        ``temp_air`` degC, ``wind_speed`` m/s, ``cloud_cover`` %; for each
        windowed variable ``<name>_start`` (step,) int minutes. Attrs
        ``source``, ``issue_time`` (ISO-8601 UTC), ``file``.

    Raises
    ------
    ValueError
        Unreadable or truncated file, unknown source, no cycle time, unknown
        units, a required variable (ghi, temp_air, wind_speed) missing.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic == b"GRIB":
        fields = read_grib(path, source)
    elif magic in (b"CDF\x01", b"CDF\x02", b"\x89HDF"):
        fields = read_netcdf(path, source)
    else:
        raise refuse(path, "neither GRIB nor netCDF (file starts with %r)" % magic)
    missing = [v for v in REQUIRED if v not in fields]
    if missing:
        names = {"ghi": "surface downward short-wave radiation field (DSWRF/SSRD)",
                 "temp_air": "2 m temperature", "wind_speed": "10 m wind"}
        raise refuse(path, f"{missing[0]}: the file has no {names[missing[0]]}; {fields.attrs['source']} weather "
                           f"without it cannot be stored (it is never derived from other variables)")
    return fields


def netcdf_source(path, source):
    """Source of a netCDF file: given, or from the file stem; ``gefs_spr`` (the spread) is refused."""
    stem = Path(path).stem
    name = source or NETCDF_STEMS.get(stem) or (stem if stem.startswith("gefs_") else None)
    if name is None:
        raise refuse(path, f"source unknown: name it (one of {sorted(SOURCES)}; GEFS: gefs_<member>)")
    return check_source(path, name)


def check_source(path, name):
    """``name`` if it is a known source (GEFS: ``gefs_<member>``), else ``ValueError``."""
    if name == "gefs_spr":
        raise refuse(path, "gefs_spr is the ensemble spread (a statistic, not weather); import the members")
    if name not in SOURCE_NAMES:
        raise refuse(path, f"source {name!r} unknown (one of {sorted(SOURCES)}; GEFS: gefs_<member>, member in "
                           f"{GEFS_MEMBERS[0]}, {GEFS_MEMBERS[1]}, p01..)")
    return name


def source_rules(source):
    """The :data:`SOURCES` entry of a source name (``gefs_p01`` -> ``gefs``)."""
    return SOURCES["gefs" if source.startswith("gefs_") else source]


def read_netcdf(path, source=None):
    """Field set of a netCDF file written by wgrib2 (time, [y, x] or [latitude, longitude])."""
    name = netcdf_source(path, source)
    try:
        ds = xr.open_dataset(path, engine="netcdf4", decode_times=True)
        ds.load()
    except Exception as exc:  # netCDF4/HDF5 raise OSError, RuntimeError, ValueError, KeyError for damaged files
        raise refuse(path, f"cannot be read as netCDF ({type(exc).__name__}: {exc})") from None
    with ds:
        if "time" not in ds.coords or "reference_time" not in ds["time"].attrs:
            raise refuse(path, "no time axis with a reference_time (model cycle) attribute")
        issue = pd.Timestamp(float(ds["time"].attrs["reference_time"]), unit="s", tz="UTC")
        if "latitude" not in ds.coords or "longitude" not in ds.coords:
            raise refuse(path, "no latitude/longitude coordinates")
        lat, lon = ds["latitude"].values.astype(float), ds["longitude"].values.astype(float)
        if lat.ndim == 1:
            lon, lat = np.meshgrid(lon, lat)
        valid = pd.DatetimeIndex(ds["time"].values).tz_localize("UTC")
        steps = np.asarray((valid - issue) // pd.Timedelta(minutes=1), dtype="int64")
        data = {}
        for short, field in NETCDF_NAMES.items():
            if short not in ds:
                continue
            var = ds[short]
            if var.dims[0] != "time" or var.ndim != 3:
                raise refuse(path, f"{short}: expected dims (time, y, x), got {var.dims}")
            data[field] = convert_units(path, short, var.attrs.get("units", ""), var.values.astype("float64"))
    if not data:
        raise refuse(path, f"no NWP variables (expected some of {sorted(NETCDF_NAMES)})")
    rules = source_rules(name)["window"]
    starts = {f: window_starts(steps, rules.get(f, "instant")) for f in data if f in WINDOWED}
    return field_set(path, name, issue, steps, lat, lon, data, starts)


def convert_units(path, name, units, values):
    """Values in pvcast units (K -> degC, fraction -> %); unknown units are refused."""
    if units not in UNITS:
        raise refuse(path, f"{name}: unknown units {units!r} (known: {sorted(UNITS)})")
    _, offset, scale = UNITS[units]
    return values * scale + offset


def window_starts(steps, rule):
    """Start (minutes after the cycle) of the averaging window of every step.

    Parameters
    ----------
    steps : ndarray of int
        Minutes after the cycle.
    rule : 'instant' or tuple
        ``('reset', R)``: average since the last reset, every R minutes
        (a value at step s averages from ``R * floor((s - 1) / R)``);
        ``('trailing', W)``: mean over the W minutes ending at the step
        (step 0, the analysis, is an instant).
    """
    steps = np.asarray(steps, dtype="int64")
    if rule == "instant":
        return steps.copy()
    kind, minutes = rule
    if kind == "reset":
        return np.where(steps > 0, (steps - 1) // minutes * minutes, 0)
    return np.maximum(steps - minutes, 0)


def field_set(path, source, issue, steps, lat, lon, data, starts):
    """The ``xarray.Dataset`` of a file's fields (steps sorted)."""
    order = np.argsort(steps, kind="stable")
    if len(np.unique(steps)) != len(steps):
        raise refuse(path, "repeated forecast steps")
    lon = np.where(lon >= 180.0, lon - 360.0, lon)
    variables = {f: (("step", "y", "x"), v[order]) for f, v in data.items()}
    variables.update({f"{f}_start": (("step",), s[order]) for f, s in starts.items()})
    return xr.Dataset(variables, coords={"step": steps[order], "latitude": (("y", "x"), lat),
                                         "longitude": (("y", "x"), lon)},
                      attrs={"source": source, "issue_time": issue.isoformat(), "file": Path(path).name})


def read_grib(path, source=None):
    """Field set of a GRIB2 file (all messages of one cycle, one grid), read with ecCodes.

    Each message's semantics come from its own keys: ``stepType`` ``instant``
    (value at the valid time), ``avg`` (mean over startStep..endStep) or
    ``accum`` (J/m^2 over startStep..endStep, divided here by the window in
    seconds). Wind speed is ``hypot(10u, 10v)`` unless the file has ``10si``.
    """
    import eccodes

    records, grid, issue, ident = [], None, None, None
    try:
        with open(path, "rb") as f:
            while True:
                gid = eccodes.codes_grib_new_from_file(f)
                if gid is None:
                    break
                try:
                    key = (eccodes.codes_get(gid, "shortName"), eccodes.codes_get(gid, "typeOfLevel"))
                    if key not in GRIB_NAMES:
                        continue
                    eccodes.codes_set(gid, "stepUnits", "m")
                    cycle = pd.Timestamp(f"{eccodes.codes_get(gid, 'dataDate'):08d}"
                                         f"{eccodes.codes_get(gid, 'dataTime'):04d}", tz="UTC")
                    if issue is None:
                        issue = cycle
                    elif cycle != issue:
                        raise refuse(path, f"several model cycles ({issue.isoformat()}, {cycle.isoformat()})")
                    shape = (eccodes.codes_get(gid, "Nj"), eccodes.codes_get(gid, "Ni"))
                    if grid is None:
                        grid = (np.asarray(eccodes.codes_get_array(gid, "latitudes")).reshape(shape),
                                np.asarray(eccodes.codes_get_array(gid, "longitudes")).reshape(shape))
                        ident = (eccodes.codes_get(gid, "centre"),
                                 eccodes.codes_get(gid, "generatingProcessIdentifier"),
                                 eccodes.codes_get_long(gid, "perturbationNumber")
                                 if eccodes.codes_is_defined(gid, "perturbationNumber") else None)
                    elif shape != grid[0].shape:
                        raise refuse(path, f"several grids ({grid[0].shape} and {shape})")
                    values = np.asarray(eccodes.codes_get_values(gid), dtype="float64").reshape(shape)
                    if eccodes.codes_get(gid, "bitmapPresent"):
                        values[values == eccodes.codes_get_double(gid, "missingValue")] = np.nan
                    records.append({"field": GRIB_NAMES[key], "units": eccodes.codes_get(gid, "units"),
                                    "step_type": eccodes.codes_get(gid, "stepType"),
                                    "start": int(eccodes.codes_get_long(gid, "startStep")),
                                    "end": int(eccodes.codes_get_long(gid, "endStep")), "values": values})
                finally:
                    eccodes.codes_release(gid)
    except ValueError:
        raise
    except Exception as exc:  # ecCodes raises its own error types for truncated/damaged messages
        raise refuse(path, f"cannot be read as GRIB ({type(exc).__name__}: {exc})") from None
    if not records:
        raise refuse(path, f"no NWP variables (expected some of {sorted({k[0] for k in GRIB_NAMES})})")
    name = check_source(path, source or grib_source(path, *ident))
    return grib_field_set(path, name, issue, grid, records)


def grib_source(path, centre, process, member):
    """Source of a GRIB file from its centre, generating process and ensemble member."""
    if centre == "ecmf":
        return "ecmwf_ifs"
    if centre == "kwbc" and process in NCEP_PROCESSES:
        name = NCEP_PROCESSES[process]
        if name == "gefs":
            return "gefs_c00" if not member else f"gefs_p{member:02d}"
        return name
    raise refuse(path, f"source unknown (centre {centre!r}, generating process {process}): name it")


def grib_field_set(path, source, issue, grid, records):
    """Stack GRIB records into a field set; windows from the messages' own keys."""
    frame = pd.DataFrame([{k: r[k] for k in ("field", "units", "step_type", "start", "end")} for r in records])
    steps = np.unique(frame["end"].to_numpy())
    data, starts = {}, {}
    for field, rows in frame.groupby("field", sort=False):
        if rows["end"].duplicated().any():
            raise refuse(path, f"{field}: several messages for one step")
        values = np.full((len(steps), *grid[0].shape), np.nan)
        start = steps.copy()
        at = np.searchsorted(steps, rows["end"].to_numpy())
        for k, i in zip(at, rows.index):
            r = records[i]
            v = convert_units(path, field, r["units"], r["values"])
            if r["step_type"] == "accum":
                seconds = (r["end"] - r["start"]) * 60.0
                v = v / seconds if seconds > 0 else np.full_like(v, np.nan)  # J/m^2 -> mean W/m^2
            elif r["step_type"] not in ("instant", "avg"):
                raise refuse(path, f"{field}: unsupported stepType {r['step_type']!r}")
            values[k] = v
            start[k] = r["start"] if r["step_type"] != "instant" else r["end"]
        data[field] = values
        if field in WINDOWED:
            starts[field] = start
    if "wind_speed" not in data and {"u10", "v10"} <= set(data):
        data["wind_speed"] = np.hypot(data["u10"], data["v10"])
    data.pop("u10", None)
    data.pop("v10", None)
    return field_set(path, source, issue, steps, grid[0], grid[1], data, starts)


# --- semantics ----------------------------------------------------------------------------------

def combine(field_sets):
    """Field sets of one source and cycle (e.g. one GRIB file per step) as one, steps sorted.

    Raises
    ------
    ValueError
        Different grids, or a step present in two files.
    """
    if len(field_sets) == 1:
        return field_sets[0]
    first = field_sets[0]
    for fs in field_sets[1:]:
        if fs["latitude"].shape != first["latitude"].shape or not np.allclose(fs["latitude"], first["latitude"]):
            raise refuse(fs.attrs["file"], f"grid differs from {first.attrs['file']} of the same cycle")
    out = xr.concat(field_sets, dim="step", data_vars="all", coords="minimal", compat="override",
                    join="outer", combine_attrs="drop_conflicts")
    if len(np.unique(out["step"])) != out.sizes["step"]:
        raise refuse(first.attrs["file"], "a forecast step is present in two files of the same cycle")
    out = out.sortby("step")
    for f in WINDOWED:  # a variable missing from one file: its window is the step (values NaN)
        if f in out and f"{f}_start" in out:
            start = out[f"{f}_start"].values
            out[f"{f}_start"] = ("step", np.where(np.isnan(start), out["step"].values, start).astype("int64"))
    out.attrs = {**first.attrs, "file": ", ".join(fs.attrs["file"] for fs in field_sets)}
    return out


def demix(values, starts, steps):
    """Means over the period since the previous step from means over each value's window.

    A value at step ``s_k`` is the mean over ``[a_k, s_k]`` (``a_k == s_k``:
    an instant, kept). When the window reaches back before the previous step
    ``s_{k-1}`` and that step's window starts at the same ``a_k`` (average
    since the last reset, or accumulation from the start of the run), the
    mean over ``(s_{k-1}, s_k]`` is::

        (m_k (s_k - a_k) - m_{k-1} (s_{k-1} - a_k)) / (s_k - s_{k-1})

    (e.g. GFS hour 2 average since 0 h of 200 W/m^2 after 300 W/m^2 at
    hour 1: ``(200 * 2 - 300 * 1) / 1 = 100`` W/m^2 for 1-2 h).

    Parameters
    ----------
    values : ndarray, shape (n_steps, ...)
    starts, steps : ndarray of int, shape (n_steps,)
        Window start and step, minutes after the cycle (sorted by step).

    Returns
    -------
    means : ndarray, shape of ``values``
    period : ndarray of int, shape (n_steps,)
        Minutes averaged over (0 for instants).

    Raises
    ------
    ValueError
        A window overlaps the previous step but starts elsewhere than the
        previous window (cannot be separated).
    """
    steps, starts = np.asarray(steps, "int64"), np.asarray(starts, "int64")
    prev_step = np.concatenate([[np.iinfo("int64").min], steps[:-1]])
    prev_start = np.concatenate([[np.iinfo("int64").min], starts[:-1]])
    overlaps = starts < prev_step
    bad = overlaps & (prev_start != starts)
    if bad.any():
        k = int(np.argmax(bad))
        raise ValueError(f"step {steps[k]} min: its window starts at {starts[k]} min, before the previous step "
                         f"{prev_step[k]} min whose window starts at {prev_start[k]} min")
    shape = (-1,) + (1,) * (values.ndim - 1)
    prev_values = np.concatenate([values[:1] * np.nan, values[:-1]])
    with np.errstate(invalid="ignore", divide="ignore"):
        mixed = ((values * (steps - starts).reshape(shape) - prev_values * (prev_step - starts).reshape(shape))
                 / (steps - prev_step).reshape(shape))
    means = np.where(overlaps.reshape(shape), mixed, values)
    period = np.where(overlaps, steps - prev_step, steps - starts)
    return means, period


def trapezoid_to_periods(values, steps, period):
    """Instantaneous values as means over ``(s - period, s]``: mean of the instants at both ends.

    Used where a source's radiation components mix instants with period means
    (HRRR 15-min files: diffuse instantaneous, global and direct averaged).
    NaN where the instant at ``s - period`` is not in the file; ``period``
    0 keeps the instant.
    """
    steps = np.asarray(steps, "int64")
    at = np.searchsorted(steps, steps - period)
    found = (at < len(steps)) & (steps[np.minimum(at, len(steps) - 1)] == steps - period)
    shape = (-1,) + (1,) * (values.ndim - 1)
    earlier = np.where(found.reshape(shape), values[np.minimum(at, len(steps) - 1)], np.nan)
    return np.where((period == 0).reshape(shape), values, (earlier + values) / 2.0)


def separated(fields, name, steps):
    """:func:`demix` of the variable ``name`` of a field set; its error names the file(s) and the variable."""
    try:
        return demix(fields[name].values, fields[f"{name}_start"].values, steps)
    except ValueError as exc:
        raise refuse(fields.attrs["file"], f"{name}: {exc}") from None


def period_means(fields):
    """Field set with radiation and cloud cover as means since the previous step.

    ``ghi`` sets ``period_minutes`` of each step. ``dni``/``dhi`` with the
    same period are kept; instantaneous components beside averaged ``ghi``
    are converted by :func:`trapezoid_to_periods`; any other mismatch makes
    the component absent (NaN) for that step, never guessed. Steps without
    any ``ghi`` value (e.g. the analysis of an averaged field) are dropped.
    Negative means from the finite precision of packed values (GRIB packs GFS
    radiation to a few W/m^2 and the separation multiplies that error) are
    set to 0; cloud cover is kept in [0, 100] %.

    Returns
    -------
    xarray.Dataset
        Variables of :data:`FIELDS` present, ``period_minutes`` (step,) int,
        no ``<name>_start``.

    Raises
    ------
    ValueError
        Windows that cannot be separated (see :func:`demix`), or no step
        with radiation.
    """
    steps = fields["step"].values.astype("int64")
    out = {}
    ghi, period = separated(fields, "ghi", steps)
    out["ghi"] = np.maximum(ghi, 0.0)
    for f in ("dni", "dhi", "cloud_cover"):
        if f not in fields:
            continue
        means, p = separated(fields, f, steps)
        if f == "cloud_cover":
            out[f] = np.clip(means, 0.0, 100.0)
            continue
        shape = (-1,) + (1,) * (means.ndim - 1)
        instants = trapezoid_to_periods(fields[f].values, steps, period)
        means = np.where((p == period).reshape(shape), means,
                         np.where((p == 0).reshape(shape), instants, np.nan))
        out[f] = np.maximum(means, 0.0)
    rules = source_rules(fields.attrs["source"])
    keep = np.isfinite(out["ghi"]).reshape(len(steps), -1).any(axis=1)
    keep &= steps <= rules.get("max_step_minutes", np.iinfo("int64").max)
    if not keep.any():
        raise refuse(fields.attrs["file"], "no forecast step holds a radiation value")
    variables = {f: (("step", "y", "x"), v[keep]) for f, v in out.items()}
    variables.update({f: (("step", "y", "x"), fields[f].values[keep]) for f in ("temp_air", "wind_speed")})
    variables["period_minutes"] = (("step",), period[keep].astype("int64"))
    return xr.Dataset(variables, coords={"step": steps[keep], "latitude": fields["latitude"],
                                         "longitude": fields["longitude"]}, attrs=dict(fields.attrs))


# --- plants -------------------------------------------------------------------------------------

def periodic_columns(latitude, longitude):
    """Grid with its first column appended when it is a regular grid around the whole globe.

    Lets a plant between the last and the first longitude (e.g. 359.9 deg
    on a 0..359.75 grid) lie in a cell.
    """
    row = longitude[0]
    step = gridinterp.wrap_degrees(np.diff(row))  # longitudes may jump from 179.75 to -180
    regular = (np.allclose(longitude, row[None, :]) and len(step) > 1 and np.allclose(step, step[0]))
    if regular and np.isclose(abs(step[0]) * len(row), 360.0):
        return np.concatenate([latitude, latitude[:, :1]], axis=1), np.concatenate(
            [longitude, longitude[:, :1]], axis=1), True
    return latitude, longitude, False


def to_locations(fields, locations):
    """Weather frame of the plants inside the grid, by bilinear interpolation.

    Parameters
    ----------
    fields : xarray.Dataset
        From :func:`period_means`.
    locations : DataFrame
        ``location_id``, ``latitude``, ``longitude`` (deg).

    Returns
    -------
    weather : DataFrame
        Weather frame (ARCHITECTURE "Frames"): one row per covered plant and
        step; ``dni``/``dhi``/``cloud_cover`` NaN when the source lacks them;
        ``source`` and ``issue_time`` from the field set.
    uncovered : dict
        ``{location_id: reason}`` of plants outside the grid or where a
        required value is missing at the four surrounding grid points.
    """
    lat, lon, wrapped = periodic_columns(fields["latitude"].values, fields["longitude"].values)
    w = gridinterp.bilinear_weights(lat, lon, locations["latitude"].to_numpy(float),
                                    locations["longitude"].to_numpy(float))
    ids = locations["location_id"].to_numpy("int64")
    present = [f for f in FIELDS if f in fields]
    stack = np.stack([fields[f].values for f in present])  # (var, step, y, x)
    if wrapped:
        stack = np.concatenate([stack, stack[..., :1]], axis=-1)
    at = gridinterp.interpolate(stack, w)  # (var, step, location)
    uncovered = {int(i): f"outside the {fields.attrs['source']} grid of {fields.attrs['file']}"
                 for i in ids[~w["inside"]]}
    required = np.stack([at[present.index(f)] for f in REQUIRED])  # (3, step, location)
    gaps = w["inside"] & ~np.isfinite(required).all(axis=(0, 1))
    first_missing = np.argmax(~np.isfinite(required).all(axis=1), axis=0)  # (location,) index into REQUIRED
    uncovered.update({int(i): f"{REQUIRED[k]} missing at a surrounding grid point in {fields.attrs['file']}"
                      for i, k in zip(ids[gaps], first_missing[gaps])})
    ok = w["inside"] & ~gaps
    steps = fields["step"].values.astype("int64")
    n_steps, n_ok = len(steps), int(ok.sum())
    issue = pd.Timestamp(fields.attrs["issue_time"])
    frame = pd.DataFrame({
        "location_id": np.tile(ids[ok], n_steps),
        "valid_time": np.repeat(issue + pd.to_timedelta(steps, unit="min"), n_ok),
        "issue_time": issue, "source": fields.attrs["source"]})
    for f in FIELDS:
        frame[f] = at[present.index(f)][:, ok].ravel() if f in present else np.nan
    frame["period_minutes"] = np.repeat(fields["period_minutes"].values.astype("int64"), n_ok)
    frame = frame.sort_values(["location_id", "valid_time"], kind="stable").reset_index(drop=True)
    return frame, uncovered

"""Import of NWP files into the weather table, and what follows an import.

:func:`import_files` is what ``pvcast weather import`` and the HTTP endpoint
call: read every file (:mod:`engine.nwp`), convert to period means,
interpolate to the plants, check every row, and only then write them all in
ONE transaction (:func:`engine.store.write_weather`). A bad file refuses the
whole import; nothing is stored. Re-importing the same files writes the same
keys (location_id, valid_time, issue_time, source) with the same values: the
stored rows are left as they are.

:func:`confined_path` is the check for server-side files (a path under a
configured directory), :func:`forecast_trigger` the forecast request that a
new cycle calls for (off by default, ``configs/service.yaml`` ``nwp``).
"""

import asyncio
import os
from pathlib import Path

import numpy as np
import pandas as pd

from engine import nwp, store, validation


def confined_path(root, name):
    """The real path of ``name`` inside the directory ``root``, or an error.

    ``name`` is relative to ``root`` (an absolute path is accepted only when
    it lies inside ``root``). Symbolic links are resolved before the check,
    so neither ``..`` nor a link can reach outside ``root``.

    Parameters
    ----------
    root : str or Path
        The configured import directory.
    name : str
        The requested file.

    Returns
    -------
    Path
        Resolved path of a regular file inside the resolved ``root``.

    Raises
    ------
    PermissionError
        The path resolves outside ``root`` (``..``, a symbolic link, an
        absolute path elsewhere), or ``root`` is not configured.
    FileNotFoundError
        No such regular file.
    """
    if root is None or not str(root).strip():
        raise PermissionError("server-side NWP import is disabled (nwp.import_dir is not set)")
    if not isinstance(name, str) or not name or "\x00" in name:
        raise PermissionError(f"path {name!r} is not a file name")
    base = Path(os.path.realpath(root))
    target = Path(os.path.realpath(base / name))  # an absolute name replaces base here
    if not target.is_relative_to(base):
        raise PermissionError(f"path {name!r} is outside the import directory")
    if not target.is_file():
        raise FileNotFoundError(f"path {name!r}: no such file in the import directory")
    return target


def read_files(paths, source=None, progress=None):
    """Field sets of the files, one per (source, cycle), as period means.

    Parameters
    ----------
    paths : sequence of str or Path
    source : str, optional
        Forced source of every file (see :func:`engine.nwp.read_nwp`).
    progress : callable, optional
        ``progress(path)`` after each file is read (CLI progress bar).

    Returns
    -------
    list of xarray.Dataset
        From :func:`engine.nwp.period_means`.

    Raises
    ------
    ValueError
        The first bad file: field ``files[k]`` (its position in ``paths``)
        and a message naming it; ``files`` for files that are each readable
        but do not go together (same step twice, grids differ), or no files.
    FileNotFoundError
        ``files[k]`` does not exist.
    """
    if not paths:
        raise validation.field_error("files", "no file given")
    groups = {}
    for k, path in enumerate(paths):
        try:
            fields = nwp.read_nwp(path, source)
        except (ValueError, FileNotFoundError) as exc:
            raise validation.field_error(f"files[{k}]", exc, type(exc)) from None
        groups.setdefault((fields.attrs["source"], fields.attrs["issue_time"]), []).append(fields)
        if progress is not None:
            progress(path)
    try:
        return [nwp.period_means(nwp.combine(group)) for group in groups.values()]
    except ValueError as exc:
        raise validation.field_error("files", exc) from None


def weather_rows(field_sets, locations):
    """Weather frame of all field sets at the plants, with the plants no field set covers.

    Returns
    -------
    weather : DataFrame
        Weather frame, validated (:func:`engine.validation.validate_weather`).
    covered : dict
        ``{location_id: [(source, issue_time, last valid_time), ...]}``.
    uncovered : dict
        ``{location_id: reason}`` of plants that no file covers.

    Raises
    ------
    ValueError
        No plant is covered by any file, or a row fails validation.
    """
    frames, reasons = [], {}
    for fields in field_sets:
        frame, missed = nwp.to_locations(fields, locations)
        frames.append(frame)
        for k, v in missed.items():
            reasons.setdefault(k, []).append(v)
    weather = pd.concat(frames, ignore_index=True)
    if weather.empty:
        files = ", ".join(fs.attrs["file"] for fs in field_sets)
        raise validation.field_error("files", f"no plant lies inside the grid of {files} "
                                              f"({len(locations)} plants checked); nothing stored")
    validation.validate_weather(weather, None)
    ends = weather.groupby(["location_id", "source", "issue_time"])["valid_time"].max().reset_index()
    covered = {}
    for row in ends.itertuples(index=False):
        covered.setdefault(int(row.location_id), []).append((row.source, row.issue_time, row.valid_time))
    uncovered = {k: "; ".join(v) for k, v in reasons.items() if k not in covered}
    return weather, covered, uncovered


async def import_files(db, paths, location_ids=None, source=None, progress=None, *, tenant_id=None):
    """Import NWP files into the weather table, all or nothing.

    Every file is read and every row checked before anything is written;
    the rows are then written in one transaction. CPU work (decoding,
    interpolation, validation) runs in the default executor, so the calling
    event loop only waits.

    Parameters
    ----------
    db : asyncpg.Connection or asyncpg.Pool
    paths : sequence of str or Path
        GRIB2/netCDF files (already confined by the caller when they come
        from a request: :func:`confined_path`).
    location_ids : sequence of int, optional
        Plants to interpolate to; default every plant of ``tenant_id``.
    source : str, optional
        Force the source of every file (default: detected per file).
    progress : callable, optional
        ``progress(path)`` after each file is read.
    tenant_id : str, optional
        Only this tenant's plants (another tenant's requested id is an unknown
        one); None: every plant in the database (CLI, admin).

    Returns
    -------
    dict
        ``rows`` (stored), ``files`` [{file, source, issue_time (ISO),
        steps, first_valid_time, last_valid_time, period_minutes [distinct]}],
        ``location_ids`` (covered plants), ``covered`` {location_id:
        [{source, issue_time, last_valid_time}]}, ``uncovered``
        {location_id: reason} (plants no file covers; errors as data).

    Raises
    ------
    ValueError
        A bad file (named), no plant inside any grid, bad rows; nothing stored.
        The exception's ``field`` attribute says which: ``files[k]`` (the
        k-th of ``paths``) or ``files``.
    LookupError
        A requested location id is unknown (``field`` ``location_ids``).
    FileNotFoundError
        A path does not exist (``field`` ``files[k]``).
    """
    locations = await store.fetch_locations(db, location_ids, tenant_id=tenant_id)
    if location_ids is not None:
        unknown = sorted(set(int(i) for i in location_ids) - set(locations["location_id"].tolist()))
        if unknown:
            raise validation.field_error("location_ids", f"unknown location {unknown[:5]} ({len(unknown)} unknown)",
                                         LookupError, code="unknown_location")
    if locations.empty:
        raise validation.field_error("location_ids", "there are no plants to import weather for", LookupError)
    loop = asyncio.get_running_loop()
    field_sets = await loop.run_in_executor(None, read_files, list(paths), source, progress)
    weather, covered, uncovered = await loop.run_in_executor(None, weather_rows, field_sets, locations)
    rows = await store.write_weather(db, weather, tenant_id=tenant_id)
    return {"rows": rows, "files": [file_summary(fs) for fs in field_sets],
            "location_ids": sorted(covered),
            "covered": {k: [{"source": s, "issue_time": i.isoformat(), "last_valid_time": t.isoformat()}
                            for s, i, t in v] for k, v in covered.items()},
            "uncovered": uncovered}


def file_summary(fields):
    """What one (source, cycle) of an import holds, JSON-ready."""
    issue = pd.Timestamp(fields.attrs["issue_time"])
    valid = issue + pd.to_timedelta(fields["step"].values, unit="min")
    return {"file": fields.attrs["file"], "source": fields.attrs["source"], "issue_time": issue.isoformat(),
            "steps": int(fields.sizes["step"]), "first_valid_time": valid[0].isoformat(),
            "last_valid_time": valid[-1].isoformat(),
            "period_minutes": sorted(int(p) for p in np.unique(fields["period_minutes"].values))}


def forecast_trigger(summary, settings):
    """Forecast requests that an import calls for (the task machinery of ``generate`` runs them).

    One request per weather issue time: the covered plants whose newest
    imported cycle it is, issued at that cycle time (so the forecast sees
    exactly the weather of that cycle and nothing later), over the hours the
    imported weather covers after it, within the configured bounds; split
    into requests of at most ``forecast.max_locations`` plants.

    Parameters
    ----------
    summary : dict
        From :func:`import_files`.
    settings : dict
        ``configs/service.yaml``: sections ``nwp`` (``trigger_forecast``,
        ``trigger_forecast_type``, ``trigger_resolution``) and ``forecast``
        (``horizon_hours_min``, ``horizon_hours_max``, ``resolutions``).

    Returns
    -------
    list of dict
        Bodies of ``POST /api/v1/forecast/generate`` (``location_ids``,
        ``issue_time``, ``horizon_hours``, ``resolution``,
        ``forecast_type``); empty when the trigger is off or no plant has
        ``horizon_hours_min`` hours of weather after the cycle.
    """
    cfg, fc = settings["nwp"], settings["forecast"]
    if not cfg.get("trigger_forecast", False) or not summary["covered"]:
        return []
    rows = pd.DataFrame([{"location_id": int(k), "issue_time": pd.Timestamp(c["issue_time"]),
                          "last_valid_time": pd.Timestamp(c["last_valid_time"])}
                         for k, cycles in summary["covered"].items() for c in cycles])
    rows = rows[rows["issue_time"] == rows.groupby("location_id")["issue_time"].transform("max")]
    newest = rows.groupby(["location_id", "issue_time"], as_index=False)["last_valid_time"].max()
    hours = ((newest["last_valid_time"] - newest["issue_time"]) // pd.Timedelta(hours=1)).clip(
        upper=fc["horizon_hours_max"])
    newest = newest.assign(horizon_hours=hours.astype("int64"))
    newest = newest[newest["horizon_hours"] >= fc["horizon_hours_min"]]
    requests = []
    for (issue, horizon), group in newest.groupby(["issue_time", "horizon_hours"], sort=True):
        ids = sorted(group["location_id"].astype(int).tolist())
        for start in range(0, len(ids), fc["max_locations"]):
            requests.append({"location_ids": ids[start:start + fc["max_locations"]],
                             "issue_time": issue.isoformat(), "horizon_hours": int(horizon),
                             "resolution": cfg.get("trigger_resolution", fc["default_resolution"]),
                             "forecast_type": cfg.get("trigger_forecast_type", "ml")})
    return requests

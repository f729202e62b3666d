"""The planes of a plant: a location's orientations as rows, for storage and for the feature path.

A location is 1..:data:`engine.validation.MAX_PLANES` planes (an east/west roof,
a roof plus a carport, a plant with two fields) behind ONE inverter limit
(``capacity_ac_kw``) and one export limit. A location given WITHOUT plane rows
is one plane built from its own columns (``tilt``, ``azimuth``,
``capacity_dc_kw``, ``tracking``, ...), exactly as before planes existed; a
location given WITH plane rows uses only those, and its own plane columns are
a summary derived from them (:func:`summarise`): total DC capacity and the
orientation of its largest plane, so a reader of the locations frame alone
still sees the plant's size and main orientation.

Plane rows are flat arrays like plants are (:func:`plane_arrays`): the feature
path computes every plane-row at once and sums DC per plant with
``numpy.add.reduceat`` (:func:`engine.physics.plant_sum`), never a loop over
planes or plants.
"""

import numpy as np
import pandas as pd

from engine.validation import PLANE_COLUMNS, PLANE_INHERITED, TRACKING, reject

#: Location columns derived from its planes when it has plane rows.
SUMMARY_COLUMNS = ("capacity_dc_kw", "tilt", "azimuth", "tracking", "axis_azimuth", "max_angle", "gcr")
#: Numeric plane columns of :func:`plane_arrays` (float64, one value per plane row).
GEOMETRY_COLUMNS = ("tilt", "azimuth", "capacity_dc_kw", "axis_azimuth", "max_angle", "gcr", *PLANE_INHERITED)


def empty_planes(key="location_id"):
    """A planes frame without rows (every location one plane from its own columns)."""
    return pd.DataFrame({key: pd.Series(dtype="int64" if key == "location_id" else object),
                         **{c: pd.Series(dtype="int64" if c == "plane" else bool if c == "backtrack" else
                                         object if c == "tracking" else "float64") for c in PLANE_COLUMNS}})


def summarise(locations, planes, key="name"):
    """Locations frame with the plane columns of multi-plane locations derived from their planes.

    For every location with plane rows: ``capacity_dc_kw`` = sum of its planes'
    DC capacity (kW); ``tilt``, ``azimuth``, ``tracking``, ``axis_azimuth``,
    ``max_angle``, ``gcr`` = those of its largest plane (the first of equal
    ones). Locations without plane rows are returned unchanged.

    Parameters
    ----------
    locations : DataFrame
        Locations frame; the plane columns of multi-plane locations may be
        NaN/None (not given).
    planes : DataFrame or None
        Planes frame (already checked by :func:`engine.validation.validate_planes`).
    key : {'name', 'location_id'}
        Column linking planes to locations.

    Returns
    -------
    DataFrame
        A copy of ``locations``, same rows and order.

    Raises
    ------
    ValueError
        ``<column>: row <i> ...``: a location with planes gives a value of a
        summary column that differs from the one derived from its planes
        (leave it empty, or give the derived value as a read returns it).
    """
    out = locations.copy()
    if planes is None or not len(planes):
        return out
    order = planes.sort_values([key, "plane"], kind="stable").reset_index(drop=True)
    total = order.groupby(key, sort=False)["capacity_dc_kw"].sum()
    largest = order.loc[order.groupby(key, sort=False)["capacity_dc_kw"].idxmax()].set_index(key)
    derived = largest[list(SUMMARY_COLUMNS)].assign(capacity_dc_kw=total)
    rows = derived.reindex(out[key].to_numpy())
    has = rows["tilt"].notna().to_numpy()
    for column in SUMMARY_COLUMNS:
        given = out[column] if column in out.columns else pd.Series(np.nan, index=out.index, dtype=object)
        want = rows[column].to_numpy()
        present = given.notna().to_numpy()
        if column == "tracking":
            differs = present & (given.astype(str).str.upper().to_numpy() != want.astype(str))
        else:
            got = pd.to_numeric(given, errors="coerce").to_numpy(dtype=float)
            differs = present & ~np.isclose(got, want.astype(float), rtol=1e-9, atol=0.0)
        reject(column, has & differs, f"differs from the value derived from the location's planes "
               f"({'sum of their DC' if column == 'capacity_dc_kw' else 'of its largest plane'}); leave it empty "
               "when giving planes", given.to_numpy(dtype=object), "invalid_value")
        filled = given.to_numpy(dtype=object if column == "tracking" else float, copy=True)
        filled[has] = want[has]
        out[column] = filled
    return out


def plane_arrays(loc, planes):
    """Plane rows of the given locations as flat arrays, sorted by (location, plane).

    Parameters
    ----------
    loc : dict of ndarray
        ``engine.features.location_arrays`` of the locations (one value per
        location, incl. ``location_id`` and ``tracking``).
    planes : DataFrame or None
        Planes frame keyed by ``location_id``; rows of other locations are
        ignored. A location without rows is one plane from its own columns
        (backtracking on).

    Returns
    -------
    dict of ndarray
        ``site`` (index into ``loc``), ``first`` (n_sites: index of each
        location's first plane row), :data:`GEOMETRY_COLUMNS` (float64; NaN
        inherited values replaced by the location's), ``single_axis`` and
        ``backtrack`` (bool).

    Raises
    ------
    ValueError
        ``location_id <N>: plane <k> ...``: a required value is not finite or
        the tracking mode is unknown.
    """
    ids = loc["location_id"]
    n_sites = len(ids)
    if planes is not None and len(planes):
        site = pd.Index(ids).get_indexer(planes["location_id"].to_numpy(dtype="int64"))
        explicit = planes.loc[site >= 0]
        site = site[site >= 0]
    else:
        explicit, site = None, np.empty(0, dtype=int)
    if explicit is None or not len(explicit):  # every location one plane from its own columns
        return {"site": np.arange(n_sites), "first": np.arange(n_sites),
                **{c: loc[c] for c in GEOMETRY_COLUMNS}, "single_axis": loc["tracking"] == "SINGLE_AXIS",
                "backtrack": np.ones(n_sites, dtype=bool)}
    has = np.zeros(n_sites, dtype=bool)
    has[site] = True
    implicit = np.flatnonzero(~has)
    all_site = np.concatenate([site, implicit])
    plane_no = np.concatenate([explicit["plane"].to_numpy(dtype="int64"), np.zeros(len(implicit), dtype="int64")])
    order = np.lexsort((plane_no, all_site))
    all_site, plane_no = all_site[order], plane_no[order]
    out = {"site": all_site, "first": np.searchsorted(all_site, np.arange(n_sites))}
    for c in GEOMETRY_COLUMNS:
        values = np.concatenate([explicit[c].to_numpy(dtype=float), loc[c][implicit]])[order]
        if c in PLANE_INHERITED:
            values = np.where(np.isnan(values), loc[c][all_site], values)
        bad = ~np.isfinite(values)
        if bad.any():
            i = int(np.argmax(bad))
            raise ValueError(f"location_id {ids[all_site[i]]}: plane {plane_no[i]} {c} is not finite")
        out[c] = values
    tracking = np.concatenate([explicit["tracking"].astype(str).str.upper().to_numpy(), loc["tracking"][implicit]])
    tracking = tracking[order]
    bad = ~np.isin(tracking, TRACKING)
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"location_id {ids[all_site[i]]}: plane {plane_no[i]} tracking {tracking[i]!r} is not one "
                         f"of {list(TRACKING)}")
    out["single_axis"] = tracking == "SINGLE_AXIS"
    out["backtrack"] = np.concatenate([explicit["backtrack"].to_numpy(dtype=bool),
                                       np.ones(len(implicit), dtype=bool)])[order]
    return out

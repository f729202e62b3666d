"""Bilinear interpolation from a (possibly curvilinear) weather-model grid to plant locations.

NWP grids come in two shapes: regular latitude/longitude grids (GFS, GEFS,
ECMWF open data) and projected grids whose latitude and longitude are 2-D
arrays (HRRR, NAM and RAP on Lambert conformal projections). Both are handled
by one method that needs only the 2-D latitude/longitude of the grid points:

1. the grid point nearest to each plant is found with a k-d tree on unit
   vectors (one vectorised query for all plants);
2. each of the (up to) four grid cells that share that point is tested: the
   plant's position inside the cell is found by inverting the bilinear map of
   the cell's four corners, in a local plane around the plant (east =
   longitude difference x cos(latitude), north = latitude difference, deg),
   with a few vectorised Newton steps;
3. the first cell whose cell coordinates ``(s, t)`` lie in [0, 1] holds the
   plant; the weights of its corners are ``(1-s)(1-t)``, ``s(1-t)``,
   ``(1-s)t``, ``st``.

On a regular latitude/longitude grid this is exactly bilinear interpolation in
latitude and longitude (east is linear in longitude along a cell, north in
latitude). On a projected grid it is bilinear in the plane tangent at the
plant, which agrees with bilinear interpolation in the projection's own
coordinates to well below the grid spacing: a 3-13 km cell is flat to
1e-6 of its size. No projection parameters are needed, so every grid that
comes with latitude/longitude arrays works the same way.

A plant that lies in no cell (outside the grid) gets no weights and is
reported, never extrapolated.
"""

import numpy as np
from scipy.spatial import cKDTree

NEWTON_STEPS = 8
INSIDE_TOLERANCE = 1e-9  # cell coordinates may exceed [0, 1] by this much (points on a cell edge)


def unit_vectors(latitude, longitude):
    """Points on the unit sphere, shape (n, 3), from latitude/longitude in degrees."""
    lat, lon = np.radians(np.asarray(latitude, float)), np.radians(np.asarray(longitude, float))
    return np.column_stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)])


def wrap_degrees(delta):
    """Longitude differences wrapped to [-180, 180) deg."""
    return (np.asarray(delta, float) + 180.0) % 360.0 - 180.0


def cell_coordinates(corners_east, corners_north):
    """Position ``(s, t)`` of the origin in bilinear cells given by their corners.

    Parameters
    ----------
    corners_east, corners_north : ndarray, shape (n, 4)
        Corner coordinates relative to the point, deg, ordered
        (j, i), (j, i+1), (j+1, i), (j+1, i+1) (grid row j, column i).

    Returns
    -------
    s, t : ndarray, shape (n,)
        Cell coordinates along i and j (NaN where Newton's method fails).
    """
    p00, p10, p01, p11 = (np.stack([corners_east[:, k], corners_north[:, k]], axis=-1) for k in range(4))
    s = np.full(len(p00), 0.5)
    t = np.full(len(p00), 0.5)
    for _ in range(NEWTON_STEPS):
        # P(s, t) = p00 + s (p10 - p00) + t (p01 - p00) + s t (p11 - p10 - p01 + p00); solve P = 0
        a, b, c = p10 - p00, p01 - p00, p11 - p10 - p01 + p00
        f = p00 + s[:, None] * a + t[:, None] * b + (s * t)[:, None] * c
        ds_ = a + t[:, None] * c  # dP/ds
        dt_ = b + s[:, None] * c  # dP/dt
        det = ds_[:, 0] * dt_[:, 1] - ds_[:, 1] * dt_[:, 0]
        with np.errstate(divide="ignore", invalid="ignore"):
            s = s - (f[:, 0] * dt_[:, 1] - f[:, 1] * dt_[:, 0]) / det
            t = t - (ds_[:, 0] * f[:, 1] - ds_[:, 1] * f[:, 0]) / det
    return s, t


def bilinear_weights(grid_latitude, grid_longitude, latitude, longitude):
    """Corner indices and bilinear weights of each point in a curvilinear grid.

    Parameters
    ----------
    grid_latitude, grid_longitude : ndarray, shape (ny, nx)
        deg; longitudes in any convention (0..360 or -180..180).
    latitude, longitude : ndarray, shape (n,)
        deg, the points (plants).

    Returns
    -------
    dict
        ``iy``, ``ix`` : int arrays (n, 4), row and column of the corners
        (j, i), (j, i+1), (j+1, i), (j+1, i+1) of the cell holding each point;
        ``weights`` : (n, 4), summing to 1; ``inside`` : bool (n,), False
        where the point lies in no cell (its indices/weights are 0).
    """
    glat, glon = np.asarray(grid_latitude, float), np.asarray(grid_longitude, float)
    ny, nx = glat.shape
    lat, lon = np.asarray(latitude, float), np.asarray(longitude, float)
    n = len(lat)
    out = {"iy": np.zeros((n, 4), int), "ix": np.zeros((n, 4), int), "weights": np.zeros((n, 4)),
           "inside": np.zeros(n, bool)}
    if n == 0 or ny < 2 or nx < 2:
        return out
    tree = cKDTree(unit_vectors(glat.ravel(), glon.ravel()))
    _, nearest = tree.query(unit_vectors(lat, lon))
    jn, inn = np.divmod(nearest, nx)
    coslat = np.cos(np.radians(lat))
    found = np.zeros(n, bool)
    for dj, di in ((0, 0), (-1, 0), (0, -1), (-1, -1)):  # the four cells sharing the nearest point
        j = np.clip(jn + dj, 0, ny - 2)
        i = np.clip(inn + di, 0, nx - 2)
        iy = np.stack([j, j, j + 1, j + 1], axis=1)
        ix = np.stack([i, i + 1, i, i + 1], axis=1)
        east = wrap_degrees(glon[iy, ix] - lon[:, None]) * coslat[:, None]
        north = glat[iy, ix] - lat[:, None]
        s, t = cell_coordinates(east, north)
        ok = (~found & np.isfinite(s) & np.isfinite(t) & (s >= -INSIDE_TOLERANCE) & (s <= 1 + INSIDE_TOLERANCE)
              & (t >= -INSIDE_TOLERANCE) & (t <= 1 + INSIDE_TOLERANCE))
        s, t = np.clip(s, 0.0, 1.0), np.clip(t, 0.0, 1.0)
        w = np.stack([(1 - s) * (1 - t), s * (1 - t), (1 - s) * t, s * t], axis=1)
        out["iy"][ok], out["ix"][ok], out["weights"][ok] = iy[ok], ix[ok], w[ok]
        found |= ok
    out["inside"] = found
    return out


def interpolate(values, weights):
    """Values at the points: the weighted sum of each point's four corners.

    Parameters
    ----------
    values : ndarray, shape (..., ny, nx)
        Gridded values (leading axes, e.g. variable and time, are kept).
    weights : dict
        From :func:`bilinear_weights`.

    Returns
    -------
    ndarray, shape (..., n)
        NaN for points outside the grid, and where a corner value is NaN.
    """
    corners = values[..., weights["iy"], weights["ix"]]  # (..., n, 4)
    out = np.einsum("...nk,nk->...n", corners, weights["weights"])
    out[..., ~weights["inside"]] = np.nan
    return out

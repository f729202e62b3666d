"""Far-horizon shading: a location's skyline cuts the beam and part of the sky.

A horizon profile is the elevation of the skyline (hills, a tree line, a
neighbouring building) as a function of azimuth, as users get it from a
survey, a phone app or PVGIS (``pvlib.iotools.get_pvgis_horizon``). It is
taken as the piecewise-linear, 360 deg periodic function through the profile
points (azimuth 0 = north, clockwise, as pvlib). Obstacles are far compared
with the plant: the whole plant is shaded at once. As in PVGIS's r.sun model
[1]_ and pvlib's horizon example [2]_:

1. beam, and the Perez circumsolar part of the sky diffuse (light from
   around the solar disc), are blocked while the sun's apparent elevation is
   below the profile at the sun's azimuth (:func:`beam_visible`);
2. the rest of the sky diffuse (Perez isotropic and horizon-band parts) is
   reduced by the plane's sky-view fraction (:func:`sky_view_fraction`): the
   share of the isotropic sky irradiance on the plane that the profile leaves
   open. It is the terrain view factor of Dozier and Frew [3]_ (eq. 7c,
   cosine-weighted sky above the horizon angle in each azimuth), with the
   horizon in each azimuth raised to the plane's own horizon where the plane
   faces away; a horizontal plane under a constant horizon ``h`` keeps
   ``cos^2 h``.

Ground-reflected irradiance is unchanged. All locations are handled at once:
profiles of different lengths share one ``numpy.interp`` call (each location
in its own band of the azimuth axis, as :mod:`engine.resample` does with
time), and the sky-view integral runs on a common 1 deg azimuth grid, one row
per location.

References
----------
.. [1] M. Šúri and J. Hofierka, A new GIS-based solar radiation model and
   its application to photovoltaic assessments. Transactions in GIS 8(2),
   175-190, 2004.
.. [2] pvlib-python example gallery, "Simple irradiance adjustment for horizon
   shading" (docs/examples/shading, pvlib >= 0.10.5).
.. [3] J. Dozier and J. Frew, Rapid calculation of terrain parameters for
   radiation modeling from digital elevation data. IEEE Transactions on
   Geoscience and Remote Sensing 28(5), 963-969, 1990.
"""

import numpy as np
import pandas as pd
from pvlib import tracking

from engine import physics

GRID_STEP_DEG = 1.0  # azimuth step of the sky-view integral (midpoint rule)
ROTATION_STEP_DEG = 5.0  # trackers: sky-view fraction tabulated per rotation, linear in between
BAND_DEG = 1440.0  # width of one location's band on the shared azimuth axis (a profile spans -360 .. 720)
CHUNK_ROWS = 4096  # rows of the sky-view integral evaluated at once (bounds memory to ~12 MB per array)


def profiles(horizon, location_ids):
    """Horizon profiles of the given locations as flat arrays.

    Parameters
    ----------
    horizon : DataFrame or None
        Horizon frame keyed by ``location_id``: ``azimuth`` (deg, [0, 360)),
        ``elevation`` (deg); rows of other locations are ignored.
    location_ids : ndarray of int
        The locations, in site order.

    Returns
    -------
    dict or None
        None when no location has a profile; else ``site`` (n_sites,) index of
        each location's profile or -1, ``sites`` (n_profiles,) site of each
        profile, ``support`` (x, y) of :func:`elevation_at` and ``grid``
        (n_profiles, 360 / GRID_STEP_DEG) profile elevation, deg, at the grid
        azimuths ``GRID_STEP_DEG * (k + 0.5)``.

    Raises
    ------
    ValueError
        ``location_id <N>: horizon ...``: a value is not finite, or the
        azimuths of a profile do not increase strictly within [0, 360).
    """
    if horizon is None or not len(horizon):
        return None
    site = pd.Index(location_ids).get_indexer(horizon["location_id"].to_numpy(dtype="int64"))
    keep = site >= 0
    if not keep.any():
        return None
    site = site[keep]
    azimuth = horizon["azimuth"].to_numpy(dtype=float)[keep]
    elevation = horizon["elevation"].to_numpy(dtype=float)[keep]
    order = np.argsort(site, kind="stable")
    site, azimuth, elevation = site[order], azimuth[order], elevation[order]
    bad = ~(np.isfinite(azimuth) & np.isfinite(elevation)) | (azimuth < 0) | (azimuth >= 360)
    same = site[1:] == site[:-1]
    bad[1:] |= same & (np.diff(azimuth) <= 0)
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"location_id {location_ids[site[i]]}: horizon azimuth {azimuth[i]} / elevation "
                         f"{elevation[i]} is not finite or does not increase strictly within [0, 360)")
    sites, profile = np.unique(site, return_inverse=True)
    profile_of_site = np.full(len(location_ids), -1)
    profile_of_site[sites] = np.arange(len(sites))
    support = periodic_support(profile, azimuth, elevation)
    centres = grid_azimuths()
    rows = np.repeat(np.arange(len(sites)), len(centres))
    grid = elevation_at(support, rows, np.tile(centres, len(sites))).reshape(len(sites), len(centres))
    return {"site": profile_of_site, "sites": sites, "support": support, "grid": grid}


def grid_azimuths():
    """Azimuths of the sky-view grid cells' centres, deg."""
    return GRID_STEP_DEG * (np.arange(int(round(360.0 / GRID_STEP_DEG))) + 0.5)


def periodic_support(profile, azimuth, elevation):
    """Band axis of all profiles, each wrapped once around (last point - 360, first point + 360).

    Parameters
    ----------
    profile : ndarray of int
        Profile of each point, sorted; azimuths increasing within a profile.
    azimuth, elevation : ndarray
        deg.

    Returns
    -------
    x, y : ndarray
        Sorted support of ``numpy.interp``: ``profile * BAND_DEG + 360 + azimuth``.
    """
    first = np.r_[True, profile[1:] != profile[:-1]]
    last = np.r_[profile[1:] != profile[:-1], True]
    x = np.concatenate([profile * BAND_DEG + 360.0 + azimuth,
                        profile[last] * BAND_DEG + azimuth[last],
                        profile[first] * BAND_DEG + 720.0 + azimuth[first]])
    y = np.concatenate([elevation, elevation[last], elevation[first]])
    order = np.argsort(x, kind="stable")
    return x[order], y[order]


def elevation_at(support, profile, azimuth):
    """Profile elevation at azimuths, deg (linear in azimuth, wrapping at 0/360).

    Parameters
    ----------
    support : (x, y)
        :func:`periodic_support`.
    profile : ndarray of int
        Profile of each target.
    azimuth : ndarray
        deg in [0, 360].
    """
    x, y = support
    return np.interp(profile * BAND_DEG + 360.0 + np.asarray(azimuth, dtype=float), x, y)


def beam_visible(support, profile, apparent_elevation, solar_azimuth):
    """Whether the sun is at or above the horizon profile (beam reaches the plant).

    Parameters
    ----------
    support : (x, y)
        :func:`periodic_support`.
    profile : ndarray of int
        Profile of each element.
    apparent_elevation, solar_azimuth : ndarray
        deg; the apparent (refracted) elevation is what an observer of the
        skyline sees.

    Returns
    -------
    ndarray of bool
    """
    return np.asarray(apparent_elevation) >= elevation_at(support, profile, solar_azimuth)


def sky_view_fraction(grid, row, surface_tilt, surface_azimuth):
    """Share of a plane's isotropic sky irradiance left open by a horizon profile.

    For a plane of tilt beta and azimuth gamma, the sky element at elevation e
    and azimuth phi contributes ``max(0, A sin e + B cos e) cos e de dphi`` with
    ``A = cos beta``, ``B = sin beta cos(phi - gamma)`` (Dozier and Frew
    1990). Below the profile elevation h(phi) it is hidden. The integral over
    e has the closed form ``F(e) = A sin^2(e) / 2 + B (e / 2 + sin(2e) / 4)``,
    taken from the plane's own horizon ``e0 = atan2(-B, A)`` (where B < 0,
    else 0; ``F(e0) = B e0 / 2``) up to h where h > e0. The open sky of a plane
    without horizon is ``pi (1 + cos beta) / 2`` (isotropic sky view of a
    tilted plane); the hidden part is summed over the grid azimuths (midpoint
    rule). The profile terms ``sin^2(h) / 2`` and ``h / 2 + sin(2h) / 4`` are
    computed once per profile, so a row costs one ``arctan2`` per azimuth.

    Parameters
    ----------
    grid : ndarray
        (n_profiles, n_az) profile elevation, deg, at :func:`grid_azimuths`.
    row : ndarray of int
        Profile of each plane orientation (n,).
    surface_tilt, surface_azimuth : ndarray
        (n,) deg.

    Returns
    -------
    ndarray
        (n,) in [0, 1]; 1 for a profile that hides nothing the plane sees.
    """
    row = np.asarray(row)
    tilt = np.radians(np.asarray(surface_tilt, dtype=float))
    gamma = np.radians(np.asarray(surface_azimuth, dtype=float))
    h = np.radians(grid)
    lift, side = np.sin(h) ** 2 / 2.0, h / 2.0 + np.sin(2.0 * h) / 4.0  # F(h) = A lift + B side
    phi = np.radians(grid_azimuths())
    step = 2.0 * np.pi / len(phi)
    out = np.empty(len(row))
    for lo in range(0, len(row), CHUNK_ROWS):  # chunks of rows bound memory; each chunk is vectorised
        part = slice(lo, lo + CHUNK_ROWS)
        r = row[part]
        a = np.cos(tilt[part])[:, None]
        b = np.sin(tilt[part])[:, None] * (np.cos(phi)[None, :] * np.cos(gamma[part])[:, None]
                                           + np.sin(phi)[None, :] * np.sin(gamma[part])[:, None])
        own = np.arctan2(np.maximum(-b, 0.0), a)  # plane's own horizon in this azimuth (0 where it faces it)
        hidden = np.where(h[r] > own, a * lift[r] + b * side[r] - b * own / 2.0, 0.0).sum(axis=1) * step
        out[part] = 1.0 - hidden / (np.pi * (1.0 + a[:, 0]) / 2.0)
    return np.clip(out, 0.0, 1.0)  # rounding only: 0 <= hidden <= open sky by construction


def tracker_sky_view(grid, row, axis_azimuth):
    """Sky-view fraction of single-axis tracker planes, tabulated per rotation.

    A tracker's orientation is a function of its rotation only
    (``pvlib.tracking.calc_surface_orientation``, horizontal axis), so the
    fraction is computed once per tracker plane at every
    ``ROTATION_STEP_DEG`` from -90 to 90 deg (:func:`rotation_lookup`
    interpolates it at each element's rotation).

    Parameters
    ----------
    grid : ndarray
        (n_profiles, n_az), deg.
    row : ndarray of int
        (n_planes,) profile of each tracker plane.
    axis_azimuth : ndarray
        (n_planes,) deg.

    Returns
    -------
    ndarray
        (n_planes, n_rotations) sky-view fraction.
    """
    angles = rotation_angles()
    n = len(angles)
    surface = tracking.calc_surface_orientation(np.tile(angles, len(row)), 0.0, np.repeat(axis_azimuth, n))
    table = sky_view_fraction(grid, np.repeat(row, n), surface["surface_tilt"], surface["surface_azimuth"])
    return table.reshape(len(row), n)


def rotation_angles():
    """Tracker rotations of the :func:`tracker_sky_view` table, deg."""
    return np.arange(-90.0, 90.0 + ROTATION_STEP_DEG / 2, ROTATION_STEP_DEG)


def rotation_lookup(table, plane, rotation):
    """Linear interpolation of a :func:`tracker_sky_view` table at each element's rotation.

    Parameters
    ----------
    table : ndarray
        (n_planes, n_rotations).
    plane : ndarray of int
        Row of ``table`` of each element.
    rotation : ndarray
        deg in [-90, 90].
    """
    position = (np.clip(rotation, -90.0, 90.0) + 90.0) / ROTATION_STEP_DEG
    lo = np.minimum(np.floor(position).astype(int), table.shape[1] - 2)
    frac = position - lo
    return table[plane, lo] * (1.0 - frac) + table[plane, lo + 1] * frac


def shade(poa, visible, sky_view):
    """Plane-of-array irradiance behind a horizon.

    Parameters
    ----------
    poa : dict of ndarray
        ``engine.physics.plane_of_array(..., components=True)`` of the shaded
        elements.
    visible : ndarray of bool
        Sun at or above the profile (:func:`beam_visible`).
    sky_view : ndarray
        Sky-view fraction of each element's plane (:func:`sky_view_fraction`).

    Returns
    -------
    dict of ndarray
        ``poa_global``, ``poa_direct``, ``poa_diffuse``,
        ``effective_irradiance`` (W/m^2) and ``aoi``; each irradiance at most
        its value without horizon. The circumsolar part is taken as at most
        the (non-negative) sky diffuse, so the rest that the sky view scales
        is never negative (Perez's horizon band can be).
    """
    direct = np.where(visible, poa["poa_direct"], 0.0)
    sky = poa["poa_sky_diffuse"]
    circumsolar = np.minimum(poa["poa_circumsolar"], sky)
    diffuse = sky_view * (sky - circumsolar) + np.where(visible, circumsolar, 0.0) + poa["poa_ground_diffuse"]
    return {"poa_global": direct + diffuse, "poa_direct": direct, "poa_diffuse": diffuse,
            "effective_irradiance": physics.effective_irradiance(direct, diffuse, poa["iam"]), "aoi": poa["aoi"]}

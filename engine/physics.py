"""The physical estimate of AC power: plane of array, cell temperature, PVWatts.

Every function works elementwise on flat arrays (one element per plane row
and timestamp) and calls pvlib's own models, so one call covers a whole batch
of plants. The chain is the one pvlib's ``ModelChain`` runs with the PVWatts
models: Perez transposition [1]_, physical IAM on the beam component,
Faiman cell temperature [2]_, PVWatts DC with a temperature coefficient and
system losses per plane, then the DC of all planes of a plant summed
(:func:`plant_sum`) and clipped ONCE by the PVWatts inverter at the plant's AC
capacity [3]_ (``pvlib.inverter.pvwatts_multi``: planes sharing an inverter
can exceed its limit together while each stays under its share).

References
----------
.. [1] R. Perez et al., Modeling daylight availability and irradiance
   components from direct and global irradiance. Solar Energy 44, 1990.
.. [2] D. Faiman, Assessing the outdoor operating temperature of
   photovoltaic modules. Prog. Photovolt. 16(4), 2008.
.. [3] A. P. Dobos, PVWatts Version 5 Manual, NREL/TP-6A20-62641, 2014.
"""

import numpy as np
from pvlib import iam, inverter, irradiance, pvsystem, temperature, tracking

ALBEDO = 0.25  # ground reflectance (pvlib default)
ETA_INV_NOM = 0.96  # PVWatts nominal inverter efficiency


def surface_orientation(single_axis, tilt, azimuth, axis_azimuth, max_angle, gcr, apparent_zenith,
                        solar_azimuth, backtrack=True):
    """Module tilt and azimuth of fixed and single-axis tracking planes.

    Trackers follow ``pvlib.tracking.singleaxis`` (horizontal axis,
    backtracking where ``backtrack``); with the sun down they lie flat.

    Parameters
    ----------
    single_axis : ndarray of bool
        True for elements of single-axis tracking planes, False for fixed tilt.
    tilt, azimuth : ndarray
        deg, fixed planes' orientation.
    axis_azimuth, max_angle : ndarray
        deg, trackers' axis orientation and rotation limit.
    gcr : ndarray
        Ground coverage ratio of trackers.
    apparent_zenith, solar_azimuth : ndarray
        deg.
    backtrack : bool or ndarray of bool
        Trackers that backtrack (avoid row-to-row shading at low sun).

    Returns
    -------
    surface_tilt, surface_azimuth : ndarray
        deg.
    rotation : ndarray
        deg, tracker rotation (``tracker_theta``; 0 when flat at night and for fixed planes).
    """
    surface_tilt = np.asarray(tilt, dtype=float).copy()
    surface_azimuth = np.asarray(azimuth, dtype=float).copy()
    rotation = np.zeros(surface_tilt.shape)
    tracker = np.asarray(single_axis, dtype=bool)
    backtracking = np.broadcast_to(np.asarray(backtrack, dtype=bool), tracker.shape)
    for mode in (True, False):  # pvlib takes one backtrack flag per call: at most two vectorised calls
        group = tracker & (backtracking == mode)
        if not group.any():
            continue
        t = tracking.singleaxis(apparent_zenith[group], solar_azimuth[group], axis_tilt=0.0,
                                axis_azimuth=axis_azimuth[group],
                                max_angle=(-max_angle[group], max_angle[group]),
                                backtrack=mode, gcr=gcr[group])
        down = ~np.isfinite(t["surface_tilt"])
        surface_tilt[group] = np.where(down, 0.0, t["surface_tilt"])
        surface_azimuth[group] = np.where(down, axis_azimuth[group] + 90.0, t["surface_azimuth"])
        rotation[group] = np.where(down, 0.0, t["tracker_theta"])
    return surface_tilt, surface_azimuth, rotation


def effective_irradiance(poa_direct, poa_diffuse, iam_modifier):
    """Irradiance reaching the cells, W/m^2: beam through the IAM plus diffuse, floored at 0.

    As ``pvlib.modelchain.ModelChain`` without a spectral loss:
    ``poa_direct * aoi_modifier + poa_diffuse``.
    """
    return np.maximum(poa_direct * iam_modifier + poa_diffuse, 0.0)


def plane_of_array(surface_tilt, surface_azimuth, apparent_zenith, solar_azimuth, ghi, dni, dhi, dni_extra,
                   airmass_relative, components=False):
    """Plane-of-array irradiance (Perez) and the IAM-weighted effective irradiance.

    Parameters
    ----------
    surface_tilt, surface_azimuth, apparent_zenith, solar_azimuth : ndarray
        deg.
    ghi, dni, dhi, dni_extra : ndarray
        W/m^2.
    airmass_relative : ndarray
        Relative (not pressure-corrected) air mass, as Perez expects.
    components : bool
        Also return the parts a horizon profile acts on
        (:func:`engine.horizon.shade`).

    Returns
    -------
    dict of ndarray
        ``poa_global``, ``poa_direct``, ``poa_diffuse``, ``effective_irradiance``
        (W/m^2) and ``aoi`` (deg); with ``components`` also
        ``poa_sky_diffuse``, ``poa_ground_diffuse``, ``poa_circumsolar``
        (W/m^2, Perez circumsolar part of the sky diffuse) and ``iam``.
    """
    # pvlib.irradiance.get_total_irradiance(model="perez") step by step, its angle of incidence computed once
    aoi = irradiance.aoi(surface_tilt, surface_azimuth, apparent_zenith, solar_azimuth)
    sky = irradiance.get_sky_diffuse(surface_tilt, surface_azimuth, apparent_zenith, solar_azimuth, dni, ghi, dhi,
                                     dni_extra=dni_extra, airmass=airmass_relative, model="perez",
                                     return_components=components)
    poa = irradiance.poa_components(aoi, dni, sky, irradiance.get_ground_diffuse(surface_tilt, ghi, ALBEDO))
    direct = np.nan_to_num(np.asarray(poa["poa_direct"], dtype=float), nan=0.0)
    diffuse = np.nan_to_num(np.asarray(poa["poa_diffuse"], dtype=float), nan=0.0)
    iam_modifier = np.nan_to_num(iam.physical(aoi), nan=0.0)
    out = {"poa_global": direct + diffuse, "poa_direct": direct, "poa_diffuse": diffuse,
           "effective_irradiance": effective_irradiance(direct, diffuse, iam_modifier),
           "aoi": np.asarray(aoi, dtype=float)}
    if components:
        out.update({k: np.nan_to_num(np.asarray(poa[k], dtype=float), nan=0.0)
                    for k in ("poa_sky_diffuse", "poa_ground_diffuse", "poa_circumsolar")}, iam=iam_modifier)
    return out


def cell_temperature(poa_global, temp_air, wind_speed, u0, u1):
    """Faiman cell temperature, degC (``pvlib.temperature.faiman``)."""
    return np.asarray(temperature.faiman(poa_global, temp_air, wind_speed, u0, u1), dtype=float)


def dc_power(effective_irradiance, temp_cell, capacity_dc_kw, gamma_pdc, losses_pct):
    """PVWatts DC power after system losses, kW.

    Parameters
    ----------
    effective_irradiance : ndarray
        W/m^2.
    temp_cell : ndarray
        degC.
    capacity_dc_kw : ndarray
        kW, nameplate DC (``pdc0``).
    gamma_pdc : ndarray
        1/degC.
    losses_pct : ndarray
        %, DC system losses (soiling, wiring, mismatch, ...).

    Returns
    -------
    ndarray
        ``pvlib.pvsystem.pvwatts_dc`` times ``1 - losses_pct / 100``.
    """
    pdc = pvsystem.pvwatts_dc(effective_irradiance, temp_cell, capacity_dc_kw, gamma_pdc)
    return np.asarray(pdc, dtype=float) * (1.0 - np.asarray(losses_pct) / 100.0)


def inverter_ac(pdc, capacity_ac_kw):
    """PVWatts inverter: AC power of a plant's total DC power, kW.

    Parameters
    ----------
    pdc : ndarray
        kW, DC power of ALL planes behind the inverter (summed before the clip).
    capacity_ac_kw : ndarray
        kW, AC limit.

    Returns
    -------
    ndarray
        AC power, kW, in [0, capacity_ac_kw]: ``pvlib.inverter.pvwatts``
        with ``pdc0 = capacity_ac_kw / eta_inv_nom`` clips at the AC capacity.
    """
    pac = inverter.pvwatts(pdc, capacity_ac_kw / ETA_INV_NOM, eta_inv_nom=ETA_INV_NOM)
    return np.clip(np.asarray(pac, dtype=float), 0.0, capacity_ac_kw)


def plant_sum(values, first, n_times):
    """Sum of plane-row values per plant and timestamp.

    Parameters
    ----------
    values : ndarray
        One value per (plane row, timestamp), plane-row-major, the plane rows
        of a plant consecutive.
    first : ndarray of int
        Index of each plant's first plane row.
    n_times : int

    Returns
    -------
    ndarray
        One value per (plant, timestamp), plant-major; a one-plane plant's
        values are returned unchanged (bit for bit).
    """
    return np.add.reduceat(values.reshape(-1, n_times), first, axis=0).ravel()

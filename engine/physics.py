"""The physical estimate of AC power: plane of array, cell temperature, PVWatts.

Every function works elementwise on flat arrays (one element per site and
timestamp) and calls pvlib's own models, so one call covers a whole batch of
plants. The chain is the one pvlib's ``ModelChain`` runs with the PVWatts
models: Perez transposition [1]_, physical IAM on the beam component,
Faiman cell temperature [2]_, PVWatts DC with a temperature coefficient,
system losses, and the PVWatts inverter clipping at the AC capacity [3]_.

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
                        solar_azimuth):
    """Module tilt and azimuth of fixed and single-axis tracking plants.

    Trackers follow ``pvlib.tracking.singleaxis`` (horizontal axis,
    backtracking); with the sun down they lie flat.

    Parameters
    ----------
    single_axis : ndarray of bool
        True for elements of single-axis tracking plants, False for fixed tilt.
    tilt, azimuth : ndarray
        deg, fixed plants' orientation.
    axis_azimuth, max_angle : ndarray
        deg, trackers' axis orientation and rotation limit.
    gcr : ndarray
        Ground coverage ratio of trackers.
    apparent_zenith, solar_azimuth : ndarray
        deg.

    Returns
    -------
    surface_tilt, surface_azimuth : ndarray
        deg.
    """
    surface_tilt = np.asarray(tilt, dtype=float).copy()
    surface_azimuth = np.asarray(azimuth, dtype=float).copy()
    tracker = np.asarray(single_axis, dtype=bool)
    if tracker.any():
        t = tracking.singleaxis(apparent_zenith[tracker], solar_azimuth[tracker], axis_tilt=0.0,
                                axis_azimuth=axis_azimuth[tracker],
                                max_angle=(-max_angle[tracker], max_angle[tracker]),
                                backtrack=True, gcr=gcr[tracker])
        down = ~np.isfinite(t["surface_tilt"])
        surface_tilt[tracker] = np.where(down, 0.0, t["surface_tilt"])
        surface_azimuth[tracker] = np.where(down, axis_azimuth[tracker] + 90.0, t["surface_azimuth"])
    return surface_tilt, surface_azimuth


def plane_of_array(surface_tilt, surface_azimuth, apparent_zenith, solar_azimuth, ghi, dni, dhi, dni_extra,
                   airmass_relative):
    """Plane-of-array irradiance (Perez) and the IAM-weighted effective irradiance.

    Parameters
    ----------
    surface_tilt, surface_azimuth, apparent_zenith, solar_azimuth : ndarray
        deg.
    ghi, dni, dhi, dni_extra : ndarray
        W/m^2.
    airmass_relative : ndarray
        Relative (not pressure-corrected) air mass, as Perez expects.

    Returns
    -------
    dict of ndarray
        ``poa_global``, ``poa_direct``, ``poa_diffuse``, ``effective_irradiance``
        (W/m^2) and ``aoi`` (deg).
    """
    poa = irradiance.get_total_irradiance(surface_tilt, surface_azimuth, apparent_zenith, solar_azimuth,
                                          dni, ghi, dhi, dni_extra=dni_extra, airmass=airmass_relative,
                                          albedo=ALBEDO, model="perez")
    aoi = irradiance.aoi(surface_tilt, surface_azimuth, apparent_zenith, solar_azimuth)
    direct = np.nan_to_num(np.asarray(poa["poa_direct"], dtype=float), nan=0.0)
    diffuse = np.nan_to_num(np.asarray(poa["poa_diffuse"], dtype=float), nan=0.0)
    effective = direct * np.nan_to_num(iam.physical(aoi), nan=0.0) + diffuse
    return {"poa_global": direct + diffuse, "poa_direct": direct, "poa_diffuse": diffuse,
            "effective_irradiance": np.maximum(effective, 0.0), "aoi": np.asarray(aoi, dtype=float)}


def cell_temperature(poa_global, temp_air, wind_speed, u0, u1):
    """Faiman cell temperature, degC (``pvlib.temperature.faiman``)."""
    return np.asarray(temperature.faiman(poa_global, temp_air, wind_speed, u0, u1), dtype=float)


def ac_power(effective_irradiance, temp_cell, capacity_dc_kw, capacity_ac_kw, gamma_pdc, losses_pct):
    """PVWatts DC, system losses and inverter, kW.

    Parameters
    ----------
    effective_irradiance : ndarray
        W/m^2.
    temp_cell : ndarray
        degC.
    capacity_dc_kw, capacity_ac_kw : ndarray
        kW, nameplate DC (``pdc0``) and AC limit.
    gamma_pdc : ndarray
        1/degC.
    losses_pct : ndarray
        %, DC system losses (soiling, wiring, mismatch, ...).

    Returns
    -------
    ndarray
        AC power, kW, in [0, capacity_ac_kw]: ``pvlib.inverter.pvwatts``
        with ``pdc0 = capacity_ac_kw / eta_inv_nom`` clips at the AC capacity.
    """
    pdc = pvsystem.pvwatts_dc(effective_irradiance, temp_cell, capacity_dc_kw, gamma_pdc)
    pdc = np.asarray(pdc, dtype=float) * (1.0 - np.asarray(losses_pct) / 100.0)
    pac = inverter.pvwatts(pdc, capacity_ac_kw / ETA_INV_NOM, eta_inv_nom=ETA_INV_NOM)
    return np.clip(np.asarray(pac, dtype=float), 0.0, capacity_ac_kw)

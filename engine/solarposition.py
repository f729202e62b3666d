"""Solar position for many sites at once (NREL SPA, split into time and site parts).

pvlib's ``solarposition.spa_python`` takes one latitude/longitude per call.
The SPA algorithm [1]_ splits cleanly: everything up to the geocentric sun
right ascension/declination, sidereal time and equation of time depends on
the time only; the rest (hour angle, parallax, refraction) is elementwise in
the site. :func:`spa_time_terms` computes the first part once per distinct
timestamp with pvlib's own ``pvlib.spa`` functions, :func:`solar_position`
the second part on flat (site, timestamp) arrays, so 10,000 sites x 192
steps cost one SPA evaluation per step plus cheap elementwise work. Results
equal ``pvlib.solarposition.get_solarposition(method='nrel_numpy',
delta_t=None)`` per site.

References
----------
.. [1] I. Reda and A. Andreas, Solar position algorithm for solar radiation
   applications. Solar Energy, vol. 76, no. 5, pp. 577-589, 2004.
"""

import numpy as np
import pandas as pd
from pvlib import atmosphere, spa

ATMOS_REFRACT = 0.5667  # deg, apparent sun radius + refraction at the horizon (pvlib default)
TEMPERATURE = 12.0  # degC, annual mean air temperature for refraction (pvlib default)


def unixtime(times):
    """Seconds since 1970-01-01 UTC of a tz-aware DatetimeIndex, float64."""
    times = pd.DatetimeIndex(times)
    if times.tz is None:
        raise ValueError("times must be tz-aware (UTC)")
    return times.tz_convert("UTC").as_unit("ns").asi8 / 1e9


def spa_time_terms(times):
    """Site-independent SPA quantities, one value per timestamp.

    Parameters
    ----------
    times : DatetimeIndex
        tz-aware.

    Returns
    -------
    dict of ndarray
        ``v`` apparent sidereal time (deg), ``alpha`` geocentric sun right
        ascension (deg), ``delta`` geocentric sun declination (deg), ``xi``
        equatorial horizontal parallax (deg), ``eot`` equation of time (min).
    """
    times = pd.DatetimeIndex(times).tz_convert("UTC")
    ut = unixtime(times)
    delta_t = spa.calculate_deltat(times.year.to_numpy(), times.month.to_numpy())
    jd = spa.julian_day(ut)
    jde = spa.julian_ephemeris_day(jd, delta_t)
    jc = spa.julian_century(jd)
    jce = spa.julian_ephemeris_century(jde)
    jme = spa.julian_ephemeris_millennium(jce)
    radius = spa.heliocentric_radius_vector(jme)
    theta = spa.geocentric_longitude(spa.heliocentric_longitude(jme))
    beta = spa.geocentric_latitude(spa.heliocentric_latitude(jme))
    x = [spa.mean_elongation(jce), spa.mean_anomaly_sun(jce), spa.mean_anomaly_moon(jce),
         spa.moon_argument_latitude(jce), spa.moon_ascending_longitude(jce)]
    nutation = np.empty((2, len(ut)))
    spa.longitude_obliquity_nutation(jce, *x, nutation)
    delta_psi, delta_epsilon = nutation
    epsilon = spa.true_ecliptic_obliquity(spa.mean_ecliptic_obliquity(jme), delta_epsilon)
    lamd = spa.apparent_sun_longitude(theta, delta_psi, spa.aberration_correction(radius))
    v = spa.apparent_sidereal_time(spa.mean_sidereal_time(jd, jc), delta_psi, epsilon)
    alpha = spa.geocentric_sun_right_ascension(lamd, epsilon, beta)
    delta = spa.geocentric_sun_declination(lamd, epsilon, beta)
    eot = spa.equation_of_time(spa.sun_mean_longitude(jme), alpha, delta_psi, epsilon)
    return {"v": v, "alpha": alpha, "delta": delta, "xi": spa.equatorial_horizontal_parallax(radius),
            "eot": eot}


def solar_position(terms, latitude, longitude, altitude):
    """Topocentric solar position on flat (site, timestamp) arrays.

    Parameters
    ----------
    terms : dict of ndarray
        :func:`spa_time_terms`, already gathered to the flat layout (one value
        per element).
    latitude, longitude : ndarray
        deg, one value per element.
    altitude : ndarray
        m above sea level; pressure is ``pvlib.atmosphere.alt2pres(altitude)``.

    Returns
    -------
    dict of ndarray
        ``apparent_zenith``, ``zenith``, ``apparent_elevation``, ``elevation``,
        ``azimuth`` (deg), ``equation_of_time`` (min), ``pressure`` (Pa).
    """
    pressure = atmosphere.alt2pres(altitude)
    hour_angle = spa.local_hour_angle(terms["v"], longitude, terms["alpha"])
    u = spa.uterm(latitude)
    x = spa.xterm(u, latitude, altitude)
    y = spa.yterm(u, latitude, altitude)
    delta_alpha = spa.parallax_sun_right_ascension(x, terms["xi"], hour_angle, terms["delta"])
    delta_prime = spa.topocentric_sun_declination(terms["delta"], x, y, terms["xi"], delta_alpha, hour_angle)
    h_prime = spa.topocentric_local_hour_angle(hour_angle, delta_alpha)
    e0 = spa.topocentric_elevation_angle_without_atmosphere(latitude, delta_prime, h_prime)
    delta_e = spa.atmospheric_refraction_correction(pressure / 100.0, TEMPERATURE, e0, ATMOS_REFRACT)
    e = spa.topocentric_elevation_angle(e0, delta_e)
    gamma = spa.topocentric_astronomers_azimuth(h_prime, delta_prime, latitude)
    return {"apparent_zenith": 90.0 - e, "zenith": 90.0 - e0, "apparent_elevation": e, "elevation": e0,
            "azimuth": spa.topocentric_azimuth_angle(gamma), "equation_of_time": terms["eot"],
            "pressure": pressure}


def solar_position_flat(times, inverse, latitude, longitude, altitude):
    """Solar position of elements whose timestamp is ``times[inverse]``.

    Parameters
    ----------
    times : DatetimeIndex
        Distinct timestamps (tz-aware); the time terms are computed once each.
    inverse : ndarray of int
        Index into ``times`` of every element.
    latitude, longitude, altitude : ndarray
        deg, deg, m; one value per element.

    Returns
    -------
    dict of ndarray
        As :func:`solar_position`.
    """
    terms = {k: v[inverse] for k, v in spa_time_terms(times).items()}
    return solar_position(terms, latitude, longitude, altitude)

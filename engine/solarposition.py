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

import functools

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

    The terms of the last :data:`TIME_TERMS_CACHED` distinct ``times`` are
    kept (:func:`time_terms_of`): every pass of a service at one issue time
    evaluates the same forecast grid and weather instants (a single plant's
    pass spent a quarter of its features' CPU here). The arrays are read-only.

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
    ns = pd.DatetimeIndex(times).tz_convert("UTC").as_unit("ns").asi8
    return dict(time_terms_of(ns.tobytes()))


#: Distinct timestamp arrays whose :func:`spa_time_terms` are kept (a few kB each for a 48 h grid).
TIME_TERMS_CACHED = 64


@functools.lru_cache(maxsize=TIME_TERMS_CACHED)
def time_terms_of(ns_bytes):
    """:func:`spa_time_terms` of UTC timestamps given as the bytes of their int64 nanoseconds (the cache key)."""
    times = pd.DatetimeIndex(pd.to_datetime(np.frombuffer(ns_bytes, dtype="int64"), unit="ns", utc=True))
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
    terms = {"v": v, "alpha": alpha, "delta": delta, "xi": spa.equatorial_horizontal_parallax(radius), "eot": eot}
    for values in terms.values():
        values.flags.writeable = False  # shared by every caller of the cached times
    return terms


def site_terms(latitude, altitude):
    """Time-independent SPA quantities, one value per site.

    Parameters
    ----------
    latitude : ndarray
        deg.
    altitude : ndarray
        m above sea level.

    Returns
    -------
    dict of ndarray
        ``latitude`` (deg), ``x``, ``y`` (SPA x and y terms, [1]_ eq. 38-40),
        ``sin_lat``, ``cos_lat`` (of the latitude), ``pressure`` (Pa,
        ``pvlib.atmosphere.alt2pres(altitude)``).
    """
    latitude, altitude = np.asarray(latitude, dtype=float), np.asarray(altitude, dtype=float)
    u = spa.uterm(latitude)
    lat_rad = np.radians(latitude)
    return {"latitude": latitude, "x": spa.xterm(u, latitude, altitude), "y": spa.yterm(u, latitude, altitude),
            "sin_lat": np.sin(lat_rad), "cos_lat": np.cos(lat_rad), "pressure": atmosphere.alt2pres(altitude)}


def solar_position(terms, inverse, sites, site_index, longitude):
    """Topocentric solar position on flat (site, timestamp) arrays.

    The formulas and their order of operations are those of ``pvlib.spa``
    (``local_hour_angle`` .. ``topocentric_azimuth_angle``, [1]_ eq. 32-45),
    so every value equals pvlib's bit for bit; a sine or cosine that pvlib
    evaluates more than once per element is evaluated once here, per timestamp
    when it depends on the time only, per site when on the site only.

    Parameters
    ----------
    terms : dict of ndarray
        :func:`spa_time_terms`, one value per distinct timestamp.
    inverse : ndarray of int
        Timestamp of each element (index into ``terms``).
    sites : dict of ndarray
        :func:`site_terms`, one value per site.
    site_index : ndarray of int
        Site of each element (index into ``sites``).
    longitude : ndarray
        deg, one value per element.

    Returns
    -------
    dict of ndarray
        ``apparent_zenith``, ``zenith``, ``apparent_elevation``, ``elevation``,
        ``azimuth`` (deg), ``equation_of_time`` (min), ``pressure`` (Pa).
    """
    xi_rad, delta_rad = np.radians(terms["xi"]), np.radians(terms["delta"])
    sin_xi, sin_delta, cos_delta = np.sin(xi_rad)[inverse], np.sin(delta_rad)[inverse], np.cos(delta_rad)[inverse]
    x, y = sites["x"][site_index], sites["y"][site_index]
    sin_lat, cos_lat = sites["sin_lat"][site_index], sites["cos_lat"][site_index]
    # local_hour_angle
    hour_angle = terms["v"][inverse] + longitude
    hour_angle -= terms["alpha"][inverse]
    hour_angle %= 360
    h_rad = np.radians(hour_angle)
    cos_h = np.cos(h_rad)
    x_sin_xi = -x * sin_xi
    # parallax_sun_right_ascension
    num = x_sin_xi * np.sin(h_rad)
    x_sin_xi = x * sin_xi
    denom = cos_delta - x_sin_xi * cos_h
    delta_alpha = np.degrees(np.arctan2(num, denom))
    # topocentric_sun_declination
    num = (sin_delta - y * sin_xi) * np.cos(np.radians(delta_alpha))
    delta_prime = np.degrees(np.arctan2(num, denom))
    del num, denom, x_sin_xi, cos_h, h_rad
    # topocentric_local_hour_angle, topocentric_elevation_angle_without_atmosphere
    h_prime = hour_angle - delta_alpha
    del hour_angle, delta_alpha
    h_prime_rad = np.radians(h_prime)
    cos_h_prime = np.cos(h_prime_rad)
    dp_rad = np.radians(delta_prime)
    e0 = np.degrees(np.arcsin(sin_lat * np.sin(dp_rad) + cos_lat * np.cos(dp_rad) * cos_h_prime))
    # atmospheric_refraction_correction (pvlib.spa's expression, bit for bit)
    pressure = sites["pressure"][site_index]
    delta_e = spa.atmospheric_refraction_correction(pressure / 100.0, TEMPERATURE, e0, ATMOS_REFRACT)
    e = e0 + delta_e
    del delta_e
    # topocentric_astronomers_azimuth, topocentric_azimuth_angle
    gamma = np.degrees(np.arctan2(np.sin(h_prime_rad), cos_h_prime * sin_lat - np.tan(dp_rad) * cos_lat)) % 360
    return {"apparent_zenith": 90.0 - e, "zenith": 90.0 - e0, "apparent_elevation": e, "elevation": e0,
            "azimuth": (gamma + 180) % 360, "equation_of_time": terms["eot"][inverse], "pressure": pressure}


def solar_position_flat(times, inverse, sites, site_index, longitude):
    """Solar position of elements whose timestamp is ``times[inverse]``.

    Parameters
    ----------
    times : DatetimeIndex
        Distinct timestamps (tz-aware); the time terms are computed once each.
    inverse : ndarray of int
        Index into ``times`` of every element.
    sites : dict of ndarray
        :func:`site_terms`, one value per site.
    site_index : ndarray of int
        Site of each element.
    longitude : ndarray
        deg, one value per element.

    Returns
    -------
    dict of ndarray
        As :func:`solar_position`.
    """
    return solar_position(spa_time_terms(times), inverse, sites, site_index, longitude)

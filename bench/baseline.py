"""The straightforward way to forecast a fleet: a Python loop over plants (the benchmark's baseline).

Per plant, in one process: its weather read from the database (one query), a pvlib
``ModelChain`` with PVWatts models (fixed mounts or single-axis trackers, one ``Array``
per plane, DNI zeroed below its horizon profile as in pvlib's example) on that weather
resampled naively to 15 min (values placed at their labels, period averages NOT
shifted to mid-period, linear interpolation in time; missing DNI/DHI from Erbs), the
model features of that ONE plant (``engine.features.feature_frame``, the serving frame as the service), one CatBoost
predict (``engine.forecast.forecast_quantiles`` on that plant), and its rows stored
with a run ``INSERT ... RETURNING`` and an ``executemany`` of one ``INSERT`` per row.
"""

import time

import numpy as np
import pandas as pd
import pvlib
from pvlib.modelchain import ModelChain
from pvlib.pvsystem import Array, FixedMount, PVSystem, SingleAxisTrackerMount

from engine import forecast, store
from engine.features import feature_frame

STAGES = ("read_s", "modelchain_s", "features_s", "predict_s", "insert_s")


def modelchain_ac(plant, weather, times, plane_rows=None, skyline=None):
    """AC power, W, of one plant by pvlib ModelChain (PVWatts DC/AC, Faiman temperature).

    ``plane_rows`` (the plant's rows of the planes frame; none: its own
    columns) become one ``Array`` each, summed by the PVWatts inverter; a
    ``skyline`` (its horizon rows) zeroes DNI while the sun is below it, as
    pvlib's horizon example does.
    """
    location = pvlib.location.Location(plant["latitude"], plant["longitude"], tz="UTC", altitude=plant["altitude"])
    specs = [plant] if plane_rows is None or not len(plane_rows) else [
        {**plant, **{k: v for k, v in row.items() if not (isinstance(v, float) and np.isnan(v))}}
        for row in plane_rows.to_dict(orient="records")]
    arrays = []
    for spec in specs:
        if spec["tracking"] == "SINGLE_AXIS":
            mount = SingleAxisTrackerMount(axis_azimuth=spec["axis_azimuth"], max_angle=spec["max_angle"],
                                           gcr=spec["gcr"], backtrack=bool(spec.get("backtrack", True)))
        else:
            mount = FixedMount(surface_tilt=spec["tilt"], surface_azimuth=spec["azimuth"])
        arrays.append(Array(mount, module_parameters={"pdc0": spec["capacity_dc_kw"] * 1000.0,
                                                      "gamma_pdc": spec["gamma_pdc"]},
                            temperature_model_parameters={"u0": spec["temp_model_u0"], "u1": spec["temp_model_u1"]}))
    system = PVSystem(arrays=arrays, inverter_parameters={"pdc0": plant["capacity_ac_kw"] * 1000.0})
    mc = ModelChain(system, location, dc_model="pvwatts", ac_model="pvwatts", aoi_model="physical",
                    spectral_model="no_loss", temperature_model="faiman", losses_model="no_loss")
    w = weather.set_index("valid_time")[["ghi", "dni", "dhi", "temp_air", "wind_speed"]]
    grid = w.index.union(times)
    w = w.reindex(grid).interpolate(method="time").reindex(times)
    missing = w["dni"].isna() | w["dhi"].isna()
    sun = location.get_solarposition(times) if missing.any() or skyline is not None else None
    if missing.any():
        erbs = pvlib.irradiance.erbs(w["ghi"], sun["apparent_zenith"], times)
        w.loc[missing, "dni"] = erbs["dni"][missing]
        w.loc[missing, "dhi"] = erbs["dhi"][missing]
    if skyline is not None and len(skyline):
        below = sun["apparent_elevation"] < np.interp(sun["azimuth"], skyline["azimuth"], skyline["elevation"],
                                                      period=360.0)
        w.loc[below, "dni"] = 0.0
    w = w.fillna(0.0)
    mc.run_model(tuple(w for _ in arrays))
    return np.asarray(mc.results.ac, dtype=float)


async def run(conn, locations, model, times, issue, margin_minutes, planes=None, horizon=None):
    """Forecast every plant of ``locations`` one after another; seconds by stage.

    Parameters
    ----------
    conn : asyncpg.Connection
    locations : DataFrame
        From ``store.fetch_locations`` (ids present).
    planes, horizon : DataFrame, optional
        Their planes and horizon frames (``store.fetch_plants``).
    model : dict
        ``engine.modelio.load_model`` result.
    times : DatetimeIndex
        Forecast grid.
    issue : Timestamp
        Issue time of the runs (a new one: these runs are inserted, not upserted).
    margin_minutes : int
        Weather read margin around the grid (the service's setting).

    Returns
    -------
    dict
        Seconds per stage (:data:`STAGES`), ``rows`` inserted and ``run_ids``.
    """
    margin = pd.Timedelta(minutes=margin_minutes)
    horizon_hours = int(len(times) * (times[1] - times[0]) / pd.Timedelta(hours=1))
    spent = dict.fromkeys(STAGES, 0.0)
    rows_written, run_ids = 0, []
    for _, plant in locations.iterrows():  # the baseline: one plant at a time
        one = locations[locations["location_id"] == plant["location_id"]]
        t0 = time.perf_counter()
        weather = await store.read_weather(conn, [int(plant["location_id"])], times[0] - margin, times[-1] + margin,
                                           issue)
        t1 = time.perf_counter()
        own = {name: None if rows is None else rows[rows["location_id"] == plant["location_id"]]
               for name, rows in (("planes", planes), ("horizon", horizon))}
        modelchain_ac(plant, weather, times, own["planes"], own["horizon"])
        t2 = time.perf_counter()
        feats = feature_frame(one, weather, times, **own, serving=True)
        t3 = time.perf_counter()
        frame = forecast.forecast_quantiles(feats, one, model, "ml", issue)
        t4 = time.perf_counter()
        run_id = await conn.fetchval(
            "INSERT INTO forecast_runs (location_id, issue_time, model_id, model_version, forecast_type, "
            "resolution_minutes, horizon_hours, n_steps) VALUES ($1, $2, $3, $4, 'ml', 15, $5, $6) RETURNING run_id",
            int(plant["location_id"]), issue.to_pydatetime(), "global", "baseline", horizon_hours, len(times))
        await conn.executemany(
            "INSERT INTO forecasts (run_id, location_id, issue_time, valid_time, p10, p25, p50, p75, p90, "
            "horizon_minutes) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            [(run_id, int(lid), issue.to_pydatetime(), t.to_pydatetime(), *map(float, q), int(h))
             for lid, t, *q, h in frame.itertuples(index=False)])
        t5 = time.perf_counter()
        for stage, seconds in zip(STAGES, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4)):
            spent[stage] += seconds
        rows_written += len(frame)
        run_ids.append(run_id)
    return {**spent, "rows": rows_written, "run_ids": run_ids}

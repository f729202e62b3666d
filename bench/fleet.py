"""A generated plant fleet around the real weather sites pvcast can read offline.

Sites and their records (values unchanged, only relabelled in time where said):

- Golden CO: NSRDB PSM3 from the pvanalytics wheel (``engine.data.load_weather``),
  30-min values instantaneous at their label (period_minutes 0), no DNI/DHI
  (decomposed by the features), wind speed the training config's constant.
- Greensboro NC (723170TYA.CSV) and Sand Point AK (703165TY.csv): pvlib's TMY3
  files (``pvlib.iotools.read_tmy3``), Miami FL (12839.tm2): pvlib's TMY2 file
  (``read_tmy2``). Hourly values of the hour ENDING at the label (period_minutes 60).
  A TMY month comes from some historical year (TMY2: 1961-1990, TMY3: 1976-2005);
  its calendar days are relabelled to the benchmark year (``read_tmy3(coerce_year=)``,
  the TMY2 year column replaced).
"""

import json
import os

import numpy as np
import pandas as pd
import pvlib
import yaml

from engine import data

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TMY_DIR = os.path.join(os.path.dirname(pvlib.__file__), "data")
WEATHER_COLUMNS = ("ghi", "dni", "dhi", "temp_air", "wind_speed", "period_minutes")
SITES = {
    "golden_co_psm3": {"latitude": 39.742, "longitude": -105.1727, "altitude": 1730.0, "timezone": "America/Denver",
                       "record": "NSRDB PSM3 2013 (pvanalytics wheel), 30 min instantaneous"},
    "greensboro_nc_tmy3": {"file": "723170TYA.CSV", "timezone": "America/New_York",
                           "record": "TMY3 723170TYA.CSV (pvlib), hourly, hour-ending"},
    "sand_point_ak_tmy3": {"file": "703165TY.csv", "timezone": "America/Anchorage",
                           "record": "TMY3 703165TY.csv (pvlib), hourly, hour-ending"},
    "miami_fl_tmy2": {"file": "12839.tm2", "timezone": "America/New_York",
                      "record": "TMY2 12839.tm2 (pvlib), hourly, hour-ending"},
}


def site_weather(name, start, end):
    """Weather of one site over [start, end] (UTC): a frame indexed by valid_time, pvlib names."""
    site = SITES[name]
    if "file" not in site:
        training = yaml.safe_load(open(os.path.join(ROOT, "configs/training.yaml")))
        w = data.load_weather(training, 0).set_index("valid_time")
    elif site["file"].endswith(".tm2"):
        raw, meta = pvlib.iotools.read_tmy2(os.path.join(TMY_DIR, site["file"]))
        # read_tmy2 labels the START of each hour (hour - 1) in local standard time: end label = +1 h
        local = pd.to_datetime({"year": start.year, "month": raw["month"], "day": raw["day"]}) \
            + pd.to_timedelta(raw["hour"], unit="h")
        index = local.dt.tz_localize(f"Etc/GMT{-int(meta['TZ']):+d}").dt.tz_convert("UTC")
        w = pd.DataFrame({"ghi": raw["GHI"].to_numpy(float), "dni": raw["DNI"].to_numpy(float),
                          "dhi": raw["DHI"].to_numpy(float),
                          "temp_air": raw["DryBulb"].to_numpy(float) / 10.0,   # TMY2: tenths of degC
                          "wind_speed": raw["Wspd"].to_numpy(float) / 10.0,    # TMY2: tenths of m/s
                          "period_minutes": 60}, index=pd.DatetimeIndex(index.to_numpy(), tz="UTC"))
    else:
        raw, meta = pvlib.iotools.read_tmy3(os.path.join(TMY_DIR, site["file"]), coerce_year=start.year,
                                            map_variables=True)
        w = raw[["ghi", "dni", "dhi", "temp_air", "wind_speed"]].astype(float).assign(period_minutes=60)
        w.index = w.index.tz_convert("UTC")
    if "file" in site:
        site.update(latitude=float(meta["latitude"]), longitude=float(meta["longitude"]),
                    altitude=float(meta["altitude"]))
    w = w.sort_index()
    w = w[(w.index >= start) & (w.index <= end)]
    w.index.name = "valid_time"
    return w[list(WEATHER_COLUMNS)]


def plants(n, seed, site_names):
    """``n`` plant configurations (locations frame without ids) drawn with ``numpy.random.default_rng(seed)``.

    AC capacity 5 kW .. 50 MW log-uniform, DC/AC 1.0 .. 1.4, fixed tilt 0 .. 40 deg and
    azimuth 90 .. 270 deg, 30 % single-axis trackers (axis azimuth 180, max angle 45 .. 60,
    gcr 0.30 .. 0.45), 15 % with an export limit of 50 .. 90 % of AC, losses 10 .. 16 %,
    within +-0.5 deg of their (uniformly drawn) weather site.
    """
    rng = np.random.default_rng(seed)
    site = rng.integers(0, len(site_names), n)
    meta = pd.DataFrame([SITES[s] for s in site_names]).iloc[site].reset_index(drop=True)
    ac = np.exp(rng.uniform(np.log(5.0), np.log(50_000.0), n))
    tracker = rng.random(n) < 0.3
    export = rng.random(n) < 0.15
    return pd.DataFrame({
        "name": [f"bench fleet {seed} #{i:05d}" for i in range(n)],
        "site": np.asarray(site_names)[site],
        "latitude": meta["latitude"].to_numpy() + rng.uniform(-0.5, 0.5, n),
        "longitude": meta["longitude"].to_numpy() + rng.uniform(-0.5, 0.5, n),
        "altitude": meta["altitude"].to_numpy(), "timezone": meta["timezone"].to_numpy(),
        "capacity_ac_kw": ac, "capacity_dc_kw": ac * rng.uniform(1.0, 1.4, n),
        "export_limit_kw": np.where(export, ac * rng.uniform(0.5, 0.9, n), np.nan),
        "tilt": np.where(tracker, 0.0, rng.uniform(0.0, 40.0, n)),
        "azimuth": np.where(tracker, 180.0, rng.uniform(90.0, 270.0, n)),
        "tracking": np.where(tracker, "SINGLE_AXIS", "FIXED"),
        "axis_azimuth": 180.0, "max_angle": np.where(tracker, rng.uniform(45.0, 60.0, n), 60.0),
        "gcr": np.where(tracker, rng.uniform(0.30, 0.45, n), 0.35),
        "losses_pct": rng.uniform(10.0, 16.0, n),
    })


def location_records(fleet):
    """JSON-ready ``locations`` of ``POST /api/v1/locations`` (export limit null when none)."""
    frame = fleet.drop(columns=["site"]).astype(object)
    return frame.where(frame.notna(), None).to_dict(orient="records")


def row_fragments(weather, issue_time, source):
    """Per site: the JSON text of each weather row after its ``location_id`` (built once, reused per plant)."""
    issue = pd.Timestamp(issue_time).isoformat()
    out = []
    for t, row in weather.iterrows():
        values = {k: (None if pd.isna(row[k]) else float(row[k])) for k in WEATHER_COLUMNS[:-1]}
        body = json.dumps({"valid_time": t.isoformat(), "issue_time": issue, "source": source, **values,
                           "period_minutes": int(row["period_minutes"])}, separators=(",", ":"))
        out.append(body[1:])
    return out


def weather_bodies(location_ids, sites, fragments, max_bytes, max_rows):
    """Request bodies of ``POST /api/v1/weather`` (bytes), each under ``max_bytes`` and ``max_rows``.

    Parameters
    ----------
    location_ids, sites : sequences
        Plant ids and their site names.
    fragments : dict
        Site name -> list of row fragments (:func:`row_fragments`).
    """
    bodies, rows, size = [], [], 16
    for lid, site in zip(location_ids, sites):
        plant = [f'{{"location_id":{int(lid)},{f}' for f in fragments[site]]
        plant_size = sum(len(r) + 1 for r in plant)
        if rows and (size + plant_size > max_bytes or len(rows) + len(plant) > max_rows):
            bodies.append(('{"rows":[' + ",".join(rows) + "]}").encode())
            rows, size = [], 16
        rows.extend(plant)
        size += plant_size
    if rows:
        bodies.append(('{"rows":[' + ",".join(rows) + "]}").encode())
    return bodies

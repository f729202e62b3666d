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


def multi_plane(fleet, seed, share_two=0.25, share_three=0.10, share_two_fields=0.10):
    """Planes frame (keyed by ``name``) splitting some plants of ``fleet`` into 2 or 3 planes.

    Drawn with ``numpy.random.default_rng(seed)``, independent of the plants'
    own draws (the one-plane fleet is unchanged). Of the FIXED plants,
    ``share_two`` become east/west roofs (azimuths 90 +- 15 and opposite,
    tilt 10 .. 25 deg, DC split 40 .. 60 %) and ``share_three`` roofs of three
    faces (south-ish + east + west, tilt 15 .. 35, DC shares 40-60 / rest
    halved, own losses on the third face); of the trackers,
    ``share_two_fields`` are two fields with axes 0 .. 20 deg apart (the
    second without backtracking). The plant's total DC and its AC limit are
    unchanged.

    Returns
    -------
    planes : DataFrame
        Planes frame keyed by ``name`` (:data:`engine.validation.PLANE_COLUMNS`).
    fleet : DataFrame
        ``fleet`` with the plane summary of its multi-plane plants
        (``engine.planes.summarise``).
    """
    from engine.planes import SUMMARY_COLUMNS, summarise  # here: the one-plane fleet builds on trees without planes
    rng = np.random.default_rng([seed, 2])
    n = len(fleet)
    fixed = fleet["tracking"].to_numpy() == "FIXED"
    draw = rng.random(n)
    two = fixed & (draw < share_two)
    three = fixed & (draw >= share_two) & (draw < share_two + share_three)
    fields = ~fixed & (draw < share_two_fields)
    dc = fleet["capacity_dc_kw"].to_numpy()
    tilt = rng.uniform(10.0, 25.0, n)
    east = rng.uniform(75.0, 105.0, n)
    split = rng.uniform(0.4, 0.6, n)
    axis = fleet["axis_azimuth"].to_numpy() + rng.uniform(0.0, 20.0, n)
    base = {"tracking": "FIXED", "axis_azimuth": 180.0, "max_angle": 60.0, "gcr": 0.35, "backtrack": True,
            "losses_pct": np.nan, "gamma_pdc": np.nan, "temp_model_u0": np.nan, "temp_model_u1": np.nan}
    parts = []

    def add(mask, plane, **columns):
        values = {k: (v[mask] if isinstance(v, np.ndarray) else v) for k, v in {**base, **columns}.items()}
        parts.append(pd.DataFrame({"name": fleet["name"].to_numpy()[mask], "plane": plane, **values}))

    add(two, 0, tilt=tilt, azimuth=east, capacity_dc_kw=dc * split)
    add(two, 1, tilt=tilt, azimuth=east + 180.0, capacity_dc_kw=dc * (1 - split))
    add(three, 0, tilt=tilt + 10.0, azimuth=east + 90.0, capacity_dc_kw=dc * split)
    add(three, 1, tilt=tilt + 10.0, azimuth=east, capacity_dc_kw=dc * (1 - split) / 2)
    add(three, 2, tilt=tilt + 10.0, azimuth=east + 180.0, capacity_dc_kw=dc * (1 - split) / 2, losses_pct=18.0)
    tracker = {"tilt": 0.0, "azimuth": 180.0, "tracking": "SINGLE_AXIS", "max_angle": fleet["max_angle"].to_numpy(),
               "gcr": fleet["gcr"].to_numpy()}
    add(fields, 0, **tracker, axis_azimuth=fleet["axis_azimuth"].to_numpy(), capacity_dc_kw=dc * split)
    add(fields, 1, **tracker, axis_azimuth=axis, capacity_dc_kw=dc * (1 - split), backtrack=False)
    planes = pd.concat(parts, ignore_index=True).sort_values(["name", "plane"], kind="stable").reset_index(drop=True)
    multi = fleet["name"].isin(planes["name"]).to_numpy()
    blank = fleet.copy()
    for column in SUMMARY_COLUMNS:
        blank[column] = blank[column].astype(object).where(~multi, None)
    return planes, summarise(blank, planes)


def skylines(fleet, seed, share=0.2):
    """Horizon frame (keyed by ``name``) of a share of the plants: skylines of differing length and shape.

    Drawn with ``numpy.random.default_rng([seed, 3])``. A third of the
    profiles has PVGIS's 7.5 deg spacing, a third a phone app's 5 deg, a
    third a survey's 6 .. 24 irregular points; each skyline is 0 .. 3 deg of
    haze plus 1 .. 3 hills or buildings (5 .. 25 deg high, 15 .. 60 deg wide).
    """
    rng = np.random.default_rng([seed, 3])
    names = fleet["name"].to_numpy()[rng.random(len(fleet)) < share]
    kind = rng.integers(0, 3, len(names))
    counts = np.where(kind == 0, 48, np.where(kind == 1, 72, rng.integers(6, 25, len(names))))
    profile = np.repeat(np.arange(len(names)), counts)
    rank = np.arange(len(profile)) - np.repeat(np.cumsum(counts) - counts, counts)
    regular = rank * 360.0 / np.repeat(counts, counts)
    irregular = rng.uniform(0.0, 360.0, len(profile))
    irregular = irregular[np.lexsort((irregular, profile))]  # increasing within each profile
    azimuth = np.where(np.repeat(kind, counts) == 2, np.floor(irregular * 10.0) / 10.0, regular)
    hills = rng.integers(1, 4, len(names))
    elevation = np.repeat(rng.uniform(0.0, 3.0, len(names)), counts)
    for k in range(3):  # at most three hills per skyline, vectorised over all profiles
        on = np.repeat(hills > k, counts)
        centre = np.repeat(rng.uniform(0.0, 360.0, len(names)), counts)
        height = np.repeat(rng.uniform(5.0, 25.0, len(names)), counts)
        width = np.repeat(rng.uniform(15.0, 60.0, len(names)), counts)
        distance = np.abs((azimuth - centre + 180.0) % 360.0 - 180.0)
        elevation = elevation + np.where(on, height * np.exp(-0.5 * (distance / (width / 2.0)) ** 2), 0.0)
    frame = pd.DataFrame({"name": names[profile], "azimuth": azimuth, "elevation": np.minimum(elevation, 85.0)})
    return frame.drop_duplicates(["name", "azimuth"]).reset_index(drop=True)


def location_records(fleet, planes=None, horizon=None):
    """JSON-ready ``locations`` of ``POST /api/v1/locations`` (export limit null when none).

    With ``planes``/``horizon`` (frames keyed by ``name``) a plant gets
    ``planes: [{tilt, azimuth, capacity_dc_kw, tracking, ...}]`` (and none of
    the plane summary fields) and ``horizon: {azimuth: [...], elevation:
    [...]}``, the shape proposed for the API (docs/ARCHITECTURE.md).
    """
    frame = fleet.drop(columns=["site"]).astype(object)
    records = frame.where(frame.notna(), None).to_dict(orient="records")
    if planes is not None and len(planes):
        from engine.planes import SUMMARY_COLUMNS  # here: one-plane records build on trees without planes
        rows = planes.astype(object).where(planes.notna(), None)
        nested = {name: group.drop(columns=["name", "plane"]).to_dict(orient="records")
                  for name, group in rows.groupby("name", sort=False)}
        for r in records:
            if r["name"] in nested:
                for column in SUMMARY_COLUMNS:
                    r.pop(column, None)
                r["planes"] = nested[r["name"]]
    if horizon is not None and len(horizon):
        profiles = {name: {"azimuth": g["azimuth"].tolist(), "elevation": g["elevation"].tolist()}
                    for name, g in horizon.groupby("name", sort=False)}
        for r in records:
            if r["name"] in profiles:
                r["horizon"] = profiles[r["name"]]
    return records


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

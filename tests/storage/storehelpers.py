"""Helpers of the storage tests: real plants, real PSM3 weather, forecasts derived from it."""

import asyncio
import json
from pathlib import Path

import asyncpg
import numpy as np
import pandas as pd
import yaml

from engine import data, planes, validation
from engine.quantiles import QUANTILE_COLUMNS

ROOT = Path(__file__).resolve().parents[2]
TRAINING = yaml.safe_load((ROOT / "configs/training.yaml").read_text())
DEFAULTS = yaml.safe_load((ROOT / "configs/service.yaml").read_text())["location_defaults"]
WINDOW = (pd.Timestamp("2013-07-01T00:00:00Z"), pd.Timestamp("2013-07-04T00:00:00Z"))
ISSUE = pd.Timestamp("2013-07-01T06:00:00Z")
FACTORS = (0.6, 0.8, 1.0, 1.1, 1.2)  # p10..p90 as multiples of the scaled GHI (p50)


PLANE_DEFAULTS = {**{k: DEFAULTS[k] for k in ("tracking", "axis_azimuth", "max_angle", "gcr")}, "backtrack": True,
                  **{k: np.nan for k in validation.PLANE_INHERITED}}


def demo_frames(suffix=""):
    """configs/demo_plants.yaml ``plants``: locations, planes, horizon keyed by name.

    Service defaults filled (planes: the location defaults of their geometry,
    backtracking on, losses and temperature model inherited), SERF East
    capacity from the card, the plane summary of multi-plane plants derived.
    """
    card = json.loads((ROOT / "models/global.json").read_text())
    rows, plane_rows, horizon_rows = [], [], []
    demo = yaml.safe_load((ROOT / "configs/demo_plants.yaml").read_text())
    for plant in demo["plants"]:
        if plant.pop("capacity_from_model_card", False):
            plant.update({k: card["capacity"][k] for k in ("capacity_ac_kw", "capacity_dc_kw")})
        name = plant["name"] + suffix
        plane_rows += [{"name": name, "plane": k, **PLANE_DEFAULTS, **p} for k, p in enumerate(plant.pop("planes", []))]
        skyline = plant.pop("horizon", None)
        if skyline:
            horizon_rows.append(pd.DataFrame({"name": name, **skyline}))
        defaults = {k: v for k, v in DEFAULTS.items() if not (plane_rows and plane_rows[-1]["name"] == name
                                                              and k in planes.SUMMARY_COLUMNS)}
        rows.append({**defaults, **plant, "name": name})
    frame = pd.DataFrame(rows)
    frame["export_limit_kw"] = frame["export_limit_kw"].astype("float64")
    plane_frame = pd.DataFrame(plane_rows)
    return (planes.summarise(frame, plane_frame), plane_frame,
            pd.concat(horizon_rows, ignore_index=True) if horizon_rows else None)


def demo_locations(suffix=""):
    """configs/demo_plants.yaml as a locations frame (multi-plane plants summarised from their planes)."""
    return demo_frames(suffix)[0]


def real_weather(location_id, start=WINDOW[0], end=WINDOW[1]):
    """NSRDB PSM3 rows of SERF East (pvanalytics wheel) for one location id, weather frame."""
    w = data.load_weather(TRAINING, location_id).drop(columns=["ghi_clear"])
    return w[(w["valid_time"] >= start) & (w["valid_time"] <= end)].reset_index(drop=True)


def forecast_of(locations, issue=ISSUE, steps=192, scale=1.0, model_version="test@0", forecast_type="ml"):
    """Runs + forecast frames whose values come from the real PSM3 GHI (not a model).

    P50 = capacity_ac_kw x GHI / 1000 W/m^2 x ``scale`` at each 15-min step
    (GHI interpolated between the 30-min PSM3 instants), the other quantiles
    fixed multiples of it, all clipped to the capacity.
    """
    times = pd.date_range(issue + pd.Timedelta(minutes=15), periods=steps, freq="15min")
    ghi = data.weather_at(data.load_weather(TRAINING, 0), times, "ghi")
    ids = locations["location_id"].to_numpy("int64")
    cap = np.repeat(locations["capacity_ac_kw"].to_numpy(float), steps)
    p50 = np.tile(ghi / 1000.0 * scale, len(ids)) * cap
    forecast = pd.DataFrame({"location_id": np.repeat(ids, steps), "valid_time": np.tile(times, len(ids)),
                             **{q: np.minimum(p50 * f, cap) for q, f in zip(QUANTILE_COLUMNS, FACTORS)},
                             "horizon_minutes": np.tile(np.arange(1, steps + 1) * 15, len(ids))})
    runs = pd.DataFrame({"location_id": ids, "issue_time": issue, "model_id": "global",
                         "model_version": model_version, "forecast_type": forecast_type, "resolution_minutes": 15,
                         "horizon_hours": steps // 4, "task_id": None, "timings": [{"predict_s": 0.1}] * len(ids)})
    return runs, forecast


def run(url, fn):
    """``await fn(conn)`` on a new connection to ``url`` (tests are sync; no pytest-asyncio)."""
    async def go():
        conn = await asyncpg.connect(url)
        try:
            return await fn(conn)
        finally:
            await conn.close()
    return asyncio.run(go())


def fresh_database(server_url, prefix):
    """Create an empty database on the server of ``server_url``; returns its URL."""
    import uuid
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    run(server_url, lambda conn: conn.execute(f"CREATE DATABASE {name}"))
    return server_url.rsplit("/", 1)[0] + "/" + name


def drop_database(url):
    name = url.rsplit("/", 1)[1]
    run(url.rsplit("/", 1)[0] + "/postgres", lambda conn: conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


def migrated_before(server_url, tmp_path, first_missing, prefix):
    """A fresh database migrated with the files named before ``first_missing`` (e.g. ``"0016"``); returns its URL.

    The later migrations are then applied by ``schema.apply_migrations`` as on an existing database.
    """
    from engine import schema
    url = fresh_database(server_url, prefix)
    for path in schema.migration_files():
        if path.name < first_missing:
            (tmp_path / path.name).write_text(path.read_text())
    run(url, lambda conn: schema.apply_migrations(conn, tmp_path))
    return url

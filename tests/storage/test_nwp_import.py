"""Importing real NWP files into a scratch database on the project's TimescaleDB: through the CLI,
idempotent, all or nothing, and a forecast from the imported weather that holds every invariant."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from engine import features, forecast, modelio, nwp, schema, store, weatherimport

from nwphelpers import GEFS_2019, NETCDF, RAP_GRIB, RAP_NC, grid_centre, require_samples
from storehelpers import ROOT, demo_locations, drop_database, fresh_database, run

SETTINGS = yaml.safe_load((ROOT / "configs/service.yaml").read_text())
ISSUE = pd.Timestamp("2019-05-15T00:00:00Z")


@pytest.fixture(scope="module")
def nwp_db(server_url):
    """A fresh migrated database of this module (imports may cover every plant in it)."""
    require_samples()
    url = fresh_database(server_url, "pvcast_nwp")
    run(url, schema.apply_migrations)
    yield url
    drop_database(url)


@pytest.fixture(scope="module")
def sites(nwp_db):
    """The demo plants (real configuration; outside every sample grid) and one plant at the centre of
    each sample grid (the SERF East configuration placed there). Returns {name: location_id}."""
    demo = demo_locations()
    template = demo.iloc[[0]]
    placed = []
    for source, path in NETCDF.items():
        lat, lon = grid_centre(path)
        placed.append(template.assign(name=f"tucson-{source}", latitude=lat, longitude=lon, timezone="America/Phoenix"))
    frame = pd.concat([demo, *placed], ignore_index=True)
    stored = run(nwp_db, lambda conn: store.upsert_locations(conn, frame))
    return dict(zip(stored["name"], stored["location_id"].astype(int)))


def cli(db_url, *args):
    env = dict(os.environ, PVCAST_DATABASE_URL=db_url)
    return subprocess.run([str(Path(sys.executable).parent / "pvcast"), "weather", "import", *map(str, args)],
                          cwd=ROOT, capture_output=True, text=True, env=env, check=False)


def stored(db_url, source=None):
    query = ("SELECT location_id, valid_time, issue_time, source, ghi, dni, dhi, temp_air, wind_speed, cloud_cover, "
             "period_minutes, ingested_at FROM weather WHERE $1::text IS NULL OR source LIKE $1 "
             "ORDER BY location_id, source, valid_time")
    rows = run(db_url, lambda conn: conn.fetch(query, source))
    return pd.DataFrame([dict(r) for r in rows])


@pytest.mark.parametrize("source", sorted(NETCDF))
def test_each_sample_imports_through_the_cli_with_the_values_of_the_file(nwp_db, sites, source):
    plant = sites[f"tucson-{source}"]
    proc = cli(nwp_db, NETCDF[source], "--location-ids", plant)
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads(proc.stdout)
    assert summary["location_ids"] == [plant] and summary["files"][0]["source"] == source
    expected, _ = nwp.to_locations(nwp.period_means(nwp.read_nwp(NETCDF[source])),
                                   pd.DataFrame({"location_id": [plant], "latitude": [grid_centre(NETCDF[source])[0]],
                                                 "longitude": [grid_centre(NETCDF[source])[1]]}))
    got = stored(nwp_db, source)
    got = got[got["location_id"] == plant].reset_index(drop=True)
    assert summary["rows"] == len(got) == len(expected) > 0
    assert (got["issue_time"] == ISSUE).all()
    assert (pd.DatetimeIndex(got["valid_time"]) == pd.DatetimeIndex(expected["valid_time"])).all()
    for c in ("ghi", "dni", "dhi", "temp_air", "wind_speed", "cloud_cover"):
        np.testing.assert_allclose(got[c].astype(float), expected[c].astype(float), rtol=1e-12, equal_nan=True)
    assert (got["period_minutes"].to_numpy() == expected["period_minutes"].to_numpy()).all()


def test_gefs_members_are_kept_as_sources_and_read_one_by_one(nwp_db, sites):
    plant = sites["tucson-gefs_p01"]
    proc = cli(nwp_db, *GEFS_2019, "--location-ids", plant)
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = stored(nwp_db, "gefs_%")
    assert sorted(got["source"].unique()) == ["gefs_avg", "gefs_c00", *[f"gefs_p{k:02d}" for k in range(1, 21)]]
    member = run(nwp_db, lambda conn: store.read_weather(conn, [plant], None, None, ISSUE, sources=["gefs_p07"]))
    assert (member["source"] == "gefs_p07").all() and len(member) == (got["source"] == "gefs_p07").sum()
    spread = got[got["source"].str.match(r"gefs_(c00|p\d\d)$")].groupby("valid_time")["ghi"].agg(["min", "max"])
    assert (spread["max"] > spread["min"]).any()  # members differ: they are not copies of one field


def test_reimport_is_idempotent(nwp_db, sites):
    plant = sites["tucson-hrrr"]
    first = run(nwp_db, lambda conn: weatherimport.import_files(conn, [NETCDF["hrrr"]], [plant]))
    before = stored(nwp_db, "hrrr")
    again = run(nwp_db, lambda conn: weatherimport.import_files(conn, [NETCDF["hrrr"]], [plant]))
    after = stored(nwp_db, "hrrr")
    assert first["rows"] == again["rows"] == len(before[before["location_id"] == plant])
    pd.testing.assert_frame_equal(before, after)  # same keys, same values, identical rows untouched (ingested_at)


def count(db_url):
    return run(db_url, lambda conn: conn.fetchval("SELECT count(*) FROM weather"))


def test_a_bad_file_refuses_the_whole_import(nwp_db, sites, tmp_path):
    cut = tmp_path / RAP_GRIB[1].name
    cut.write_bytes(RAP_GRIB[1].read_bytes()[:300_000])
    before = count(nwp_db)
    for bad in (cut, RAP_GRIB[0], RAP_NC):  # truncated; GRIB without radiation; netCDF without radiation
        with pytest.raises(ValueError):
            run(nwp_db, lambda conn: weatherimport.import_files(conn, [NETCDF["nam"], bad]))
        assert count(nwp_db) == before
    proc = cli(nwp_db, NETCDF["nam"], *RAP_GRIB)
    assert proc.returncode == 2 and "nothing stored" in proc.stderr
    assert count(nwp_db) == before


def test_no_overlap_with_any_plant_is_refused(nwp_db, sites):
    demo = [v for k, v in sites.items() if not k.startswith("tucson-")]
    before = count(nwp_db)
    with pytest.raises(ValueError, match="no plant"):
        run(nwp_db, lambda conn: weatherimport.import_files(conn, [NETCDF["hrrr"]], demo))
    assert count(nwp_db) == before


def test_all_plants_by_default_with_the_uncovered_ones_as_data(nwp_db, sites):
    summary = run(nwp_db, lambda conn: weatherimport.import_files(conn, [NETCDF["hrrr"]]))
    assert sites["tucson-hrrr"] in summary["location_ids"]
    demo = {v for k, v in sites.items() if not k.startswith("tucson-")}
    assert demo <= set(summary["uncovered"])
    assert set(summary["location_ids"]).isdisjoint(summary["uncovered"])


@pytest.fixture(scope="module")
def model():
    return modelio.load_model(ROOT / "models", "global")


@pytest.mark.parametrize("source, horizon_hours", [("hrrr", 36), ("gfs", 48), ("hrrr_subhourly", 18), ("nam", 48)])
def test_forecast_from_imported_weather_holds_every_invariant(nwp_db, sites, model, source, horizon_hours):
    plant = sites[f"tucson-{source}"]
    run(nwp_db, lambda conn: weatherimport.import_files(conn, [NETCDF[source]], [plant]))
    locations = run(nwp_db, lambda conn: store.fetch_locations(conn, [plant]))
    times = forecast.forecast_times(ISSUE, horizon_hours, 15)
    margin = pd.Timedelta(minutes=SETTINGS["forecast"]["weather_margin_minutes"])
    weather = run(nwp_db, lambda conn: store.read_weather(conn, [plant], times[0] - margin, times[-1] + margin, ISSUE,
                                                          sources=[source]))
    assert (weather["issue_time"] <= ISSUE).all() and len(weather) > 0
    feats = features.feature_frame(locations, weather, times)
    cap = min(locations["capacity_ac_kw"].iloc[0], locations["export_limit_kw"].fillna(np.inf).iloc[0])
    for ftype in ("ml", "physics"):
        fx = forecast.forecast_quantiles(feats, locations, model, ftype, ISSUE)
        q = fx[["p10", "p25", "p50", "p75", "p90"]].to_numpy()
        assert len(fx) == len(times) and np.isfinite(q).all()
        assert (q[:, 0] >= 0).all() and (np.diff(q, axis=1) >= 0).all() and (q[:, -1] <= cap).all()
        night = feats["solar_elevation"].to_numpy() <= 0
        assert night.any() and (q[night] == 0).all()
        assert (q[~night, 2] > 0).any()  # a sunny Arizona day gives power


def test_forecast_trigger_asks_for_the_covered_plants_at_the_cycle(nwp_db, sites):
    plant = sites["tucson-hrrr"]
    summary = run(nwp_db, lambda conn: weatherimport.import_files(conn, [NETCDF["hrrr"]], [plant]))
    assert weatherimport.forecast_trigger(summary, SETTINGS) == []  # off by default
    on = {**SETTINGS, "nwp": {**SETTINGS["nwp"], "trigger_forecast": True}}
    assert weatherimport.forecast_trigger(summary, on) == [
        {"location_ids": [plant], "issue_time": ISSUE.isoformat(), "horizon_hours": 36, "resolution": "15min",
         "forecast_type": "ml"}]

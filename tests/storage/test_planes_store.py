"""Planes and horizon profiles in the database: one transaction with their location, set-based reads,
and locations stored before migration 0004 staying one-plane plants with unchanged features."""


import numpy as np
import pandas as pd
import pytest

from engine import features, forecast, planes, schema, store

from storehelpers import demo_frames, drop_database, migrated_before, real_weather, run

ISSUE = pd.Timestamp("2013-07-01T12:00:00Z")
TIMES = forecast.forecast_times(ISSUE, 24, 15)


def stored(url, ids):
    return run(url, lambda conn: store.fetch_plants(conn, ids))


def test_planes_and_horizon_round_trip_with_their_location(db_url, plants):
    locations, plane_rows, skyline = demo_frames()
    got = stored(db_url, plants["location_id"].tolist())
    ids = dict(zip(plants["name"], plants["location_id"]))
    want_planes = plane_rows.assign(location_id=plane_rows["name"].map(ids)).drop(columns="name")
    pd.testing.assert_frame_equal(got["planes"][list(want_planes.columns)], want_planes.reset_index(drop=True),
                                  check_dtype=False)
    want_horizon = skyline.assign(location_id=skyline["name"].map(ids))[["location_id", "azimuth", "elevation"]]
    pd.testing.assert_frame_equal(got["horizon"], want_horizon.reset_index(drop=True), check_dtype=False)
    east_west = got["locations"].set_index("name").loc[plane_rows["name"].iloc[0]]
    assert east_west["capacity_dc_kw"] == pytest.approx(plane_rows["capacity_dc_kw"].sum())  # derived summary
    assert got["planes"]["losses_pct"].isna().sum() == 1  # inherited stays NULL -> NaN, not the location's value


def test_a_new_write_replaces_the_planes_and_horizon_of_its_locations(db_url):
    locations, plane_rows, skyline = demo_frames(" [replace]")
    first = run(db_url, lambda conn: store.upsert_locations(conn, locations, plane_rows, skyline))
    ids = first["location_id"].tolist()
    before = stored(db_url, ids)
    assert len(before["planes"]) == 2 and len(before["horizon"]) == len(skyline)
    three = pd.concat([plane_rows, plane_rows.iloc[[0]].assign(plane=2, tilt=5.0, azimuth=180.0)], ignore_index=True)
    blank = locations.copy()
    blank.loc[blank["name"] == plane_rows["name"].iloc[0], "capacity_dc_kw"] = np.nan  # derived again
    run(db_url, lambda conn: store.upsert_locations(conn, blank, three, None))
    after = stored(db_url, ids)
    assert after["planes"]["plane"].tolist() == [0, 1, 2] and len(after["horizon"]) == 0
    east_west = after["locations"].set_index("name").loc[plane_rows["name"].iloc[0]]
    assert east_west["capacity_dc_kw"] == pytest.approx(three["capacity_dc_kw"].sum())
    one_plane = locations[locations["name"] == plane_rows["name"].iloc[0]]
    run(db_url, lambda conn: store.upsert_locations(conn, one_plane.assign(capacity_dc_kw=9.0)))
    assert len(stored(db_url, ids)["planes"]) == 0  # written without planes: one plane from its own columns


def test_bad_planes_are_refused_before_anything_is_written(db_url):
    locations, plane_rows, skyline = demo_frames(" [refused]")
    bad = plane_rows.assign(tilt=[20.0, 95.0])
    with pytest.raises(ValueError, match=r"^planes\.tilt: row 1"):
        run(db_url, lambda conn: store.upsert_locations(conn, locations, bad, skyline))
    stray = plane_rows.assign(name="no such plant")
    with pytest.raises(ValueError, match=r"^planes\.name: row 0 is not a location of this write"):
        run(db_url, lambda conn: store.upsert_locations(conn, locations, stray, skyline))
    conflicting = locations.copy()
    conflicting.loc[conflicting["name"] == plane_rows["name"].iloc[0], "capacity_dc_kw"] = 3.0
    with pytest.raises(ValueError, match=r"^capacity_dc_kw: row \d differs from the value derived from the location's"):
        run(db_url, lambda conn: store.upsert_locations(conn, conflicting, plane_rows, skyline))
    names = run(db_url, lambda conn: conn.fetchval("SELECT count(*) FROM locations WHERE name LIKE '%[refused]'"))
    assert names == 0


def test_stored_plants_give_the_features_of_the_frames_written(db_url, plants):
    """Database round trip of planes and horizon changes no feature (float8 both ways, order kept)."""
    locations, plane_rows, skyline = demo_frames()
    ids = dict(zip(plants["name"], plants["location_id"]))
    got = stored(db_url, plants["location_id"].tolist())
    weather = pd.concat([real_weather(i) for i in got["locations"]["location_id"]], ignore_index=True)
    from_db = features.feature_frame(got["locations"], weather, TIMES, planes=got["planes"], horizon=got["horizon"])
    frames = locations.assign(location_id=locations["name"].map(ids))
    direct = features.feature_frame(frames, weather, TIMES,
                                    planes=plane_rows.assign(location_id=plane_rows["name"].map(ids)),
                                    horizon=skyline.assign(location_id=skyline["name"].map(ids)))
    pd.testing.assert_frame_equal(from_db, direct.loc[from_db.index], check_exact=True)
    shaded = ids[skyline["name"].iloc[0]]
    free = features.feature_frame(got["locations"], weather, TIMES, planes=got["planes"])
    assert (from_db.loc[shaded, "physical_ac_kw"] < free.loc[shaded, "physical_ac_kw"] - 1e-6).any()


@pytest.fixture
def before_0004(server_url, tmp_path):
    """A database migrated only up to the files before 0004, holding one location."""
    url = migrated_before(server_url, tmp_path, "0004", "pvcast_planes_migration")
    yield url
    drop_database(url)


def test_locations_stored_before_0004_stay_one_plane_plants_with_unchanged_features(before_0004):
    locations = demo_frames(" [old]")[0].iloc[[1]]
    cols = list(store.LOCATION_COLUMNS[1:])
    values = [None if isinstance(v, float) and np.isnan(v) else v for v in locations[cols].iloc[0].tolist()]
    run(before_0004, lambda conn: conn.execute(
        f"INSERT INTO locations ({', '.join(cols)}) VALUES ({', '.join(f'${i + 1}' for i in range(len(cols)))})",
        *values))
    old = run(before_0004, store.fetch_locations)
    applied = run(before_0004, schema.apply_migrations)
    assert "0004_planes_horizon.sql" in applied
    got = stored(before_0004, None)
    pd.testing.assert_frame_equal(got["locations"], old)
    assert len(got["planes"]) == 0 and len(got["horizon"]) == 0
    weather = real_weather(int(old["location_id"].iloc[0]))
    pd.testing.assert_frame_equal(
        features.feature_frame(got["locations"], weather, TIMES, planes=got["planes"], horizon=got["horizon"]),
        features.feature_frame(old, weather, TIMES), check_exact=True)
    assert planes.plane_arrays(features.location_arrays(old), got["planes"])["site"].tolist() == [0]


def test_the_service_role_writes_and_reads_planes_and_horizon(service_url):
    """Least privilege: the role the service connects as may write and read the new tables."""
    locations, plane_rows, skyline = demo_frames(" [service role]")
    saved = run(service_url, lambda conn: store.upsert_locations(conn, locations, plane_rows, skyline))
    got = stored(service_url, saved["location_id"].tolist())
    assert len(got["planes"]) == len(plane_rows) and len(got["horizon"]) == len(skyline)


def test_planes_and_horizon_of_another_tenant_are_not_read(db_url, plants):
    ids = plants["location_id"].tolist()
    mine = run(db_url, lambda conn: store.fetch_plants(conn, ids, tenant_id="default"))
    other = run(db_url, lambda conn: store.fetch_plants(conn, ids, tenant_id="someone-else"))
    assert len(mine["planes"]) > 0 and len(mine["horizon"]) > 0
    assert len(other["locations"]) == len(other["planes"]) == len(other["horizon"]) == 0


def test_plant_extras_name_the_plants_whose_planes_and_horizon_a_pass_reads(db_url):
    """``store.plant_extras`` (one statement) names exactly the plants with stored planes / horizon rows, in the
    order asked; reading only those gives the frames of reading every plant, and reading none gives the frame of
    no rows without a query."""
    locations, plane_rows, skyline = demo_frames(" [extras of planes]")
    ids = run(db_url, lambda conn: store.upsert_locations(conn, locations, plane_rows, skyline))["location_id"].tolist()
    asked = ids[::-1]

    async def reads(conn):
        extras = await store.plant_extras(conn, asked)
        return (extras, await store.fetch_planes(conn, asked), await store.fetch_horizons(conn, asked),
                await store.fetch_planes(conn, extras["planes"]), await store.fetch_horizons(conn, extras["horizon"]),
                await store.fetch_planes(None, []), await store.fetch_horizons(None, []))
    extras, planes_all, horizon_all, planes_some, horizon_some, planes_none, horizon_none = run(db_url, reads)
    assert extras["planes"] == [i for i in asked if i in set(planes_all["location_id"])]
    assert extras["horizon"] == [i for i in asked if i in set(horizon_all["location_id"])]
    assert extras["calibrations"] == []
    assert 0 < len(extras["planes"]) < len(ids) and 0 < len(extras["horizon"]) < len(ids)
    pd.testing.assert_frame_equal(planes_some, planes_all, check_exact=True)
    pd.testing.assert_frame_equal(horizon_some, horizon_all, check_exact=True)
    pd.testing.assert_frame_equal(planes_none, planes_all.iloc[:0].reset_index(drop=True), check_exact=True,
                                  check_index_type=False)
    pd.testing.assert_frame_equal(horizon_none, horizon_all.iloc[:0].reset_index(drop=True), check_exact=True,
                                  check_index_type=False)

"""Tenants and API keys in engine.store, as the service role on a scratch database.

A tenant sees and changes only its own plants and what hangs off them; another tenant's
object is refused or absent exactly like an unknown one. Keys are stored hashed, carry
scopes and a tenant, and stop authenticating when revoked.
"""

import uuid

import asyncpg
import pandas as pd
import pytest

from engine import keys, store

from storehelpers import WINDOW, demo_locations, forecast_of, real_weather, run


def tenant():
    return f"t-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="module")
def two_tenants(service_url):
    """Tenants A and B (keys created), each with the demo plants under the SAME names, and A's forecasts."""
    a, b = tenant(), tenant()

    async def setup(conn):
        for t in (a, b):
            await store.create_key(conn, t, "read,write")
        plants_a = await store.upsert_locations(conn, demo_locations(" [tenants]"), tenant_id=a)
        plants_b = await store.upsert_locations(conn, demo_locations(" [tenants]"), tenant_id=b)
        run_ids = await store.write_forecasts(conn, *forecast_of(plants_a))
        return plants_a, plants_b, run_ids
    plants_a, plants_b, run_ids = run(service_url, setup)
    return {"a": a, "b": b, "plants_a": plants_a, "plants_b": plants_b, "run_ids": run_ids}


def test_the_same_name_in_two_tenants_is_two_plants(two_tenants):
    a_ids = set(two_tenants["plants_a"]["location_id"])
    assert a_ids.isdisjoint(two_tenants["plants_b"]["location_id"])
    assert len(a_ids) == len(two_tenants["plants_a"])


def test_another_tenants_plants_are_invisible(service_url, two_tenants):
    a_ids = two_tenants["plants_a"]["location_id"].tolist()
    seen_by_b = run(service_url, lambda conn: store.fetch_locations(conn, a_ids, tenant_id=two_tenants["b"]))
    seen_by_a = run(service_url, lambda conn: store.fetch_locations(conn, a_ids, tenant_id=two_tenants["a"]))
    all_of_b = run(service_url, lambda conn: store.fetch_locations(conn, tenant_id=two_tenants["b"]))
    assert seen_by_b.empty and seen_by_a["location_id"].tolist() == sorted(a_ids)
    assert set(all_of_b["location_id"]) == set(two_tenants["plants_b"]["location_id"])


def test_an_upsert_by_name_never_touches_another_tenants_plant(service_url, two_tenants):
    """The attack of issue 9: PUT a plant by name with capacity 0.001 kW and another latitude."""
    victim = two_tenants["plants_a"].iloc[:1]
    attack = demo_locations(" [tenants]").iloc[:1].assign(capacity_ac_kw=0.001, capacity_dc_kw=0.001, latitude=10.0)
    stored = run(service_url, lambda conn: store.upsert_locations(conn, attack, tenant_id=two_tenants["b"]))
    after = run(service_url, lambda conn: store.fetch_locations(conn, victim["location_id"].tolist()))
    assert int(stored["location_id"].iloc[0]) != int(victim["location_id"].iloc[0])
    assert after["capacity_ac_kw"].iloc[0] == victim["capacity_ac_kw"].iloc[0]
    assert after["latitude"].iloc[0] == victim["latitude"].iloc[0]


@pytest.mark.parametrize("write, frame", [
    (store.write_weather, lambda lid: real_weather(lid)),
    (store.write_actuals, lambda lid: pd.DataFrame({"location_id": lid, "time": [WINDOW[0] + pd.Timedelta("1h")],
                                                    "power_kw": [1.0]})),
])
def test_writes_for_another_tenants_plant_are_refused_like_unknown_ids(service_url, two_tenants, write, frame):
    foreign = int(two_tenants["plants_a"]["location_id"].iloc[0])
    unknown = int(two_tenants["plants_b"]["location_id"].max()) + 10**6
    errors = {}
    for name, lid in (("foreign", foreign), ("unknown", unknown)):
        with pytest.raises(LookupError) as exc:  # the API's 404 of an unknown id, not a 422 that tells them apart
            run(service_url, lambda conn: write(conn, frame(lid), tenant_id=two_tenants["b"]))
        errors[name] = (exc.value.code, exc.value.field, str(exc.value))
    assert all(e[:2] == ("unknown_location", "location_id") for e in errors.values())
    assert errors["foreign"][2].replace(str(foreign), "ID") == errors["unknown"][2].replace(str(unknown), "ID")
    table = "weather" if write is store.write_weather else "actuals"
    stored = run(service_url, lambda conn: conn.fetchval(f"SELECT count(*) FROM {table} WHERE location_id = $1", foreign))
    assert stored == 0


def test_a_tenant_writes_its_own_plants(service_url, two_tenants):
    lid = int(two_tenants["plants_b"]["location_id"].iloc[0])
    weather = real_weather(lid)
    assert run(service_url, lambda conn: store.write_weather(conn, weather, tenant_id=two_tenants["b"])) == len(weather)


def test_another_tenants_forecasts_read_like_none(service_url, two_tenants):
    lid = int(two_tenants["plants_a"]["location_id"].iloc[0])
    run_id = two_tenants["run_ids"][lid]
    b = two_tenants["b"]
    for kwargs in ({}, {"run_id": run_id}):
        with pytest.raises(LookupError):
            run(service_url, lambda conn: store.read_forecast(conn, lid, None, None, tenant_id=b, **kwargs))
        owned, _ = run(service_url, lambda conn: store.read_forecast(conn, lid, None, None, tenant_id=two_tenants["a"],
                                                                     **kwargs))
        assert owned["run_id"] == run_id
    with pytest.raises(LookupError):
        run(service_url, lambda conn: store.read_energy(conn, run_id, "1 day", tenant_id=b))
    assert len(run(service_url, lambda conn: store.read_energy(conn, run_id, "1 day", tenant_id=two_tenants["a"]))) == 2
    assert run(service_url, lambda conn: store.read_forecast_with_actuals(conn, lid, None, None, tenant_id=b)).empty
    assert len(run(service_url, lambda conn: store.read_forecast_with_actuals(
        conn, lid, None, None, tenant_id=two_tenants["a"]))) == 192


def test_another_tenants_task_reads_like_an_unknown_one(service_url, two_tenants):
    task_id = str(uuid.uuid4())

    async def go(conn):
        await store.create_task(conn, task_id, {"location_ids": [1]}, 1, tenant_id=two_tenants["a"])
        return (await store.read_task(conn, task_id, tenant_id=two_tenants["b"]),
                await store.read_task(conn, task_id, tenant_id=two_tenants["a"]))
    foreign, own = run(service_url, go)
    assert foreign is None and own["tenant_id"] == two_tenants["a"] and own["task_id"] == task_id


def test_unscoped_writes_belong_to_the_default_tenant(service_url):
    saved = run(service_url, lambda conn: store.upsert_locations(conn, demo_locations(" [default tenant]")))
    ids = saved["location_id"].tolist()
    seen = run(service_url, lambda conn: store.fetch_locations(conn, ids, tenant_id=keys.DEFAULT_TENANT))
    assert seen["location_id"].tolist() == sorted(ids)
    column_default = run(service_url, lambda conn: conn.fetchval(
        "SELECT column_default FROM information_schema.columns WHERE table_name = 'locations' AND column_name = 'tenant_id'"))
    assert column_default == f"'{keys.DEFAULT_TENANT}'::text"  # the migration's default is the code's


# --- keys

def test_a_key_authenticates_as_its_tenant_with_its_scopes(service_url):
    t = tenant()
    created = run(service_url, lambda conn: store.create_key(conn, t, ["write", "read"], "ingest job"))
    assert run(service_url, lambda conn: store.key_principal(conn, created["key"])) == (t, ("read", "write"))
    listed = run(service_url, lambda conn: store.list_keys(conn, t))
    assert [k["key_id"] for k in listed] == [created["key_id"]] and listed[0]["last_used_at"] is not None
    assert "key" not in listed[0] and listed[0]["description"] == "ingest job"


def test_a_revoked_key_no_longer_authenticates(service_url):
    created = run(service_url, lambda conn: store.create_key(conn, tenant(), "read"))
    assert run(service_url, lambda conn: store.key_principal(conn, created["key"])) is not None
    revoked = run(service_url, lambda conn: store.revoke_key(conn, created["key_id"]))
    again = run(service_url, lambda conn: store.revoke_key(conn, created["key_id"]))
    assert revoked["revoked_at"] is not None and again["revoked_at"] == revoked["revoked_at"]
    assert run(service_url, lambda conn: store.key_principal(conn, created["key"])) is None


def test_revoking_an_unknown_key_is_a_lookup_error(service_url):
    with pytest.raises(LookupError, match="key_id"):
        run(service_url, lambda conn: store.revoke_key(conn, "0123456789ab"))


def test_a_forged_or_malformed_key_does_not_authenticate(service_url):
    created = run(service_url, lambda conn: store.create_key(conn, tenant(), "admin"))
    key_id = created["key_id"]
    forged = f"{keys.PREFIX}_{key_id}_{'A' * 43}"  # the real public id, a wrong secret
    for presented in (forged, created["key"][:-1], created["key"] + "x", "", key_id):
        assert run(service_url, lambda conn: store.key_principal(conn, presented)) is None


def test_keys_are_stored_hashed_the_plaintext_is_nowhere_in_the_database(service_url, db_url):
    created = run(service_url, lambda conn: store.create_key(conn, tenant(), "read,write", "hash check"))
    secret = created["key"].split("_", 2)[2]  # pvc_<key id>_<secret>: the secret's url-safe base64 may hold "_" too
    assert len(secret) >= 40

    async def occurrences(conn):
        tables = [r["tablename"] for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
        return {t: await conn.fetchval(f"SELECT count(*) FROM {t} WHERE strpos({t}::text, $1) > 0", secret)
                for t in tables}
    found = run(db_url, occurrences)
    assert "api_keys" in found and sum(found.values()) == 0
    stored = run(db_url, lambda conn: conn.fetchval("SELECT key_sha256 FROM api_keys WHERE key_id = $1", created["key_id"]))
    assert stored == keys.hash_key(created["key"])


@pytest.mark.parametrize("tenant_id, scopes", [("Bad Tenant", "read"), ("ok", "read,root"), ("ok", "")])
def test_bad_tenant_or_scopes_create_nothing(service_url, tenant_id, scopes):
    before = run(service_url, lambda conn: conn.fetchval("SELECT count(*) FROM api_keys"))
    with pytest.raises(ValueError, match="tenant|scopes"):
        run(service_url, lambda conn: store.create_key(conn, tenant_id, scopes))
    assert run(service_url, lambda conn: conn.fetchval("SELECT count(*) FROM api_keys")) == before


def test_the_database_refuses_a_key_row_without_a_valid_hash(service_url):
    with pytest.raises(asyncpg.CheckViolationError):
        run(service_url, lambda conn: conn.execute(
            "INSERT INTO api_keys (key_id, tenant_id, key_sha256, scopes) VALUES ('0123456789ab', 'default', 'x', '{read}')"))

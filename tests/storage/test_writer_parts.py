"""The Writer deployment's write (its class, called in this process on the real database): a large batch is
stored in concurrent transactions of whole plants, every run complete, the same values as one transaction."""

import asyncio
import time

import pandas as pd
import pytest

from dbproxy import Proxy, pgpass_with_port
from engine import store
from serve_app.settings import load_settings
from serve_app.writer import Writer
import local_instance as local

from storehelpers import demo_locations, forecast_of, run

#: configs/service.yaml's database settings (the Writer's pool shares them), with a short connect timeout
DATABASE = {**load_settings()["database"], "connect_timeout_seconds": 2}


def write(parts, min_part, runs, forecast):
    """``Writer.write`` of a new Writer with these part settings; its pool closed after."""
    async def go():
        writer = Writer.func_or_class({"writer": {"retry_wait_seconds": [], "parallel_parts": parts,
                                                  "min_part_locations": min_part, "command_timeout_seconds": 120},
                                       "database": DATABASE})
        try:
            return await writer.write(runs, forecast)
        finally:
            await writer.pool.close()
    return asyncio.run(go())


def test_a_batch_is_written_in_parts_each_its_own_transaction_every_run_complete(service_url, monkeypatch):
    monkeypatch.setenv("PVCAST_DATABASE_URL", service_url)
    locations = run(service_url, lambda conn: store.upsert_locations(conn, demo_locations(" [writer parts]")))
    runs, forecast = forecast_of(locations)
    in_parts = write(2, 3, runs, forecast)
    whole = write(2, 4, runs.assign(issue_time=runs["issue_time"] + pd.Timedelta(hours=1)), forecast)  # 6 < 2 x 4
    assert sorted(in_parts) == sorted(whole) == sorted(locations["location_id"].tolist())

    def transactions(run_ids):
        return run(service_url, lambda conn: conn.fetchval(
            "SELECT count(DISTINCT xmin::text) FROM forecast_runs WHERE run_id = ANY($1)", list(run_ids.values())))
    assert transactions(in_parts) == 2 and transactions(whole) == 1
    for lid in in_parts:
        a = run(service_url, lambda conn: store.read_forecast(conn, lid, None, None, in_parts[lid]))
        b = run(service_url, lambda conn: store.read_forecast(conn, lid, None, None, whole[lid]))
        assert a[0]["n_steps"] == len(a[1]) == 192
        pd.testing.assert_frame_equal(a[1], b[1], check_exact=True)


def test_a_database_that_stops_answering_fails_the_write_in_bounded_time_with_nothing_stored(
        service_url, monkeypatch, tmp_path):
    """The Writer connects through a real TCP proxy that stops forwarding (a host that no longer answers): with a
    2 s statement timeout and one retry the write raises within seconds instead of waiting for ever, and no run
    of the batch is stored; once the database answers again the same Writer writes the batch."""
    direct_port = int(service_url.rsplit(":", 1)[1].split("/")[0])
    proxy = Proxy("127.0.0.1", direct_port)
    monkeypatch.setenv("PGPASSFILE", pgpass_with_port(tmp_path / "pgpass", proxy.port, direct_port))
    monkeypatch.setenv("PVCAST_DATABASE_URL", service_url.replace(f":{direct_port}/", f":{proxy.port}/"))
    locations = run(service_url, lambda conn: store.upsert_locations(conn, demo_locations(" [writer stall]")))
    runs, forecast = forecast_of(locations)
    writer = Writer.func_or_class({"writer": {"retry_wait_seconds": [0.1], "parallel_parts": 1,
                                              "min_part_locations": 500, "command_timeout_seconds": 2},
                                   "database": DATABASE})

    async def go():
        await writer.write(runs.iloc[:1], forecast[forecast["location_id"] == runs["location_id"].iloc[0]])
        proxy.stall()  # the pool's connection is open: the next statements get no answer
        t0 = time.monotonic()
        try:
            with pytest.raises(RuntimeError, match="database write failed after 2 attempts"):
                await writer.write(runs.iloc[1:], forecast[forecast["location_id"] != runs["location_id"].iloc[0]])
            elapsed = time.monotonic() - t0
        finally:
            proxy.flow()
        return elapsed, await writer.write(runs.iloc[1:], forecast[forecast["location_id"] != runs["location_id"].iloc[0]])

    try:
        elapsed, later = asyncio.run(go())
    finally:
        proxy.close()
    assert elapsed < 30, elapsed  # statement 2 s + its cancellation, a new pool's connect 2 s, one wait
    stored = run(service_url, lambda conn: conn.fetch(
        "SELECT location_id, count(*) AS n FROM forecast_runs WHERE location_id = ANY($1) GROUP BY location_id",
        locations["location_id"].tolist()))
    assert {r["location_id"]: r["n"] for r in stored} == {int(k): 1 for k in locations["location_id"]}
    assert sorted(later) == sorted(locations["location_id"].tolist()[1:])

"""The Writer deployment's write (its class, called in this process on the real database): a large batch is
stored in concurrent transactions of whole plants, every run complete, the same values as one transaction."""

import asyncio

import pandas as pd

from engine import store
from serve_app.writer import Writer

from storehelpers import demo_locations, forecast_of, run


def write(parts, min_part, runs, forecast):
    """``Writer.write`` of a new Writer with these part settings; its pool closed after."""
    async def go():
        writer = Writer.func_or_class({"writer": {"retry_wait_seconds": [], "parallel_parts": parts,
                                                  "min_part_locations": min_part}})
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

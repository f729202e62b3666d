"""Concurrent ingests of the same keys in different row orders never deadlock.

Issue 9: 10 concurrent weather ingests of the same keys in different row order gave 8
deadlocks. Each writer's upsert takes row locks in the order it meets its rows; when
writers meet the same rows in different orders they wait on each other in a cycle.
engine.store upserts in key order, so every writer locks in the same order.
"""

import asyncio

import asyncpg
import numpy as np
import pandas as pd
import pytest

from engine import store

from storehelpers import WINDOW, demo_locations, real_weather, run

WRITERS = 10
ROUNDS = 3


def shuffled(frame, seed):
    return frame.iloc[np.random.default_rng(seed).permutation(len(frame))].reset_index(drop=True)


async def ingest_concurrently(url, write, frames):
    """Every frame written at once, each on its own connection; the exceptions raised (None: stored)."""
    pool = await asyncpg.create_pool(url, min_size=len(frames), max_size=len(frames))
    try:
        async def one(frame):
            try:
                await write(pool, frame)
            except Exception as exc:  # collected and asserted on below
                return exc
            return None
        return await asyncio.gather(*(one(f) for f in frames))
    finally:
        await pool.close()


@pytest.fixture(scope="module")
def ingest_plants(service_url):
    return run(service_url, lambda conn: store.upsert_locations(conn, demo_locations(" [concurrent]")))


def weather_frames(ids, round_):
    base = pd.concat([real_weather(i, WINDOW[0], WINDOW[0] + pd.Timedelta("2D")) for i in ids], ignore_index=True)
    # each writer its own values (so conflicting rows are really updated) and its own row order
    return [shuffled(base.assign(ghi=base["ghi"] + 0.1 * w), seed=100 * round_ + w) for w in range(WRITERS)]


def actuals_frames(ids, round_):
    times = pd.date_range(WINDOW[0], WINDOW[0] + pd.Timedelta("2D"), freq="15min")
    base = pd.DataFrame({"location_id": np.repeat(ids, len(times)), "time": np.tile(times, len(ids)),
                         "power_kw": 1.0})
    return [shuffled(base.assign(power_kw=1.0 + 0.1 * w), seed=100 * round_ + w) for w in range(WRITERS)]


@pytest.mark.parametrize("write, frames, table", [
    (store.write_weather, weather_frames, "weather"),
    (store.write_actuals, actuals_frames, "actuals"),
])
def test_ten_concurrent_shuffled_ingests_all_succeed(service_url, ingest_plants, write, frames, table):
    ids = ingest_plants["location_id"].to_numpy("int64")
    outcomes = []
    for round_ in range(ROUNDS):  # the first round inserts, the others update the same keys
        batch = frames(ids, round_)
        outcomes += asyncio.run(ingest_concurrently(service_url, write, batch))
    deadlocks = [e for e in outcomes if isinstance(e, asyncpg.DeadlockDetectedError)]
    assert deadlocks == [] and outcomes == [None] * (WRITERS * ROUNDS)
    stored = run(service_url, lambda conn: conn.fetchval(
        f"SELECT count(*) FROM {table} WHERE location_id = ANY($1)", ids.tolist()))
    assert stored == len(batch[0])  # each key stored once

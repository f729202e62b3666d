"""Writer deployment: stores forecast batches with the storage layer's bulk COPY write."""

import asyncio

import asyncpg
from ray import serve

from engine import store
from serve_app.observability import FORECASTS, event


@serve.deployment
class Writer:
    """Holds one connection pool; each call is one all-or-nothing transaction."""

    def __init__(self, settings):
        self.waits = list(settings["writer"]["retry_wait_seconds"])
        self.pool = None

    async def write(self, runs, forecast):
        """``store.write_forecasts`` with the retry policy of ``configs/service.yaml``.

        A connection error retries the whole transaction after each wait in
        ``writer.retry_wait_seconds``; after the last one it raises
        ``RuntimeError`` and the batch's locations are reported failed. Nothing
        is half-written: ``write_forecasts`` is one transaction.

        Returns
        -------
        dict
            location_id -> run_id.
        """
        for attempt, wait in enumerate([*self.waits, None]):
            try:
                if self.pool is None:
                    self.pool = await asyncpg.create_pool(store.database_url(), min_size=1, max_size=4)
                run_ids = await store.write_forecasts(self.pool, runs, forecast)
                FORECASTS.inc(len(run_ids), tags={"forecast_type": str(runs["forecast_type"].iloc[0])})
                return {int(k): int(v) for k, v in run_ids.items()}
            except (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError) as exc:
                event("write_retry", attempt=attempt, error=repr(exc), rows=len(forecast))
                if wait is None:
                    raise RuntimeError(f"database write failed after {attempt + 1} attempts: {exc}") from exc
                if self.pool is not None:
                    self.pool.terminate()
                    self.pool = None
                await asyncio.sleep(wait)

"""Writer deployment: stores forecast batches with the storage layer's bulk COPY write."""

import asyncio

import asyncpg
from ray import serve

from engine import store
from serve_app.observability import FORECASTS, event
from serve_app.settings import pool_options

#: Errors that mean "the database is unreachable": the part is written again after a wait.
CONNECTION_ERRORS = (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError)


@serve.deployment
class Writer:
    """Holds one connection pool; each part of a call (whole plants) is one all-or-nothing transaction.

    Also instantiated in each Forecaster replica (``Writer.func_or_class``: the class itself, with a pool of its
    own) for the passes small enough to be written there (configs/service.yaml ``writer.local_max_locations``).
    """

    def __init__(self, settings):
        self.waits = list(settings["writer"]["retry_wait_seconds"])
        self.parts = int(settings["writer"]["parallel_parts"])
        self.min_part = int(settings["writer"]["min_part_locations"])
        # a database that stops answering fails a part (then its retries) instead of holding the batch for ever
        # the service's pool options (no reset query per release, no JIT), with the Writer's statement timeout
        self.pool_options = pool_options(settings, command_timeout=settings["writer"]["command_timeout_seconds"])
        self.pool = None

    async def write(self, runs, forecast):
        """``store.write_forecasts`` of a batch in concurrent parts, with the retry policy of ``configs/service.yaml``.

        A batch of at least 2 x ``writer.min_part_locations`` plants is split
        into up to ``writer.parallel_parts`` parts of whole plants
        (``store.forecast_parts``), each written by its own transaction on
        its own connection, at once: the COPY of a batch runs on as many
        database backends (cores) as parts. A connection error retries the
        parts that failed after each wait in ``writer.retry_wait_seconds``;
        after the last one it raises ``RuntimeError`` and the batch's
        locations are reported failed (a part committed before stays: its
        runs are complete, and a resumed task skips them). Nothing is
        half-written: each part is one transaction. A statement that takes
        longer than ``writer.command_timeout_seconds`` (a database host that
        stopped answering) or a connection not opened within
        ``database.connect_timeout_seconds`` is a connection error
        (``TimeoutError`` is an ``OSError``): retried, then failed.

        Returns
        -------
        dict
            location_id -> run_id.
        """
        n_parts = max(1, min(self.parts, len(runs) // max(self.min_part, 1)))
        pending = [(runs, forecast)] if n_parts == 1 else await asyncio.get_running_loop().run_in_executor(
            None, store.forecast_parts, runs, forecast, n_parts)  # one part (a small pass): nothing to split
        run_ids = {}
        for attempt, wait in enumerate([*self.waits, None]):
            try:
                if self.pool is None:
                    self.pool = await asyncpg.create_pool(store.database_url(), min_size=1, max_size=4,
                                                          **self.pool_options)
                results = await asyncio.gather(*[store.write_forecasts(self.pool, r, f) for r, f in pending],
                                               return_exceptions=True)
            except CONNECTION_ERRORS as exc:
                results = [exc] * len(pending)
            for result in results:  # bad data (ValueError, LookupError) is not retried
                if isinstance(result, BaseException) and not isinstance(result, CONNECTION_ERRORS):
                    raise result
            for result in results:
                if not isinstance(result, BaseException):
                    run_ids.update({int(k): int(v) for k, v in result.items()})
            failures = [r for r in results if isinstance(r, BaseException)]
            pending = [part for part, r in zip(pending, results) if isinstance(r, BaseException)]
            if not pending:
                FORECASTS.inc(len(run_ids), tags={"forecast_type": str(runs["forecast_type"].iloc[0])})
                return run_ids
            exc = failures[0]
            event("write_retry", attempt=attempt, error=repr(exc), rows=sum(len(f) for _, f in pending))
            if wait is None:
                raise RuntimeError(f"database write failed after {attempt + 1} attempts: {exc}") from exc
            if self.pool is not None:
                self.pool.terminate()
                self.pool = None
            await asyncio.sleep(wait)

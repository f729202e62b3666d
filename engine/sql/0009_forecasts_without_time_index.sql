-- Forecasts are read by run: the primary key (run_id, valid_time) serves every query
-- (engine/store.py). TimescaleDB's default index on (valid_time DESC) served none and cost
-- each forecast write about a third of its COPY (issue 12). New databases create the
-- hypertable without it (configs/storage.yaml default_indexes: false); this drops it
-- from databases made before.
DROP INDEX IF EXISTS forecasts_valid_time_idx;

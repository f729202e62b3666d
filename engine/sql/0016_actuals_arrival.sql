-- Reads of a plant's actuals that do not depend on their measurement time, made independent of
-- how many months of actuals the plant has (measured: bench/bench_actuals_history.py).
--
-- 1. The refit policy counts, on every forecast pass of plants with actuals, the actuals ingested
--    after each one's latest calibration (engine.store.refit_counts). Keyed by measurement time only,
--    that read went through every actual the plant ever had (3 years of 15-min actuals: ~100,000 rows,
--    ~10-20 ms per plant per pass). With the arrival time in an index it reads the new ones only.
CREATE INDEX actuals_location_ingested ON actuals (location_id, ingested_at);

-- 2. Whether a plant has any actuals (engine.store.plant_extras, every forecast pass) probed the index of
--    every chunk of the actuals hypertable for each plant without any (10,000 plants: 0.07 s with 2
--    chunks, 1.1 s with 61). Set by the first write of a plant's actuals (engine.store.write_actuals);
--    NULL: none ever written. Actuals are removed only with their plant (ON DELETE CASCADE).
ALTER TABLE locations ADD COLUMN actuals_since timestamptz;
UPDATE locations l SET actuals_since = a.first_ingested
FROM (SELECT location_id, min(ingested_at) AS first_ingested FROM actuals GROUP BY location_id) a
WHERE a.location_id = l.location_id;

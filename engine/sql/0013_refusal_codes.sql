-- A refused calibration's reason as a stable machine-readable code (issue 10).
--
-- The reason is a sentence for a person; a client branches on the code (engine.tuning.REFUSAL_CODES:
-- no_actuals, weather, clock, too_few_days, too_few_clear_samples, scale, orientation). Rows kept
-- before codes existed have none (NULL): their sentence is all there is, and it is not parsed into one.

ALTER TABLE plant_calibration_refusals ADD COLUMN code text;

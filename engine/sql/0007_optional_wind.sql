-- Weather without wind speed (issue 10 item 5): many sources and users have none. A NULL
-- wind_speed is replaced at forecast time by the constant the model was trained with
-- (configs/training.yaml data.wind_speed_ms) and flagged on the run (forecast_runs.input_flags).
ALTER TABLE weather ALTER COLUMN wind_speed DROP NOT NULL;
ALTER TABLE forecast_runs ADD COLUMN input_flags jsonb NOT NULL DEFAULT '{}'::jsonb;

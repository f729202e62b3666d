-- Orientation tuning (issue 10 item 1): a calibration's fitted tilt/azimuth, or why the stated ones
-- were kept (engine.tuning.fit_orientation: ok, reason, tilt, azimuth, stated_tilt, stated_azimuth,
-- diagnostics). Forecasts use tilt/azimuth only when ok. NULL: fitted before orientation tuning existed
-- (the stated orientation, as then).
ALTER TABLE plant_calibrations ADD COLUMN orientation jsonb;

-- Fitted shading (issue 10 item 1): a calibration's skyline learnt from clear-sky actuals
-- (engine.shading.fit_shading: ok, reason, bin_deg, azimuth, elevation, shaded, window_start,
-- window_end, diagnostics). Forecasts raise the entered horizon to it when shaded
-- (engine.shading.served_horizon). NULL: fitted before shading existed (no fitted skyline, as then).
ALTER TABLE plant_calibrations ADD COLUMN shading jsonb;

-- Plant adaptation (issue 10): per-plant calibrations learned from the plant's own actuals, versioned.
--
-- A calibration is fitted from actuals strictly before `cutoff` (engine.adaptation.fit_calibration)
-- and never changed afterwards: a refit is a new version. The forecast of a plant uses its latest
-- version; every forecast run records the version it used (NULL: none, the plant forecast exactly
-- as without adaptation).

CREATE TABLE plant_calibrations (
    location_id    bigint NOT NULL REFERENCES locations (location_id) ON DELETE CASCADE,
    version        integer NOT NULL CHECK (version > 0),        -- 1, 2, ... per location
    cutoff         timestamptz NOT NULL,                         -- only actuals with time < cutoff were used
    window_start   timestamptz NOT NULL,                         -- first and last actual used
    window_end     timestamptz NOT NULL,
    n_samples      integer NOT NULL CHECK (n_samples >= 0),      -- usable daylight actuals
    dc_scale       double precision NOT NULL CHECK (dc_scale > 0),  -- effective / entered DC capacity
    capacity_dc_kw double precision NOT NULL CHECK (capacity_dc_kw > 0),  -- tuned DC, kW
    clip_kw        double precision CHECK (clip_kw > 0),         -- observed AC clipping level, kW; NULL: none
    bands          jsonb NOT NULL,   -- engine.conformal.fit_band_offsets: offsets, n, weight, n0, edges
    intraday       jsonb NOT NULL,   -- {"tau_hours", "window_minutes"}
    diagnostics    jsonb NOT NULL,   -- rejections, fit statistics, coverage before/after
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (location_id, version)
);

ALTER TABLE forecast_runs ADD COLUMN calibration_version integer;  -- NULL: no plant calibration used

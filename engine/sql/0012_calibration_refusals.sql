-- Refused calibrations are data too (issue 10): the latest refused fit of a plant and why.
--
-- A fit that must not teach the model (too little history, a clock off the sun, ...) stores no
-- version, so a client relying on the refit policy saw nothing but the absence of a calibration.
-- The latest refusal is kept here (one row per plant, replaced by the next refusal and removed by
-- the next stored version) and `GET /api/v1/locations/{id}/calibration` shows it.

CREATE TABLE plant_calibration_refusals (
    location_id bigint PRIMARY KEY REFERENCES locations (location_id) ON DELETE CASCADE,
    refused_at  timestamptz NOT NULL DEFAULT now(),
    cutoff      timestamptz NOT NULL,   -- the fit read actuals before it
    reason      text NOT NULL,          -- engine.adaptation.fit_calibration's reason
    diagnostics jsonb NOT NULL          -- what the fit measured before refusing (e.g. diagnostics.clock)
);

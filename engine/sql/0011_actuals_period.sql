-- Actuals as period means (issue 10, inputs users really have): many inverter portals export hourly
-- or 5-min means, labelled at the END of the period. period_minutes says so, as for weather rows
-- (0 = an instantaneous sample, the default and every value stored before this column). The plant
-- calibration compares a mean with the model at the middle of its period
-- (engine.adaptation.actual_instants, engine.resample.period_instants).
ALTER TABLE actuals ADD COLUMN period_minutes integer NOT NULL DEFAULT 0
    CHECK (period_minutes >= 0 AND period_minutes <= 1440);

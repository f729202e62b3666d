-- pvcast core schema: plants, weather issues, measured power, forecast runs and their values,
-- forecast tasks. Plain PostgreSQL; engine/schema.py turns weather, actuals and forecasts into
-- TimescaleDB hypertables when the extension is available. Every table has a natural unique
-- key, so re-ingesting the same rows or re-writing the same run is idempotent. Every unique key
-- of a future hypertable contains its time column (a TimescaleDB requirement).

CREATE TABLE locations (
    location_id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name            text NOT NULL UNIQUE,                      -- natural key
    latitude        double precision NOT NULL CHECK (latitude BETWEEN -90 AND 90),      -- deg
    longitude       double precision NOT NULL CHECK (longitude BETWEEN -180 AND 180),   -- deg
    altitude        double precision NOT NULL,                 -- m
    timezone        text NOT NULL,                             -- IANA
    capacity_ac_kw  double precision NOT NULL CHECK (capacity_ac_kw > 0),
    capacity_dc_kw  double precision NOT NULL CHECK (capacity_dc_kw > 0),
    export_limit_kw double precision CHECK (export_limit_kw > 0),                     -- NULL: none
    tilt            double precision NOT NULL CHECK (tilt BETWEEN 0 AND 90),            -- deg
    azimuth         double precision NOT NULL CHECK (azimuth >= 0 AND azimuth < 360),   -- deg, 180 = south
    tracking        text NOT NULL CHECK (tracking IN ('FIXED', 'SINGLE_AXIS')),
    axis_azimuth    double precision NOT NULL,                 -- deg
    max_angle       double precision NOT NULL,                 -- deg
    gcr             double precision NOT NULL,
    losses_pct      double precision NOT NULL,                 -- %
    gamma_pdc       double precision NOT NULL,                 -- 1/degC
    temp_model_u0   double precision NOT NULL,                 -- W/m^2/K (Faiman)
    temp_model_u1   double precision NOT NULL,                 -- W m^-3 s K (Faiman)
    model_id        text NOT NULL DEFAULT 'global',
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- Bitemporal weather: one row per location, valid_time, issue_time and source. A later issue
-- never overwrites an earlier one; readers pick the latest issue at or before their issue time.
CREATE TABLE weather (
    location_id    bigint NOT NULL REFERENCES locations (location_id) ON DELETE CASCADE,
    valid_time     timestamptz NOT NULL,          -- period average: label = end of period
    issue_time     timestamptz NOT NULL,
    source         text NOT NULL,
    ghi            double precision NOT NULL,     -- W/m^2
    dni            double precision,              -- W/m^2, NULL: decompose from ghi
    dhi            double precision,              -- W/m^2, NULL: decompose from ghi
    temp_air       double precision NOT NULL,     -- degC
    wind_speed     double precision NOT NULL,     -- m/s
    cloud_cover    double precision,              -- %
    period_minutes integer NOT NULL CHECK (period_minutes >= 0),   -- 0 = instantaneous
    ingested_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (location_id, valid_time, issue_time, source)
);

-- Measured AC power, end of interval labels.
CREATE TABLE actuals (
    location_id bigint NOT NULL REFERENCES locations (location_id) ON DELETE CASCADE,
    time        timestamptz NOT NULL,
    power_kw    double precision NOT NULL,
    ingested_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (location_id, time)
);

-- Progress of a forecast request, kept here so it survives a restart of the service.
CREATE TABLE forecast_tasks (
    task_id        uuid PRIMARY KEY,
    status         text NOT NULL DEFAULT 'queued'
                   CHECK (status IN ('queued', 'running', 'succeeded', 'partial', 'failed')),
    request        jsonb NOT NULL,
    progress_done  integer NOT NULL DEFAULT 0,
    progress_total integer NOT NULL,
    run_ids        jsonb NOT NULL DEFAULT '{}',   -- {location_id: run_id}
    errors         jsonb NOT NULL DEFAULT '{}',   -- {location_id or "task": reason}
    timings        jsonb NOT NULL DEFAULT '{}',   -- {stage: seconds}
    created_at     timestamptz NOT NULL DEFAULT now(),
    started_at     timestamptz,
    finished_at    timestamptz
);

-- One forecast of one location. A run row is committed together with all its values
-- (engine.store.write_forecasts is one transaction), so a visible run is always complete.
CREATE TABLE forecast_runs (
    run_id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    location_id        bigint NOT NULL REFERENCES locations (location_id) ON DELETE CASCADE,
    issue_time         timestamptz NOT NULL,
    model_id           text NOT NULL,
    model_version      text NOT NULL,
    forecast_type      text NOT NULL CHECK (forecast_type IN ('ml', 'physics')),
    resolution_minutes integer NOT NULL CHECK (resolution_minutes > 0),
    horizon_hours      integer NOT NULL CHECK (horizon_hours > 0),
    status             text NOT NULL DEFAULT 'complete',   -- committed with its values: complete
    n_steps            integer NOT NULL,
    task_id            uuid,
    timings            jsonb NOT NULL DEFAULT '{}',    -- {stage: seconds}
    created_at         timestamptz NOT NULL DEFAULT now(),
    written_at         timestamptz NOT NULL DEFAULT now(),
    UNIQUE (location_id, issue_time, forecast_type, model_version, resolution_minutes, horizon_hours)
);
CREATE INDEX forecast_runs_location_issue ON forecast_runs (location_id, issue_time DESC);

-- Forecast values, kW. location_id and issue_time repeat the run's for time-range reads.
-- run_id has no FOREIGN KEY on purpose: on a hypertable it is checked by a trigger per row
-- (measured: 3.5 s of 8 s for 1M rows); engine.store.write_forecasts is the only writer and
-- takes every run_id from the run upsert of the same transaction.
CREATE TABLE forecasts (
    run_id          bigint NOT NULL,
    location_id     bigint NOT NULL,
    issue_time      timestamptz NOT NULL,
    valid_time      timestamptz NOT NULL,
    p10             double precision NOT NULL,
    p25             double precision NOT NULL,
    p50             double precision NOT NULL,
    p75             double precision NOT NULL,
    p90             double precision NOT NULL,
    horizon_minutes integer NOT NULL,
    PRIMARY KEY (run_id, valid_time)
);

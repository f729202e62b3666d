-- Plants as they are built (issue 13): several planes behind one inverter, and a horizon profile.
--
-- Existing data is kept as it is: a location WITHOUT rows in location_planes is one plane built
-- from its own columns (tilt, azimuth, capacity_dc_kw, tracking, ...), exactly as before this
-- migration, so no row is copied or rewritten. A location WITH plane rows uses only those; its own
-- plane columns then hold a summary derived from them (engine.planes.summarise: DC sum, largest
-- plane's orientation). The limit on planes per location (engine.validation.MAX_PLANES) is a policy
-- of the application, not a property of the data, and is checked there.

CREATE TABLE location_planes (
    location_id     bigint NOT NULL REFERENCES locations (location_id) ON DELETE CASCADE,
    plane           smallint NOT NULL CHECK (plane >= 0),                         -- order within the location
    tilt            double precision NOT NULL CHECK (tilt BETWEEN 0 AND 90),            -- deg
    azimuth         double precision NOT NULL CHECK (azimuth >= 0 AND azimuth < 360),   -- deg, 180 = south
    capacity_dc_kw  double precision NOT NULL CHECK (capacity_dc_kw > 0),
    tracking        text NOT NULL CHECK (tracking IN ('FIXED', 'SINGLE_AXIS')),
    axis_azimuth    double precision NOT NULL,                 -- deg
    max_angle       double precision NOT NULL,                 -- deg
    gcr             double precision NOT NULL,
    backtrack       boolean NOT NULL DEFAULT true,
    losses_pct      double precision,                          -- %, NULL: the location's
    gamma_pdc       double precision,                          -- 1/degC, NULL: the location's
    temp_model_u0   double precision,                          -- W/m^2/K (Faiman), NULL: the location's
    temp_model_u1   double precision,                          -- W m^-3 s K (Faiman), NULL: the location's
    PRIMARY KEY (location_id, plane)
);

-- Horizon profile: skyline elevation by azimuth (piecewise linear, wrapping at 0/360; engine/horizon.py).
-- No rows: a free horizon.
CREATE TABLE location_horizons (
    location_id bigint NOT NULL REFERENCES locations (location_id) ON DELETE CASCADE,
    azimuth     double precision NOT NULL CHECK (azimuth >= 0 AND azimuth < 360),      -- deg, 0 = north
    elevation   double precision NOT NULL CHECK (elevation >= 0 AND elevation < 90),   -- deg
    PRIMARY KEY (location_id, azimuth)
);

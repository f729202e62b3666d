-- Tenants and their API keys. Every plant belongs to one tenant, and so does everything that
-- hangs off a plant through location_id (weather, actuals, forecast runs and their values);
-- forecast tasks carry their tenant. A tenant sees only its own objects (engine.store functions
-- take tenant_id; another tenant's object reads and is refused like an unknown one).
-- Plants and tasks stored before tenants existed belong to the tenant 'default', which is also
-- where the unscoped (CLI, admin) paths put new ones (engine.keys.DEFAULT_TENANT).

CREATE TABLE tenants (
    tenant_id  text PRIMARY KEY CHECK (tenant_id ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
    created_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO tenants (tenant_id) VALUES ('default');

-- API keys are stored hashed: SHA-256 of the whole key. Keys are 256-bit random strings
-- (engine.keys.generate_key), so a fast hash is as good as a password hash here; the plaintext
-- is shown once, when the key is created. key_id is the key's public part (its prefix), used
-- to list and revoke keys and shown in logs instead of the key.
CREATE TABLE api_keys (
    key_id       text PRIMARY KEY CHECK (key_id ~ '^[0-9a-f]{12}$'),
    tenant_id    text NOT NULL REFERENCES tenants (tenant_id) ON DELETE CASCADE,
    key_sha256   bytea NOT NULL UNIQUE CHECK (length(key_sha256) = 32),
    scopes       text[] NOT NULL CHECK (cardinality(scopes) > 0 AND scopes <@ ARRAY['read', 'write', 'admin']),
    description  text NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL DEFAULT now(),
    revoked_at   timestamptz,                    -- NULL: valid
    last_used_at timestamptz                     -- updated at most once a minute
);
CREATE INDEX api_keys_tenant ON api_keys (tenant_id);

-- A plant's name is unique within its tenant (was: unique overall).
ALTER TABLE locations ADD COLUMN tenant_id text NOT NULL DEFAULT 'default' REFERENCES tenants (tenant_id);
ALTER TABLE locations DROP CONSTRAINT locations_name_key;
ALTER TABLE locations ADD CONSTRAINT locations_tenant_name_key UNIQUE (tenant_id, name);

ALTER TABLE forecast_tasks ADD COLUMN tenant_id text NOT NULL DEFAULT 'default' REFERENCES tenants (tenant_id);

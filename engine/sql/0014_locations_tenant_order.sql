-- A tenant's plants in location_id order: the keyset pages of GET /api/v1/locations
-- (engine.store.location_page: WHERE tenant_id = $1 AND location_id > $2 ORDER BY location_id LIMIT $3)
-- are an index range scan, however many plants the other tenants have.

CREATE INDEX locations_tenant_location ON locations (tenant_id, location_id);

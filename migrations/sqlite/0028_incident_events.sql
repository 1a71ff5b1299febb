-- An incident's page lists every delivery of its events, across webhooks: its events are
-- found by incident (one row per event, fewer than its deliveries), their deliveries by
-- `deliveries_event`.
CREATE INDEX events_incident ON events (organization_id, incident_id);

-- A rendered payload is stored once per event, however many deliveries send it (every URL
-- of a webhook, and webhooks that render the same bytes). Delivery rows stay small, so the
-- updates that record each attempt rewrite little. Deliveries from before keep their
-- payload inline (`payload_id` NULL).
CREATE TABLE payloads (
    id    TEXT PRIMARY KEY,
    body  TEXT NOT NULL
);
ALTER TABLE deliveries ADD COLUMN payload_id TEXT REFERENCES payloads (id);

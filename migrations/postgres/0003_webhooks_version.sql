-- Bumped with every change to an organization's webhooks, so that each node's in-memory,
-- parsed copy of them is checked with one primary-key read per event.
ALTER TABLE organizations ADD COLUMN webhooks_version BIGINT NOT NULL DEFAULT 0;

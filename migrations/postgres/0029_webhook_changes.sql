-- What a catalog holding an organization's webhooks as of its webhooks_version v must read
-- to catch up, instead of every webhook again: the rows written after v (changed_version,
-- the version a webhook's last write left) and the webhooks deleted after v (kept for the
-- organization's last 1,000 versions; a catalog further behind, or any doubt, is settled
-- by the count of webhooks, and the ids are read).
ALTER TABLE webhooks ADD COLUMN changed_version BIGINT NOT NULL DEFAULT 0;
CREATE INDEX webhooks_changed ON webhooks (organization_id, changed_version);
CREATE TABLE webhook_deletions (
    organization_id TEXT NOT NULL,
    webhook_id TEXT NOT NULL,
    version BIGINT NOT NULL,
    PRIMARY KEY (organization_id, version, webhook_id)
);

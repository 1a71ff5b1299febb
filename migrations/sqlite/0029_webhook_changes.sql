-- What a catalog holding an organization's webhooks as of its webhooks_version v must read
-- to catch up, instead of every webhook again: the rows written after v (changed_version,
-- the version the write's own bump makes) and the webhooks deleted after v (kept for the
-- organization's last 1,000 versions; a catalog further behind, or any doubt, is settled
-- by the count of webhooks, and the ids are read).
--
-- Kept by triggers, so that every write marks its row whatever code made it (a write path
-- added later): a write to a webhook comes before its transaction's bump of the
-- organization's version (SQLite runs one writing transaction at a time).
ALTER TABLE webhooks ADD COLUMN changed_version BIGINT NOT NULL DEFAULT 0;
CREATE INDEX webhooks_changed ON webhooks (organization_id, changed_version);
CREATE TABLE webhook_deletions (
    organization_id TEXT NOT NULL,
    webhook_id TEXT NOT NULL,
    version BIGINT NOT NULL,
    PRIMARY KEY (organization_id, version, webhook_id)
);

-- (An inner UPDATE does not fire its own trigger again: recursive triggers are off. The
-- insert trigger's UPDATE fires the update trigger once, which writes the same value.)
CREATE TRIGGER webhooks_inserted AFTER INSERT ON webhooks
BEGIN
    UPDATE webhooks SET changed_version = COALESCE(
        (SELECT webhooks_version + 1 FROM organizations WHERE id = NEW.organization_id), 0)
    WHERE id = NEW.id;
END;
CREATE TRIGGER webhooks_updated AFTER UPDATE ON webhooks
BEGIN
    UPDATE webhooks SET changed_version = COALESCE(
        (SELECT webhooks_version + 1 FROM organizations WHERE id = NEW.organization_id), 0)
    WHERE id = NEW.id;
END;
CREATE TRIGGER webhooks_deleted AFTER DELETE ON webhooks
BEGIN
    INSERT OR IGNORE INTO webhook_deletions (organization_id, webhook_id, version)
        SELECT OLD.organization_id, OLD.id, webhooks_version + 1
        FROM organizations WHERE id = OLD.organization_id;
    DELETE FROM webhook_deletions
        WHERE organization_id = OLD.organization_id
          AND version <= (SELECT webhooks_version + 1 - 1000 FROM organizations WHERE id = OLD.organization_id);
END;

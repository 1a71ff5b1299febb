-- What a catalog holding an organization's webhooks as of its webhooks_version v must read
-- to catch up, instead of every webhook again: the rows written after v (changed_version,
-- the version the write's own bump makes) and the webhooks deleted after v (kept for the
-- organization's last 1,000 versions; a catalog further behind, or any doubt, is settled
-- by the count of webhooks, and the ids are read).
--
-- Kept by triggers, so that every write marks its row whatever code made it (a node of an
-- older version during an upgrade, a write path added later): a write to a webhook comes
-- before its transaction's bump of the organization's version. The organization's row is
-- locked when the webhook is written (FOR NO KEY UPDATE, as the bump itself locks it: rows
-- of other tables that refer to the organization are still written meanwhile), so two
-- transactions writing webhooks of one organization take their versions in commit order.
ALTER TABLE webhooks ADD COLUMN changed_version BIGINT NOT NULL DEFAULT 0;
CREATE INDEX webhooks_changed ON webhooks (organization_id, changed_version);
CREATE TABLE webhook_deletions (
    organization_id TEXT NOT NULL,
    webhook_id TEXT NOT NULL,
    version BIGINT NOT NULL,
    PRIMARY KEY (organization_id, version, webhook_id)
);

CREATE FUNCTION tocsin_webhook_written() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    SELECT webhooks_version + 1 INTO NEW.changed_version
        FROM organizations WHERE id = NEW.organization_id FOR NO KEY UPDATE;
    NEW.changed_version := COALESCE(NEW.changed_version, 0);
    RETURN NEW;
END
$$;
CREATE TRIGGER webhooks_written
    BEFORE INSERT OR UPDATE ON webhooks
    FOR EACH ROW EXECUTE FUNCTION tocsin_webhook_written();

CREATE FUNCTION tocsin_webhook_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    next_version BIGINT;
BEGIN
    SELECT webhooks_version + 1 INTO next_version
        FROM organizations WHERE id = OLD.organization_id FOR NO KEY UPDATE;
    IF next_version IS NOT NULL THEN
        INSERT INTO webhook_deletions (organization_id, webhook_id, version)
            VALUES (OLD.organization_id, OLD.id, next_version) ON CONFLICT DO NOTHING;
        DELETE FROM webhook_deletions
            WHERE organization_id = OLD.organization_id AND version <= next_version - 1000;
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER webhooks_deleted
    AFTER DELETE ON webhooks
    FOR EACH ROW EXECUTE FUNCTION tocsin_webhook_deleted();

-- Changes that other nodes must hear of at once, sent on the channel `tocsin` when the
-- writing transaction commits (NOTIFY waits for the commit; identical payloads within one
-- transaction are sent once). Each node listens and drops its cached copy or wakes its
-- poller; the nodes' periodic checks stay as the fallback should a notification be missed.

-- An organization's webhooks changed: payload `webhooks:<organization id>`.
CREATE FUNCTION tocsin_notify_webhooks() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('tocsin', 'webhooks:' || NEW.id);
    RETURN NULL;
END
$$;
CREATE TRIGGER organizations_notify_webhooks
    AFTER UPDATE OF webhooks_version ON organizations
    FOR EACH ROW WHEN (OLD.webhooks_version IS DISTINCT FROM NEW.webhooks_version)
    EXECUTE FUNCTION tocsin_notify_webhooks();

-- A token was revoked or changed: payload `tokens` (each node forgets the tokens it trusts).
-- Not on `last_used_at`, which every request may touch.
CREATE FUNCTION tocsin_notify_tokens() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('tocsin', 'tokens');
    RETURN NULL;
END
$$;
CREATE TRIGGER api_tokens_notify_update
    AFTER UPDATE OF revoked_at, abilities, expires_at ON api_tokens
    FOR EACH STATEMENT EXECUTE FUNCTION tocsin_notify_tokens();
CREATE TRIGGER api_tokens_notify_delete
    AFTER DELETE ON api_tokens
    FOR EACH STATEMENT EXECUTE FUNCTION tocsin_notify_tokens();

-- Deliveries any node may take now (pending, unleased, not parked, due): payload `work`,
-- so idle pollers claim them at once — leases released by a node shutting down, bulk
-- retries, deliveries written behind a busy lane. Retries scheduled for later do not wake
-- anyone. One check per statement over its changed rows (a transition table, which
-- PostgreSQL allows for one event per trigger, hence two triggers).
CREATE FUNCTION tocsin_notify_work() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (
        SELECT 1 FROM changed
        WHERE state = 'pending' AND lease_owner IS NULL AND parked = 0
          AND next_attempt_at <= (extract(epoch FROM clock_timestamp()) * 1000000)::BIGINT
    ) THEN
        PERFORM pg_notify('tocsin', 'work');
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER deliveries_notify_insert
    AFTER INSERT ON deliveries REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION tocsin_notify_work();
CREATE TRIGGER deliveries_notify_update
    AFTER UPDATE ON deliveries REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION tocsin_notify_work();

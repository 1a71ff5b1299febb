-- Per webhook and URL (as deliveries store it): when it last delivered, and since when it
-- has failed without a success; kept in the transaction that records attempts. A webhook
-- whose every URL has failed for delivery.disable_after is disabled.
CREATE TABLE url_health (
    webhook_id       TEXT NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    url              TEXT NOT NULL,
    organization_id  TEXT NOT NULL,
    last_success_at  BIGINT,
    failing_since    BIGINT,
    PRIMARY KEY (webhook_id, url)
);

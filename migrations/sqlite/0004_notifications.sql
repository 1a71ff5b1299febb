-- Failure notifications: recorded in the same transaction that marks a delivery failed,
-- sent (or skipped) by the notifier, at most one e-mail per webhook per window.
CREATE TABLE notifications (
    id               TEXT PRIMARY KEY,
    organization_id  TEXT NOT NULL,
    webhook_id       TEXT NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    delivery_id      TEXT NOT NULL UNIQUE REFERENCES deliveries (id) ON DELETE CASCADE,
    state            TEXT NOT NULL,
    attempts         BIGINT NOT NULL DEFAULT 0,
    next_attempt_at  BIGINT,
    last_error       TEXT,
    created_at       BIGINT NOT NULL,
    sent_at          BIGINT
);

CREATE INDEX notifications_due ON notifications (next_attempt_at) WHERE state = 'pending';
CREATE INDEX notifications_by_webhook ON notifications (webhook_id, created_at);

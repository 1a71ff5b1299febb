-- What a webhook's failure addresses hear about the webhook as a whole: a URL stopped
-- answering (its circuit opened), answers again, or tocsin disabled the webhook. Sent by
-- the notifier under the same one-e-mail-per-window rule as failed deliveries.
CREATE TABLE notices (
    id               TEXT PRIMARY KEY,
    organization_id  TEXT NOT NULL,
    webhook_id       TEXT NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    kind             TEXT NOT NULL,
    url              TEXT NOT NULL,
    detail           TEXT NOT NULL,
    state            TEXT NOT NULL,
    attempts         BIGINT NOT NULL DEFAULT 0,
    next_attempt_at  BIGINT,
    last_error       TEXT,
    created_at       BIGINT NOT NULL,
    sent_at          BIGINT
);
CREATE INDEX notices_due ON notices (next_attempt_at) WHERE state = 'pending';
CREATE INDEX notices_by_webhook ON notices (webhook_id, created_at);

-- Why tocsin disabled a webhook (410 Gone); cleared when someone enables it again.
ALTER TABLE webhooks ADD COLUMN disabled_reason TEXT;

-- Bulk retries: re-queuing a webhook's finished deliveries that match filters, in batches,
-- with progress to read. A running job saves its progress after every batch (updated_at);
-- one not heard of for a minute belonged to a process that stopped.
CREATE TABLE retry_jobs (
    id               TEXT PRIMARY KEY,
    organization_id  TEXT NOT NULL,
    webhook_id       TEXT NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    filters          TEXT NOT NULL,
    state            TEXT NOT NULL,
    total            BIGINT NOT NULL,
    done             BIGINT NOT NULL DEFAULT 0,
    error            TEXT,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    finished_at      BIGINT
);

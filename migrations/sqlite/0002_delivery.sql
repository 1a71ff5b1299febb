-- Events as received (for idempotency and the manual trigger), the latest event of each
-- incident, deliveries (the work queue) and their attempts (the log).

CREATE TABLE events (
    id                TEXT PRIMARY KEY,
    organization_id   TEXT NOT NULL REFERENCES organizations (id),
    producer_id       TEXT,
    event_type        TEXT NOT NULL,
    incident_id       TEXT NOT NULL,
    payload_event_id  TEXT NOT NULL,
    timestamp         TEXT NOT NULL,
    body              TEXT NOT NULL,
    delivery_count    BIGINT NOT NULL,
    received_at       BIGINT NOT NULL,
    UNIQUE (organization_id, producer_id)
);

CREATE TABLE incidents (
    organization_id  TEXT NOT NULL,
    incident_id      TEXT NOT NULL,
    event_id         TEXT NOT NULL REFERENCES events (id),
    updated_at       BIGINT NOT NULL,
    PRIMARY KEY (organization_id, incident_id)
);

-- seq orders deliveries: acceptance order within a lane, newest-first in the logs.
CREATE TABLE deliveries (
    seq              INTEGER PRIMARY KEY AUTOINCREMENT,
    id               TEXT NOT NULL UNIQUE,
    organization_id  TEXT NOT NULL,
    webhook_id       TEXT NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event_id         TEXT NOT NULL REFERENCES events (id),
    event_type       TEXT NOT NULL,
    incident_id      TEXT NOT NULL,
    url              TEXT NOT NULL,
    method           TEXT NOT NULL,
    payload          TEXT NOT NULL,
    lane             TEXT NOT NULL,
    state            TEXT NOT NULL,
    attempts         BIGINT NOT NULL DEFAULT 0,
    next_attempt_at  BIGINT,
    leased_until     BIGINT,
    lease_owner      TEXT,
    last_status      BIGINT,
    last_error       TEXT,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    completed_at     BIGINT
);

CREATE INDEX deliveries_due ON deliveries (next_attempt_at, seq) WHERE state = 'pending';
CREATE INDEX deliveries_lane ON deliveries (lane, seq) WHERE state = 'pending';
CREATE INDEX deliveries_log ON deliveries (webhook_id, seq);

CREATE TABLE attempts (
    delivery_id       TEXT NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
    number            BIGINT NOT NULL,
    started_at        BIGINT NOT NULL,
    duration_ms       BIGINT NOT NULL,
    request_headers   TEXT NOT NULL,
    response_status   BIGINT,
    response_headers  TEXT,
    response_body     TEXT,
    error             TEXT,
    PRIMARY KEY (delivery_id, number)
);

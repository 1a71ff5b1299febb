-- Event sources (DESIGN.md §2.3.1): where an alerting or incident tool posts. From this
-- migration on, a migration has the same number on both backends (SQLite had no 0024).

CREATE TABLE sources (
    id               TEXT PRIMARY KEY,
    organization_id  TEXT NOT NULL REFERENCES organizations (id),
    name             TEXT NOT NULL,
    kind             TEXT NOT NULL,
    description      TEXT NOT NULL,
    enabled          BIGINT NOT NULL,
    -- {"id", "name"} as JSON, or NULL for the default team.
    team             TEXT,
    -- The kind's settings as JSON; a PagerDuty signing secret is sealed inside it.
    settings         TEXT NOT NULL,
    -- SHA-256 of the credential; the credential is shown once.
    token_hash       TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL
);
CREATE INDEX sources_by_organization ON sources (organization_id, created_at);

-- What each source said last about each incident, under the source's own key for it.
CREATE TABLE source_incidents (
    source_id     TEXT NOT NULL REFERENCES sources (id) ON DELETE CASCADE,
    incident_key  TEXT NOT NULL,
    incident_id   TEXT NOT NULL,
    status        TEXT NOT NULL,
    generation    BIGINT NOT NULL,
    events        BIGINT NOT NULL,
    last_event_id TEXT NOT NULL,
    -- The incident object and team last sent, JSON.
    incident      TEXT NOT NULL,
    team          TEXT,
    updated_at    BIGINT NOT NULL,
    PRIMARY KEY (source_id, incident_key)
);
CREATE INDEX source_incidents_by_time ON source_incidents (updated_at);

-- The newest payloads each source received and what they became (100 kept per source).
CREATE TABLE source_receipts (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    id           TEXT NOT NULL,
    source_id    TEXT NOT NULL REFERENCES sources (id) ON DELETE CASCADE,
    received_at  BIGINT NOT NULL,
    outcome      TEXT NOT NULL,
    status       BIGINT NOT NULL,
    -- JSON arrays of text.
    results      TEXT NOT NULL,
    event_ids    TEXT NOT NULL,
    body         TEXT NOT NULL,
    truncated    BIGINT NOT NULL
);
CREATE INDEX source_receipts_by_source ON source_receipts (source_id, seq);

-- Receipts counted per source, day (micros at midnight UTC) and outcome, for the list.
CREATE TABLE source_days (
    source_id  TEXT NOT NULL REFERENCES sources (id) ON DELETE CASCADE,
    day        BIGINT NOT NULL,
    accepted   BIGINT NOT NULL,
    ignored    BIGINT NOT NULL,
    refused    BIGINT NOT NULL,
    PRIMARY KEY (source_id, day)
);

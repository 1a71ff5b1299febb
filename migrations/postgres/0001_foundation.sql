-- Timestamps are microseconds since the Unix epoch (BIGINT), so that one SQL text serves
-- SQLite and PostgreSQL. Flags are BIGINT 0/1 for the same reason.

CREATE TABLE organizations (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);

-- One row at most: which organization the first start created. Guards against two
-- processes both bootstrapping an empty database.
CREATE TABLE installation (
    singleton        BIGINT PRIMARY KEY CHECK (singleton = 1),
    organization_id  TEXT NOT NULL REFERENCES organizations (id),
    created_at       BIGINT NOT NULL
);

CREATE TABLE api_tokens (
    id               TEXT PRIMARY KEY,
    organization_id  TEXT NOT NULL REFERENCES organizations (id),
    name             TEXT NOT NULL,
    token_hash       TEXT NOT NULL UNIQUE,
    abilities        TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    revoked_at       BIGINT
);

CREATE TABLE webhooks (
    id               TEXT PRIMARY KEY,
    organization_id  TEXT NOT NULL REFERENCES organizations (id),
    slug             TEXT NOT NULL,
    author_id        TEXT NOT NULL,
    spec             TEXT NOT NULL,
    secret           TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL
);

CREATE INDEX webhooks_by_organization ON webhooks (organization_id, created_at, id);

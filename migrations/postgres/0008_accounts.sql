-- People, their browser sessions and one-time setup links; token expiry and last use; the
-- audit log. Secrets (session ids, setup codes) are stored only as SHA-256 hashes,
-- passwords only as Argon2id PHC strings.

CREATE TABLE users (
    id               TEXT PRIMARY KEY,
    organization_id  TEXT NOT NULL REFERENCES organizations (id),
    email            TEXT NOT NULL,
    -- The email lower-cased: unique per organization whatever its case.
    email_key        TEXT NOT NULL,
    name             TEXT NOT NULL,
    role             TEXT NOT NULL,
    password_hash    TEXT,
    disabled         BIGINT NOT NULL DEFAULT 0,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    last_login_at    BIGINT
);

CREATE UNIQUE INDEX users_by_email ON users (organization_id, email_key);
-- Login knows the email, not the organization.
CREATE INDEX users_by_email_key ON users (email_key);

CREATE TABLE sessions (
    id_hash       TEXT PRIMARY KEY,
    user_id       TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at    BIGINT NOT NULL,
    last_seen_at  BIGINT NOT NULL
);

CREATE INDEX sessions_by_user ON sessions (user_id);

CREATE TABLE setup_links (
    code_hash        TEXT PRIMARY KEY,
    organization_id  TEXT NOT NULL REFERENCES organizations (id),
    -- NULL: the first start's link, which creates its account when used.
    user_id          TEXT REFERENCES users (id) ON DELETE CASCADE,
    role             TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    expires_at       BIGINT NOT NULL,
    used_at          BIGINT
);

CREATE INDEX setup_links_by_user ON setup_links (user_id);

ALTER TABLE api_tokens ADD COLUMN expires_at BIGINT;
ALTER TABLE api_tokens ADD COLUMN last_used_at BIGINT;
CREATE INDEX api_tokens_by_organization ON api_tokens (organization_id, created_at);

-- seq orders entries newest first and is the paging cursor.
CREATE TABLE audit_log (
    seq              BIGSERIAL PRIMARY KEY,
    id               TEXT NOT NULL UNIQUE,
    organization_id  TEXT NOT NULL REFERENCES organizations (id),
    at               BIGINT NOT NULL,
    actor_kind       TEXT NOT NULL,
    actor_id         TEXT NOT NULL,
    actor_name       TEXT NOT NULL,
    action           TEXT NOT NULL,
    object_kind      TEXT NOT NULL,
    object_id        TEXT NOT NULL,
    object_name      TEXT NOT NULL,
    changes          TEXT NOT NULL
);

CREATE INDEX audit_log_by_organization ON audit_log (organization_id, seq);
CREATE INDEX audit_log_by_object ON audit_log (organization_id, object_id, seq);

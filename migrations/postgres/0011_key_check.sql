-- Tells whether the configured secret key is the one the database's secrets are sealed
-- with: one row, the key's public id and a known value sealed under it.
CREATE TABLE key_check (
    id BIGINT PRIMARY KEY,
    key_id TEXT NOT NULL,
    sealed TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

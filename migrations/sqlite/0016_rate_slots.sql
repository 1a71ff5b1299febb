-- Token buckets for webhooks' rate_limit_per_second, per webhook and URL, shared by every
-- node on the database: tokens left at `at` (micros).
CREATE TABLE rate_slots (
    key     TEXT PRIMARY KEY,
    tokens  REAL NOT NULL,
    at      BIGINT NOT NULL
);

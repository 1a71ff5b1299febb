-- The nodes serving this database, each beating every few seconds while it runs and
-- removed when it stops: `tocsin rotate-key` refuses while any has beaten lately (a node
-- still running with the old key would fail every write and read of a sealed value).
CREATE TABLE nodes (
    id          TEXT PRIMARY KEY,
    started_at  BIGINT NOT NULL,
    seen_at     BIGINT NOT NULL
);

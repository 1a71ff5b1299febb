-- Open circuits, shared by every node on the database, so a dead URL gets one stream of
-- probes from the whole cluster, and one outage and one recovery notice: a row per URL
-- (by the SHA-256 of its text, never the URL itself, which may carry a password) whose
-- circuit some node opened; when its next probe may go and the cool-down that set it; the
-- node probing it now and until when its claim holds.
CREATE TABLE circuits (
    url_key      TEXT PRIMARY KEY,
    opened_at    BIGINT NOT NULL,
    probe_at     BIGINT NOT NULL,
    cooldown_ms  BIGINT NOT NULL,
    probe_owner  TEXT,
    probe_until  BIGINT
);

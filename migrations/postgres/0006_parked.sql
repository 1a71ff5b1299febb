-- Parked deliveries wait in the store, not in memory, while their URL has no room on the
-- node or its circuit is open (a run of failures). They are taken back per URL, in order,
-- through their own partial index, so a dead URL's backlog is never scanned by claims.
ALTER TABLE deliveries ADD COLUMN parked BIGINT NOT NULL DEFAULT 0;
CREATE INDEX deliveries_parked ON deliveries (url, seq) WHERE state = 'pending' AND parked = 1;

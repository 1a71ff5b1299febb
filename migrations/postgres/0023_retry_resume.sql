-- A bulk retry whose runner stops (its node died or restarted) is taken up again by a
-- running node: the filters in the store's own form, the position reached, and which
-- runner holds it (a runner that was taken over stops at its next save). Jobs made
-- before this have no query and stay interrupted.
ALTER TABLE retry_jobs ADD COLUMN query TEXT;
ALTER TABLE retry_jobs ADD COLUMN after_seq BIGINT NOT NULL DEFAULT 0;
ALTER TABLE retry_jobs ADD COLUMN runner TEXT;

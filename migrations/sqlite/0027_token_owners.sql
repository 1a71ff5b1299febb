-- Who made each token: the person (id and e-mail when made), inherited by a token that a
-- token makes, NULL for the command line's and the first start's. Disabling or deleting
-- that person revokes them, so a token never outlives the admin behind it.
ALTER TABLE api_tokens ADD COLUMN created_by TEXT;
ALTER TABLE api_tokens ADD COLUMN created_by_email TEXT;
CREATE INDEX api_tokens_by_creator ON api_tokens (created_by) WHERE created_by IS NOT NULL;
